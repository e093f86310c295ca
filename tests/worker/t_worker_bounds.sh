#!/usr/bin/env bash
# t_worker_bounds.sh — what a request can grow on a shared builder host is bounded and the
# worker's files are its own: a flavor with a root disk over [builds] max_disk_gib is refused
# with the reason; while an install runs its work dir is 0700, its root disk 0600, the ISO
# cache 0700 and the job store 0600.
. "$(dirname "$0")/worker-lib.sh"

worker_conf bounds-worker 1 "install_timeout = 900" "max_disk_gib = 1"
hang=$(upload_iso "$ISOFORGE_MEDIA/installer-hang.iso" "t-bounds-hang-$$") || fail "image create"
images=("$hang")
start_worker 1
# isoforge.tiny has a 2 GiB root disk
submit b-big --iso "$hang"
wait_state b-big failed 120
last b-big message | grep -q 'max_disk_gib = 1' || fail "refused without the reason: $(last b-big message)"
stop_worker

worker_conf bounds-worker 1 "install_timeout = 900"
start_worker 2
submit b-hang --iso "$hang"
wait_state b-hang installing 300
id=$(bid b-hang)
mode() { stat -c %a "$1"; }
[ "$(mode "$TEST_TMP/work/$id")" = 700 ] || fail "work dir mode $(mode "$TEST_TMP/work/$id")"
[ "$(mode "$TEST_TMP/work/$id/root.qcow2")" = 600 ] || fail "root disk mode $(mode "$TEST_TMP/work/$id/root.qcow2")"
[ "$(mode "$TEST_TMP/work")" = 700 ] || fail "work_dir mode $(mode "$TEST_TMP/work")"
[ "$(mode "$TEST_TMP/cache")" = 700 ] || fail "cache_dir mode $(mode "$TEST_TMP/cache")"
[ "$(mode "$TEST_TMP/work/jobs.db")" = 600 ] || fail "job store mode $(mode "$TEST_TMP/work/jobs.db")"
"$bin/isoforge" cancel "$id" || fail "cancel"
wait_state b-hang cancelled 120
stop_worker
echo ok
