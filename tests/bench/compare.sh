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
#   greyhold-dns-off  smart rules off (-o name_identity=no
#                     -o trust_spf_aligned=no): no DNS at all
#   greyhold-dns-on   smart rules on (the defaults) against a local unbound
#                     on 127.0.0.1 serving the relay senders' SPF records;
#                     loadgen's warm-up fills greyhold's DNS cache, so the
#                     measured window sees a warm cache.  Both DNS rows
#                     read greyhold_dns_* from metrics_listen before and
#                     after the window (lookup p50/p99, cache hits).
#   postgrey          the Debian package, run in the foreground
# under two workloads: "new" (90 % never-seen triplets, the rest retries of
# passed ones) and "retry" (5 % new); greyhold-relaxed runs "new" only.
# Every run gets the same share of relay senders (BENCH_SPF_FRACTION):
# verified names in relay-bench.test, senders in dK.spf-bench.test, whose
# SPF includes the relay's (loadgen --spf-fraction).
# Each round also runs lmdb_probe, the raw LMDB group-commit ceiling on
# the same filesystem.  After the rounds it runs tests/bench/scale.sh on
# preloaded databases of BENCH_SCALE_SIZES triplets (10k and 10M).  It
# prints figures and tables, the last one issue 13's with every target
# next to its figure, "met" or "not met"; it never fails on a figure.
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
#   BENCH_SPF_FRACTION [0.5]  share of triplets from relay senders
#   BENCH_SPF_DOMAINS [256]   customer domains (SPF records) of those senders
#   BENCH_DNS_OPTS []         more greyhold options for both DNS rows, e.g.
#                             "-o durability=relaxed" (CPU-bound new triplets)
#   BENCH_SERVERS [noop greyhold greyhold-relaxed greyhold-redis
#                  greyhold-dns-off greyhold-dns-on postgrey]
#   BENCH_PROBE_SECONDS [2]   seconds per lmdb_probe mode, each round (0: none)
#   BENCH_TMPDIR [$TMPDIR or /tmp]  where the temporary directory goes: put it
#                             on the filesystem whose disk you want to measure
#   BENCH_KEEP [no]           yes: keep the temporary directory (logs, results)
#   BENCH_INSTALL [yes]       yes: apt-get install postgrey if missing (root)
#   BENCH_SCALE_SIZES ["10000 10000000"]  preloaded sizes for scale.sh (its
#                             SCALE_SIZES; "" skips the scale runs); the
#                             first is the reference of the ratios.  The
#                             other SCALE_* variables reach scale.sh as set;
#                             SCALE_TMPDIR defaults to BENCH_TMPDIR's choice
#                             and SCALE_KEEP to BENCH_KEEP.

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
spf_fraction=${BENCH_SPF_FRACTION:-0.5}
spf_domains=${BENCH_SPF_DOMAINS:-256}
dns_opts=${BENCH_DNS_OPTS:-}
servers=${BENCH_SERVERS:-noop greyhold greyhold-relaxed greyhold-redis greyhold-dns-off greyhold-dns-on postgrey}
probe_seconds=${BENCH_PROBE_SECONDS:-2}
keep=${BENCH_KEEP:-no}
install=${BENCH_INSTALL:-yes}
# Unset: the default; set and empty: no scale runs.
scale_sizes=${BENCH_SCALE_SIZES-10000 10000000}

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
unbound_pid=

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	if [ -n "$server_pid" ]; then
		stop_server "$server_pid" 15
		server_pid=
	fi
	if [ -n "$store_pid" ]; then
		stop_server "$store_pid" 15
		store_pid=
	fi
	if [ -n "$unbound_pid" ]; then
		stop_server "$unbound_pid" 15
		unbound_pid=
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
# shellcheck source-path=SCRIPTDIR source=lib.sh
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

# ---- unbound and the metrics (greyhold-dns-off, greyhold-dns-on) --------------

# Reads greyhold's metrics endpoint around the measured window.
fetch=
if command -v curl >/dev/null 2>&1; then
	fetch="curl -s -m 2"
elif command -v wget >/dev/null 2>&1; then
	fetch="wget -q -T 2 -O -"
fi
have_unbound=no
case " $servers " in
*" greyhold-dns-on "*)
	unbound=$(command -v unbound 2>/dev/null || true)
	[ -z "$unbound" ] && [ -x /usr/sbin/unbound ] && unbound=/usr/sbin/unbound
	if [ -n "$unbound" ]; then
		have_unbound=yes
	else
		echo "compare.sh: unbound is not installed (Debian package unbound);" \
			"the greyhold-dns-on rows are skipped"
	fi
	;;
