#!/bin/sh
# compare.sh - greyhold side by side with a no-op server and postgrey.
#
#   sh tests/bench/compare.sh [BUILDDIR]        (make bench does this)
#
# Runs, one after another with identical load parameters and several
# rounds interleaved, on fresh state directories under one temporary
# directory (so every server's state is on the same filesystem):
#   noop              the protocol's floor (tests/bench/noop_server)
#   greyhold          default configuration: logging on (to a file), the
#                     shipped whitelists, durability full
#   greyhold-relaxed  the same with -o durability=relaxed
#   greyhold-redis    the same with -o store=redis://127.0.0.1:PORT/0, a
#                     fresh redis-server per run (no persistence), when
#                     redis-server is installed
#   postgrey          the Debian package, run in the foreground
# under two workloads: "new" (90 % never-seen triplets, the rest retries of
# passed ones) and "retry" (5 % new); greyhold-relaxed runs "new" only.
# Each round also runs lmdb_probe, the raw LMDB group-commit ceiling on
# the same filesystem.  It prints figures and a table; it never fails on a figure.
# See tests/bench/README for the columns.
#
# Environment (defaults in brackets):
#   BENCH_SECONDS [10]        measured seconds per run
#   BENCH_ROUNDS [3]          rounds; each round runs every server once
#   BENCH_CONNECTIONS [64]    concurrent connections (one request in flight each)
#   BENCH_POOL [5000]         triplets seeded and passed in each warm-up
#   BENCH_DELAY [1]           greylisting delay given to greyhold and postgrey
#   BENCH_ATTRS [full]        minimal, typical or full request attributes
#   BENCH_IPV6_FRACTION [0.2] share of IPv6 clients
#   BENCH_NEW_MIX [0.9]       new-triplet fraction of the "new" workload
#   BENCH_RETRY_MIX [0.05]    new-triplet fraction of the "retry" workload
#   BENCH_SERVERS [noop greyhold greyhold-relaxed greyhold-redis postgrey]
#   BENCH_PROBE_SECONDS [2]   seconds per lmdb_probe mode, each round (0: none)
#   BENCH_TMPDIR [$TMPDIR or /tmp]  where the temporary directory goes: put it
#                             on the filesystem whose disk you want to measure
#   BENCH_KEEP [no]           yes: keep the temporary directory (logs, results)
#   BENCH_INSTALL [yes]       yes: apt-get install postgrey if missing (root)

set -u

build=${1:-.}
build=$(cd "$build" && pwd) || exit 1
here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "$here/../.." && pwd)

seconds=${BENCH_SECONDS:-10}
rounds=${BENCH_ROUNDS:-3}
conns=${BENCH_CONNECTIONS:-64}
pool=${BENCH_POOL:-5000}
delay=${BENCH_DELAY:-1}
attrs=${BENCH_ATTRS:-full}
ipv6=${BENCH_IPV6_FRACTION:-0.2}
new_mix=${BENCH_NEW_MIX:-0.9}
retry_mix=${BENCH_RETRY_MIX:-0.05}
servers=${BENCH_SERVERS:-noop greyhold greyhold-relaxed greyhold-redis postgrey}
probe_seconds=${BENCH_PROBE_SECONDS:-2}
keep=${BENCH_KEEP:-no}
install=${BENCH_INSTALL:-yes}

loadgen=$build/tests/bench/loadgen
noop=$build/tests/bench/noop_server
probe=$build/tests/bench/lmdb_probe
greyhold=$build/src/greyhold

for prog in "$loadgen" "$noop" "$probe" "$greyhold"; do
	if [ ! -x "$prog" ]; then
		echo "compare.sh: $prog is missing: build it first (make bench)" >&2
		exit 1
	fi
done

parent=${BENCH_TMPDIR:-${TMPDIR:-/tmp}}
tmp=$(mktemp -d "$parent/greyhold-bench.XXXXXX") || exit 1
# postgrey drops privileges: its user must be able to reach its dbdir.
chmod 711 "$tmp"
results=$tmp/results.txt
: > "$results"
server_pid=
store_pid=

