#!/usr/bin/env bash
# t_worker_scale.sh — isoforge scaled out on one test cloud: two isoforge-api processes
# (different [api] host and port: A on the catalog's, B named with --os-endpoint-override)
# and two workers (each its own work dir and its own private libvirtd, max_builds = 2).
# Eight builds of one chain, posted through the CLI alternately to A and B, spread over both
# workers (2 + 2 installing, 4 queued); every build shows the same state on both APIs; worker 1
# is killed (SIGKILL) mid-install and restarted: its installs go on and, like all the others,
# end active once finished (`isoforge finish`, alternately through A and B); versions 1..8,
# each once.
. "$(dirname "$0")/worker-lib.sh"

t00=$(date +%s)
at() { echo "[$(( $(date +%s) - t00 )) s] $*"; }
n=8
chain=t-scale-$$
lv1=$TEST_TMP/lv1 lv2=$TEST_TMP/lv2
apib_host=t-scale-b-$$
apib_pid=
w1pid= w2pid=
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

scale_cleanup() {
	local p
	for p in $w1pid $w2pid $apib_pid; do kill "$p" 2>/dev/null && wait "$p"; done
	drop_api_queue "$apib_host"
	worker_lib_cleanup
	tests/lib/libvirtd down "$lv1" >/dev/null 2>&1
	tests/lib/libvirtd down "$lv2" >/dev/null 2>&1
	return 0
}
trap scale_cleanup EXIT

# two private libvirtds, one per builder host
# (each its own VNC ports: on one host their guests would race for the same ones)
vnc=$((60000 + ($$ % 50) * 100))	# (tests/run gives its libvirtd 20000-59999)
uri1=$(LIBVIRTD_VNC_PORTS=$vnc-$((vnc + 49)) tests/lib/libvirtd up "$lv1" | tail -n 1) && [ -n "$uri1" ] \
	|| fail "libvirtd 1"
uri2=$(LIBVIRTD_VNC_PORTS=$((vnc + 50))-$((vnc + 99)) tests/lib/libvirtd up "$lv2" | tail -n 1) \
	&& [ -n "$uri2" ] || fail "libvirtd 2"
v1() { command virsh -q -c "$uri1" "$@"; }
v2() { command virsh -q -c "$uri2" "$@"; }

# two workers: own conf, work dir, cache, libvirtd, log; no guest NIC (the hang installer
# needs none, and two libvirtds would make guest networks on the same host)
for w in 1 2; do
	mkdir -p "$TEST_TMP/w$w"
	uri=$uri1; [ $w = 2 ] && uri=$uri2
	WORKER_CONF=$TEST_TMP/w$w.conf WORKER_URI=$uri WORKER_DIR=$TEST_TMP/w$w \
		worker_conf "scale-w$w-$$" 2 "finish_grace = 3" "install_timeout = 900" \
		"guest_network = none"
done
# start_w N — worker N, and waits for its Kth connection in its own log
start_w() {
	local i k=$2
	"$bin/isoforged" -d -c "$TEST_TMP/w$1.conf" 2>> "$TEST_TMP/w$1.log" &
	eval "w$1pid=$!"
	for i in $(seq 100); do
		[ "$(grep -c "connected to RabbitMQ" "$TEST_TMP/w$1.log")" -ge "$k" ] && return
		sleep 0.2
	done
	fail "worker $1 did not connect: $(tail -n 5 "$TEST_TMP/w$1.log")"
}
wfail() { echo "-- worker 1:"; tail -n 30 "$TEST_TMP/w1.log"; echo "-- worker 2:"; tail -n 30 "$TEST_TMP/w2.log"; fail "$@"; }

# API A on the catalog's port (worker-lib's), API B on its own
start_api
portb=$(free_port)
urlb=http://127.0.0.1:$portb
api_conf "$TEST_TMP/apib.conf" "$apib_host" "$portb"
"$bin/isoforge-api" -d -c "$TEST_TMP/apib.conf" 2>> "$TEST_TMP/apib.log" &
apib_pid=$!
api_wait "$apib_pid" "$TEST_TMP/apib.log" "$urlb"
# cli A|B ARGS... — the CLI against API A (found in the catalog) or B (named)
cli() {
	local which=$1
	shift
	if [ "$which" = A ]; then "$bin/isoforge" "$@"
	else "$bin/isoforge" "$@" --os-endpoint-override "$urlb"; fi
}
start_w 1 1
start_w 2 1
at "2 APIs and 2 workers up"

