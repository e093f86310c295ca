#!/usr/bin/env bash
# t_worker_lifecycle.sh — a worker with max_builds = 1 and installs that never end:
# 1. while one build installs, a second request waits in RabbitMQ (the worker stops consuming
#    when full: early acks can't limit it) and starts once the first ends: `isoforge finish`
#    ends that install as done (ACPI, then the plug after finish_grace) and it is registered;
# 2. a worker stopped during an install leaves the domain running; restarted, it fails the
#    build it can't resume (written, announced) and removes its domain and files.
set -u
[ -n "${ISOFORGE_TRANSPORT_URL:-}" ] && [ -n "${ISOFORGE_LIBVIRT_URI:-}" ] && [ -n "${ISOFORGE_MEDIA:-}" ] \
	|| { echo "needs the minicloud, a libvirtd and the media: skipped"; exit 77; }
bin=$ISOFORGE_BIN
os=/usr/bin/openstack
fail() { echo "FAIL: $*"; [ -f "$TEST_TMP/isoforged.log" ] && tail -n 40 "$TEST_TMP/isoforged.log"; exit 1; }
virsh() { command virsh -q -c "$ISOFORGE_LIBVIRT_URI" "$@"; }

cat > "$TEST_TMP/isoforge.conf" <<CONF
[DEFAULT]
transport_url = $ISOFORGE_TRANSPORT_URL
host = lifecycle-test-worker
[keystone_authtoken]
auth_url = $OS_AUTH_URL
username = $ISOFORGE_SERVICE_USERNAME
password = "$ISOFORGE_SERVICE_PASSWORD"
project_name = $ISOFORGE_SERVICE_PROJECT_NAME
[libvirt]
uri = $ISOFORGE_LIBVIRT_URI
domain_type = qemu
[builds]
work_dir = $TEST_TMP/work
cache_dir = $TEST_TMP/cache
max_builds = 1
finish_grace = 3
CONF
hang=$($os image create --disk-format iso --container-format bare --private \
	--file "$ISOFORGE_MEDIA/installer-hang.iso" "t-life-hang-$$" -f value -c id) || fail "image create"
start_worker() {
	"$bin/isoforged" -d -c "$TEST_TMP/isoforge.conf" 2>> "$TEST_TMP/isoforged.log" &
	wpid=$!
	for i in $(seq 50); do
		[ "$(grep -c "connected to RabbitMQ" "$TEST_TMP/isoforged.log")" -ge "$1" ] && return
		sleep 0.2
	done
	fail "the worker did not connect"
}
stop_worker() { kill "$wpid"; wait "$wpid"; local rc=$?; wpid=; [ $rc = 0 ] || fail "worker exit $rc"; }
cleanup() {
	[ -n "${wpid:-}" ] && kill "$wpid" 2>/dev/null && wait "$wpid"
	for p in "${bpids[@]}"; do kill "$p" 2>/dev/null; done
	$os image delete "$hang" ${img:+"$img"} >/dev/null 2>&1
}
bpids=()
trap cleanup EXIT
# submit NAME → build in the background, events in $TEST_TMP/NAME.json
submit() {
	"$bin/isoforge" build --flavor "$ISOFORGE_FLAVOR_TINY" --name "$1" --iso "$hang" \
		--wait --json > "$TEST_TMP/$1.json" &
	bpids+=($!)
}
seen() { grep -q "\"state\":\"$2\"" "$TEST_TMP/$1.json" 2>/dev/null; }
wait_state() {	# NAME STATE SECONDS
	local i
	for i in $(seq $(( $3 * 2 ))); do seen "$1" "$2" && return 0; sleep 0.5; done
	fail "$1 did not reach $2 in $3 s"
}
bid() { head -n 1 "$TEST_TMP/$1.json" | jq -r .build_id; }

start_worker 1
# 1
submit one
wait_state one installing 120
submit two
sleep 4
seen two queued && fail "a second build was taken while max_builds = 1 was running"
"$bin/isoforge" finish "$(bid one)" || fail "finish one"
wait_state one active 120
img=$(tail -n 1 "$TEST_TMP/one.json" | jq -r .image_id)
[ "$($os image show "$img" -f value -c status)" = active ] || fail "the finished build's image"
wait_state two installing 120
echo "max_builds held: the second build started after the first was finished"

# 2
id=$(bid two)
stop_worker
virsh domstate "isoforge-$id" | grep -q running || fail "the install did not survive the worker"
grep -q "\"state\":\"cancelled\"\|\"state\":\"failed\"" "$TEST_TMP/two.json" && fail "a stopping worker ended the build"
start_worker 2
wait_state two failed 30
grep '"state":"failed"' "$TEST_TMP/two.json" | grep -q "can't be resumed" || fail "no reason"
for i in $(seq 20); do virsh dominfo "isoforge-$id" >/dev/null 2>&1 || break; sleep 0.5; done
virsh dominfo "isoforge-$id" >/dev/null 2>&1 && fail "domain of the failed build left behind"
[ -z "$(ls -A "$TEST_TMP/work/$id" 2>/dev/null)" ] || fail "work files left"
st=$("$bin/isoforge" status --json "$id") || fail "status"
[ "$(jq -r .state <<<"$st")" = failed ] || fail "status says $(jq -r .state <<<"$st")"
stop_worker
echo ok
