#!/bin/sh
# scale.sh - greyhold on preloaded databases of growing size.
#
#   sh tests/bench/scale.sh [BUILDDIR]        (make bench-scale does this)
#
# For each size N (10k, 1M and 10M triplets by default), in a fresh
# database under one temporary directory:
#   1. loadgen --write-dump writes a greyholdctl dump of N triplets (most
#      passed and recently seen, some pending, a share "old": last seen 15
#      to 20 days ago) plus an auto-whitelist record for every client
#      network the load uses; greyholdctl load loads it (timed).
#   2. greyhold, default configuration, runs a lookup-heavy mix (retries of
#      preloaded passed triplets, a few never-seen) and an insert-heavy mix
#      (mostly never-seen triplets).  The "old" records are alive under the
#      default max_age (35d), so the sweep scans without deleting.
#   3. greyhold again with -o max_age=10d, which makes the "old" records
#      expired: the lookup-heavy mix runs while the expiry sweep deletes
#      them, and greyhold_store_expired_total is read from its metrics
#      endpoint every second.
# It prints requests/s, p99, database size per triplet, greyhold's RssAnon,
# the sweep's pace and what it does to p99, one size after another, then a
# table compared with the smallest size (issue 7's targets).  Figures only:
# it never fails on a figure.  See tests/bench/README.
#
# Environment (defaults in brackets):
#   SCALE_SIZES ["10000 1000000 10000000"]  preloaded triplets per run
#   SCALE_SECONDS [20]          measured seconds of each lookup/insert run
#   SCALE_WARMUP_SECONDS [5]    unmeasured lookup load before them
#   SCALE_SWEEP_SECONDS [60]    length of the sweep run (0: until the pass
#                               over the triplets ends, at most N/500+120 s)
#   SCALE_CONNECTIONS [64]      concurrent connections
#   SCALE_LOOKUP_NEW [0.05]     never-seen share of the lookup-heavy mix
#   SCALE_INSERT_NEW [0.9]      never-seen share of the insert-heavy mix
#   SCALE_OLD [0.2]             share of the preload expired in the sweep run
#   SCALE_PENDING [0.05]        share of the preload greylisted, pending
#   SCALE_ATTRS [full]          minimal, typical or full request attributes
#   SCALE_IPV6_FRACTION [0.2]   share of IPv6 clients
#   SCALE_TMPDIR [$TMPDIR or /tmp]  where the databases go (the disk measured)
#   SCALE_KEEP [no]             yes: keep the temporary directory (the
#                               databases are removed all the same)
#   SCALE_RESULTS []            a file to which the SCALE lines are appended
#                               at the end (compare.sh reads them there)

set -u

build=${1:-.}
build=$(cd "$build" && pwd) || exit 1
here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "$here/../.." && pwd)

sizes=${SCALE_SIZES:-10000 1000000 10000000}
seconds=${SCALE_SECONDS:-20}
warm_seconds=${SCALE_WARMUP_SECONDS:-5}
sweep_seconds=${SCALE_SWEEP_SECONDS:-60}
conns=${SCALE_CONNECTIONS:-64}
lookup_new=${SCALE_LOOKUP_NEW:-0.05}
insert_new=${SCALE_INSERT_NEW:-0.9}
old_share=${SCALE_OLD:-0.2}
pending_share=${SCALE_PENDING:-0.05}
attrs=${SCALE_ATTRS:-full}
ipv6=${SCALE_IPV6_FRACTION:-0.2}
keep=${SCALE_KEEP:-no}
results_out=${SCALE_RESULTS:-}
seed=1
# The sweep examines at least this many records a second (SWEEP_FLOOR,
# src/lib/sweep.h), more on a big or growing table or with a backlog.
sweep_budget=2000

loadgen=$build/tests/bench/loadgen
greyhold=$build/src/greyhold
greyholdctl=$build/src/greyholdctl

for prog in "$loadgen" "$greyhold" "$greyholdctl"; do
	if [ ! -x "$prog" ]; then
		echo "scale.sh: $prog is missing: build it first (make bench-scale)" >&2
		exit 1
	fi
done

fetch=
if command -v curl >/dev/null 2>&1; then
	fetch="curl -s -m 2"
elif command -v wget >/dev/null 2>&1; then
	fetch="wget -q -T 2 -O -"
