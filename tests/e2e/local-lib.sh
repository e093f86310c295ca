# tests/e2e/local-lib.sh — shared by the t_local_*.sh tests (sourced, not a test itself).
# Needs ISOFORGE_BIN, ISOFORGE_LIBVIRT_URI, ISOFORGE_MEDIA, TEST_TMP (tests/run sets them).
set -u
: "${ISOFORGE_BIN:?}" "${ISOFORGE_LIBVIRT_URI:?}" "${ISOFORGE_MEDIA:?}"
tmp=${TEST_TMP:-$(mktemp -d)}
uri=$ISOFORGE_LIBVIRT_URI
media=$ISOFORGE_MEDIA
isoforge=$ISOFORGE_BIN/isoforge
out=$tmp/store
# small guests: the machine runs several helpers' VMs under TCG at once
small=(--ram 512 --vcpus 1 --disk 2)

fail() { echo "FAIL: $*"; exit 1; }
virsh() { command virsh -q -c "$uri" "$@"; }
# JSON field of the last stdout line of a build (file $1, jq-less: python3 is in Debian's base)
field() { python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); v=d
for k in sys.argv[2].split("."): v=v.get(k) if isinstance(v, dict) else None
print("" if v is None else v)' "$1" "$2"; }

# local_build NAME ARGS... — runs a build, stdout JSON in $tmp/NAME.json, stderr in $tmp/NAME.err
local_build() {
	local name=$1; shift
	"$isoforge" local build --out "$out" --json "$@" > "$tmp/$name.json" 2> "$tmp/$name.err"
	local rc=$?
	sed "s/^/  [$name] /" "$tmp/$name.err"
	# 0 done, 1 failed; anything else (a sanitizer's report, a crash) fails the test
	[ $rc = 0 ] || [ $rc = 1 ] || fail "isoforge local build exited with status $rc"
	return $rc
}