esac
case " $servers " in
*" greyhold-dns-o"[nf]*)
	[ -z "$fetch" ] && echo "compare.sh: neither curl nor wget: the DNS" \
		"rows go without greyhold's DNS metrics"
	;;
esac

# start_unbound DIR PORT: one unbound for every greyhold-dns-on run, on
# 127.0.0.1 only, authoritative for example. and test. (names without data
# are NXDOMAIN, negative answers cached for an hour) with the relay
# senders' records (loadgen --spf-records); every other name is refused,
# and its queries could leave from 127.0.0.1 only: it never recurses to
# the outside.  Sets unbound_pid; fails if it does not start within 10 s.
start_unbound() {
	mkdir -p "$1"
	{
		cat <<-EOF
		server:
		  interface: 127.0.0.1@$2
		  port: $2
		  outgoing-interface: 127.0.0.1
		  do-ip6: no
		  do-daemonize: no
		  username: ""
		  chroot: ""
		  directory: "$1"
		  pidfile: "$1/unbound.pid"
		  use-syslog: no
		  logfile: ""
		  verbosity: 1
		  num-threads: 1
		  so-reuseport: no
		  access-control: 127.0.0.0/8 allow
		  module-config: "iterator"
		  local-zone: "." refuse
		EOF
		for zone in example. test.; do
			echo "  local-zone: \"$zone\" nodefault"
			echo "  local-zone: \"$zone\" static"
			echo "  local-data: \"$zone 3600 IN SOA ns.$zone admin.$zone 1 3600 600 86400 3600\""
		done
		"$loadgen" --spf-records --spf-domains "$spf_domains" |
			sed "s/.*/  local-data: '&'/"
	} > "$1/unbound.conf"
	"$unbound" -d -c "$1/unbound.conf" > "$1/unbound.log" 2>&1 &
	unbound_pid=$!
	un=0
	while ! grep -q 'start of service' "$1/unbound.log" 2>/dev/null; do
		un=$((un + 1))
		if [ $un -ge 100 ] || ! alive "$unbound_pid"; then
			echo "compare.sh: unbound did not start:" \
				"$(tail -n 2 "$1/unbound.log" | tr '\n' ' ')" >&2
			return 1
		fi
		sleep 0.1
	done
}

if [ "$have_unbound" = yes ]; then
	pick_port
	unbound_port=$port
	if ! start_unbound "$tmp/unbound" "$unbound_port"; then
		have_unbound=no
		[ -n "$unbound_pid" ] && stop_server "$unbound_pid" 15
		unbound_pid=
		echo "compare.sh: the greyhold-dns-on rows are skipped"
	fi
fi

