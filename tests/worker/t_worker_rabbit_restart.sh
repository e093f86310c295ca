#!/usr/bin/env bash
# t_worker_rabbit_restart.sh — RabbitMQ stopped and restarted mid-build loses nothing.
# A worker with max_builds = 1 installs build A; request B is posted to the API (it waits in
# the durable queue: the worker is full); RabbitMQ is stopped (`minicloud stop-service`). A goes
# on without the broker: install, snapshot, upload, active in Glance; its events are held by
# the worker. RabbitMQ starts again on the same port with its mnesia; the worker reconnects,
# publishes the held events in order, takes B (a persistent message in a durable queue) and a
# request C posted after the restart (the API reconnected too; its view catches up from its
# own durable queue). Events are read from a durable queue of the test's
# bound to isoforge.events before the stop: every state of A appears exactly once, in order.
# B and C name an ISO that does not exist: taken, they fail at resolving (quick, and proof
# they were taken).
. "$(dirname "$0")/worker-lib.sh"
[ -n "${ISOFORGE_CLOUD_DIR:-}" ] || { echo "needs the minicloud, a libvirtd and the media: skipped"; exit 77; }
mc=$ISOFORGE_TOP/tests/cloud/minicloud
events=t-rabbit-events-$$
uuid() { cat /proc/sys/kernel/random/uuid; }

# amqp OP ...: the test's own AMQP client (python3-amqp, Debian's)
amqp() {
	/usr/bin/python3 - "$@" <<'PY'
import json, os, sys
import amqp
c = amqp.Connection('127.0.0.1:%s' % os.environ['RABBITMQ_PORT'], userid=os.environ['RABBITMQ_USER'],
                    password=os.environ['RABBITMQ_PASS'], connect_timeout=5)
c.connect()
ch = c.channel()
op = sys.argv[1]
if op == 'bind':            # QUEUE: a durable queue bound to every event
    ch.queue_declare(sys.argv[2], durable=True, auto_delete=False)
    ch.queue_bind(sys.argv[2], 'isoforge.events', 'build.#')
elif op == 'count':         # QUEUE: messages ready in it
    print(ch.queue_declare(sys.argv[2], passive=True).message_count)
elif op == 'drain':         # QUEUE: every message body, one a line
    while True:
        m = ch.basic_get(sys.argv[2], no_ack=True)
        if m is None:
            break
        print(m.body.decode() if isinstance(m.body, bytes) else m.body)
elif op == 'delete':
    ch.queue_delete(sys.argv[2])
c.close()
PY
}

worker_conf rabbit-restart-worker 1 "install_timeout = 300"
iso=$(upload_iso "$ISOFORGE_MEDIA/installer.iso" "t-rabbit-iso-$$") || fail "image create"
images=("$iso")
rabbit_down=
cleanup() {
	[ -n "$rabbit_down" ] && "$mc" start-service "$ISOFORGE_CLOUD_DIR" rabbitmq >/dev/null
	worker_lib_cleanup
	amqp delete "$events" 2>/dev/null
}
trap cleanup EXIT

start_worker 1
logged() { grep -q -- "$1" "$TEST_TMP/isoforged.log"; }
wait_log() {	# PATTERN SECONDS
	local i
	for i in $(seq $(( $2 * 5 ))); do logged "$1" && return 0; sleep 0.2; done
	fail "not logged in $2 s: $1"
}
t00=$(date +%s)
at() { echo "[$(( $(date +%s) - t00 )) s] $*"; }
amqp bind "$events" || fail "events queue"
submit() {	# NAME ISO — prints the build's id
	"$bin/isoforge" build --iso "$2" --flavor "$ISOFORGE_FLAVOR_TINY" --name "t-rabbit-$1" \
		--json | tail -n 1 | jq -r '.build_id // empty'
}

