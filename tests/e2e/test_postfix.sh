#!/bin/sh
# End-to-end test: a private Postfix instance on loopback asks greyhold
# (check_policy_service) about every recipient; mail is sent with swaks.
#
#   1. first attempt for a triplet          -> 450 4.7.1 at RCPT
#   2. retry before the delay               -> 450 4.7.1 again
#   3. retry after the delay, full message  -> 250 after DATA, lands in a Maildir
#   4. another recipient                    -> 450 4.7.1 (a new triplet)
#   5. an IPv6 client on ::1 (if available) -> 450 4.7.1
#   6. greyhold's log has the matching greylist/pass lines
#
# A reply of "451 4.3.5 POLICY-SERVICE-FAILURE" means Postfix could not
# talk to greyhold; it must never appear.
#
# Needs root, postfix and swaks.  Without them it exits 77 (automake SKIP),
# or 1 when GREYHOLD_REQUIRE_E2E=1 (so CI cannot silently skip it).
# Env: GREYHOLD_BIN (the daemon), GREYHOLD_SRCDIR (the source tree),
# GREYHOLD_E2E_KEEP=1 keeps the temp dir for inspection.
#
# POSIX sh.  Everything it starts is stopped by PID in the EXIT trap.
# shellcheck disable=SC2317 # functions run from traps look unreachable

set -u

PATH=$PATH:/usr/sbin:/sbin
export PATH

DELAY=3                 # greyhold --delay, seconds
DOMAIN=greyhold-e2e.test
SENDER=sender@example.net
T_START=$(date +%s)

say() { printf '%s\n' "$*"; }

skip() {
	if [ "${GREYHOLD_REQUIRE_E2E:-0}" = 1 ]; then
		say "FAIL: cannot run the Postfix end-to-end test: $*"
		say "      (GREYHOLD_REQUIRE_E2E=1: skipping is not allowed)"
		exit 1
	fi
	say "SKIP: Postfix end-to-end test: $*"
	exit 77
}

# ---- can we run at all? ---------------------------------------------------

[ "$(id -u)" -eq 0 ] || skip "needs root (a private Postfix instance runs as root)"
for tool in postfix postconf swaks perl; do
	command -v "$tool" >/dev/null 2>&1 || skip "'$tool' is not installed"
done

GREYHOLD_BIN=${GREYHOLD_BIN:-}
if [ -z "$GREYHOLD_BIN" ] && [ -x ./src/greyhold ]; then
	GREYHOLD_BIN=$(pwd)/src/greyhold
fi
if [ -z "$GREYHOLD_BIN" ] || [ ! -x "$GREYHOLD_BIN" ]; then
	say "ERROR: GREYHOLD_BIN ('$GREYHOLD_BIN') is not an executable greyhold"
	exit 99
fi
: "${GREYHOLD_SRCDIR:=}"

# Bound commands that talk to other processes (coreutils timeout if present).
bounded() {
	secs=$1
	shift
	if command -v timeout >/dev/null 2>&1; then
		timeout -k 2 "$secs" "$@"
	else
		"$@"
	fi
}

# Short sleeps where sleep(1) takes fractions (coreutils, busybox).
if sleep 0.1 2>/dev/null; then NAP=0.2; else NAP=1; fi
nap() { sleep "$NAP"; }

# ---- state and cleanup ----------------------------------------------------

TMP=""
GH_PID=""
PF_STARTED=0
FAILED=0
CONF=""
QUEUE=""

show_logs() {
	[ -n "$TMP" ] || return 0
	say ""
	say "---- greyhold log (last 40 lines): $TMP/greyhold.log"
	tail -n 40 "$TMP/greyhold.log" 2>/dev/null
	say "---- postfix maillog (last 60 lines): $TMP/maillog"
	tail -n 60 "$TMP/maillog" 2>/dev/null
	if [ -s "$TMP/postfix-start.log" ]; then
		say "---- postfix start/check output"
		tail -n 20 "$TMP/postfix-start.log"
	fi
	say "----"
}

wait_gone() {	# PID SECONDS: wait until PID has exited (1 if it has not)
	n=0
	while kill -0 "$1" 2>/dev/null; do
		n=$((n + 1))
		[ "$n" -gt $(($2 * 5)) ] && return 1
		sleep 0.2 2>/dev/null || sleep 1
	done
	return 0
}