fi

parent=${SCALE_TMPDIR:-${TMPDIR:-/tmp}}
tmp=$(mktemp -d "$parent/greyhold-scale.XXXXXX") || exit 1
results=$tmp/results.txt
: > "$results"
server_pid=
poll_pid=

cleanup() {
	if [ -n "$poll_pid" ]; then
		kill "$poll_pid" 2>/dev/null
		wait "$poll_pid" 2>/dev/null
		poll_pid=
	fi
	if [ -n "$server_pid" ]; then
		stop_server "$server_pid" 30
		server_pid=
	fi
	rm -rf "$tmp"/n*/db "$tmp"/n*/sweep/db "$tmp"/n*/dump.txt
	if [ "$keep" = yes ]; then
		echo "scale.sh: results and logs kept in $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_name=scale.sh
next_port=$((20000 + ($$ + 7919) % 20000))
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

now_s() {
	date +%s.%N 2>/dev/null | cut -c1-14
}

# elapsed START END: seconds between two now_s values.
elapsed() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'
}

# "RssAnon RssFile" of a process, in kB.
proc_rss() {
	if [ -r "/proc/$1/status" ]; then
		awk '/^RssAnon:/ { a = $2 } /^RssFile:/ { f = $2 }
		     END { printf "%s %s", (a == "" ? -1 : a), (f == "" ? -1 : f) }' \
			"/proc/$1/status" 2>/dev/null
	else
		echo "-1 -1"
	fi
}

# field NAME FILE: the value of NAME=... on the RESULT line of FILE.
field() {
	awk -v k="$2" '/^RESULT/ { for (i = 2; i <= NF; i++) {
		split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$1"
}

# ---- the machine -------------------------------------------------------------

cpu_model=$(sed -n 's/^model name[[:space:]]*: *//p' /proc/cpuinfo 2>/dev/null | head -n 1)
[ -z "$cpu_model" ] && cpu_model=$(uname -m)
fs_type=$(df -PT "$tmp" 2>/dev/null | awk 'NR == 2 { print $2 " on " $1 }')
mem_mb=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 }' /proc/meminfo 2>/dev/null)
echo "machine: nproc=$(nproc 2>/dev/null || echo ?) cpu=\"$cpu_model\" mem=${mem_mb}MiB" \
	"fs=\"$fs_type\" ($tmp) kernel=$(uname -r)"
echo "load: $conns connections, one request in flight each, TCP loopback;" \
	"attributes $attrs; IPv6 $ipv6; lookup-heavy = $lookup_new never-seen," \
	"insert-heavy = $insert_new never-seen; ${seconds}s per run after" \
	"${warm_seconds}s of warm-up; sweep run ${sweep_seconds}s" \
	"(0: until done)"
echo "preload: $old_share old (expired in the sweep run), $pending_share" \
	"pending, the rest passed; sizes: $sizes"
[ -z "$fetch" ] && echo "scale.sh: neither curl nor wget: the sweep's progress" \
	"cannot be read from the metrics endpoint; sweep runs are skipped"
echo

# ---- one size ------------------------------------------------------------------

# start_greyhold DIR PORT METRICS_PORT [-o ...]: sets server_pid.
start_greyhold() {
	gdir=$1 gport=$2 mport=$3
	shift 3
	"$greyhold" -c "$gdir/empty.conf" --inet="127.0.0.1:$gport" \
		--dbdir="$gdir/db" \
		--whitelist-clients="$srcdir/etc/whitelist_clients" \
		--whitelist-recipients="$srcdir/etc/whitelist_recipients" \
		-o "metrics_listen=127.0.0.1:$mport" \
		-o "resolver=${GREYHOLD_BENCH_RESOLVER:-127.0.0.1:1}" \
		"$@" 2>> "$gdir/server.log" &
	server_pid=$!
}

# The daemon logs one line per request: it grows fast.  Keep its other
# lines (in server.notes) and its last lines, then empty it.
trim_log() {
	if [ -s "$1/server.log" ]; then
		grep -v '^greyhold: action=' "$1/server.log" | tail -n 200 \
			>> "$1/server.notes"
		tail -n 20 "$1/server.log" > "$1/server.log.tail"
		: > "$1/server.log"
	fi
}