nowhere=$(uuid)
a=$(submit a "$iso") && [ -n "$a" ] || fail "submit A"
wait_log "build $a: installing" 120
at "A installing"
b=$(submit b "$nowhere") && [ -n "$b" ] || fail "submit B"
# B waits in the queue: the worker is full
n=$(amqp count isoforge.build) || fail "count"
[ "$n" = 1 ] || fail "$n requests in isoforge.build, not 1"

t0=$(date +%s)
"$mc" stop-service "$ISOFORGE_CLOUD_DIR" rabbitmq || fail "stop-service"
rabbit_down=1
# the build goes on without the broker
wait_log "build $a: active" 120
kill -0 "$wpid" || fail "the worker died"
logged "event .* held until RabbitMQ answers" || fail "no event was held while RabbitMQ was away"
at "A active after $(( $(date +%s) - t0 )) s without RabbitMQ"
"$mc" start-service "$ISOFORGE_CLOUD_DIR" rabbitmq || fail "start-service"
rabbit_down=
t1=$(date +%s)
# reconnect (backoff up to ~60 s after a long outage), then the held events and B
wait_log "held events\? published" 75
at "RabbitMQ up again; held events published $(( $(date +%s) - t1 )) s after the restart"
wait_log "build $b: failed" 30
# the API may still be reconnecting: it answers 503 until then
for i in $(seq 60); do c=$(submit c "$nowhere" 2>/dev/null) && [ -n "$c" ] && break; sleep 1; done
[ -n "$c" ] || fail "submit C after the restart"
wait_log "build $c: failed" 30
at "B and C taken"

# A in Glance: active, and the only image of that build
img=$($os image list --property "isoforge_build_id=$a" -f value -c ID) || fail "image list"
images+=($img)
[ "$(wc -w <<<"$img")" = 1 ] || fail "images of build A: '$img'"
[ "$($os image show "$img" -f value -c status)" = active ] || fail "A's image is not active"
for i in $(seq 40); do
	st=$("$bin/isoforge" status --json "$a") || fail "status"
	[ "$(jq -r .state <<<"$st")" = active ] && break
	sleep 0.5
done
[ "$(jq -r .state <<<"$st")" = active ] || fail "status of A: $(jq -r .state <<<"$st")"
virsh dominfo "isoforge-$a" >/dev/null 2>&1 && fail "domain left behind"

# events: every state of each build exactly once, in order (the ones published before the
# stop were persistent in a durable queue, the ones during the outage held by the worker)
for i in $(seq 20); do
	amqp drain "$events" >> "$TEST_TMP/events.json" || fail "drain"
	[ "$(grep -c "\"build_id\":\"$c\".*\"state\":\"failed\"" "$TEST_TMP/events.json")" = 1 ] && break
	sleep 0.5
done
# the worker's events (the API's own queued event, the one with the build's summary, is
# published after the request: a quick worker's resolving may come before it); an install's
# progress reports are installing events too: one state, once
states() { jq -r --arg id "$1" 'select(.build_id == $id and .build == null) | .state' \
	"$TEST_TMP/events.json" | uniq | paste -sd' '; }
for id in "$a" "$b" "$c"; do
	[ "$(jq -r --arg id "$id" 'select(.build_id == $id and .build != null) | .state' \
		"$TEST_TMP/events.json")" = queued ] || fail "build $id: no queued event of the API"
done
echo "A: $(states "$a")"; echo "B: $(states "$b")"; echo "C: $(states "$c")"
[ "$(states "$a")" = "queued resolving fetching assembling installing snapshotting uploading active" ] \
	|| fail "events of A"
[ "$(states "$b")" = "queued resolving failed" ] || fail "events of B"
[ "$(states "$c")" = "queued resolving failed" ] || fail "events of C"
jq -r --arg id "$a" 'select(.build_id == $id and .state == "active") | .image_id' \
	"$TEST_TMP/events.json" | grep -qx "$img" || fail "A's active event names another image"

stop_worker
echo ok