cleanup() {
	rc=$?
	trap - EXIT INT TERM HUP
	trap '' PIPE	# a closed stdout must not stop the clean-up
	if [ "$PF_STARTED" = 1 ]; then
		mpid=$(sed -n '1s/[^0-9]//gp' "$QUEUE/pid/master.pid" 2>/dev/null)
		bounded 20 postfix -c "$CONF" stop >>"$TMP/postfix-start.log" 2>&1
		if [ -n "$mpid" ] && ! wait_gone "$mpid" 10; then
			say "cleanup: postfix master $mpid still running, killing it"
			kill -KILL "$mpid" 2>/dev/null
		fi
	fi
	if [ -n "$GH_PID" ]; then
		kill -TERM "$GH_PID" 2>/dev/null
		if ! wait_gone "$GH_PID" 10; then
			say "cleanup: greyhold $GH_PID ignored SIGTERM, killing it"
			kill -KILL "$GH_PID" 2>/dev/null
		fi
		wait "$GH_PID" 2>/dev/null
	fi
	if [ -n "$TMP" ] && [ -d "$TMP" ]; then
		if [ "${GREYHOLD_E2E_KEEP:-0}" = 1 ]; then
			say "kept $TMP (GREYHOLD_E2E_KEEP=1)"
		else
			rm -rf "$TMP"
		fi
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
trap 'exit 141' PIPE	# e.g. piped into head: still clean up

die() {
	say "FAIL: $*"
	show_logs
	exit 1
}

ok() { say "ok   - $*"; }
notok() {
	say "FAIL - $*"
	FAILED=$((FAILED + 1))
}

# ---- helpers (perl is there: swaks needs it) ------------------------------

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

# swaks_rcpt NAME SERVER PORT TO [swaks args]: one dialogue up to RCPT,
# output saved in $TMP/NAME.out.
swaks_rcpt() {
	name=$1 server=$2 port=$3 to=$4
	shift 4
	bounded 30 swaks --server "$server" --port "$port" --from "$SENDER" \
		--to "$to" --helo client.greyhold-e2e.test --timeout 10 \
		--quit-after RCPT "$@" >"$TMP/$name.out" 2>&1
}

# The reply swaks printed for RCPT TO (the line after " -> RCPT TO:").
rcpt_reply() {
	awk '/^ *-> RCPT TO:/ { getline; sub(/^<[-*~]+ +/, ""); print; exit }' \
		"$TMP/$1.out"
}

# transcript NAME: the SMTP dialogue in NAME.out, without EHLO's list.
transcript() {
	grep -v '^<-  250-' "$TMP/$1.out" | sed 's/^/      | /'
}

# expect_450 NAME WHAT: the RCPT reply in NAME.out is a greylisting 450.
expect_450() {
	r=$(rcpt_reply "$1")
	if grep -q 'POLICY-SERVICE-FAILURE' "$TMP/$1.out"; then
		notok "$2: Postfix could not reach greyhold: $r"
		transcript "$1"
	elif printf '%s\n' "$r" | grep -q '^450 4\.7\.1 '; then
		ok "$2: RCPT -> $r"
	else
		notok "$2: expected '450 4.7.1 ...' at RCPT, got '$r'"
		transcript "$1"
	fi
}

# expect_log WHAT ERE: greyhold logged a line matching ERE (allow it a
# moment: the line is written just before the answer, but be tolerant).
expect_log() {
	n=0
	while ! grep -Eq "$2" "$TMP/greyhold.log"; do
		n=$((n + 1))
		if [ "$n" -gt 5 ]; then
			notok "greyhold log: no line for $1 (/$2/)"
			return
		fi
		nap
	done
	ok "greyhold log: $1: $(grep -E "$2" "$TMP/greyhold.log" | head -n 1 |
		sed 's/^.*\(action=\)/\1/' | cut -c1-110)"
}

# ---- set up ---------------------------------------------------------------