# Print what the daemon said besides its answers and the usual start and
# stop lines (warnings, map growth, errors), at most 8 lines.
show_notes() {
	cat "$1/server.notes" "$1/sweep/server.notes" 2>/dev/null |
		grep -v -e ': listening on ' -e ': live whitelist loaded' \
			-e ': metrics on ' -e ' ready: delay ' -e ': received SIGTERM' \
			-e ': stopped$' -e 'running as root' |
		sort | uniq -c | sort -rn | head -n 8 |
		sed 's/^ */    daemon said (x/; s/^\(    daemon said (x[0-9]*\) /\1): /'
}

# run_load DIR NAME PORT NEW_FRACTION FIRST_NEW SECONDS [loadgen options]
run_load() {
	ldir=$1 lname=$2 lport=$3 lnew=$4 lfirst=$5 lsecs=$6
	shift 6
	"$loadgen" --quiet --name "$lname" --server-pid "$server_pid" \
		--connections "$conns" --duration "$lsecs" --new-fraction "$lnew" \
		--preloaded "$size" --preload-old "$old_share" \
		--preload-pending "$pending_share" --first-new "$lfirst" \
		--attrs "$attrs" --ipv6-fraction "$ipv6" --seed "$seed" \
		--wait 60 "$@" "127.0.0.1:$lport" > "$ldir/$lname.txt" \
		2> "$ldir/$lname.err"
	lstatus=$?
	grep -E '^(RESULT|INTERVAL)' "$ldir/$lname.txt" | sed "s/^/n=$size /" >> "$results"
	if ! grep -q '^RESULT' "$ldir/$lname.txt"; then
		echo "  $lname: no result (loadgen exit $lstatus):" \
			"$(tail -n 2 "$ldir/$lname.err" | tr '\n' ' ')"
		return 1
	fi
	[ "$lstatus" != 0 ] && sed -n '1,3s/^/    /p' "$ldir/$lname.err"
	return 0
}

# Interval p99s of a loadgen output: "median max" in ms, over the INTERVAL
# lines whose window lies in [from, to] (wall-clock seconds).
interval_p99() {
	awk -v from="${2:-0}" -v to="${3:-1e12}" '
	/^INTERVAL/ {
		delete v
		for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		if (v["seconds"] < 0.5 || v["start"] < from || v["end"] > to) next
		p[++n] = v["p99_us"] / 1000; a += v["answers"]; s += v["seconds"]
	}
	END {
		if (n == 0) { print "- - -"; exit }
		for (i = 2; i <= n; i++) {
			t = p[i]
			for (j = i - 1; j >= 1 && p[j] > t; j--) p[j + 1] = p[j]
			p[j + 1] = t
		}
		m = n % 2 ? p[(n + 1) / 2] : (p[n / 2] + p[n / 2 + 1]) / 2
		printf "%.2f %.2f %.0f\n", m, p[n], a / s
	}' "$1"
}

# Read greyhold_store_expired_total once a second: "WALLTIME VALUE" lines.
poll_metrics() {
	pfile=$1 pport=$2 pbound=$3
	i=0
	while [ "$i" -lt "$pbound" ] && [ ! -e "$pfile.stop" ]; do
		v=$($fetch "http://127.0.0.1:$pport/metrics" 2>/dev/null |
			awk '$1 == "greyhold_store_expired_total" { print $2 }')
		echo "$(now_s) ${v:--}" >> "$pfile"
		sleep 1
		i=$((i + 1))
	done
}

