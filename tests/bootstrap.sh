#!/bin/sh
# greyhold's two set-up commands (see README):
#   sh tests/bootstrap.sh run     install what is missing, build, run greyhold
#   sh tests/bootstrap.sh check   install what is missing, build, run every test
# Safe to run again: installs only missing packages, rebuilds only what changed.
set -eu

mode=${1:-}
case "$mode" in
run|check) ;;
*) echo "usage: sh tests/bootstrap.sh run|check" >&2; exit 2 ;;
esac

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

build_deps="build-essential autoconf automake libtool pkg-config \
liblmdb-dev libuv1-dev libcmocka-dev libpcre2-dev libhiredis-dev"
test_deps="python3 postfix swaks libio-socket-inet6-perl lmdb-utils redis-server postgrey db-util"

missing=""
for p in $build_deps $([ "$mode" = check ] && echo "$test_deps"); do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing packages:$missing (run as root, or install them)" >&2
		exit 1
	fi
	echo ">> installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	# Postfix must not configure itself as the host's MTA: the tests run
	# their own instance from a private directory.
	echo "postfix postfix/main_mailer_type select No configuration" |
		debconf-set-selections
	# Packages such as postgrey and redis-server would start system-wide
	# daemons on install; the tests run their own instances, so keep the
	# package scripts from starting anything (Debian's policy-rc.d).
	policy=/usr/sbin/policy-rc.d
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' > "$policy"
		chmod 755 "$policy"
		trap 'rm -f "$policy"' EXIT
	fi
	apt-get update -q
	apt-get install -y -q --no-install-recommends $missing
	rm -f "$policy"
	trap - EXIT
fi

if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt configure ]; then
	echo ">> autoreconf"
	autoreconf -fi
fi
mkdir -p build
cd build
if [ ! -f Makefile ] || [ ../configure -nt Makefile ]; then
	echo ">> configure"
	../configure --enable-werror --sysconfdir=/etc --localstatedir=/var
fi
echo ">> make"
make -j2

if [ "$mode" = run ]; then
	mkdir -p "$top/var/db"
	cat <<EOT

greyhold is starting on 127.0.0.1:10023 with its database in $top/var/db.
Add it to Postfix's main.cf, after reject_unauth_destination:

    smtpd_recipient_restrictions = ...,
        reject_unauth_destination,
        check_policy_service inet:127.0.0.1:10023

Stop it with Ctrl-C.
EOT
	exec ./src/greyhold -f -c "$top/etc/greyhold.conf" \
		--dbdir "$top/var/db" --inet 127.0.0.1:10023
fi

echo ">> make check"
status=0
# Debian's postgrey whitelists, which the whitelist tests must parse.
GREYHOLD_REQUIRE_E2E=1 POSTGREY_LISTS_DIR=/etc/postgrey make -j2 check || status=$?
if [ -f test-suite.log ]; then
	# The harness' totals, as one plain line.
	pass=$(sed -n 's/^# PASS: *//p' test-suite.log | head -n1)
	fail=$(sed -n 's/^# FAIL: *//p' test-suite.log | head -n1)
	err=$(sed -n 's/^# ERROR: *//p' test-suite.log | head -n1)
	skip=$(sed -n 's/^# SKIP: *//p' test-suite.log | head -n1)
	[ "$status" -ne 0 ] && cat test-suite.log
	echo "tests: ${pass:-0} passed, $(( ${fail:-0} + ${err:-0} )) failed, ${skip:-0} skipped"
fi
exit "$status"
