#!/usr/bin/env bash
# t_media.sh — the test media work with plain libvirt (no isoforge code involved), TCG guests:
#  1. install: a fresh qcow2 as the first (virtio) disk, boot order disk then CD, installer.iso
#     and virtio-win.iso as IDE CD-ROMs → the guest installs and powers off by itself;
#  2. verify: the disk alone boots → the serial log shows ISOFORGE-INSTALLED-OK with the
#     install id the installer printed.
# T_MEDIA_FULL=1 also runs every other behaviour of the media (5-9 min more): UEFI (OVMF)
# install and disk boot, a missing virtio-win CD, a non-virtio first disk, installer-linux.iso,
# installer-reboot.iso on q35 with SATA CD-ROMs, installer-crash.iso with and without a pvpanic
# device, installer-hang.iso.
# Needs ISOFORGE_LIBVIRT_URI (tests/lib/libvirtd) and ISOFORGE_MEDIA (tests/fixtures/make-media).
set -u
: "${ISOFORGE_LIBVIRT_URI:?}" "${ISOFORGE_MEDIA:?}"
tmp=${TEST_TMP:-$(mktemp -d)}
uri=$ISOFORGE_LIBVIRT_URI
media=$ISOFORGE_MEDIA
name=isoforge-t-media-$$
fail() { echo "FAIL: $*"; exit 1; }
virsh() { command virsh -q -c "$uri" "$@"; }
elapsed() { awk -v t0="$1" -v now="$(date +%s.%N)" 'BEGIN { printf "%.1f", now - t0 }'; }

cleanup() {
	virsh destroy "$name" >/dev/null 2>&1
	virsh undefine --nvram "$name" >/dev/null 2>&1
}
trap cleanup EXIT

# Guest settings, changed by the cases below.
machine=pc disk_bus=virtio panic=yes firmware=bios until_line='' until_count=1

# domain_xml DISK SERIAL_LOG CDROM... — a TCG guest: the root disk first, the CD-ROMs after it
domain_xml() {
	local disk=$1 log=$2 cd_bus=ide pfx=hd letters=abcd i=0 order=2 cd
	shift 2
	[ "$machine" = q35 ] && { cd_bus=sata; pfx=sd; }
	if [ "$disk_bus" != virtio ]; then
		[ "$disk_bus" = sata ] && pfx=sd
		i=1	# the disk takes the first letter of the CD-ROMs' bus
	fi
	cat <<-EOF
	<domain type='qemu'>
	  <name>$name</name>
	  <memory unit='MiB'>256</memory>
	  <vcpu>1</vcpu>
	  <os>
	    <type arch='x86_64' machine='$machine'>hvm</type>
	EOF
	[ "$firmware" = uefi ] && cat <<-EOF
	    <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>
	    <nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>$tmp/vars.fd</nvram>
	EOF
	cat <<-EOF
	  </os>
	  <features><acpi/></features>
	  <on_poweroff>destroy</on_poweroff>
	  <on_reboot>restart</on_reboot>
	  <on_crash>destroy</on_crash>
	  <devices>
	    <disk type='file' device='disk'>
	      <driver name='qemu' type='qcow2'/>
	      <source file='$disk'/>
	      <target dev='$([ "$disk_bus" = virtio ] && echo vda || echo "${pfx}a")' bus='$disk_bus'/>
	      <boot order='1'/>
	    </disk>
	EOF
	for cd in "$@"; do
		cat <<-EOF
		    <disk type='file' device='cdrom'>
		      <driver name='qemu' type='raw'/>
		      <source file='$cd'/>
		      <target dev='$pfx${letters:$i:1}' bus='$cd_bus'/>
		      <readonly/>
		      <boot order='$order'/>
		    </disk>
		EOF
		i=$((i + 1)); order=$((order + 1))
	done
	cat <<-EOF
	    <controller type='usb' model='none'/>
	    <serial type='file'><source path='$log'/><target port='0'/></serial>
	    <video><model type='none'/></video>
	    <memballoon model='none'/>
	EOF
	[ "$panic" = yes ] && echo "    <panic model='isa'/>"
	cat <<-EOF
	  </devices>
	</domain>
	EOF
}

