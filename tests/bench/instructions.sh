#!/bin/sh
# instructions.sh - greyhold's instructions per request, by thread, counted
# by valgrind's callgrind over loadgen's measured window only.
#
#   sh tests/bench/instructions.sh [BUILDDIR] [retry|new] [REQUESTS]
#   make bench-instructions                  (retry, then new)
#
# Time per request on a shared machine swings with the neighbours; the
# instructions a request costs do not.  So this is how two versions of
# the code are compared side by side: run it on each build.  It does not
# count the kernel (system calls, TCP, fsync) and counts rep-prefixed
# copies byte by byte, so read it next to compare.sh's CPU figures, not
# instead of them.
#
# One greyhold, configured as compare.sh's "greyhold" row (an empty config
# file, the shipped whitelists, delay 1 s, lookups refused at once by a
# resolver address where nothing listens), runs under callgrind with
# --separate-threads; loadgen (16 connections, the full attribute set,
# 20 % IPv6, half relay senders) seeds and passes 2000 triplets, then
# sends REQUESTS requests: "retry" has 5 % never-seen triplets, "new"
# 90 %.  loadgen's --window-cmd zeroes callgrind's counters when the
# measured window opens and dumps them when it closes, so start-up and
# warm-up are left out.  Prints one line per thread (1 = the event loop,
# 2 = the store thread, 3 = the log writer), and a machine line:
#
#   INSTR workload=retry requests=20000 thread=1 per_request=20865
#
# With INSTR_KEEP=DIR the window's callgrind files are kept in DIR, for
# callgrind_annotate (which functions the instructions go to).
#
# Needs valgrind (Debian's package).  About 2 minutes per 20000 requests.

set -u

build=${1:-.}
build=$(cd "$build" && pwd) || exit 1
workload=${2:-retry}
requests=${3:-20000}
here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "$here/../.." && pwd)

case $workload in
retry) mix=0.05 ;;
new) mix=0.9 ;;
*) echo "instructions.sh: workload must be retry or new" >&2; exit 2 ;;
esac
for tool in valgrind callgrind_control; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "instructions.sh: $tool not found (Debian package valgrind)" >&2
		exit 1
	fi
done

bench_name=instructions.sh
next_port=${INSTR_PORT:-24000}
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/greyhold-instr.XXXXXX") || exit 1
server_pid=
cleanup() {
	[ -n "$server_pid" ] && stop_server "$server_pid" 20
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

: > "$tmp/empty.conf"
pick_port
valgrind --tool=callgrind --separate-threads=yes \
	--callgrind-out-file="$tmp/cg.%p" \
	"$build/src/greyhold" -c "$tmp/empty.conf" --inet="127.0.0.1:$port" \
	--dbdir="$tmp/db" --delay=1 -o "resolver=127.0.0.1:1" \
	--whitelist-clients="$srcdir/etc/whitelist_clients" \
	--whitelist-recipients="$srcdir/etc/whitelist_recipients" \
	2> "$tmp/server.log" &
server_pid=$!

# loadgen runs it with "start" and "end" around the measured window.
cat > "$tmp/window.sh" <<EOF
if [ "\$1" = start ]; then
	callgrind_control -z $server_pid >/dev/null
else
	callgrind_control --dump=window $server_pid >/dev/null
fi
EOF

if ! "$build/tests/bench/loadgen" --quiet --name "instr:$workload" \
	--connections 16 --requests "$requests" --new-fraction "$mix" \
	--delay 1 --pool 2000 --attrs full --ipv6-fraction 0.2 --seed 1 \
	--spf-fraction 0.5 --spf-domains 256 --wait 120 \
	--window-cmd "sh $tmp/window.sh" "127.0.0.1:$port" \
	> "$tmp/loadgen.txt" 2> "$tmp/loadgen.err"; then
	echo "instructions.sh: loadgen failed:" >&2
	cat "$tmp/loadgen.err" "$tmp/server.log" >&2
	exit 1
fi
stop_server "$server_pid" 20
server_pid=

answered=$(sed -n 's/^RESULT .* requests=\([0-9]*\) .*/\1/p' "$tmp/loadgen.txt")
bad=$(sed -n 's/^RESULT .* errors=\([0-9]*\) mismatches=\([0-9]*\).*/\1 \2/p' \
	"$tmp/loadgen.txt")
echo "instructions per request, $workload workload ($mix never-seen), $answered requests in the window (errors, wrong answers: ${bad:-?})"
found=0
# The window's dump is the first numbered one: cg.PID.1-TT (TT = thread).
for f in "$tmp"/cg.*.1-*; do
	[ -e "$f" ] || continue
	found=1
	thread=$(echo "$f" | sed 's/.*-0*\([0-9]*\)$/\1/')
	total=$(sed -n 's/^summary: *\([0-9]*\)/\1/p' "$f")
	case $thread in
	1) what="event loop" ;;
	2) what="store thread" ;;
	3) what="log writer" ;;
	*) what="thread $thread" ;;
	esac
	awk -v t="$total" -v n="$answered" -v w="$what" -v th="$thread" \
		-v wl="$workload" 'BEGIN {
		per = n > 0 ? t / n : 0
		printf "  %-13s %10.0f\n", w, per
		printf "INSTR workload=%s requests=%d thread=%s per_request=%.0f\n",
			wl, n, th, per
	}'
done
if [ "$found" = 0 ]; then
	echo "instructions.sh: callgrind wrote no window dump" >&2
	exit 1
fi
if [ -n "${INSTR_KEEP:-}" ]; then
	mkdir -p "$INSTR_KEEP" && cp "$tmp"/cg.*.1-* "$INSTR_KEEP"/ &&
		echo "callgrind files kept in $INSTR_KEEP"
fi
