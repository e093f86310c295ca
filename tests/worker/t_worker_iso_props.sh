#!/usr/bin/env bash
# t_worker_iso_props.sh — a Glance ISO's hw_* properties are honoured by the worker exactly as
# by `isoforge plan` (one profile rule): alice's ISO says hw_machine_type=q35,
# hw_firmware_type=uefi, hw_cdrom_bus=sata; the build's domain is a q35 machine booting UEFI
# with its CD-ROM on SATA, the build ends active, and the registered image says so.
. "$(dirname "$0")/worker-lib.sh"

worker_conf iso-props-worker 1 "install_timeout = 600"
iso=$(upload_iso "$ISOFORGE_MEDIA/installer.iso" "t-isoprops-$$" --property os_type=linux \
	--property hw_machine_type=q35 --property hw_firmware_type=uefi \
	--property hw_cdrom_bus=sata) || fail "image create"
images=("$iso")
start_worker 1

submit isoprops --iso "$iso" --chain "t-isoprops-$$"
wait_state isoprops installing 300
id=$(bid isoprops)
virsh dumpxml "isoforge-$id" > "$TEST_TMP/domain.xml" 2>/dev/null || fail "no domain while installing"
grep -q "machine='pc-q35" "$TEST_TMP/domain.xml" || fail "the domain is not q35: $(grep machine= "$TEST_TMP/domain.xml")"
grep -q "<loader" "$TEST_TMP/domain.xml" || fail "the domain does not boot UEFI"
grep -q "bus='sata'" "$TEST_TMP/domain.xml" || fail "no CD-ROM on SATA"
wait_state isoprops active 300
wait "${bpids[0]}" || fail "the build failed: $(last isoprops message)"
img=$(last isoprops image_id)
images+=("$img")
$os image show "$img" -f json > "$TEST_TMP/img.json" || fail "image show"
for kv in hw_machine_type=q35 hw_firmware_type=uefi hw_cdrom_bus=sata; do
	got=$(jq -r --arg k "${kv%%=*}" '.properties[$k] // .[$k]' "$TEST_TMP/img.json")
	[ "$got" = "${kv#*=}" ] || fail "${kv%%=*} of the image is '$got', not ${kv#*=}"
done
assert_gone "$id"
stop_worker
echo ok