# boot LOG LIMIT DISK CDROM... — defines and starts the guest, waits up to LIMIT s until it is
# shut off; sets $state to "shut off (REASON)" (or the state it still had: then it is destroyed)
# and $took to the seconds it took.
boot() {
	local log=$1 limit=$2 disk=$3 t0
	shift 3
	domain_xml "$disk" "$log" "$@" > "$tmp/domain.xml" || fail "domain XML"
	: > "$log"
	virsh define "$tmp/domain.xml" >/dev/null || fail "virsh define"
	t0=$(date +%s.%N)
	virsh start "$name" >/dev/null || fail "virsh start"
	while :; do
		state=$(virsh domstate --reason "$name" 2>/dev/null)
		case $state in "shut off"*) break;; esac
		# running cases: stop once the log holds $until_count lines matching $until_line
		if [ -n "$until_line" ] && [ "$(grep -ac "$until_line" "$log")" -ge "$until_count" ]; then
			sleep 3
			state=$(virsh domstate --reason "$name" 2>/dev/null)
			virsh destroy "$name" >/dev/null 2>&1
			break
		fi
		if awk -v l="$limit" -v e="$(elapsed "$t0")" 'BEGIN { exit !(e > l) }'; then
			virsh destroy "$name" >/dev/null 2>&1
			break
		fi
		sleep 0.1
	done
	took=$(elapsed "$t0")
	virsh undefine --nvram "$name" >/dev/null || fail "virsh undefine"
	echo "   $state after $took s; markers: $(grep -a '^ISOFORGE-' "$log" | cut -c1-60 | tr '\n' '|')"
}

expect_state() { case $state in "$1"*) ;; *) cat "$2"; fail "expected '$1', got '$state'";; esac; }
expect_line() { grep -aq "$1" "$2" || { cat "$2"; fail "no line matching '$1' in $2"; }; }
new_disk() { rm -f "$1"; qemu-img create -q -f qcow2 "$1" 2G || fail "qemu-img create"; }
# The disk stays blank: its first sector (the MBR) reads as zeros.
expect_blank() {
	qemu-io -f qcow2 -r -c 'read -P 0 0 512' "$1" 2>&1 | grep -q 'read 512/512' ||
		fail "disk $1 is not blank: $(qemu-io -f qcow2 -r -c 'read -P 0 0 512' "$1" 2>&1 | head -n 3)"
}

[ -f "$media/installer.iso" ] && [ -f "$media/virtio-win.iso" ] || fail "no media in $media"
command -v qemu-img >/dev/null || fail "qemu-img missing (qemu-utils)"
vw=$media/virtio-win.iso