hang=$(upload_iso "$ISOFORGE_MEDIA/installer-hang.iso" "t-scale-hang-$$") || fail "image create"
images+=("$hang")

# eight builds, alternately through A and B, each followed by its CLI (--wait --json)
api_of=()
for i in $(seq $n); do
	a=A; [ $((i % 2)) = 0 ] && a=B
	api_of[$i]=$a
	cli $a build --iso "$hang" --flavor "$ISOFORGE_FLAVOR_TINY" --name "s$i" --chain "$chain" \
		--os-type linux --wait --json > "$TEST_TMP/s$i.json" 2> "$TEST_TMP/s$i.err" &
	bpids[$i]=$!
done
for i in $(seq $n); do
	for k in $(seq 60); do [ -s "$TEST_TMP/s$i.json" ] && break; sleep 0.5; done
	[ -n "$(bid "s$i")" ] || fail "build s$i: no id ($(cat "$TEST_TMP/s$i.err"))"
done
# each API took four of them
for f in "$alog" "$TEST_TMP/apib.log"; do
	[ "$(grep -c "queued for user" "$f")" = 4 ] || fail "$(grep -c "queued for user" "$f") builds posted to $f, not 4"
done
at "8 builds posted"

installing() { local c=0 i; for i in $(seq $n); do seen "s$i" installing && c=$((c + 1)); done; echo $c; }
# wait_installing K SECONDS — until K builds have been installing
wait_installing() {
	local i
	for i in $(seq $(( $2 * 2 ))); do [ "$(installing)" -ge "$1" ] && return 0; sleep 0.5; done
	wfail "$(installing) builds installing after $2 s, want $1"
}
# same_state ID — A and B say the same state, image and version of the build (their views are
# fed by their own queues: allow them a few seconds to agree)
same_state() {
	local i sa sb
	for i in $(seq 20); do
		sa=$(cli A status --json "$1" | jq -c '{state, image_id, version, worker}') || fail "status A $1"
		sb=$(cli B status --json "$1" | jq -c '{state, image_id, version, worker}') || fail "status B $1"
		[ "$sa" = "$sb" ] && { echo "$sa"; return 0; }
		sleep 0.5
	done
	fail "build $1: A says $sa, B says $sb"
}
# on_worker K — ids of the builds installing on worker K (its libvirtd's running domains)
on_worker() { command virsh -q -c "$(eval echo \$uri$1)" list --name | sed -n 's/^isoforge-//p' | sort; }

# 1. four install at once, two on each worker; the other four wait in the queue
wait_installing 4 240
sleep 2
[ "$(installing)" = 4 ] || wfail "$(installing) builds installing, more than 2 workers x max_builds 2"
d1=$(on_worker 1) d2=$(on_worker 2)
[ "$(wc -w <<<"$d1")" = 2 ] && [ "$(wc -w <<<"$d2")" = 2 ] \
	|| wfail "not spread 2 + 2: worker 1 runs [$d1], worker 2 [$d2]"
at "4 installing: worker 1 [$(echo $d1)], worker 2 [$(echo $d2)]"
queued=0
for i in $(seq $n); do
	id=$(bid "s$i")
	st=$(same_state "$id")
	case $(jq -r .state <<<"$st") in
	installing) w=$(jq -r .worker <<<"$st")
		grep -qx "$id" <<<"$(on_worker "${w:7:1}")" || fail "build $id: the API says worker $w";;
	queued) queued=$((queued + 1));;
	*) fail "build s$i: $st";;
	esac