cleanup() {
	if [ -n "$server_pid" ]; then
		stop_server "$server_pid" 15
		server_pid=
	fi
	if [ -n "$store_pid" ]; then
		stop_server "$store_pid" 15
		store_pid=
	fi
	if [ "$keep" = yes ]; then
		echo "compare.sh: results and logs kept in $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_name=compare.sh
next_port=$((20000 + $$ % 20000))
. "$here/lib.sh"

# ---- postgrey ---------------------------------------------------------------

have_postgrey=no
find_postgrey() {
	postgrey=$(command -v postgrey 2>/dev/null || true)
	[ -z "$postgrey" ] && [ -x /usr/sbin/postgrey ] && postgrey=/usr/sbin/postgrey
	[ -n "$postgrey" ]
}
case " $servers " in
*" postgrey "*)
	if ! find_postgrey && [ "$install" = yes ] && [ "$(id -u)" = 0 ] &&
	   command -v apt-get >/dev/null 2>&1; then
		echo "compare.sh: installing the postgrey package (BENCH_INSTALL=no skips this)"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgrey \
			> "$tmp/apt.log" 2>&1 ||
		{ apt-get update -q >> "$tmp/apt.log" 2>&1 &&
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgrey \
			>> "$tmp/apt.log" 2>&1; }
		# The package may start a system postgrey (port 10023): stop that
		# one through its service or its pidfile, never by name.
		for pidfile in /run/postgrey.pid /var/run/postgrey.pid; do
			if [ -s "$pidfile" ]; then
				service postgrey stop >/dev/null 2>&1 ||
					kill -TERM "$(cat "$pidfile")" 2>/dev/null
				break
			fi
		done
	fi
	if find_postgrey; then
		have_postgrey=yes
	else
		echo "compare.sh: postgrey is not installed; its rows are skipped"
	fi
	;;
esac
pg_user=nobody
pg_group=$(id -gn nobody 2>/dev/null || echo nogroup)

# ---- redis-server (greyhold-redis) --------------------------------------------

have_redis=no
case " $servers " in
*" greyhold-redis "*)
	redis_server=$(command -v redis-server 2>/dev/null || true)
	[ -z "$redis_server" ] && [ -x /usr/bin/redis-server ] &&
		redis_server=/usr/bin/redis-server
	redis_cli=$(command -v redis-cli 2>/dev/null || true)
	if [ -n "$redis_server" ]; then
		have_redis=yes
	else
		echo "compare.sh: redis-server is not installed; the greyhold-redis" \
			"rows are skipped"
	fi
	;;
esac

# True once the redis-server on port $1 answers (or, without redis-cli,
# listens).
redis_ready() {
	if [ -n "$redis_cli" ]; then
		[ "$("$redis_cli" -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]
	elif command -v ss >/dev/null 2>&1; then
		port_in_use "$1"
	else
		sleep 1
	fi
}

# start_redis DIR PORT: a fresh redis-server without persistence, its
# files in DIR; sets store_pid; fails if it does not answer within 10 s.
start_redis() {
	mkdir -p "$1"
	"$redis_server" --port "$2" --bind 127.0.0.1 --save '' \
		--appendonly no --daemonize no --dir "$1" > "$1/redis.log" 2>&1 &
	store_pid=$!
	rn=0
	while ! redis_ready "$2"; do
		rn=$((rn + 1))
		if [ $rn -ge 100 ] || ! alive "$store_pid"; then
			echo "compare.sh: redis-server did not start:" \
				"$(tail -n 2 "$1/redis.log" | tr '\n' ' ')" >&2
			return 1
		fi
		sleep 0.1
	done
}

# ---- the machine -------------------------------------------------------------

cpu_model=$(sed -n 's/^model name[[:space:]]*: *//p' /proc/cpuinfo 2>/dev/null | head -n 1)
[ -z "$cpu_model" ] && cpu_model=$(uname -m)
fs_type=$(df -PT "$tmp" 2>/dev/null | awk 'NR == 2 { print $2 " on " $1 }')
[ -z "$fs_type" ] && fs_type=$(stat -f -c %T "$tmp" 2>/dev/null)
mem_mb=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 }' /proc/meminfo 2>/dev/null)
echo "machine: nproc=$(nproc 2>/dev/null || echo ?) cpu=\"$cpu_model\" mem=${mem_mb}MiB" \
	"fs=\"$fs_type\" ($tmp) kernel=$(uname -r)"
echo "load: $conns connections, one request in flight each, TCP loopback;" \
	"$seconds s x $rounds rounds per server; attributes $attrs;" \
	"IPv6 $ipv6; warm-up pool $pool; delay ${delay}s;" \
	"new = $new_mix never-seen, retry = $retry_mix never-seen"
[ "$have_postgrey" = yes ] && echo "postgrey: $("$postgrey" --version 2>/dev/null | head -n 1)"
[ "$have_redis" = yes ] && echo "redis: $("$redis_server" --version 2>/dev/null | head -n 1)"
echo

# ---- the LMDB ceiling ---------------------------------------------------------