echo "== install: installer.iso + virtio-win.iso"
new_disk "$tmp/root.qcow2"
boot "$tmp/install.log" 120 "$tmp/root.qcow2" "$media/installer.iso" "$vw"
expect_state "shut off (shutdown)" "$tmp/install.log"
done_line=$(grep -a '^ISOFORGE-INSTALL-DONE' "$tmp/install.log") || { cat "$tmp/install.log"; fail "no ISOFORGE-INSTALL-DONE"; }
id=${done_line##*install-id=}; id=${id%%[[:space:]]*}
[ -n "$id" ] || fail "no install id in: $done_line"

echo "== verify: the disk alone"
boot "$tmp/verify.log" 90 "$tmp/root.qcow2"
expect_state "shut off (shutdown)" "$tmp/verify.log"
expect_line "^ISOFORGE-INSTALLED-OK .*variant=installer .*install-id=$id" "$tmp/verify.log"
echo "ok: installed and booted (install-id=$id)"

[ "${T_MEDIA_FULL:-0}" = 1 ] || exit 0

echo "== UEFI (OVMF) on q35, SATA CD-ROMs: installer.iso installs, the disk boots by itself"
machine=q35 firmware=uefi
new_disk "$tmp/d.qcow2"
boot "$tmp/u1.log" 180 "$tmp/d.qcow2" "$media/installer.iso" "$vw"
expect_state "shut off (shutdown)" "$tmp/u1.log"
expect_line "^ISOFORGE-INSTALL-DONE" "$tmp/u1.log"
boot "$tmp/u2.log" 120 "$tmp/d.qcow2"
machine=pc firmware=bios
expect_state "shut off (shutdown)" "$tmp/u2.log"
expect_line "^ISOFORGE-INSTALLED-OK .*variant=installer " "$tmp/u2.log"

echo "== installer.iso without the virtio-win CD: fails, disk stays blank"
new_disk "$tmp/d.qcow2"
boot "$tmp/a.log" 120 "$tmp/d.qcow2" "$media/installer.iso"
expect_state "shut off (shutdown)" "$tmp/a.log"
expect_line "^ISOFORGE-INSTALL-FAILED: no virtio-win cdrom" "$tmp/a.log"
expect_blank "$tmp/d.qcow2"

echo "== installer-linux.iso with the root disk on IDE: fails (no virtio disk), disk stays blank"
disk_bus=ide
boot "$tmp/b.log" 120 "$tmp/d.qcow2" "$media/installer-linux.iso"
disk_bus=virtio
expect_state "shut off (shutdown)" "$tmp/b.log"
expect_line "^ISOFORGE-INSTALL-FAILED: no virtio disk" "$tmp/b.log"
expect_blank "$tmp/d.qcow2"

echo "== installer-linux.iso without virtio-win: installs"
boot "$tmp/c.log" 120 "$tmp/d.qcow2" "$media/installer-linux.iso"
expect_state "shut off (shutdown)" "$tmp/c.log"
expect_line "^ISOFORGE-INSTALL-DONE" "$tmp/c.log"

echo "== installer-reboot.iso on q35 (SATA CD-ROMs): installs, reboots into the disk, powers off"
machine=q35
new_disk "$tmp/d.qcow2"
boot "$tmp/d.log" 180 "$tmp/d.qcow2" "$media/installer-reboot.iso" "$vw"
machine=pc
expect_state "shut off (shutdown)" "$tmp/d.log"
expect_line "^ISOFORGE-INSTALL-DONE" "$tmp/d.log"
expect_line "^ISOFORGE-INSTALLED-OK .*variant=installer-reboot" "$tmp/d.log"

echo "== installer-crash.iso with <panic model='isa'/>: libvirt sees a crash"
new_disk "$tmp/d.qcow2"
boot "$tmp/e.log" 120 "$tmp/d.qcow2" "$media/installer-crash.iso" "$vw"
expect_state "shut off (crashed)" "$tmp/e.log"
expect_line "^ISOFORGE-INSTALL-CRASH" "$tmp/e.log"

echo "== installer-crash.iso without a panic device: reboots into the installer again (loop)"
panic=no until_line='^ISOFORGE-INSTALL-CRASH' until_count=2
boot "$tmp/f.log" 150 "$tmp/d.qcow2" "$media/installer-crash.iso"
panic=yes until_line=
expect_state "running" "$tmp/f.log"
[ "$(grep -ac '^ISOFORGE-INSTALL-CRASH' "$tmp/f.log")" -ge 2 ] || { cat "$tmp/f.log"; fail "no crash loop"; }

echo "== installer-hang.iso: still running a few seconds after its marker"
until_line='^ISOFORGE-INSTALL-HANG' until_count=1
boot "$tmp/g.log" 120 "$tmp/d.qcow2" "$media/installer-hang.iso"
until_line=
expect_state "running" "$tmp/g.log"
expect_line "^ISOFORGE-INSTALL-HANG" "$tmp/g.log"
expect_blank "$tmp/d.qcow2"
echo "ok: every behaviour of the media"
