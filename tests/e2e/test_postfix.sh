#!/bin/sh
# End-to-end test: a private Postfix instance on loopback asks greyhold
# (check_policy_service) about every recipient; mail is sent with swaks.
#
#   1. first attempt for a triplet          -> 450 4.7.1 at RCPT
#   2. retry before the delay               -> 450 4.7.1 again
#   3. retry after the delay, full message  -> 250 after DATA, lands in a Maildir
#   4. another recipient                    -> 450 4.7.1 (a new triplet)
#   5. an IPv6 client on ::1 (if available) -> 450 4.7.1
#   6. the same through a unix socket in the queue directory -> 450 4.7.1
#   7. smart greylisting with names Postfix verified (XCLIENT NAME/ADDR
#      from 127.0.0.1; SPF served by a private unbound on loopback):
#      a. o1.pool.test [198.18.1.7], sender b@cust.test (cust.test's SPF
#         includes _spf.pool.test)           -> 450 4.7.1, logged with
#         client_name=o1.pool.test as Postfix sent it
#      b. after the delay o2.pool.test [198.18.2.9] (another /24), same
#         sender and recipient              -> 250 after DATA, in the
#         Maildir, logged with identity=name:pool.test
#      c. after the delay an unverified name (NAME=[UNAVAILABLE], an
#         SPF-authorised third /24)          -> 450 4.7.1, reason=new
#      d. mail.example.test [198.18.3.5], sender user@example.test whose
#         SPF authorises 198.18.3.0/24       -> 250 at first sight,
#         logged reason=trusted-spf
#   8. greyhold's log has the matching greylist/pass lines
#
# A reply of "451 4.3.5 POLICY-SERVICE-FAILURE" means Postfix could not
# talk to greyhold; it must never appear.
#
# Needs root, postfix and swaks.  Without them it exits 77 (automake SKIP),
# or 1 when GREYHOLD_REQUIRE_E2E=1 (so CI cannot silently skip it).
# Part 7 also needs unbound: without it that part alone is skipped (a
# failure when GREYHOLD_REQUIRE_E2E=1) and greyhold gets a resolver where
# nothing listens, so no test ever asks a real DNS server.
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
UB_PID=""
PF_STARTED=0
FAILED=0
CONF=""
QUEUE=""

show_logs() {
	[ -n "$TMP" ] || return 0
	say ""
	say "---- greyhold log (last 40 lines): $TMP/greyhold.log"
	tail -n 40 "$TMP/greyhold.log" 2>/dev/null
	if [ -s "$TMP/unbound/unbound.log" ]; then
		say "---- unbound log (last 10 lines)"
		tail -n 10 "$TMP/unbound/unbound.log"
	fi
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
	if [ -n "$UB_PID" ]; then
		kill -TERM "$UB_PID" 2>/dev/null
		if ! wait_gone "$UB_PID" 10; then
			say "cleanup: unbound $UB_PID ignored SIGTERM, killing it"
			kill -KILL "$UB_PID" 2>/dev/null
		fi
		wait "$UB_PID" 2>/dev/null
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

# The perl-based network helpers (can_connect, free_ports,
# have_ipv6_loopback, dns_txt, smtp_v6) live beside this script.
E2E_DIR=$(dirname "$0")
if [ ! -r "$E2E_DIR/net_helpers.sh" ]; then
	say "ERROR: $E2E_DIR/net_helpers.sh is missing"
	exit 99
fi
# shellcheck source=tests/e2e/net_helpers.sh
. "$E2E_DIR/net_helpers.sh"

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

# xclient_rcpt NAME FROM TO XCLIENT [swaks args]: like swaks_rcpt, but the
# client first tells smtpd who it is (XCLIENT, e.g. "NAME=a.test
# ADDR=198.18.1.7"), as a proxy in front of Postfix would.
xclient_rcpt() {
	name=$1 from=$2 to=$3 xc=$4
	shift 4
	bounded 30 swaks --server 127.0.0.1 --port "$SMTP_PORT" --from "$from" \
		--to "$to" --helo client.greyhold-e2e.test --timeout 10 \
		--xclient "$xc" --quit-after RCPT "$@" >"$TMP/$name.out" 2>&1
}

# xclient_ok NAME WHAT: smtpd accepted the XCLIENT command in NAME.out (a
# refused one would leave smtpd judging 127.0.0.1, proving nothing).
xclient_ok() {
	r=$(awk '/^ *-> XCLIENT / { getline; sub(/^<[-*~]+ +/, ""); print; exit }' \
		"$TMP/$1.out")
	case $r in
	220*) return 0 ;;
	'') r="no reply (swaks sends XCLIENT only where smtpd offers it)" ;;
	esac
	notok "$2: smtpd did not accept XCLIENT: $r"
	transcript "$1"
	return 1
}

