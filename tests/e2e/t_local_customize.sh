#!/usr/bin/env bash
# t_local_customize.sh — unattended installs, customizing over SSH and derived builds, with the
# test media's SSH variant (installer-ssh.iso: the installed system runs dropbear with the keys
# of the answer media):
# 1. an unattended build (kickstart: ks.cfg on an OEMDRV volume carries the build's key) runs
#    marker.sh, a script file, a copied file: active; the registered image boots with the
#    marker, the script's and the file's traces, and the build's key is gone from it;
# 2. a failing script fails the build with its status and last lines, nothing left;
# 3. a derived build (--from the first image: a NoCloud volume hands it the key) runs another
#    script: version 2 of the chain, isoforge_parent the first image, both markers in it.
. "$(dirname "$0")/local-lib.sh"
[ -f "$media/installer-ssh.iso" ] || { echo "no $media/installer-ssh.iso"; exit 77; }
# the kickstart method: the OS says rhel (the test installer reads keys from any answer file)
ks=(--unattended --os-type linux --os-distro rhel --os-version 9)

# boot_until IMAGE MARKER — boots a throw-away overlay of IMAGE alone until its console shows
# MARKER (the SSH variant does not power off by itself); prints the console
boot_until() {
	local image=$1 marker=$2 name=isoforge-t-custboot-$$ log=$tmp/boot-$$.log n=0
	rm -f "$log" "$tmp/boot.qcow2"
	qemu-img create -q -f qcow2 -b "$image" -F qcow2 "$tmp/boot.qcow2" || fail "overlay"
	cat > "$tmp/boot.xml" <<-XML
	<domain type='qemu'><name>$name</name><memory unit='MiB'>256</memory><vcpu>1</vcpu>
	  <os><type arch='x86_64' machine='pc'>hvm</type></os><features><acpi/></features>
	  <devices>
	    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
	      <source file='$tmp/boot.qcow2'/><target dev='vda' bus='virtio'/></disk>
	    <controller type='usb' model='none'/>
	    <serial type='file'><source path='$log'/><target port='0'/></serial>
	    <video><model type='none'/></video><memballoon model='none'/>
	  </devices></domain>
	XML
	virsh create "$tmp/boot.xml" >/dev/null || fail "boot: virsh create"
	until grep -q "$marker" "$log" 2>/dev/null; do
		n=$((n + 1))
		[ $n -lt 1800 ] || { virsh destroy "$name" >/dev/null 2>&1; fail "no $marker: $(tail -n 8 "$log")"; }
		sleep 0.1
	done
	sleep 1
	virsh destroy "$name" >/dev/null 2>&1
	cat "$log"
}

# 1
printf '#!/bin/sh\necho "script-ran $GREETING" > /etc/isoforge-script\necho done: $GREETING\n' > "$tmp/my.sh"
echo "motd of the golden image" > "$tmp/motd"
chmod 640 "$tmp/motd"
local_build c1 --iso "$media/installer-ssh.iso" "${small[@]}" "${ks[@]}" --name cust --chain cust \
	--customize marker.sh --script "$tmp/my.sh" --env GREETING=hello --copy "$tmp/motd:/etc/motd" \
	--customize-timeout 600 --timeout 600 || fail "customized build: $(field "$tmp/c1.json" error)"
