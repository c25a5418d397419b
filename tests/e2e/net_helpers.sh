# shellcheck shell=sh
# Network helpers for tests/e2e/test_postfix.sh, sourced by it (POSIX sh
# functions around perl one-offs: perl is there, swaks needs it).  They only
# ever touch loopback addresses.  Each prints its result on stdout and says
# yes/no with its exit status; none of them keeps state.

# can_connect HOST PORT: is something accepting TCP connections there?
can_connect() {
	perl -MIO::Socket::IP -e '
		my $s = IO::Socket::IP->new(PeerHost => $ARGV[0],
			PeerPort => $ARGV[1], Proto => "tcp", Timeout => 2);
		exit($s ? 0 : 1);' "$1" "$2" 2>/dev/null
}

# free_ports N V6: N distinct TCP ports free on 127.0.0.1 (and on ::1 if
# V6 is 1), picked at random outside the usual ephemeral range.
free_ports() {
	perl -MIO::Socket::IP -e '
		my ($n, $v6) = @ARGV; my (%seen, @p);
		for (1 .. 500) {
			last if @p == $n;
			my $p = 20000 + int(rand(12000));
			next if $seen{$p}++;
			my @h = ("127.0.0.1", $v6 ? ("::1") : ());
			my $free = 1;
			for my $h (@h) {
				my $s = IO::Socket::IP->new(LocalHost => $h,
					LocalPort => $p, Proto => "tcp", Listen => 1,
					ReuseAddr => 1);
				if ($s) { close $s } else { $free = 0; last }
			}
			# unbound serves on one of them over UDP as well
			my $u = IO::Socket::IP->new(LocalHost => "127.0.0.1",
				LocalPort => $p, Proto => "udp");
			if ($u) { close $u } else { $free = 0 }
			push @p, $p if $free;
		}
		print "@p\n"; exit(@p == $n ? 0 : 1);' "$1" "$2"
}

# Does this host have a usable ::1?
have_ipv6_loopback() {
	perl -MIO::Socket::IP -e '
		my $s = IO::Socket::IP->new(LocalHost => "::1", LocalPort => 0,
			Proto => "tcp", Listen => 1);
		exit($s ? 0 : 1);' 2>/dev/null
}

# dns_txt PORT NAME: the TXT strings 127.0.0.1:PORT answers for NAME, one
# record a line; status 1 without an answer within half a second, 10 +
# RCODE for an error answer (13: NXDOMAIN).  Only to see that the test's
# unbound serves its data and nothing else.
dns_txt() {
	perl -MIO::Socket::IP -e '
		my ($port, $name) = @ARGV;
		my $s = IO::Socket::IP->new(PeerHost => "127.0.0.1",
			PeerPort => $port, Proto => "udp") or exit 1;
		my $id = int(rand(65536));
		my $q = pack("n6", $id, 0x0100, 1, 0, 0, 0);
		$q .= pack("C/a*", $_) for split /\./, $name;
		$q .= pack("Cnn", 0, 16, 1);		# TXT IN
		$s->send($q) or exit 1;
		my $rin = ""; vec($rin, fileno($s), 1) = 1;
		select(my $rout = $rin, undef, undef, 0.5) or exit 1;
		my $r; defined($s->recv($r, 65535)) or exit 1;
		my ($rid, $flags, $qd, $an) = unpack("n4", $r);
		exit 1 if $rid != $id;
		exit(10 + ($flags & 0xf)) if ($flags & 0xf) != 0;
		my $p = 12;
		my $skip = sub {	# a possibly compressed name
			while ($p < length $r) {
				my $l = ord(substr($r, $p, 1));
				if ($l >= 0xc0) { $p += 2; return }
				$p += $l + 1;
				return if $l == 0;
			}
		};
		for (1 .. $qd) { $skip->(); $p += 4 }
		for (1 .. $an) {
			$skip->();
			my ($type, $len) = unpack("n x6 n", substr($r, $p, 10));
			$p += 10;
			my ($i, $end, $txt) = ($p, $p + $len, "");
			while ($type == 16 && $i < $end) {
				my $l = ord(substr($r, $i, 1));
				$txt .= substr($r, $i + 1, $l);
				$i += $l + 1;
			}
			print "$txt\n" if $type == 16;
			$p = $end;
		}' "$1" "$2" 2>/dev/null
}

# smtp_v6 PORT FROM TO: the RCPT part of an SMTP dialogue from ::1 to ::1,
# printed the way swaks prints it ("<-" accepted, "<**" rejected).  Used
# only when swaks lacks IPv6 (it needs IO::Socket::INET6, a Recommends).
smtp_v6() {
	perl -MIO::Socket::IP -e '
		my ($port, $from, $to) = @ARGV;
		my $s = IO::Socket::IP->new(PeerHost => "::1", PeerPort => $port,
			LocalHost => "::1", Proto => "tcp", Timeout => 10)
			or do { print "*** cannot connect to [::1]:$port: $@\n"; exit 2 };
		$s->autoflush(1);
		local $SIG{ALRM} = sub { print "*** timeout\n"; exit 3 };
		alarm 20;
		sub reply {
			my $all = "";
			while (defined(my $l = <$s>)) {
				$l =~ s/\r?\n$//; $all = $l;
				print(($l =~ /^[45]/ ? "<** " : "<-  "), $l, "\n");
				last if $l =~ /^\d{3} /;
			}
			return $all;
		}
		sub cmd { print " -> $_[0]\n"; print $s "$_[0]\r\n"; reply() }
		print "=== Connected to [::1]:$port (perl client, from ::1)\n";
		reply() =~ /^220/ or exit 4;
		cmd("EHLO client.greyhold-e2e.test") =~ /^250/ or exit 5;
		cmd("MAIL FROM:<$from>") =~ /^250/ or exit 6;
		my $r = cmd("RCPT TO:<$to>");
		cmd("QUIT");
		exit($r =~ /^250/ ? 0 : 1);' "$@"
}

# unbound_conf_closed PORT DIR: the start of an unbound.conf for a server on
# 127.0.0.1@PORT (UDP and TCP) that runs in the foreground, unprivileged,
# from DIR, and answers only from local data the caller appends
# (local-zone/local-data lines): "." is a static local zone, so every name
# the caller does not serve is NXDOMAIN, and do-not-query-address leaves
# unbound no server to recurse to should anything slip through.
unbound_conf_closed() {
	cat <<EOF
server:
  interface: 127.0.0.1@$1
  port: $1
  do-ip6: no
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$2"
  pidfile: "$2/unbound.pid"
  use-syslog: no
  logfile: ""
  verbosity: 1
  num-threads: 1
  so-reuseport: no
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  do-not-query-address: 0.0.0.0/0
  do-not-query-address: ::/0
  local-zone: "." static
EOF
}