# expect_250 NAME WHAT: the RCPT reply in NAME.out is 250 (accepted).
expect_250() {
	r=$(rcpt_reply "$1")
	if printf '%s\n' "$r" | grep -q '^250 '; then
		ok "$2: RCPT -> $r"
	else
		notok "$2: expected 250 at RCPT, got '$r'"
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
set -- $(free_ports 4 "$IPV6") || true
[ $# -eq 4 ] || die "could not find four free ports on loopback"
GH_PORT=$1
SMTP_PORT=$2
SMTP_UNIX_PORT=$3	# an smtpd that reaches greyhold over a unix socket
UB_PORT=$4		# unbound, the only DNS server greyhold may ask

# The unix socket lives inside Postfix's queue directory, as it must for a
# chrooted smtpd ("check_policy_service unix:greyhold/socket", a path
# relative to the queue directory): a directory Postfix may enter, the
# socket in group postfix with mode 0660 (greyhold(8), "Unix socket").
QUEUE=$TMP/queue
mkdir -p "$QUEUE/greyhold" || die "mkdir failed"
chown root:postfix "$QUEUE/greyhold" && chmod 0750 "$QUEUE/greyhold" ||
	die "cannot prepare $QUEUE/greyhold"

# -- unbound ----------------------------------------------------------------
# It serves the SPF records of part 7 from local-data and nothing else
# (unbound_conf_closed: no name outside them resolves, no recursion).
SMART=0
RESOLVER=127.0.0.1:1	# nothing listens: lookups are refused at once
UNBOUND=$(command -v unbound 2>/dev/null || true)
[ -z "$UNBOUND" ] && [ -x /usr/sbin/unbound ] && UNBOUND=/usr/sbin/unbound
if [ -n "$UNBOUND" ]; then
	mkdir -p "$TMP/unbound" || die "mkdir failed"
	{
		unbound_conf_closed "$UB_PORT" "$TMP/unbound"
		cat <<EOF
  local-zone: "test." nodefault
  local-zone: "test." static
  local-data: "test. 3600 IN SOA ns.test. admin.test. 1 3600 600 86400 60"
  local-data: 'cust.test. 300 IN TXT "v=spf1 include:_spf.pool.test -all"'
  local-data: '_spf.pool.test. 300 IN TXT "v=spf1 ip4:198.18.1.0/24 ip4:198.18.2.0/24 ip4:198.18.4.0/24 -all"'
  local-data: 'example.test. 300 IN TXT "v=spf1 ip4:198.18.3.0/24 -all"'
EOF
	} >"$TMP/unbound/unbound.conf"
	"$UNBOUND" -d -c "$TMP/unbound/unbound.conf" </dev/null \
		>"$TMP/unbound/unbound.log" 2>&1 &
	UB_PID=$!
	n=0
	until dns_txt "$UB_PORT" cust.test | grep -q '^v=spf1 include:_spf\.pool\.test -all$'; do
		kill -0 "$UB_PID" 2>/dev/null || { UB_PID=""; die "unbound exited at start"; }
		n=$((n + 1))
		[ "$n" -gt 50 ] && die "unbound on 127.0.0.1:$UB_PORT does not serve cust.test TXT"
		nap
	done
	dns_txt "$UB_PORT" example.com >/dev/null
	[ $? -eq 13 ] ||
		die "unbound on 127.0.0.1:$UB_PORT does not say NXDOMAIN for example.com: not a closed local server"
	SMART=1
	RESOLVER=127.0.0.1:$UB_PORT
	ok "unbound (pid $UB_PID) serves the test's SPF records on $RESOLVER"
elif [ "${GREYHOLD_REQUIRE_E2E:-0}" = 1 ]; then
	notok "unbound is not installed (Debian package unbound): part 7 cannot run"
else
	say "skip - part 7 (verified names, SPF): unbound is not installed"
fi

# -- greyhold ---------------------------------------------------------------
# An empty config file: no /etc/greyhold/greyhold.conf of this host leaks in.
printf '# greyhold e2e test: everything is set on the command line\n' \
	>"$TMP/greyhold.conf"
"$GREYHOLD_BIN" -f -c "$TMP/greyhold.conf" --dbdir "$TMP/db" \
	--inet "127.0.0.1:$GH_PORT" --unix "$QUEUE/greyhold/socket" \
	-o unix_group=postfix -o unix_mode=0660 --delay "$DELAY" \
	-o resolver="$RESOLVER" \
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
# Test clients on 127.0.0.1 may claim any name and address (part 7).
smtpd_authorized_xclient_hosts = 127.0.0.1

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

# 7a, 7d. First sights with names Postfix takes as verified (XCLIENT), made
# now so that the delay runs out alongside parts 1-6.
POOL_SENDER=b@cust.test
POOL_RCPT=erin@$DOMAIN
if [ "$SMART" = 1 ]; then
	xclient_rcpt pool1 "$POOL_SENDER" "$POOL_RCPT" \
		"NAME=o1.pool.test ADDR=198.18.1.7"
	T_POOL1=$(date +%s)
	xclient_ok pool1 "7a o1.pool.test" &&
		expect_450 pool1 "7a o1.pool.test [198.18.1.7], first sight"

	xclient_rcpt trusted user@example.test "frank@$DOMAIN" \
		"NAME=mail.example.test ADDR=198.18.3.5"
	xclient_ok trusted "7d mail.example.test" &&
		expect_250 trusted "7d mail.example.test [198.18.3.5], SPF-aligned sender, first sight"
fi

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

# 7b, 7c. After the delay: the pool's other address, then an unverified name.
if [ "$SMART" = 1 ]; then
	until [ "$(date +%s)" -ge $((T_POOL1 + DELAY + 1)) ]; do nap; done
	SUBJECT2="greyhold e2e pool $$-$T_START"
	bounded 30 swaks --server 127.0.0.1 --port "$SMTP_PORT" \
		--from "$POOL_SENDER" --to "$POOL_RCPT" \
		--helo client.greyhold-e2e.test --timeout 10 \
		--xclient "NAME=o2.pool.test ADDR=198.18.2.9" \
		--header "Subject: $SUBJECT2" --body "greyhold e2e: a pool's retry" \
		>"$TMP/pool2.out" 2>&1
	queued=0
	if xclient_ok pool2 "7b o2.pool.test"; then
		r=$(rcpt_reply pool2)
		q=$(awk '/^ *-> \.$/ { getline; sub(/^<[-*~]+ +/, ""); print; exit }' "$TMP/pool2.out")
		if printf '%s\n' "$r" | grep -q '^250 ' &&
			printf '%s\n' "$q" | grep -q '^250 .*queued as'; then
			ok "7b o2.pool.test [198.18.2.9] after the delay: RCPT -> $r"
			ok "7b o2.pool.test: end of DATA -> $q"
			queued=1
		else
			notok "7b o2.pool.test [198.18.2.9] after the delay: expected 250 at RCPT and after DATA, got '$r' / '$q'"
			transcript pool2
		fi
	fi
	n=0
	delivered=""
	while [ "$queued" = 1 ] && [ "$n" -le 75 ]; do
		delivered=$(grep -l -F "Subject: $SUBJECT2" "$TMP/mail/sink/new/"* 2>/dev/null | head -n 1)
		[ -n "$delivered" ] && break
		n=$((n + 1))
		nap
	done
	if [ -n "$delivered" ]; then
		ok "7b the pool's message delivered to the Maildir: ${delivered#"$TMP"/}"
	elif [ "$queued" = 1 ]; then
		notok "7b the pool's message not delivered to $TMP/mail/sink/new within 15s"
	fi

	# SPF authorises 198.18.4.20 for cust.test too, and its unverified
	# reverse name looks like the pool's: only a verified name may group.
	xclient_rcpt unverified "$POOL_SENDER" "$POOL_RCPT" \
		"NAME=[UNAVAILABLE] REVERSE_NAME=o3.pool.test ADDR=198.18.4.20"
	xclient_ok unverified "7c unverified name" &&
		expect_450 unverified "7c [198.18.4.20] without a verified name, after the delay"
fi

# 8. greyhold logged what happened.
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

if [ "$SMART" = 1 ]; then
	esc_rcpt=$(printf '%s' "$POOL_RCPT" | sed 's/\./\\./g')
	expect_log "7a o1.pool.test, client_name as Postfix sent it" \
		"action=greylist, reason=new, client_name=o1\.pool\.test, client_address=198\.18\.1\.7, sender=b@cust\.test, recipient=$esc_rcpt"
	expect_log "7b o2.pool.test passed by the name identity" \
		"action=pass, reason=triplet found, .*identity=name:pool\.test, client_name=o2\.pool\.test, client_address=198\.18\.2\.9, sender=b@cust\.test, recipient=$esc_rcpt"
	expect_log "7c unverified name: new, not grouped" \
		"action=greylist, reason=new, client_name=unknown, client_address=198\.18\.4\.20, sender=b@cust\.test, recipient=$esc_rcpt"
	expect_log "7d trusted sender" \
		"action=pass, reason=trusted-spf, identity=name:example\.test, client_name=mail\.example\.test, client_address=198\.18\.3\.5, sender=user@example\.test, recipient=frank@$esc_domain"
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