img1=$(field "$tmp/c1.json" image)
id1=$(field "$tmp/c1.json" id)
grep -q 'customizing' "$tmp/c1.err" || fail "no customizing state"
grep -q 'script my.sh: done' "$tmp/c1.err" || fail "no message of my.sh"
[ -f "$out/.logs/$(field "$tmp/c1.json" build_id).customize.log" ] || fail "the scripts' output was not kept"
grep -q 'done: hello' "$out/.logs/$(field "$tmp/c1.json" build_id).customize.log" || fail "my.sh's output"
boot_until "$img1" ISOFORGE-SSH-READY > "$tmp/boot1.log"
grep -q 'ISOFORGE-CUSTOMIZED customized-at=.* build=' "$tmp/boot1.log" || fail "no marker.sh marker: $(cat "$tmp/boot1.log")"
# the image's files, read from a copy of its disk (guestfish-less: the test media's ext2 with debugfs)
qemu-img convert -O raw "$img1" "$tmp/disk1.raw" || fail "convert"
# the root file system is the second MBR partition: its first sector from the partition table
part=$(python3 -c 'import struct,sys; b=open(sys.argv[1],"rb").read(512); print(struct.unpack_from("<I", b, 446 + 16 + 8)[0])' "$tmp/disk1.raw")
[ "$part" -gt 0 ] || fail "no second partition"
dd if="$tmp/disk1.raw" of="$tmp/root1.ext2" bs=512 skip="$part" status=none
debugfs -R 'cat /etc/isoforge-script' "$tmp/root1.ext2" 2>/dev/null | grep -q 'script-ran hello' || fail "my.sh did not run with GREETING"
debugfs -R 'cat /etc/motd' "$tmp/root1.ext2" 2>/dev/null | grep -q 'motd of the golden image' || fail "the file was not copied"
debugfs -R 'stat /etc/motd' "$tmp/root1.ext2" 2>/dev/null | grep -q 'Mode:  0640' || fail "the copied file's mode"
# the build's key was the only one (the installer took it from ks.cfg): none is left
debugfs -R 'cat /root/.ssh/authorized_keys' "$tmp/root1.ext2" 2>/dev/null | grep -q 'ssh-' \
	&& fail "the build's key is still in the image"
rm -f "$tmp/disk1.raw" "$tmp/root1.ext2"

# 2
printf '#!/bin/sh\necho step one\necho "it went wrong" >&2\nexit 3\n' > "$tmp/bad.sh"
local_build c2 --iso "$media/installer-ssh.iso" "${small[@]}" "${ks[@]}" --name cust-bad \
	--script "$tmp/bad.sh" --customize-timeout 600 --timeout 600 && fail "a failing script: active"
[ "$(field "$tmp/c2.json" state)" = failed ] || fail "state $(field "$tmp/c2.json" state)"
err=$(field "$tmp/c2.json" error)
echo "$err"
grep -q "bad.sh" <<<"$err" && grep -q "status 3" <<<"$err" && grep -q "it went wrong" <<<"$err" \
	|| fail "the failure does not say the script, its status and its last lines: $err"
virsh dominfo "isoforge-$(field "$tmp/c2.json" build_id)" >/dev/null 2>&1 && fail "domain left"
[ -z "$(ls -A "$out/.work" 2>/dev/null)" ] || fail "work files left"

# 3
printf '#!/bin/sh\necho "derived $(cat /etc/isoforge-script)" > /etc/isoforge-derived\n' > "$tmp/patch.sh"
local_build c3 --from "$img1" "${small[@]}" --script "$tmp/patch.sh" --customize marker.sh \
	--customize-timeout 600 || fail "derived build: $(field "$tmp/c3.json" error)"
[ "$(field "$tmp/c3.json" chain)" = cust ] || fail "derived chain $(field "$tmp/c3.json" chain)"
[ "$(field "$tmp/c3.json" version)" = 2 ] || fail "derived version $(field "$tmp/c3.json" version)"
[ "$(field "$tmp/c3.json" properties.isoforge_parent)" = "$id1" ] || fail "derived parent"
[ "$(field "$tmp/c3.json" properties.os_distro)" = rhel ] || fail "the base's OS did not carry over"
img3=$(field "$tmp/c3.json" image)
boot_until "$img3" ISOFORGE-SSH-READY > "$tmp/boot3.log"
grep -q "ISOFORGE-CUSTOMIZED .*build=$(field "$tmp/c3.json" build_id)" "$tmp/boot3.log" \
	|| fail "the derived image has not its own marker: $(grep CUSTOMIZED "$tmp/boot3.log")"
echo PASS