run_size() {
	size=$1
	dir=$tmp/n$size
	mkdir -p "$dir"
	: > "$dir/empty.conf"
	echo "size $size"

	# Room: the dump (about 130 bytes a triplet), the database and its copy
	# for the sweep run (about 300 each with room to grow) and the daemon's
	# logs (trimmed after each run).
	need_kb=$(awk -v n="$size" 'BEGIN { printf "%d", n * 750 / 1024 + 3 * 1024 * 1024 }')
	avail_kb=$(df -Pk "$tmp" 2>/dev/null | awk 'NR == 2 { print $4 }')
	if [ -n "$avail_kb" ] && [ "$avail_kb" -lt "$need_kb" ]; then
		echo "  skipped: needs about $((need_kb / 1024)) MiB free on" \
			"$(df -P "$tmp" | awk 'NR == 2 { print $6 }'), has $((avail_kb / 1024)) MiB"
		echo "SCALE n=$size skipped=disk need_kb=$need_kb avail_kb=$avail_kb" >> "$results"
		echo
		return
	fi

	# 1. The dump, then the load.
	t0=$(now_s)
	"$loadgen" --preloaded "$size" --preload-old "$old_share" \
		--preload-pending "$pending_share" --seed "$seed" \
		--ipv6-fraction "$ipv6" --write-dump "$dir/dump.txt" \
		> "$dir/dump.out" 2> "$dir/dump.err"
	st=$?
	t1=$(now_s)
	if [ "$st" != 0 ]; then
		echo "  the dump failed: $(tail -n 2 "$dir/dump.err" | tr '\n' ' ')"
		rm -f "$dir/dump.txt"
		return
	fi
	dump_mb=$(du -m "$dir/dump.txt" | awk '{ print $1 }')
	old_count=$(awk '/^DUMP/ { for (i = 2; i <= NF; i++) { split($i, kv, "=");
		if (kv[1] == "old") print kv[2] } }' "$dir/dump.out")
	clients=$(awk '/^DUMP/ { for (i = 2; i <= NF; i++) { split($i, kv, "=");
		if (kv[1] == "clients") print kv[2] } }' "$dir/dump.out")
	echo "  dump: $(sed -n 's/^loadgen: dump of //p' "$dir/dump.err")" \
		"in $(elapsed "$t0" "$t1") s ($dump_mb MiB)"
	t0=$(now_s)
	"$greyholdctl" -c "$dir/empty.conf" --db "$dir/db" load "$dir/dump.txt" \
		> "$dir/load.out" 2>&1
	st=$?
	t1=$(now_s)
	rm -f "$dir/dump.txt"
	if [ "$st" != 0 ]; then
		echo "  greyholdctl load failed (exit $st): $(tail -n 3 "$dir/load.out" | tr '\n' ' ')"
		rm -rf "$dir/db"
		return
	fi
	load_s=$(elapsed "$t0" "$t1")
	records=$((size + clients))
	load_rate=$(awk -v r="$records" -v s="$load_s" 'BEGIN { printf "%.0f", (s > 0 ? r / s : 0) }')
	db_bytes=$(stat -c %s "$dir/db/data.mdb")
	db_alloc_kb=$(du -k "$dir/db/data.mdb" | awk '{ print $1 }')
	per_triplet=$(awk -v b="$db_bytes" -v n="$size" 'BEGIN { printf "%.0f", b / n }')
	per_record=$(awk -v b="$db_bytes" -v n="$records" 'BEGIN { printf "%.0f", b / n }')
	echo "  load: $records records in $load_s s = $load_rate records/s;" \
		"data.mdb $((db_bytes / 1048576)) MiB ($((db_alloc_kb / 1024)) MiB" \
		"allocated) = $per_triplet bytes per triplet ($per_record per" \
		"record, the $clients client records included)"
	# The sweep run gets the database as loaded: the records the other
	# runs insert would dilute the expired ones.
	sweep_db=no
	if [ -n "$fetch" ] && [ "${old_count:-0}" -gt 0 ]; then
		mkdir -p "$dir/sweep/db"
		: > "$dir/sweep/empty.conf"
		if cp --sparse=always "$dir/db/data.mdb" "$dir/sweep/db/data.mdb" 2>/dev/null ||
		   cp "$dir/db/data.mdb" "$dir/sweep/db/data.mdb"; then
			sweep_db=yes
			# Written back now, not 30 s into the runs (where its
			# writeback stalled greyhold's commits for up to 0.5 s).
			sync "$dir/sweep/db/data.mdb" 2>/dev/null || sync
		else
			echo "  cannot copy the database for the sweep run; it is skipped"
			rm -rf "$dir/sweep"
		fi
	fi

	# 2. Lookup-heavy and insert-heavy, default configuration.
	pick_port; gport=$port
	pick_port; mport=$port
	start_greyhold "$dir" "$gport" "$mport"
	if ! run_load "$dir" warm "$gport" "$lookup_new" $((size + 4000000000)) "$warm_seconds"; then
		stop_server "$server_pid" 30; server_pid=
		tail -n 5 "$dir/server.log" | sed 's/^/    /'
		rm -rf "$dir/db" "$dir/sweep/db"
		return
	fi
	trim_log "$dir"
	run_load "$dir" lookup "$gport" "$lookup_new" $((size + 1000000000)) "$seconds" \
		--interval 1
	lookup_rss=$(proc_rss "$server_pid")
	trim_log "$dir"
	run_load "$dir" insert "$gport" "$insert_new" $((size + 2000000000)) "$seconds" \
		--interval 1
	insert_rss=$(proc_rss "$server_pid")
	stop_server "$server_pid" 30
	server_pid=
	trim_log "$dir"
	for w in lookup insert; do
		f=$dir/$w.txt
		grep -q '^RESULT' "$f" || continue
		if [ "$w" = lookup ]; then rss=$lookup_rss; else rss=$insert_rss; fi
		# shellcheck disable=SC2046 # split into fields on purpose
		set -- $(interval_p99 "$f")
		echo "  $w: $(field "$f" rps) req/s, p99 $(awk -v u="$(field "$f" p99_us)" \
			'BEGIN { printf "%.2f", u / 1000 }') ms (1-s windows: median $1," \
			"worst $2 ms), cpu $(field "$f" cpu_us_per_req) us/req," \
			"RssAnon ${rss%% *} kB, RssFile ${rss##* } kB, errors" \
			"$(field "$f" errors), mismatches $(field "$f" mismatches)"
		echo "SCALE n=$size run=$w rps=$(field "$f" rps) p99_us=$(field "$f" p99_us)" \
			"p99_win_median_ms=$1 p99_win_max_ms=$2 cpu_us_per_req=$(field "$f" cpu_us_per_req)" \
			"rss_anon_kb=${rss%% *} rss_file_kb=${rss##* } errors=$(field "$f" errors)" \
			"mismatches=$(field "$f" mismatches)" >> "$results"
	done
	echo "SCALE n=$size run=load records=$records seconds=$load_s rate=$load_rate" \
		"db_bytes=$db_bytes db_alloc_kb=$db_alloc_kb bytes_per_triplet=$per_triplet" \
		"old=$old_count" >> "$results"

	rm -rf "$dir/db"

	# 3. The sweep: max_age 10d makes the "old" records expired.
	if [ "$sweep_db" = yes ]; then
		if [ "$sweep_seconds" = 0 ]; then
			sw=$(( (size + clients) / (sweep_budget / 4) + 120 ))
		else
			sw=$sweep_seconds
		fi
		pick_port; gport=$port
		pick_port; mport=$port
		: > "$dir/poll.txt"
		rm -f "$dir/poll.txt.stop"
		start_greyhold "$dir/sweep" "$gport" "$mport" -o max_age=10d
		sweep_start=$(now_s)
		poll_metrics "$dir/poll.txt" "$mport" $((sw + 30)) &
		poll_pid=$!
		run_load "$dir" sweep "$gport" "$lookup_new" $((size + 3000000000)) "$sw" \
			--interval 1
		sweep_rss=$(proc_rss "$server_pid")
		touch "$dir/poll.txt.stop"
		wait "$poll_pid" 2>/dev/null
		poll_pid=
		stop_server "$server_pid" 30
		server_pid=
		trim_log "$dir/sweep"
		report_sweep "$dir" "$sweep_start"
	fi
	rm -rf "$dir/db" "$dir/sweep/db"
	show_notes "$dir"
	echo
}