# dns_delta NAME START END: the DNS line of one run, greyhold_dns_* over
# the measured window (END minus START scrape).  Lookup latency quantiles
# are interpolated within the histogram's buckets (50 us, 100 us, 250 us,
# 500 us, 1, 2, 5, 10, 25 ... ms), as Prometheus' histogram_quantile does;
# beyond the last finite bucket they are given as that bound, flagged.
dns_delta() {
	awk -v name="$1" '
	FNR == 1 { f++ }
	/^greyhold_dns_/ {
		k = $1
		if (f == 1) { a[k] = $2; next }
		b[k] = $2
		if (k ~ /_bucket\{/) {
			le = k; sub(/.*le="/, "", le); sub(/".*/, "", le)
			nb++; bk[nb] = k; bl[nb] = le
		}
	}
	function d(k) { return (k in b) ? b[k] - a[k] : 0 }
	function q(p,    total, rank, cum, prev, lo, i, c) {
		if (nb == 0) return "-1 0"
		total = d(bk[nb]); if (total <= 0) return "-1 0"
		rank = p * total; cum = 0; lo = 0
		for (i = 1; i <= nb; i++) {
			prev = cum; cum = d(bk[i])
			if (cum >= rank) {
				if (bl[i] == "+Inf") return sprintf("%.0f 1", lo * 1e6)
				c = cum - prev
				return sprintf("%.0f 0", (lo + (bl[i] - lo) * (c > 0 ? (rank - prev) / c : 1)) * 1e6)
			}
			if (bl[i] != "+Inf") lo = bl[i]
		}
		return "-1 0"
	}
	END {
		if (f < 2) exit
		split(q(0.50), m50, " "); split(q(0.99), m99, " ")
		printf "DNS name=%s lookups=%d cache_hits=%d queries=%d failures=%d timeouts=%d overflows=%d p50_us=%s p99_us=%s p99_beyond=%s\n",
			name, d("greyhold_dns_lookups_total"), d("greyhold_dns_cache_hits_total"),
			d("greyhold_dns_queries_total"), d("greyhold_dns_failures_total"),
			d("greyhold_dns_timeouts_total"), d("greyhold_dns_overflows_total"),
			m50[1], m99[1], m99[2]
	}' "$2" "$3"
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
	"new = $new_mix never-seen, retry = $retry_mix never-seen;" \
	"relay senders $spf_fraction ($spf_domains SPF domains)"
[ "$have_postgrey" = yes ] && echo "postgrey: $("$postgrey" --version 2>/dev/null | head -n 1)"
[ "$have_redis" = yes ] && echo "redis: $("$redis_server" --version 2>/dev/null | head -n 1)"
[ "$have_unbound" = yes ] && echo "unbound: $("$unbound" -V 2>/dev/null | head -n 1)" \
	"on 127.0.0.1:$unbound_port for greyhold-dns-on"
[ -n "$dns_opts" ] && echo "DNS rows (greyhold-dns-off, greyhold-dns-on) also get: $dns_opts"
if [ -n "$scale_sizes" ]; then
	echo "then scale.sh on preloaded databases of $scale_sizes triplets (BENCH_SCALE_SIZES)"
else
	echo "no scale runs (BENCH_SCALE_SIZES is empty)"
fi
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
# greyhold-redis, metrics_port for the DNS rows); fails if its store does
# not start.
start_server() {
	kind=$1 dir=$2 p=$3
	mkdir -p "$dir"
	case $kind in
	noop)
		"$noop" --listen "127.0.0.1:$p" 2> "$dir/server.log" &
		;;
	greyhold|greyhold-relaxed|greyhold-redis|greyhold-dns-off|greyhold-dns-on)
		: > "$dir/empty.conf"
		# Benchmarks never reach a real resolver: a loopback one where
		# nothing listens (lookups refused at once) unless a run names
		# its own; greyhold-dns-on names the unbound on 127.0.0.1.
		resolver=${GREYHOLD_BENCH_RESOLVER:-127.0.0.1:1}
		[ "$kind" = greyhold-dns-on ] && resolver=127.0.0.1:$unbound_port
		set -- -c "$dir/empty.conf" --inet="127.0.0.1:$p" --dbdir="$dir/db" \
			--delay="$delay" \
			--whitelist-clients="$srcdir/etc/whitelist_clients" \
			--whitelist-recipients="$srcdir/etc/whitelist_recipients"
		[ "$kind" = greyhold-relaxed ] && set -- "$@" -o durability=relaxed
		[ "$kind" = greyhold-dns-off ] &&
			set -- "$@" -o name_identity=no -o trust_spf_aligned=no
		case $kind in
		greyhold-dns-*)
			pick_port
			metrics_port=$port
			# $dns_opts unquoted: several options, split on blanks.
			# shellcheck disable=SC2086
			set -- "$@" -o "metrics_listen=127.0.0.1:$metrics_port" $dns_opts
			;;
		esac
		if [ "$kind" = greyhold-redis ]; then
			pick_port
			rport=$port
			start_redis "$dir/redis" "$rport" || return 1
			set -- "$@" -o "store=redis://127.0.0.1:$rport/0"
		fi
		"$greyhold" -o "resolver=$resolver" "$@" 2> "$dir/server.log" &
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
	rm -f "$dir/metrics.start" "$dir/metrics.end"
	case $kind in
	greyhold-dns-*)
		if [ -n "$fetch" ]; then
			# loadgen runs it with "start" and "end" around the window.
			echo "$fetch http://127.0.0.1:$metrics_port/metrics > \"$dir/metrics.\$1\"" \
				> "$dir/scrape.sh"
			set -- "$@" --window-cmd "sh $dir/scrape.sh"
		fi
		;;
	esac
	"$loadgen" --quiet --name "$name" "$@" \
		--connections "$conns" --duration "$seconds" \
		--new-fraction "$mix" --delay "$delay" --pool "$pool" \
		--attrs "$attrs" --ipv6-fraction "$ipv6" --seed "$round" \
		--spf-fraction "$spf_fraction" --spf-domains "$spf_domains" \
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
	if [ -s "$dir/metrics.start" ] && [ -s "$dir/metrics.end" ]; then
		dns_delta "$name" "$dir/metrics.start" "$dir/metrics.end" > "$dir/dns.txt"
		cat "$dir/dns.txt" >> "$results"
		awk '/^DNS/ {
			for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
			if (v["lookups"] == 0) next
			printf "  %-28s DNS in the window: %d lookups, %.1f %% from the cache, %d queries sent, %d failed, %d timed out; lookup p50 %.3f ms, p99 %s%.3f ms\n",
				v["name"], v["lookups"], 100 * v["cache_hits"] / v["lookups"],
				v["queries"], v["failures"], v["timeouts"], v["p50_us"] / 1000,
				v["p99_beyond"] ? ">" : "", v["p99_us"] / 1000
		}' "$dir/dns.txt"
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
	greyhold-dns-off) plan="$plan $s:new $s:retry" ;;
	greyhold-dns-on) [ "$have_unbound" = yes ] && plan="$plan $s:new $s:retry" ;;
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

