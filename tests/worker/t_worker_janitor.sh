#!/usr/bin/env bash
# t_worker_janitor.sh — nothing is orphaned: a removal that fails stays recorded (in the
# worker's job store), logged, and tried again until it works; at start the worker removes the
# domains it made and the build dirs that no build owns.
. "$(dirname "$0")/worker-lib.sh"

worker_conf janitor-worker 1 "install_timeout = 900" "cleanup_retry = 3"
hang=$(upload_iso "$ISOFORGE_MEDIA/installer-hang.iso" "t-janitor-hang-$$") || fail "image create"
images=("$hang")
start_worker 1
submit j-hang --iso "$hang"
wait_state j-hang installing 300
id=$(bid j-hang)
# a file nobody may remove, not even root: the work dir can't go
touch "$TEST_TMP/work/$id/pinned"
chattr +i "$TEST_TMP/work/$id/pinned" || fail "chattr"
trap 'chattr -i "$TEST_TMP/work/$id/pinned" 2>/dev/null; worker_lib_cleanup' EXIT
"$bin/isoforge" cancel "$id" || fail "cancel"
wait_state j-hang cancelled 120
sleep 1
left() { sqlite3 "file:$TEST_TMP/work/jobs.db?mode=ro" "SELECT count(*) FROM resources WHERE build_id = '$id'$1"; }
[ "$(left " AND kind = 'dir' AND value = '$TEST_TMP/work/$id'")" = 1 ] \
	|| fail "the work dir is not recorded as left: $(sqlite3 "$TEST_TMP/work/jobs.db" "SELECT * FROM resources")"
[ "$("$bin/isoforge" status --json "$id" | jq -r .state)" = cancelled ] || fail "status"
grep -q "build $id: 1 thing left to clean up" "$wlog" || fail "not logged"
virsh dominfo "isoforge-$id" >/dev/null 2>&1 && fail "the domain was left too"
# the janitor keeps trying; once it can, the dir goes and the record with it
chattr -i "$TEST_TMP/work/$id/pinned"
for i in $(seq 40); do [ -e "$TEST_TMP/work/$id" ] || break; sleep 0.5; done
[ -e "$TEST_TMP/work/$id" ] && fail "the janitor did not remove the work dir"
sleep 1
[ "$(left "")" = 0 ] || fail "the removed dir is still recorded"
stop_worker

# at start: an orphaned domain of this worker (no build knows it) and an orphaned build dir go;
# a domain of another worker stays
orphan=$(cat /proc/sys/kernel/random/uuid)
other=$(cat /proc/sys/kernel/random/uuid)
mkdir -p "$TEST_TMP/work/$orphan" && touch "$TEST_TMP/work/$orphan/root.qcow2"
for d in "$orphan:janitor-worker" "$other:someone-else"; do
	cat > "$TEST_TMP/dom.xml" <<XML
<domain type='qemu'><name>isoforge-${d%%:*}</name><memory unit='MiB'>32</memory>
<metadata><isoforge:build xmlns:isoforge="https://isoforge.dev/xmlns/libvirt/build/1">
<isoforge:build-id>${d%%:*}</isoforge:build-id><isoforge:owner>${d#*:}</isoforge:owner>
</isoforge:build></metadata><os><type arch='x86_64'>hvm</type></os></domain>
XML
	virsh define "$TEST_TMP/dom.xml" >/dev/null || fail "virsh define"
done
start_worker 2
virsh dominfo "isoforge-$orphan" >/dev/null 2>&1 && fail "the orphaned domain is still there"
[ -e "$TEST_TMP/work/$orphan" ] && fail "the orphaned build dir is still there"
virsh dominfo "isoforge-$other" >/dev/null 2>&1 || fail "another worker's domain was removed"
virsh undefine "isoforge-$other" >/dev/null
stop_worker
echo ok