# report_sweep DIR START: the sweep's pace, and the p99 of 1-s windows
# while it deleted and after it stopped.
report_sweep() {
	sdir=$1 sstart=$2
	f=$sdir/sweep.txt
	grep -q '^RESULT' "$f" || return
	# The pass over the triplets ended when the count stopped growing for
	# at least 3 samples before the end of the run.
	# shellcheck disable=SC2046 # split into fields on purpose
	set -- $(awk -v start="$sstart" '
	$2 != "-" {
		t[++k] = $1; v[k] = $2 + 0
	}
	END {
		if (k == 0) { print "0 - 0 0"; exit }
		last = v[k]; first_at = k
		while (first_at > 1 && v[first_at - 1] == last) first_at--
		done = (last > 0 && k - first_at >= 3) ? 1 : 0
		printf "%d %s %.3f %.1f\n", last, (done ? t[first_at] : "-"),
			t[k] - start, (done ? t[first_at] - start : t[k] - start)
	}' "$sdir/poll.txt")
	expired=$1 end_at=$2 watched=$3 sweep_s=$4
	pace=$(awk -v e="$expired" -v s="$sweep_s" 'BEGIN { printf "%.0f", (s > 0 ? e / s : 0) }')
	share=$(awk -v e="$expired" -v o="$old_count" 'BEGIN { printf "%.1f", (o > 0 ? 100 * e / o : 0) }')
	base=$(interval_p99 "$sdir/lookup.txt")
	if [ "$end_at" != "-" ]; then
		during=$(interval_p99 "$f" 0 "$end_at")
		after=$(interval_p99 "$f" "$(awk -v t="$end_at" 'BEGIN { printf "%.3f", t + 1 }')")
		echo "  sweep (max_age=10d, lookup-heavy load): $expired of $old_count" \
			"old records expired ($share %) in $sweep_s s ($pace/s): the pass" \
			"over the triplets took $sweep_s s"
		est=$sweep_s
		finished=yes
	else
		during=$(interval_p99 "$f")
		after="- - -"
		est=$(awk -v s="$sweep_s" -v e="$expired" -v o="$old_count" \
			'BEGIN { printf "%.0f", (e > 0 ? s * o / e : -1) }')
		echo "  sweep (max_age=10d, lookup-heavy load): $expired of $old_count" \
			"old records expired ($share %) in the $sweep_s s watched ($pace/s);" \
			"not finished: at this pace the pass over the triplets takes about" \
			"$est s (extrapolated, not measured; $((size + clients)) records at" \
			"the sweep's floor of $sweep_budget examined a second is" \
			"$(( (size + clients) / sweep_budget )) s with no growth)"
		finished=no
	fi
	set -- $base
	b_med=$1 b_max=$2
	set -- $during
	d_med=$1 d_max=$2 d_rps=$3
	set -- $after
	a_med=$1 a_max=$2 a_rps=$3
	new_rate=$(awk '/^RESULT/ { for (i = 2; i <= NF; i++) { split($i, kv, "=");
		v[kv[1]] = kv[2] } printf "%.0f", v["new"] / v["seconds"] }' "$f")
	echo "    p99 of 1-s windows, median/worst: while deleting $d_med/$d_max ms" \
		"($d_rps req/s); after the pass $a_med/$a_max ms ($a_rps req/s);" \
		"lookup run (sweep scanning, nothing to delete) $b_med/$b_max ms"
	echo "    the load inserted $new_rate never-seen triplets a second, which" \
		"the sweep must examine too (it examines at least twice that many a" \
		"second, and at least $sweep_budget)"
	echo "SCALE n=$size run=sweep expired=$expired old=$old_count seconds=$sweep_s" \
		"watched=$watched finished=$finished pass_s=$est pace=$pace" \
		"p99_during_ms=$d_med p99_during_max_ms=$d_max p99_after_ms=$a_med" \
		"p99_base_ms=$b_med rps_during=$d_rps inserts_per_s=$new_rate" \
		"rss_anon_kb=${sweep_rss%% *}" >> "$results"
}