# ---- the scale runs --------------------------------------------------------------

# scale.sh does the work (its own variables, its own output and table);
# its SCALE lines join results.txt for the last table.  Its databases go
# beside this run's temporary directory, on the disk the rounds measured.
if [ -n "$scale_sizes" ]; then
	echo "scale runs: sh tests/bench/scale.sh with SCALE_SIZES=\"$scale_sizes\""
	SCALE_SIZES=$scale_sizes SCALE_TMPDIR=${SCALE_TMPDIR:-$parent} \
	SCALE_KEEP=${SCALE_KEEP:-$keep} SCALE_RESULTS=$results \
		sh "$here/scale.sh" "$build"
	st=$?
	[ "$st" != 0 ] && echo "compare.sh: scale.sh exited with status $st"
	echo
fi

# ---- the tables ----------------------------------------------------------------

awk -v plan="$plan" -v conns="$conns" -v spf="$spf_fraction" \
	-v spf_domains="$spf_domains" -v dns_opts="$dns_opts" \
	-v servers=" $servers " -v scale_sizes="$scale_sizes" '
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
# round_ratio(X, A, Y, B): X[A, r] / Y[B, r] in every round r that has
# both, then the median of those ratios ("" when no round has both).
function round_ratio(x, a, y, b,    r, s) {
	s = ""
	for (r in rounds)
		if (((a, r) in x) && ((b, r) in y) && y[b, r] > 0)
			s = s " " sprintf("%.4f", x[a, r] / y[b, r])
	return median(s)
}
function fx(v) { return v == "" ? "-" : sprintf("%.2fx", v) }
function us(v) { return v == "" ? "-" : sprintf("%.1f", v) }
# target(TEXT, SHOWN, OP, LIMIT): the target, whether the figure as
# printed (SHOWN, "0.72x" or "5.3 us": its leading number) meets it, and
# the figure.  Judging the printed figure keeps what is read and what is
# judged the same.
function target(text, shown, op, lim,    f) {
	if (shown == "" || shown == "-") return text ": not measured"
	f = shown + 0
	return text ": " ((op == ">=" ? f >= lim : f <= lim) ? "met" : "not met") " (" shown ")"
}
function human(n) {
	if (n >= 1000000 && n % 1000000 == 0) return (n / 1000000) "M"
	if (n >= 1000 && n % 1000 == 0) return (n / 1000) "k"
	return n
}
function dashes(n,    d) { d = ""; while (n-- > 0) d = d "-"; return d }
function row(w, g, xn, xp, t) {
	printf "| %-32s | %-64s | %-46s | %-10s | %s |\n", w, g, xn, xp, t
}
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
	p99r[key, round] = v["p99_us"]
	add(rpsl, key, v["rps"])
	add(p99l, key, v["p99_us"])
	if (v["cpu_us_per_req"] >= 0) {
		add(cpul, key, v["cpu_us_per_req"])
		cpur[key, round] = v["cpu_us_per_req"]
	}
	if (("store_cpu_us_per_req" in v) && v["store_cpu_us_per_req"] >= 0)
		add(scpul, key, v["store_cpu_us_per_req"])
	if (("store_rss_anon_kb" in v) && v["store_rss_anon_kb"] > srss[key])
		srss[key] = v["store_rss_anon_kb"]
	if (v["rss_anon_kb"] > rss[key]) rss[key] = v["rss_anon_kb"]
	bad[key] += v["errors"] + v["mismatches"] + v["warmup_bad"]
	rounds[round] = 1
	reqs[key, round] = v["requests"]
	next
}
/^DNS/ {
	delete v
	for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	split(v["name"], nm, ":")
	key = nm[1] ":" nm[2]; round = nm[3]
	dns_lookups[key, round] = v["lookups"]
	if (v["lookups"] > 0) {
		add(hitl, key, v["cache_hits"] / v["lookups"])
		if (v["p50_us"] >= 0) add(dp50l, key, v["p50_us"])
		if (v["p99_us"] >= 0) add(dp99l, key, v["p99_us"])
		if (v["p99_beyond"]) dbeyond[key] = 1
		dfail[key] += v["failures"] + v["timeouts"] + v["overflows"]
	}
	next
}
# scale.sh: requests/s of the lookup-heavy and insert-heavy runs per size.
/^SCALE/ {
	delete v
	for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	if ("skipped" in v) {
		scale_skip[v["n"]] = sprintf("needs %d MiB free, had %d",
			v["need_kb"] / 1024, v["avail_kb"] / 1024)
		next
	}
	if (v["run"] == "lookup" || v["run"] == "insert")
		scale_rps[v["n"], v["run"]] = v["rps"]
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
		m = split(rpsl[key], all, " "); lo = all[1]; hi = all[1]
		for (j = 2; j <= m; j++) { if (all[j] + 0 < lo + 0) lo = all[j]; if (all[j] + 0 > hi + 0) hi = all[j] }
		med[key] = median(rpsl[key]); ratio[key] = round_ratio(rps, key, rps, "noop:" kw[2])
		p99[key] = median(p99l[key]) / 1000; cpu[key] = median(cpul[key])
		printf "%-17s %-8s %9.0f %15s %8s %8.2f %9s %7s kB %6d\n", kw[1], kw[2],
			med[key], lo "-" hi, (ratio[key] == "" ? "-" : sprintf("%.3f", ratio[key])),
			p99[key], us(cpu[key]), (rss[key] < 0 ? "-" : rss[key]), bad[key]
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
	# The figures of this run that the last table has no column for.
	more = ""
	x = round_ratio(rps, "greyhold-relaxed:new", probe_r, "nosync:64")
	if (x != "")
		more = more sprintf("  greyhold-relaxed new / LMDB unsynced ceiling (same round)  %.2f\n", x)
	if (("greyhold:new" in p99) && ("sync:64" in commit_ms))
		more = more sprintf("  greyhold new p99 - (one synced commit + 1 ms)               %+.2f ms\n",
			p99["greyhold:new"] - commit_ms["sync:64"] - 1)
	x = round_ratio(p99r, "greyhold-redis:retry", p99r, "noop:retry")
	if (x != "")
		more = more sprintf("  greyhold-redis retry p99 / no-op p99 (same round)           %.2f\n", x)
	if (more != "")
		printf "more figures of this run (no target in issue 13):\n%s", more

	# ---- DNS: smart rules off against on with a warm cache (issue 12)
	if (("greyhold-dns-off:new" in rpsl) || ("greyhold-dns-on:new" in rpsl)) {
	print ""
	printf "DNS (issue 12): greyhold with the smart rules off, and on against unbound on 127.0.0.1 (warm cache);\n"
	printf "%s%% of requests from relay senders (verified name, SPF via an include, probe, name identity; %s domains)\n",
		spf * 100, spf_domains
	if (dns_opts != "")
		printf "both rows with %s\n", dns_opts
	printf "%-28s %-8s %9s %7s %7s %8s %7s %11s %10s %10s %10s %5s\n", "run", "workload",
		"req/s", "on/off", "p99 ms", "cpu us/r", "on/off", "lookups/req", "cache hits",
		"lookup p50", "lookup p99", "bad"
	split("greyhold-dns-off greyhold-dns-on", kinds, " ")
	split("new retry", wls, " ")
	for (w = 1; w <= 2; w++) {
		for (k = 1; k <= 2; k++) {
			key = kinds[k] ":" wls[w]
			if (!(key in rpsl)) continue
			ok = "greyhold-dns-off:" wls[w]
			onoff[key] = ""; conoff[key] = ""
			if (k == 2) {
				onoff[key] = round_ratio(rps, key, rps, ok)
				conoff[key] = round_ratio(cpur, key, cpur, ok)
			}
			per = ""
			for (r in rounds)
				if (((key, r) in dns_lookups) && reqs[key, r] > 0)
					per = per " " sprintf("%.4f", dns_lookups[key, r] / reqs[key, r])
			lpr = median(per); hit = median(hitl[key])
			d50 = median(dp50l[key]); d99 = median(dp99l[key])
			printf "%-28s %-8s %9.0f %7s %7.2f %8s %7s %11s %10s %10s %10s %5d\n",
				(k == 1 ? "greyhold DNS off" : "greyhold DNS on, warm cache"), wls[w],
				med[key], (onoff[key] == "" ? "-" : sprintf("%.3f", onoff[key])),
				p99[key], us(cpu[key]),
				(conoff[key] == "" ? "-" : sprintf("%.2f", conoff[key])),
				(lpr == "" ? "-" : sprintf("%.2f", lpr)),
				(hit == "" ? "-" : sprintf("%.1f %%", 100 * hit)),
				(d50 == "" ? "-" : sprintf("%.3f ms", d50 / 1000)),
				(d99 == "" ? "-" : sprintf("%s%.3f ms", (key in dbeyond) ? ">" : "", d99 / 1000)),
				bad[key]
		}
	}
	if ((("greyhold-dns-on:new") in dfail) || (("greyhold-dns-on:retry") in dfail))
		printf "  DNS failures, timeouts and overflows in the windows: new %d, retry %d\n",
			dfail["greyhold-dns-on:new"], dfail["greyhold-dns-on:retry"]
	print "figures against issue 12 (no pass/fail):"
	if (("greyhold-dns-on:retry" in onoff) && onoff["greyhold-dns-on:retry"] != "")
		printf "  DNS on / off, retry (95 %% need no lookup)       %.2f   (target: keep the throughput)\n",
			onoff["greyhold-dns-on:retry"]
	if (("greyhold-dns-on:new" in onoff) && onoff["greyhold-dns-on:new"] != "")
		printf "  DNS on / off, new triplets, warm cache           %.2f   (target >= 0.5)\n",
			onoff["greyhold-dns-on:new"]
	for (w = 1; w <= 2; w++)
		if ((("greyhold-dns-on:" wls[w]) in conoff) && conoff["greyhold-dns-on:" wls[w]] != "")
			printf "  greyhold CPU per request, DNS on / off, %-5s    %.2f\n", wls[w],
				conoff["greyhold-dns-on:" wls[w]]
	if ("greyhold-dns-on:new" in dp99l)
		printf "  DNS lookup p99 in greyhold (new, every lookup)   %.3f ms\n",
			median(dp99l["greyhold-dns-on:new"]) / 1000
	}

	# ---- issue 13: the targets, every ratio taken within this run
	nr = 0
	for (r in rounds) nr++
	print ""
	printf "issue 13: greyhold against its targets (this run; each ratio taken round by round, median of %d round%s)\n",
		nr, (nr == 1 ? "" : "s")
	row("workload", "greyhold", "x no-op server", "x postgrey", "target")
	printf "|%s|%s|%s|%s|%s|\n", dashes(34), dashes(66), dashes(48), dashes(12), dashes(8)

	k = "greyhold:retry"
	if (k in rpsl) {
		xn = round_ratio(rps, k, rps, "noop:retry")
		xq = round_ratio(p99r, k, p99r, "noop:retry")
		row("retries of passed triplets",
			sprintf("%.0f req/s, %s us CPU/req, p99 %.2f ms", med[k], us(cpu[k]), p99[k]),
			fx(xn) ", p99 " fx(xq) " no-op p99",
			fx(round_ratio(rps, k, rps, "postgrey:retry")),
			target(">= 0.6x no-op", fx(xn), ">=", 0.6) "; " \
			target("<= 8 us CPU/req", (cpu[k] == "" ? "" : us(cpu[k]) " us"), "<=", 8) "; " \
			target("p99 <= 3x no-op p99", fx(xq), "<=", 3))
	} else
		row("retries of passed triplets", "not run", "-", "-",
			">= 0.6x no-op, <= 8 us CPU/req, p99 <= 3x no-op p99: not measured")

	k = "greyhold:new"
	if (k in rpsl) {
		xn = round_ratio(rps, k, rps, "noop:new")
		xp = round_ratio(rps, k, probe_r, "sync:64")
		row("new triplets, durable default",
			sprintf("%.0f req/s, %s us CPU/req, p99 %.2f ms", med[k], us(cpu[k]), p99[k]),
			fx(xn) "; " fx(xp) " lmdb_probe sync batch 64" \
			(("sync:64" in probe) ? sprintf(" (%d/s)", probe["sync:64"]) : ""),
			fx(round_ratio(rps, k, rps, "postgrey:new")),
			target(">= 0.9x that probe", fx(xp), ">=", 0.9))
	} else
		row("new triplets, durable default", "not run", "-", "-",
			">= 0.9x that probe: not measured")

	k = "greyhold-relaxed:new"
	if (k in rpsl) {
		xn = round_ratio(rps, k, rps, "noop:new")
		row("new triplets, relaxed durability",
			sprintf("%.0f req/s, %s us CPU/req, p99 %.2f ms", med[k], us(cpu[k]), p99[k]),
			fx(xn), "-", target(">= 0.5x no-op", fx(xn), ">=", 0.5))
	} else
		row("new triplets, relaxed durability", "not run", "-", "-",
			">= 0.5x no-op: not measured")

	# scale.sh: every size against the first one given (10k by default)
	m = 0
	ns = split(scale_sizes, sz, " ")
	for (i = 1; i <= ns; i++)
		if (sz[i] ~ /^[0-9]+$/ && sz[i] + 0 >= 1000) size[++m] = sz[i] + 0
	ref = size[1]
	for (i = 2; i <= m; i++) {
		s = size[i]
		lab = human(s) " preloaded triplets"
		if (s in scale_skip) {
			row(lab, "not run: " scale_skip[s], "-", "-", ">= 0.8x: not measured")
			continue
		}
		if (!((s, "lookup") in scale_rps) || !((ref, "lookup") in scale_rps)) {
			row(lab, "no result (see scale.sh above)", "-", "-", ">= 0.8x: not measured")
			continue
		}
		lr = (scale_rps[ref, "lookup"] > 0) ? scale_rps[s, "lookup"] / scale_rps[ref, "lookup"] : ""
		ir = ""
		if (((s, "insert") in scale_rps) && ((ref, "insert") in scale_rps) && scale_rps[ref, "insert"] > 0)
			ir = scale_rps[s, "insert"] / scale_rps[ref, "insert"]
		row(lab,
			sprintf("lookups %s, inserts %s of %s (%d/%d, %d/%d req/s)", fx(lr), fx(ir), human(ref),
				scale_rps[s, "lookup"], scale_rps[ref, "lookup"],
				scale_rps[s, "insert"], scale_rps[ref, "insert"]),
			"-", "-",
			target("lookups >= 0.8x", fx(lr), ">=", 0.8) "; " target("inserts >= 0.8x", fx(ir), ">=", 0.8))
	}

	# the DNS rows: smart rules on (warm cache) against off, same round
	if (servers ~ / greyhold-dns-on /) {
		split("retry new", wls, " ")
		for (w = 1; w <= 2; w++) {
			k = "greyhold-dns-on:" wls[w]
			lab = "DNS on, warm cache, " (wls[w] == "new" ? "new triplets" : "retries")
			if (wls[w] == "new")
				t = ">= 0.5x DNS off"
			else
				t = "keep DNS off throughput (no number to judge)"
			if (!(k in rpsl)) {
				row(lab, "not run", "-", "-", t ": not measured")
				continue
			}
			xo = round_ratio(rps, k, rps, "greyhold-dns-off:" wls[w])
			xc = round_ratio(cpur, k, cpur, "greyhold-dns-off:" wls[w])
			row(lab,
				sprintf("%.0f req/s, %s us CPU/req; %s DNS off req/s, %s its CPU",
					med[k], us(cpu[k]), fx(xo), fx(xc)),
				fx(round_ratio(rps, k, rps, "noop:" wls[w])),
				fx(round_ratio(rps, k, rps, "postgrey:" wls[w])),
				(wls[w] == "new" ? target(t, fx(xo), ">=", 0.5) : t ": " fx(xo)))
		}
	}
	if (m < 2)
		print "(no preloaded-database row: BENCH_SCALE_SIZES " (m == 0 ? "is empty" : "has one size") ")"
}' "$results"
exit 0
