#!/usr/bin/env bash
# t_worker_lifecycle.sh — a worker with max_builds = 1 and installs that never end:
# 1. while one build installs, a second request waits in RabbitMQ (the worker stops consuming
#    when full: early acks can't limit it) and starts once the first ends: `isoforge finish`
#    ends that install as done (ACPI, then the plug after finish_grace) and it is registered;
# 2. a worker stopped during an install leaves the domain running; restarted, it watches the
#    install again (t_worker_resume: after a SIGKILL), and `isoforge cancel` reaches it: cancelled,
#    its domain and files removed.
. "$(dirname "$0")/worker-lib.sh"

worker_conf lifecycle-test-worker 1 "finish_grace = 3"
hang=$(upload_iso "$ISOFORGE_MEDIA/installer-hang.iso" "t-life-hang-$$")
images+=("$hang")

start_worker 1
# 1
submit one --iso "$hang"
wait_state one installing 120
submit two --iso "$hang"
sleep 4
seen two resolving && fail "a second build was taken while max_builds = 1 was running"
"$bin/isoforge" finish "$(bid one)" || fail "finish one"
wait_state one active 120
img=$(last one image_id)
images+=("$img")
[ "$($os image show "$img" -f value -c status)" = active ] || fail "the finished build's image"
wait_state two installing 120
echo "max_builds held: the second build started after the first was finished"

# 2
id=$(bid two)
stop_worker
virsh domstate "isoforge-$id" | grep -q running || fail "the install did not survive the worker"
grep -q "\"state\":\"cancelled\"\|\"state\":\"failed\"" "$TEST_TMP/two.json" && fail "a stopping worker ended the build"
start_worker 2
grep -q "build $id: after a restart: watch" "$wlog" || fail "the install is not watched again"
sleep 2
seen two cancelled && fail "the restarted worker ended the build"
seen two failed && fail "the restarted worker failed the build: $(grep '"state":"failed"' "$TEST_TMP/two.json")"
"$bin/isoforge" cancel "$id" || fail "cancel of the resumed build"
wait_state two cancelled 60
assert_gone "$id"
st=$("$bin/isoforge" status --json "$id") || fail "status"
[ "$(jq -r .state <<<"$st")" = cancelled ] || fail "status says $(jq -r .state <<<"$st")"
stop_worker
echo ok
