#!/usr/bin/env bash
# t_isoboot_reboot.sh — installers reboot (Windows setup several times): with the plan's boot
# order (the root disk first, blank at first so the firmware boots the CD) the VM must come
# back from the installed disk, not start the installer again, and the install ends at the
# guest's power-off. Uses the test media's installer-reboot.iso, which installs onto vda and
# reboots; the installed system prints ISOFORGE-INSTALLED-OK and powers off.
set -u
top=${ISOFORGE_TOP:?}
uri=${ISOFORGE_LIBVIRT_URI:?}
media=${ISOFORGE_MEDIA:?}
bin=${ISOFORGE_BIN:?}/isoforge
tmp=${TEST_TMP:?}
export ISOFORGE_TEMPLATES=$top/templates

[ -f "$media/installer-reboot.iso" ] || { echo "no $media/installer-reboot.iso"; exit 77; }
virsh() { command virsh -q -c "$uri" "$@"; }
dom=isoforge-t-reboot
printf '{"name": "reboot test", "os": {"type": "linux"}}\n' > "$tmp/request.json"
qemu-img create -q -f qcow2 "$tmp/root.qcow2" 1G || exit 1
"$bin" plan "$tmp/request.json" --iso "$media/installer-reboot.iso" \
    --virtio-win "$media/virtio-win.iso" --disk 1 --ram 256 --vcpus 1 --domain-type qemu \
    --guest-network none --work-dir "$tmp" --build-id t-reboot > "$tmp/domain.xml" || exit 1
virsh define "$tmp/domain.xml" > /dev/null || exit 1
trap 'virsh destroy $dom >/dev/null 2>&1; virsh undefine --nvram $dom >/dev/null 2>&1' EXIT
virsh start "$dom" > /dev/null || exit 1
state=
for _ in $(seq 1 240); do
	state=$(virsh domstate "$dom")
	[ "$state" = "shut off" ] && break
	sleep 0.5
done
log=$tmp/console.log
if [ "$state" != "shut off" ]; then
	echo "FAIL: still '$state' after 120 s; console:"; tail -n 20 "$log"; exit 1
fi
grep -a '^ISOFORGE-' "$log"
starts=$(grep -ac '^ISOFORGE-INSTALL-START' "$log")
if ! grep -aq '^ISOFORGE-INSTALL-DONE' "$log"; then
	echo "FAIL: the installer did not finish"; tail -n 20 "$log"; exit 1
fi
if [ "$starts" != 1 ]; then
	echo "FAIL: the installer started $starts times: the reboot went back to the CD"; exit 1
fi
if ! grep -aq '^ISOFORGE-INSTALLED-OK' "$log"; then
	echo "FAIL: after the installer's reboot the installed system did not come up"
	tail -n 20 "$log"; exit 1
fi
echo "ok: installer ran once, rebooted into the installed disk, which powered off"