# Once per round, so that it sees the disk as the servers do.
run_probe() {
	[ "$probe_seconds" = 0 ] && return
	mkdir -p "$tmp/probe"
	"$probe" --dir "$tmp/probe" --seconds "$probe_seconds" > "$tmp/probe.txt" 2>&1
	sed -n "s/^PROBE.*/& round=$r/p" "$tmp/probe.txt" >> "$results"
	awk '/^PROBE/ {
		for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		printf "  lmdb_probe %-10s batch %-3s %8s inserts/s  %6.2f ms per commit\n",
			v["mode"], v["batch"], v["inserts_per_s"], v["ms_per_commit"]
	}' "$tmp/probe.txt"
	grep -q '^PROBE' "$tmp/probe.txt" || sed 's/^/  /' "$tmp/probe.txt"
}

# ---- one run -----------------------------------------------------------------

# start_server KIND DIR PORT: sets server_pid (and store_pid for
# greyhold-redis); fails if its store does not start.
start_server() {
	kind=$1 dir=$2 p=$3
	mkdir -p "$dir"
	case $kind in
	noop)
		"$noop" --listen "127.0.0.1:$p" 2> "$dir/server.log" &
		;;
	greyhold|greyhold-relaxed|greyhold-redis)
		: > "$dir/empty.conf"
		set -- -c "$dir/empty.conf" --inet="127.0.0.1:$p" --dbdir="$dir/db" \
			--delay="$delay" \
			--whitelist-clients="$srcdir/etc/whitelist_clients" \
			--whitelist-recipients="$srcdir/etc/whitelist_recipients"
		[ "$kind" = greyhold-relaxed ] && set -- "$@" -o durability=relaxed
		if [ "$kind" = greyhold-redis ]; then
			pick_port
			rport=$port
			start_redis "$dir/redis" "$rport" || return 1
			set -- "$@" -o "store=redis://127.0.0.1:$rport/0"
		fi
		# Benchmarks never reach a real resolver: a loopback one where
		# nothing listens (lookups refused at once) unless a run names its own.
		"$greyhold" -o "resolver=${GREYHOLD_BENCH_RESOLVER:-127.0.0.1:1}" \
			"$@" 2> "$dir/server.log" &
		;;
	postgrey)
		mkdir -p "$dir/db"
		chmod 711 "$dir"
		chown "$pg_user:$pg_group" "$dir/db"
		"$postgrey" --inet="127.0.0.1:$p" --dbdir="$dir/db" --delay="$delay" \
			--user="$pg_user" --group="$pg_group" 2> "$dir/server.log" &
		;;
	esac
	server_pid=$!
}

# run_one ROUND KIND WORKLOAD
run_one() {
	round=$1 kind=$2 workload=$3
	if [ "$workload" = new ]; then mix=$new_mix; else mix=$retry_mix; fi
	check=
	[ "$kind" = noop ] && check=--no-check
	name=$kind:$workload:$round
	dir=$tmp/r$round-$kind-$workload
	pick_port
	sport=$port
	if ! start_server "$kind" "$dir" "$sport"; then
		echo "  $name: not run (its store did not start)"
		[ -n "$store_pid" ] && stop_server "$store_pid" 15
		store_pid=
		return
	fi
	set -- --server-pid "$server_pid"
	[ -n "$store_pid" ] && set -- "$@" --store-pid "$store_pid"
	"$loadgen" --quiet --name "$name" "$@" \
		--connections "$conns" --duration "$seconds" \
		--new-fraction "$mix" --delay "$delay" --pool "$pool" \
		--attrs "$attrs" --ipv6-fraction "$ipv6" --seed "$round" \
		--wait 20 $check "127.0.0.1:$sport" > "$dir/loadgen.txt" 2> "$dir/loadgen.err"
	status=$?
	stop_server "$server_pid" 15
	server_pid=
	if [ -n "$store_pid" ]; then
		stop_server "$store_pid" 15
		store_pid=
	fi
	if grep -q '^RESULT' "$dir/loadgen.txt"; then
		grep '^RESULT' "$dir/loadgen.txt" >> "$results"
		awk -v s="$status" '/^RESULT/ {
			for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
			store = ""
			if (("store_cpu_us_per_req" in v) && v["store_cpu_us_per_req"] >= 0)
				store = sprintf("  (redis-server: cpu %s us/req, rss %s kB)",
					v["store_cpu_us_per_req"], v["store_rss_anon_kb"])
			printf "  %-28s %8s req/s  p99 %7.2f ms  cpu %7s us/req  rss %6s kB  errors %s mismatches %s%s%s\n",
				v["name"], v["rps"], v["p99_us"] / 1000, v["cpu_us_per_req"],
				v["rss_anon_kb"], v["errors"], v["mismatches"],
				(v["warmup_bad"] > 0 ? "  (warm-up: " v["warmup_bad"] " bad)" : ""), store
		}' "$dir/loadgen.txt"
	else
		echo "  $name: no result (loadgen exit $status):" \
			"$(tail -n 2 "$dir/loadgen.err" | tr '\n' ' ')"
	fi
	[ -s "$dir/loadgen.err" ] && [ "$status" != 0 ] &&
		sed -n '1,3s/^/    /p' "$dir/loadgen.err"
	# Free the space (a kept directory keeps the logs, not the databases).
	rm -rf "$dir/db" "$dir/redis/dump.rdb"
	[ "$keep" = yes ] || rm -f "$dir/server.log"
}

