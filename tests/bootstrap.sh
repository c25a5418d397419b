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
liblmdb-dev libuv1-dev libcmocka-dev libpcre2-dev libhiredis-dev libsodium-dev \
libc-ares-dev libpsl-dev publicsuffix"
test_deps="python3 postfix swaks libio-socket-inet6-perl lmdb-utils redis-server redis-sentinel postgrey db-util valgrind mandoc \
unbound faketime"

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
		--dbdir "$top/var/db" --inet 127.0.0.1:10023 \
		--whitelist-clients "$top/etc/whitelist_clients" \
		--whitelist-recipients "$top/etc/whitelist_recipients"
fi

# Every test phase adds its totals here; the last line sums them up.
total_pass=0
total_fail=0
total_skip=0
status=0

# Run "make check" with the given arguments in the current build dir and
# add its totals; on failure show the log and remember the failure.
run_check() {
	phase=$1
	shift
	rc=0
	echo ">> $phase"
	rm -f test-suite.log
	GREYHOLD_REQUIRE_E2E=1 POSTGREY_LISTS_DIR=/etc/postgrey \
		make -j2 check "$@" || rc=$?
	if [ -f test-suite.log ]; then
		pass=$(sed -n 's/^# PASS: *//p' test-suite.log | head -n1)
		fail=$(sed -n 's/^# FAIL: *//p' test-suite.log | head -n1)
		err=$(sed -n 's/^# ERROR: *//p' test-suite.log | head -n1)
		skip=$(sed -n 's/^# SKIP: *//p' test-suite.log | head -n1)
		total_pass=$((total_pass + ${pass:-0}))
		total_fail=$((total_fail + ${fail:-0} + ${err:-0}))
		total_skip=$((total_skip + ${skip:-0}))
		[ "$rc" -ne 0 ] && cat test-suite.log
		echo "$phase: ${pass:-0} passed, $(( ${fail:-0} + ${err:-0} )) failed, ${skip:-0} skipped"
	fi
	if [ "$rc" -ne 0 ]; then
		status=$rc
		[ "$total_fail" -gt 0 ] || total_fail=1
	fi
}

# 1. The whole suite, unit to Postfix end-to-end (Debian's postgrey
#    whitelists are parsed by the whitelist tests).
run_check "make check"

# 2. The whole suite again on an AddressSanitizer + UBSan build; the
#    integration harness fails a test on any sanitizer report in the log.
mkdir -p "$top/build-asan"
cd "$top/build-asan"
if [ ! -f Makefile ] || [ ../configure -nt Makefile ]; then
	../configure --enable-werror --enable-sanitizers \
		--sysconfdir=/etc --localstatedir=/var >/dev/null
fi
make -j2 >/dev/null
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 run_check "make check (ASan+UBSan)"

# 3. The daemon under valgrind memcheck for the integration tests that
#    drive it hardest; any error or definite leak fails the test.
cd "$top/build"
GREYHOLD_WRAPPER="valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite"
export GREYHOLD_WRAPPER
run_check "integration tests under valgrind" TESTS="\
tests/integration/test_protocol.py tests/integration/test_greylisting.py \
tests/integration/test_lifecycle.py tests/integration/test_whitelist.py \
tests/integration/test_hostile.py tests/integration/test_faults.py"
unset GREYHOLD_WRAPPER

# 4. The release tarball builds, installs, uninstalls and passes its
#    tests in a clean tree.
echo ">> make distcheck"
if make -j2 distcheck DISTCHECK_CONFIGURE_FLAGS=--enable-werror >distcheck.log 2>&1; then
	echo "make distcheck: ok"
else
	tail -n 60 distcheck.log
	echo "make distcheck: FAILED (build/distcheck.log)"
	status=1
	total_fail=$((total_fail + 1))
fi

echo "tests: $total_pass passed, $total_fail failed, $total_skip skipped"
exit "$status"