for size in $sizes; do
	case $size in
	''|*[!0-9]*) echo "scale.sh: SCALE_SIZES: '$size' is not a number" >&2; continue ;;
	esac
	[ "$size" -lt 1000 ] && { echo "scale.sh: size $size is below 1000; skipped" >&2; continue; }
	run_size "$size"
done

[ -n "$results_out" ] && grep '^SCALE' "$results" >> "$results_out"

# ---- the table ------------------------------------------------------------------

awk '
/^SCALE/ {
	delete v
	for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	n = v["n"]
	if (!(n in seen)) { seen[n] = 1; order[++sizes] = n }
	if ("skipped" in v) { skipped[n] = 1; next }
	r = v["run"]
	for (k in v) val[n, r, k] = v[k]
	has[n, r] = 1
}
function g(n, r, k) { return ((n, r, k) in val) ? val[n, r, k] : "-" }
function mb(kb) { return kb == "-" || kb < 0 ? "-" : sprintf("%.1f", kb / 1024) }
END {
	if (sizes == 0) exit
	printf "%-9s %9s %6s %10s %8s %10s %8s %10s %8s %7s %8s %8s %10s\n",
		"triplets", "load r/s", "B/trip", "lookup r/s", "p99 ms", "insert r/s",
		"p99 ms", "cpu us/r", "RssAnon", "MiB", "sweep/s", "pass s", "sweep p99"
	for (i = 1; i <= sizes; i++) {
		n = order[i]
		if (n in skipped) { printf "%-9s skipped (disk space)\n", n; continue }
		ra = g(n, "lookup", "rss_anon_kb"); rb = g(n, "insert", "rss_anon_kb")
		rs = g(n, "sweep", "rss_anon_kb")
		rss = ra; if (rb != "-" && rb + 0 > rss + 0) rss = rb
		if (rs != "-" && rs + 0 > rss + 0) rss = rs
		maxrss[n] = rss
		pass = g(n, "sweep", "pass_s")
		if (pass != "-" && g(n, "sweep", "finished") == "no") pass = "~" pass
		sp = "-"
		if (g(n, "sweep", "p99_during_ms") != "-" && g(n, "sweep", "p99_base_ms") != "-" &&
		    g(n, "sweep", "p99_base_ms") > 0)
			sp = sprintf("%.2fx", g(n, "sweep", "p99_during_ms") / g(n, "sweep", "p99_base_ms"))
		printf "%-9s %9s %6s %10s %8.2f %10s %8.2f %10s %8s %7s %8s %8s %10s\n", n,
			g(n, "load", "rate"), g(n, "load", "bytes_per_triplet"),
			g(n, "lookup", "rps"), g(n, "lookup", "p99_us") / 1000,
			g(n, "insert", "rps"), g(n, "insert", "p99_us") / 1000,
			g(n, "lookup", "cpu_us_per_req"), rss " kB",
			mb(g(n, "load", "db_bytes") / 1024), g(n, "sweep", "pace"), pass, sp
	}
	print ""
	print "columns: load r/s = greyholdctl load records/s; B/trip = data.mdb bytes / triplets;"
	print "  p99 = whole run; cpu us/r = greyhold CPU per request, lookup-heavy; RssAnon ="
	print "  largest at the end of a run; sweep/s = records expired a second while the"
	print "  lookup-heavy load ran; pass s = the pass over the triplets (~: extrapolated);"
	print "  sweep p99 = median 1-s-window p99 while deleting / the same in the lookup run"
	ref = ""
	for (i = 1; i <= sizes; i++) if (!(order[i] in skipped) && ((order[i], "lookup") in has)) { ref = order[i]; break }
	if (ref == "") exit
	print ""
	print "figures against issue 7 (no pass/fail), relative to " ref " triplets:"
	for (i = 1; i <= sizes; i++) {
		n = order[i]
		if (n == ref || (n in skipped) || !((n, "lookup") in has)) continue
		lr = g(ref, "lookup", "rps"); ir = g(ref, "insert", "rps")
		printf "  %s: lookup-heavy req/s %.2fx, insert-heavy %.2fx of %s (target >= 0.8)\n",
			n, (lr > 0 ? g(n, "lookup", "rps") / lr : 0),
			(ir > 0 && g(n, "insert", "rps") != "-" ? g(n, "insert", "rps") / ir : 0), ref
	}
	for (i = 1; i <= sizes; i++) {
		n = order[i]
		if ((n in skipped) || !((n, "lookup") in has)) continue
		printf "  %s: RssAnon %s MiB (target < 32)", n, mb(maxrss[n])
		if (g(n, "sweep", "p99_during_ms") != "-" && g(n, "sweep", "p99_base_ms") > 0)
			printf "; p99 while the sweep deletes %.2f ms vs %.2f ms without deletions = %.2fx (target < 2)",
				g(n, "sweep", "p99_during_ms"), g(n, "sweep", "p99_base_ms"),
				g(n, "sweep", "p99_during_ms") / g(n, "sweep", "p99_base_ms")
		if (g(n, "sweep", "p99_after_ms") != "-")
			printf "; %.2f ms after the pass", g(n, "sweep", "p99_after_ms")
		printf "\n"
	}
}' "$results"
exit 0
