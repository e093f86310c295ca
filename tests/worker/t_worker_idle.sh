#!/usr/bin/env bash
# t_worker_idle.sh — an idle isoforged costs ~nothing: with no build, connected to RabbitMQ and
# with the broker unreachable, it uses at most 1 % of one core (utime + stime over 10 s).
. "$(dirname "$0")/worker-lib.sh"

hz=$(getconf CLK_TCK)
# cpu_ticks PID — utime + stime of a process, in clock ticks (fields 14 and 15 of its stat)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# idle_check WHAT — the worker's CPU over 10 s, after 3 s to settle
idle_check() {
	local t0 t1 used max=$((hz * 10 / 100))
	sleep 3
	t0=$(cpu_ticks "$wpid")
	sleep 10
	t1=$(cpu_ticks "$wpid")
	used=$((t1 - t0))
	echo "$1: $used ticks of $((hz * 10)) in 10 s (at most $max)"
	[ "$used" -le "$max" ] || fail "$1: an idle worker used $used ticks in 10 s"
}

worker_conf idle-worker 2
start_worker 1
idle_check "connected to RabbitMQ"
stop_worker

# the broker unreachable: a port nobody listens on
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ISOFORGE_TRANSPORT_URL="rabbit://guest:guest@127.0.0.1:$port/" worker_conf idle-worker-down 2
"$bin/isoforged" -d -c "$TEST_TMP/isoforge.conf" 2>> "$wlog" &
wpid=$!
for i in $(seq 50); do grep -q "trying again" "$wlog" && break; sleep 0.2; done
grep -q "trying again" "$wlog" || fail "the worker did not try the broker"
idle_check "RabbitMQ unreachable"
stop_worker
echo ok