# assert_clean JSONFILE — the build left nothing: no domain, no work files, no image of it
assert_clean() {
	local id dom
	id=$(field "$1" build_id)
	[ -n "$id" ] || fail "no build_id in $1"
	dom=isoforge-$id
	virsh dominfo "$dom" >/dev/null 2>&1 && fail "domain $dom left behind"
	[ -z "$(ls -A "$out/.work" 2>/dev/null)" ] || fail "work files left: $(ls -A "$out/.work")"
	ls "$out"/*.qcow2 >/dev/null 2>&1 && fail "an image was registered: $(ls "$out")"
	ls "$out"/*.json >/dev/null 2>&1 && fail "an image record was written: $(ls "$out")"
	[ -f "$out/.logs/$id.console.log" ] || fail "the serial log was not kept"
	return 0
}

# verify_boot IMAGE MACHINE — boots a throw-away overlay of IMAGE alone (no CD-ROM), serial to a
# file; passes when the installed system prints its marker and powers off
verify_boot() {
	local image=$1 machine=$2 name=isoforge-t-verify-$$ log=$tmp/verify.log n
	qemu-img create -q -f qcow2 -b "$image" -F qcow2 "$tmp/verify.qcow2" || fail "overlay"
	cat > "$tmp/verify.xml" <<-XML
	<domain type='qemu'>
	  <name>$name</name>
	  <memory unit='MiB'>256</memory>
	  <vcpu>1</vcpu>
	  <os><type arch='x86_64' machine='$machine'>hvm</type></os>
	  <features><acpi/></features>
	  <on_poweroff>destroy</on_poweroff>
	  <on_reboot>destroy</on_reboot>
	  <on_crash>destroy</on_crash>
	  <devices>
	    <disk type='file' device='disk'>
	      <driver name='qemu' type='qcow2'/>
	      <source file='$tmp/verify.qcow2'/>
	      <target dev='vda' bus='virtio'/>
	    </disk>
	    <controller type='usb' model='none'/>
	    <serial type='file'><source path='$log'/><target port='0'/></serial>
	    <video><model type='none'/></video>
	    <memballoon model='none'/>
	  </devices>
	</domain>
	XML
	virsh create "$tmp/verify.xml" >/dev/null || fail "verify boot: virsh create"
	n=0
	while virsh domstate "$name" >/dev/null 2>&1; do
		n=$((n + 1))
		if [ $n -gt 1800 ]; then
			virsh destroy "$name" >/dev/null 2>&1
			fail "verify boot did not power off in 180 s; log: $(tail -n 5 "$log")"
		fi
		sleep 0.1
	done
	grep -q ISOFORGE-INSTALLED-OK "$log" || fail "the image did not boot the installed system: $(tail -n 10 "$log")"
	echo "verify boot: $(grep -a ISOFORGE-INSTALLED-OK "$log" | head -n 1)"
	rm -f "$tmp/verify.qcow2"
}

# Builds the test installer on MACHINE (pc|q35) and checks everything a local build promises:
# Nova's properties (CD-ROMs on CDROM_BUS) and the lineage, none isoforge must never write, the
# record's hashes, nothing of the build left, and the image booted alone is the installed system.
check_local_build() {
	local m=$1 bus=$2 img id machine_args=()
	[ "$m" = pc ] || machine_args=(--machine "$m")
	local_build "$m" "${machine_args[@]}" --iso "$media/installer.iso" --virtio-win "$media/virtio-win.iso" "${small[@]}" \
		--name "debian-test" --chain $m-chain --os-type linux --os-distro debian --os-version 12 \
		--timeout 300 || fail "build failed: $(tail -n 1 "$tmp/$m.json")"
	[ "$(field "$tmp/$m.json" state)" = active ] || fail "state is not active"
	img=$(field "$tmp/$m.json" image)
	[ -f "$img" ] || fail "no image file $img"
	# it holds the installed system: its owner's alone, and so is its record
	[ "$(stat -c %a "$img")" = 600 ] || fail "image mode $(stat -c %a "$img"), not 600"
	[ "$(stat -c %a "${img%.qcow2}.json")" = 600 ] || fail "record mode not 600"
	python3 - "$tmp/$m.json" "$media/installer.iso" "$m" "$bus" <<'PY' || fail "properties"
import json, sys, hashlib
d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
p = d["properties"]
m, bus = sys.argv[3], sys.argv[4]
want = {"hw_disk_bus": "virtio", "hw_machine_type": m, "hw_cdrom_bus": bus,
        "os_type": "linux", "os_distro": "debian", "os_version": "12",
        "isoforge_chain": m + "-chain", "isoforge_version": "1",
        "isoforge_build_id": d["build_id"]}
for k, v in want.items():
    assert p.get(k) == v, (k, p.get(k), v)
for k in ("hw_vif_model", "hw_firmware_type", "isoforge_source_iso", "isoforge_virtio_win",
          "isoforge_built_at"):
    assert p.get(k), k
iso_hash = hashlib.sha512(open(sys.argv[2], "rb").read()).hexdigest()
assert p["isoforge_source_iso_hash"] == iso_hash
for k in p:
    assert not k.startswith("os_glance_") and k not in ("base_image_ref", "instance_uuid", "image_type"), k
assert d["chain"] == m + "-chain" and d["version"] == 1
r = d["record"]
assert r["status"] == "active" and r["disk_format"] == "qcow2"
assert r["min_disk"] == 2, r["min_disk"]
data = open(d["image"], "rb").read()
assert hashlib.sha512(data).hexdigest() == r["os_hash_value"]
assert hashlib.md5(data).hexdigest() == r["checksum"]
assert data[:4] == b"QFI\xfb", "not a qcow2"
print("properties ok:", sorted(p))
PY
	# not a copy of the ISO: the image is a qcow2 of the root disk, smaller than its virtual size
	qemu-img info --output=json "$img" | grep -q '"virtual-size": 2147483648' || fail "virtual size"
	id=$(field "$tmp/$m.json" build_id)
	virsh dominfo "isoforge-$id" >/dev/null 2>&1 && fail "domain left behind"
	[ -z "$(ls -A "$out/.work")" ] || fail "work files left"
	grep -q ISOFORGE-INSTALL-DONE "$out/.logs/$id.console.log" || fail "serial log not kept"
	"$isoforge" local list --out "$out" | grep -q $m-chain || fail "local list"
	verify_boot "$img" "$m"
}
