# lib.sh - process and port helpers shared by compare.sh and scale.sh.
# Sourced (". lib.sh"), so that `wait` reaps the caller's own children.
# The caller sets bench_name (used in messages) and next_port (the first
# loopback port to try).

# True while the process exists and is not a zombie.
alive() {
	[ -r "/proc/$1/stat" ] || return 1
	state=$(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null)
	[ -n "$state" ] && [ "$state" != Z ]
}

# stop_server PID KILL_AFTER_S: SIGTERM, a second SIGTERM after 5 s,
# SIGKILL after KILL_AFTER_S seconds; then reap.
stop_server() {
	sp_pid=$1
	sp_limit=$(($2 * 10))
	kill -TERM "$sp_pid" 2>/dev/null
	sp_n=0
	while alive "$sp_pid"; do
		sp_n=$((sp_n + 1))
		if [ $sp_n -eq 50 ]; then
			kill -TERM "$sp_pid" 2>/dev/null
		elif [ $sp_n -ge $sp_limit ]; then
			# shellcheck disable=SC2154 # set by the caller
			echo "$bench_name: server $sp_pid ignores SIGTERM, killing it" >&2
			kill -KILL "$sp_pid" 2>/dev/null
			break
		fi
		sleep 0.1
	done
	wait "$sp_pid" 2>/dev/null
}

port_in_use() {
	command -v ss >/dev/null 2>&1 || return 1
	ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}

# pick_port: the next free loopback port from next_port on, into $port.
pick_port() {
	while port_in_use "$next_port"; do
		next_port=$((next_port + 1))
	done
	# shellcheck disable=SC2034 # read by the caller
	port=$next_port
	next_port=$((next_port + 1))
}