done
[ $queued = 4 ] || fail "$queued builds queued, not 4"
# the API lists agree too (the same builds of the chain, in the same states)
la=$(cli A list --json --chain "$chain" | jq -c 'map({id, state}) | sort_by(.id)')
lb=$(cli B list --json --chain "$chain" | jq -c 'map({id, state}) | sort_by(.id)')
[ "$(jq length <<<"$la")" = $n ] || fail "API A lists $(jq length <<<"$la") builds of $chain"
[ "$la" = "$lb" ] || fail "the lists differ: A $la, B $lb"
at "A and B agree on all 8 builds"

# 2. worker 1 killed mid-install, restarted: its installs are watched again
kill -9 "$w1pid"; wait "$w1pid" 2>/dev/null; w1pid=
for id in $d1; do
	v1 domstate "isoforge-$id" | grep -q running || fail "build $id: the install did not survive SIGKILL"
done
start_w 1 2
for id in $d1; do
	for k in $(seq 40); do grep -q "build $id: after a restart: watch" "$TEST_TMP/w1.log" && break; sleep 0.5; done
	grep -q "build $id: after a restart: watch" "$TEST_TMP/w1.log" || wfail "build $id is not watched again"
done
at "worker 1 killed and restarted: its 2 installs are watched again"

# finish_all IDS... — `isoforge finish`, alternately through A and B
finish_all() {
	local id k=0 a
	for id in "$@"; do
		a=A; [ $((k % 2)) = 1 ] && a=B
		cli $a finish "$id" || wfail "finish $id through $a"
		k=$((k + 1))
	done
}
# wait_active ID... — each build's CLI saw it active
wait_active() {
	local id i j
	for id in "$@"; do
		for j in $(seq $n); do [ "$(bid "s$j")" = "$id" ] && break; done
		for i in $(seq 360); do seen "s$j" active && break; seen "s$j" failed && break; sleep 0.5; done
		seen "s$j" active || wfail "build s$j ($id) did not end active: $(tail -n 1 "$TEST_TMP/s$j.json")"
	done
}
finish_all $d1 $d2
wait_active $d1 $d2
at "the first 4 active (worker 1's after its restart)"

# 3. the other four are taken, two by each worker, and finished
wait_installing 8 240
e1=$(on_worker 1) e2=$(on_worker 2)
[ "$(wc -w <<<"$e1")" = 2 ] && [ "$(wc -w <<<"$e2")" = 2 ] \
	|| wfail "the second wave is not spread 2 + 2: worker 1 [$e1], worker 2 [$e2]"
at "4 more installing: worker 1 [$(echo $e1)], worker 2 [$(echo $e2)]"
finish_all $e1 $e2
wait_active $e1 $e2
at "all 8 active"

# 4. every CLI ended 0 with its image; A and B agree; versions 1..8 each once
for i in $(seq $n); do
	wait "${bpids[$i]}" || fail "build s$i: the CLI exited $?: $(tail -n 1 "$TEST_TMP/s$i.json")"
	[ "$(last "s$i" state)" = active ] || fail "build s$i: last line $(tail -n 1 "$TEST_TMP/s$i.json")"
	img=$(last "s$i" image_id)
	[ -n "$img" ] || fail "build s$i: no image"
	images+=("$img")
	st=$(same_state "$(bid "s$i")")
	[ "$(jq -r .image_id <<<"$st")" = "$img" ] || fail "build s$i: the APIs name image $st, the CLI $img"
done
bpids=()
v=$(cli B versions --json "$chain" | jq -r 'map(.version) | sort | join(",")')
[ "$v" = "1,2,3,4,5,6,7,8" ] || fail "versions of $chain: $v"
for id in $d1; do
	[ "$(cli B status --json "$id" | jq -r .state)" = active ] || fail "killed worker's build $id"
done
grep -q "$OS_PASSWORD" "$TEST_TMP"/*.log "$TEST_TMP"/s*.json && fail "a password in a log"
stop_api
kill "$apib_pid"; wait "$apib_pid" || fail "API B exit $?"; apib_pid=
for w in 1 2; do
	eval "p=\$w${w}pid"; kill "$p"; wait "$p" || fail "worker $w exit $?"; eval "w${w}pid="
done
at "done"
echo ok