plan=
for s in $servers; do
	case $s in
	noop|greyhold) plan="$plan $s:new $s:retry" ;;
	greyhold-relaxed) plan="$plan $s:new" ;;
	greyhold-redis) [ "$have_redis" = yes ] && plan="$plan $s:new $s:retry" ;;
	postgrey) [ "$have_postgrey" = yes ] && plan="$plan $s:new $s:retry" ;;
	*) echo "compare.sh: unknown server '$s' in BENCH_SERVERS" >&2 ;;
	esac
done

r=1
while [ "$r" -le "$rounds" ]; do
	echo "round $r of $rounds"
	run_probe
	for item in $plan; do
		run_one "$r" "${item%%:*}" "${item#*:}"
	done
	r=$((r + 1))
done
echo

# ---- the table -----------------------------------------------------------------

awk -v plan="$plan" -v conns="$conns" '
function median(list,    a, n, i, j, t) {
	n = split(list, a, " ")
	if (n == 0) return ""
	for (i = 2; i <= n; i++) {
		t = a[i] + 0
		for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]
		a[j + 1] = t
	}
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function add(arr, key, v) { arr[key] = (key in arr) ? arr[key] " " v : v }
/^PROBE/ {
	delete v
	for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	add(probel, v["mode"] ":" v["batch"], v["inserts_per_s"])
	probe_r[v["mode"] ":" v["batch"], v["round"]] = v["inserts_per_s"]
	add(commitl, v["mode"] ":" v["batch"], v["ms_per_commit"])
	next
}
/^RESULT/ {
	delete v
	for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	split(v["name"], nm, ":")
	key = nm[1] ":" nm[2]; round = nm[3]
	rps[key, round] = v["rps"]
	add(rpsl, key, v["rps"])
	add(p99l, key, v["p99_us"])
	if (v["cpu_us_per_req"] >= 0) add(cpul, key, v["cpu_us_per_req"])
	if (("store_cpu_us_per_req" in v) && v["store_cpu_us_per_req"] >= 0)
		add(scpul, key, v["store_cpu_us_per_req"])
	if (("store_rss_anon_kb" in v) && v["store_rss_anon_kb"] > srss[key])
		srss[key] = v["store_rss_anon_kb"]
	if (v["rss_anon_kb"] > rss[key]) rss[key] = v["rss_anon_kb"]
	bad[key] += v["errors"] + v["mismatches"] + v["warmup_bad"]
	rounds[round] = 1
	next
}
END {
	printf "%-17s %-8s %9s %15s %8s %8s %9s %9s %6s\n", "server", "workload",
		"req/s", "(min-max)", "x no-op", "p99 ms", "cpu us/r", "RssAnon", "bad"
	n = split(plan, items, " ")
	for (i = 1; i <= n; i++) {
		key = items[i]
		if (!(key in rpsl)) continue
		split(key, kw, ":")
		# ratio to the no-op server, round by round, then the median
		ratios = ""
		for (r in rounds) {
			nk = "noop:" kw[2]
			if (((key, r) in rps) && ((nk, r) in rps) && rps[nk, r] > 0)
				ratios = ratios " " sprintf("%.4f", rps[key, r] / rps[nk, r])
		}
		m = split(rpsl[key], all, " "); lo = all[1]; hi = all[1]
		for (j = 2; j <= m; j++) { if (all[j] + 0 < lo + 0) lo = all[j]; if (all[j] + 0 > hi + 0) hi = all[j] }
		med[key] = median(rpsl[key]); ratio[key] = median(ratios)
		p99[key] = median(p99l[key]) / 1000; cpu[key] = median(cpul[key])
		printf "%-17s %-8s %9.0f %15s %8s %8.2f %9s %7s kB %6d\n", kw[1], kw[2],
			med[key], lo "-" hi, (ratio[key] == "" ? "-" : sprintf("%.3f", ratio[key])),
			p99[key], (cpu[key] == "" ? "-" : sprintf("%.1f", cpu[key])),
			(rss[key] < 0 ? "-" : rss[key]), bad[key]
	}
	for (i = 1; i <= n; i++) {
		key = items[i]
		if (!(key in scpul)) continue
		split(key, kw, ":")
		printf "  %s %s: plus redis-server %.1f us/req CPU (median), RssAnon %d kB (largest)\n",
			kw[1], kw[2], median(scpul[key]), srss[key]
	}
	print ""
	for (k in probel) { probe[k] = median(probel[k]); commit_ms[k] = median(commitl[k]) }
	if ("sync:64" in probe)
		printf "LMDB ceiling (lmdb_probe, same filesystem, median of rounds): %d inserts/s with 64 per synced commit (%.2f ms per commit), %d with MDB_NOMETASYNC, %d unsynced, %d with one insert per synced commit\n",
			probe["sync:64"], commit_ms["sync:64"], probe["nometasync:64"],
			probe["nosync:64"], probe["sync:1"]
	print "figures against issue 7 (no pass/fail):"
	# greyhold against the ceiling measured in the same round
	split("greyhold:new sync:64 greyhold-relaxed:new nosync:64", pairs, " ")
	for (i = 1; i <= 3; i += 2) {
		ratios = ""
		for (r in rounds)
			if (((pairs[i], r) in rps) && ((pairs[i + 1], r) in probe_r) && probe_r[pairs[i + 1], r] > 0)
				ratios = ratios " " sprintf("%.4f", rps[pairs[i], r] / probe_r[pairs[i + 1], r])
		ceiling[pairs[i]] = median(ratios)
	}
	if (ceiling["greyhold:new"] != "")
		printf "  greyhold new / LMDB synced 64-batch ceiling      %.2f   (target >= 0.9; same-round ratios, median)\n",
			ceiling["greyhold:new"]
	if (ceiling["greyhold-relaxed:new"] != "")
		printf "  greyhold-relaxed new / LMDB unsynced ceiling     %.2f\n", ceiling["greyhold-relaxed:new"]
	if (("greyhold:retry" in ratio) && ratio["greyhold:retry"] != "")
		printf "  greyhold retry / no-op                           %.2f   (target >= 0.6)\n", ratio["greyhold:retry"]
	if (("greyhold-relaxed:new" in ratio) && ratio["greyhold-relaxed:new"] != "")
		printf "  greyhold-relaxed new / no-op                     %.2f   (target >= 0.5)\n", ratio["greyhold-relaxed:new"]
	if (("greyhold:retry" in p99) && ("noop:retry" in p99) && p99["noop:retry"] > 0)
		printf "  greyhold retry p99 / no-op p99                   %.1f    (target <= 3)\n",
			p99["greyhold:retry"] / p99["noop:retry"]
	if (("greyhold:new" in p99) && ("sync:64" in commit_ms))
		printf "  greyhold new p99 - (one commit + 1 ms)           %+.2f ms (target <= 0)\n",
			p99["greyhold:new"] - commit_ms["sync:64"] - 1
	for (k in cpu) if (k ~ /^greyhold/ && cpu[k] != "") {
		if (k in scpul)
			printf "  %-24s cpu per request             %.1f us, redis-server %.1f us more (target <= 10)\n",
				k, cpu[k], median(scpul[k])
		else
			printf "  %-24s cpu per request             %.1f us (target <= 10)\n", k, cpu[k]
	}
	if (("greyhold-redis:new" in ratio) && ratio["greyhold-redis:new"] != "")
		printf "  greyhold-redis new / no-op                       %.2f\n", ratio["greyhold-redis:new"]
	if (("greyhold-redis:retry" in ratio) && ratio["greyhold-redis:retry"] != "")
		printf "  greyhold-redis retry / no-op                     %.2f\n", ratio["greyhold-redis:retry"]
	if (("greyhold-redis:retry" in p99) && ("noop:retry" in p99) && p99["noop:retry"] > 0)
		printf "  greyhold-redis retry p99 / no-op p99             %.1f\n",
			p99["greyhold-redis:retry"] / p99["noop:retry"]
	if (("greyhold:new" in med) && ("postgrey:new" in med) && med["postgrey:new"] > 0)
		printf "  greyhold / postgrey, new                         %.1fx\n", med["greyhold:new"] / med["postgrey:new"]
	if (("greyhold:retry" in med) && ("postgrey:retry" in med) && med["postgrey:retry"] > 0)
		printf "  greyhold / postgrey, retry                       %.1fx\n", med["greyhold:retry"] / med["postgrey:retry"]
}' "$results"
exit 0