TMP=$(mktemp -d /tmp/greyhold-e2e.XXXXXX) || die "mktemp failed"
# Postfix daemons (user postfix) and virtual(8) (user nobody) work below.
chmod 755 "$TMP"
say "# greyhold end-to-end test with Postfix $(postconf -dh mail_version 2>/dev/null) in $TMP"

IPV6=0
if have_ipv6_loopback; then IPV6=1; fi

# shellcheck disable=SC2046 # two words wanted
set -- $(free_ports 3 "$IPV6") || true
[ $# -eq 3 ] || die "could not find three free TCP ports on loopback"
GH_PORT=$1
SMTP_PORT=$2
SMTP_UNIX_PORT=$3	# an smtpd that reaches greyhold over a unix socket

# The unix socket lives inside Postfix's queue directory, as it must for a
# chrooted smtpd ("check_policy_service unix:greyhold/socket", a path
# relative to the queue directory): a directory Postfix may enter, the
# socket in group postfix with mode 0660 (greyhold(8), "Unix socket").
QUEUE=$TMP/queue
mkdir -p "$QUEUE/greyhold" || die "mkdir failed"
chown root:postfix "$QUEUE/greyhold" && chmod 0750 "$QUEUE/greyhold" ||
	die "cannot prepare $QUEUE/greyhold"

# -- greyhold ---------------------------------------------------------------
# An empty config file: no /etc/greyhold/greyhold.conf of this host leaks in.
printf '# greyhold e2e test: everything is set on the command line\n' \
	>"$TMP/greyhold.conf"
"$GREYHOLD_BIN" -f -c "$TMP/greyhold.conf" --dbdir "$TMP/db" \
	--inet "127.0.0.1:$GH_PORT" --unix "$QUEUE/greyhold/socket" \
	-o unix_group=postfix -o unix_mode=0660 --delay "$DELAY" \
	-o resolver=127.0.0.1:1 \
	</dev/null >"$TMP/greyhold.log" 2>&1 &
GH_PID=$!
n=0
until can_connect 127.0.0.1 "$GH_PORT"; do
	kill -0 "$GH_PID" 2>/dev/null || { GH_PID=""; die "greyhold exited at start"; }
	n=$((n + 1))
	[ "$n" -gt 50 ] && die "greyhold does not accept connections on 127.0.0.1:$GH_PORT"
	nap
done
ok "greyhold (pid $GH_PID) accepts connections on 127.0.0.1:$GH_PORT, delay ${DELAY}s"

# -- postfix ----------------------------------------------------------------
CONF=$TMP/postfix
mkdir -p "$CONF" "$QUEUE" "$TMP/data" "$TMP/mail" || die "mkdir failed"
chown postfix "$TMP/data" || die "cannot chown $TMP/data to postfix"
chown 65534:65534 "$TMP/mail" || die "cannot chown $TMP/mail to 65534"

if [ "$IPV6" = 1 ]; then
	INET_PROTOCOLS=all
	MYNETWORKS="127.0.0.0/8 [::1]/128"
else
	INET_PROTOCOLS=ipv4
	MYNETWORKS="127.0.0.0/8"
fi

cat >"$CONF/main.cf" <<EOF
# greyhold end-to-end test: a private, throwaway instance
compatibility_level = 3.6
queue_directory = $QUEUE
data_directory = $TMP/data
myhostname = mx.$DOMAIN
mydomain = $DOMAIN
myorigin = \$myhostname
mydestination =
relay_domains =
inet_interfaces = loopback-only
inet_protocols = $INET_PROTOCOLS
mynetworks = $MYNETWORKS
alias_maps =
alias_database =
local_recipient_maps =
# Nothing leaves this machine.
default_transport = error:greyhold e2e test sends no outbound mail
relay_transport = error:greyhold e2e test sends no outbound mail

# Delivery: every recipient of the test domain goes to one Maildir.
virtual_mailbox_domains = $DOMAIN
virtual_mailbox_base = $TMP/mail
virtual_mailbox_maps = static:sink/
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_minimum_uid = 100

# The policy check; no permit_mynetworks before it (loopback would bypass it).
smtpd_recipient_restrictions = reject_unauth_destination,
    check_policy_service inet:127.0.0.1:$GH_PORT, permit
smtpd_policy_service_default_action = 451 4.3.5 POLICY-SERVICE-FAILURE
smtpd_policy_service_timeout = 5s
smtpd_peername_lookup = no
smtpd_error_sleep_time = 0s
smtpd_soft_error_limit = 100
smtpd_hard_error_limit = 100

# Logs without syslog.
maillog_file = $TMP/maillog
maillog_file_prefixes = $TMP

# Fast queue runs.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
biff = no
EOF

# Nothing chrooted (5th column n): no chroot set-up needed.
{
	echo "# service type private unpriv chroot wakeup maxproc command"
	echo "127.0.0.1:$SMTP_PORT inet n - n - - smtpd"
	echo "127.0.0.1:$SMTP_UNIX_PORT inet n - n - - smtpd"
	echo "  -o smtpd_recipient_restrictions=reject_unauth_destination,check_policy_service,unix:greyhold/socket,permit"
	[ "$IPV6" = 1 ] && echo "[::1]:$SMTP_PORT inet n - n - - smtpd"
	cat <<'EOF'
cleanup   unix  n - n -    0 cleanup
qmgr      unix  n - n 300  1 qmgr
rewrite   unix  - - n -    - trivial-rewrite
bounce    unix  - - n -    0 bounce
defer     unix  - - n -    0 bounce
trace     unix  - - n -    0 bounce
verify    unix  - - n -    1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -    - proxymap
virtual   unix  - n n -    - virtual
error     unix  - - n -    - error
retry     unix  - - n -    - error
discard   unix  - - n -    - discard
anvil     unix  - - n -    1 anvil
scache    unix  - - n -    1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
} >"$CONF/master.cf"

bounded 30 postfix -c "$CONF" check >"$TMP/postfix-start.log" 2>&1 ||
	die "postfix -c $CONF check failed"
bounded 30 postfix -c "$CONF" start >>"$TMP/postfix-start.log" 2>&1 ||
	die "postfix -c $CONF start failed"
PF_STARTED=1
n=0
until can_connect 127.0.0.1 "$SMTP_PORT"; do
	n=$((n + 1))
	[ "$n" -gt 75 ] && die "Postfix smtpd does not accept connections on 127.0.0.1:$SMTP_PORT"
	nap
done
ok "Postfix (postfix -c $CONF) accepts SMTP on 127.0.0.1:$SMTP_PORT"

# ---- the scenario ---------------------------------------------------------

# 1. First attempt: greylisted.
swaks_rcpt first 127.0.0.1 "$SMTP_PORT" "alice@$DOMAIN"
T_FIRST=$(date +%s)	# greyhold's first_seen is at most this
expect_450 first "first attempt, alice@$DOMAIN"

# 2. Retry before the delay: still greylisted.
swaks_rcpt early 127.0.0.1 "$SMTP_PORT" "alice@$DOMAIN"
T_EARLY=$(date +%s)
if [ $((T_EARLY - T_FIRST)) -ge "$DELAY" ]; then
	notok "the early retry came $((T_EARLY - T_FIRST))s after the first attempt, not within the ${DELAY}s delay (slow host?)"
else
	expect_450 early "retry before the ${DELAY}s delay"
fi

# 3. After the delay: the full message is accepted and delivered.
until [ "$(date +%s)" -ge $((T_FIRST + DELAY + 1)) ]; do nap; done
SUBJECT="greyhold e2e $$-$T_START"
bounded 30 swaks --server 127.0.0.1 --port "$SMTP_PORT" --from "$SENDER" \
	--to "alice@$DOMAIN" --helo client.greyhold-e2e.test --timeout 10 \
	--header "Subject: $SUBJECT" --body "greyhold end-to-end test message" \
	>"$TMP/send.out" 2>&1
r=$(rcpt_reply send)
q=$(awk '/^ *-> \.$/ { getline; sub(/^<[-*~]+ +/, ""); print; exit }' "$TMP/send.out")
if grep -q 'POLICY-SERVICE-FAILURE' "$TMP/send.out"; then
	notok "retry after the delay: Postfix could not reach greyhold: $r"
	transcript send
elif printf '%s\n' "$r" | grep -q '^250 ' &&
	printf '%s\n' "$q" | grep -q '^250 .*queued as'; then
	ok "retry after the delay: RCPT -> $r"
	ok "retry after the delay: end of DATA -> $q"
else
	notok "retry after the delay: expected 250 at RCPT and after DATA, got '$r' / '$q'"
	transcript send
fi

n=0
delivered=""
while [ -z "$delivered" ]; do
	delivered=$(grep -l -F "Subject: $SUBJECT" "$TMP/mail/sink/new/"* 2>/dev/null | head -n 1)
	[ -n "$delivered" ] && break
	n=$((n + 1))
	[ "$n" -gt 75 ] && break
	nap
done
if [ -n "$delivered" ]; then
	ok "message delivered to the Maildir: ${delivered#"$TMP"/}"
else
	notok "message not delivered to $TMP/mail/sink/new within 15s"
	find "$TMP/mail" 2>/dev/null | sed 's/^/      | /'
fi

# 4. Another recipient: a new triplet, greylisted.
swaks_rcpt other 127.0.0.1 "$SMTP_PORT" "bob@$DOMAIN"
expect_450 other "another recipient, bob@$DOMAIN"

# 5. An IPv6 client.
if [ "$IPV6" = 1 ]; then
	if swaks --support 2>&1 | grep -q '^=== IPv6 supported'; then
		swaks_rcpt v6 ::1 "$SMTP_PORT" "carol@$DOMAIN" --local-interface ::1
		how=swaks
	else
		# (bounded by its own connect timeout and alarm)
		smtp_v6 "$SMTP_PORT" "$SENDER" "carol@$DOMAIN" >"$TMP/v6.out" 2>&1
		how="perl client: swaks lacks IPv6 (needs IO::Socket::INET6)"
	fi
	expect_450 v6 "IPv6 client ::1 -> [::1]:$SMTP_PORT ($how)"
else
	say "skip - IPv6 client: ::1 is not available on this host"
fi

# 6. The same greyhold over its unix socket in the queue directory.
sock_mode=$(stat -c '%a %G' "$QUEUE/greyhold/socket" 2>/dev/null)
if [ "$sock_mode" = "660 postfix" ]; then
	ok "unix socket $QUEUE/greyhold/socket: mode 0660, group postfix"
else
	notok "unix socket $QUEUE/greyhold/socket: expected '660 postfix', got '$sock_mode'"
fi
swaks_rcpt unix 127.0.0.1 "$SMTP_UNIX_PORT" "dave@$DOMAIN"
expect_450 unix "smtpd with check_policy_service unix:greyhold/socket, dave@$DOMAIN"

# 7. greyhold logged what happened.
esc_domain=$(printf '%s' "$DOMAIN" | sed 's/\./\\./g')
expect_log "alice first" \
	"action=greylist, reason=new, .*client_address=127\.0\.0\.1.*recipient=alice@$esc_domain"
expect_log "alice early retry" \
	"action=greylist, reason=early-retry.*recipient=alice@$esc_domain"
expect_log "alice after the delay" \
	"action=pass, reason=triplet found.*recipient=alice@$esc_domain"
expect_log "bob first" \
	"action=greylist, reason=new, .*recipient=bob@$esc_domain"
expect_log "dave over the unix socket" \
	"action=greylist, reason=new, .*recipient=dave@$esc_domain"
if [ "$IPV6" = 1 ]; then
	expect_log "carol from ::1" \
		"action=greylist, reason=new, .*client_address=::1.*recipient=carol@$esc_domain"
fi

if grep -q 'POLICY-SERVICE-FAILURE' "$TMP"/*.out; then
	notok "some reply was POLICY-SERVICE-FAILURE (Postfix could not use greyhold)"
fi
if grep -Eq 'warning: .*(policy|127\.0\.0\.1:'"$GH_PORT"')' "$TMP/maillog" 2>/dev/null; then
	notok "Postfix warned about the policy service:"
	grep -E 'warning: .*(policy|127\.0\.0\.1:'"$GH_PORT"')' "$TMP/maillog" | sed 's/^/      | /'
fi

T_END=$(date +%s)
if [ "$FAILED" -ne 0 ]; then
	say "# $FAILED check(s) failed ($((T_END - T_START))s)"
	show_logs
	exit 1
fi
say "# all checks passed ($((T_END - T_START))s)"
exit 0
