#!/usr/bin/env bash
# t_worker_resume.sh — SIGKILL of isoforged mid-install, then a restart, still ends in active
# images (issue 5). Two builds install at once when the worker is killed:
#   done — installer.iso: its guest powers off while the worker is dead (the test waits for the
#          domain to be `shut off (shutdown)` before the restart): the restarted worker finds
#          the stopped domain and goes on to snapshot and upload;
#   hang — installer-hang.iso: still running at the restart: watched again, and `isoforge
#          finish` (the control path) reaches the resumed build, which ends active.
# No domain or work files are left; the builds' Keystone trusts (made by the CLI, used again
# by the restarted worker) are deleted; `glance image-download` of done's image, booted alone,
# prints the installed system's marker ISOFORGE-INSTALLED-OK.
. "$(dirname "$0")/worker-lib.sh"

worker_conf resume-test-worker 2 "install_timeout = 900" "finish_grace = 3"
iso=$(upload_iso "$ISOFORGE_MEDIA/installer.iso" "t-resume-iso-$$" --property os_type=linux)
images+=("$iso")
hang=$(upload_iso "$ISOFORGE_MEDIA/installer-hang.iso" "t-resume-hang-$$")
images+=("$hang")
virtio=$(upload_iso "$ISOFORGE_MEDIA/virtio-win.iso" "t-resume-virtio-$$")
images+=("$virtio")
echo "virtio_win_image = $virtio" >> "$TEST_TMP/isoforge.conf"

alice_id=$(ks_auth "$OS_USERNAME" "$OS_PASSWORD" "$OS_PROJECT_NAME" | cut -d" " -f2)
trusts_before=$(trusts_of "$alice_id" | sort)
start_worker 1
submit done --iso "$iso" --virtio-win auto
submit hang --iso "$hang"
wait_state done installing 300
wait_state hang installing 300
did=$(bid done)
hid=$(bid hang)
kill_worker
echo "isoforged killed (SIGKILL) while both builds were installing"
virsh domstate "isoforge-$hid" | grep -q running || fail "the hang install did not survive the worker"
# the guest of done ends its install while no worker watches
for i in $(seq 600); do
	virsh domstate --reason "isoforge-$did" 2>/dev/null | grep -q "shut off (shutdown)" && break
	sleep 0.5
done
virsh domstate --reason "isoforge-$did" | grep -q "shut off (shutdown)" \
	|| fail "done's guest did not power off: $(virsh domstate --reason "isoforge-$did" 2>&1)"
echo "done's guest powered off while the worker was dead"

start_worker 2
grep -q "build $did: after a restart: watch" "$wlog" || fail "done is not watched again"
grep -q "build $hid: after a restart: watch" "$wlog" || fail "hang is not watched again"
wait_state done active 300
jq -s -e 'map(select(.state == "installing" and (.message // "" | test("stopped while the worker was down")))) | length == 1' \
	"$TEST_TMP/done.json" >/dev/null || fail "done: no installing event of the resumed watch"
for s in snapshotting uploading; do
	seen done "$s" || fail "done: no $s event after the restart"
done
# hang is watched again: still installing until someone ends it
wait_state hang installing 1
jq -s -e 'map(select(.state == "installing" and (.message // "" | test("watched again after a restart")))) | length == 1' \
	"$TEST_TMP/hang.json" >/dev/null || fail "hang: no installing event of the resumed watch"
seen hang active && fail "hang ended by itself"
"$bin/isoforge" finish "$hid" || fail "finish of the resumed build"
wait_state hang active 120
for p in "${bpids[@]}"; do wait "$p" || fail "a build client exited $?"; done
bpids=()

img=$(last done image_id)
images+=("$img")
himg=$(last hang image_id)
images+=("$himg")
[ "$($os image show "$img" -f value -c status)" = active ] || fail "done's image is not active"
[ "$($os image show "$himg" -f value -c status)" = active ] || fail "hang's image is not active"
[ "$($os image show "$img" -f json | jq -r '.properties.isoforge_build_id // .isoforge_build_id')" = "$did" ] \
	|| fail "done's image: isoforge_build_id"
st=$("$bin/isoforge" status --json "$did") || fail "status"
[ "$(jq -r .state <<<"$st")" = active ] || fail "status says $(jq -r .state <<<"$st")"
assert_gone "$did"
assert_gone "$hid"
for i in $(seq 40); do [ "$(trusts_of "$alice_id" | sort)" = "$trusts_before" ] && break; sleep 0.5; done
[ "$(trusts_of "$alice_id" | sort)" = "$trusts_before" ] || fail "trusts left after the builds"
stop_worker

# the image as Glance serves it boots the installed system
/usr/bin/glance image-download --file "$TEST_TMP/done.qcow2" "$img" || fail "glance image-download"
machine=$($os image show "$img" -f json | jq -r '.properties.hw_machine_type // .hw_machine_type // "pc"')
( . "$ISOFORGE_TOP/tests/e2e/local-lib.sh"; verify_boot "$TEST_TMP/done.qcow2" "$machine" ) \
	|| fail "the downloaded image did not boot to ISOFORGE-INSTALLED-OK"
echo ok
