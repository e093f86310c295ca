#!/usr/bin/env bash
# t_local_build_q35.sh — `isoforge local build` on q35 (SATA CD-ROMs): the test installer installs onto the
# fresh virtio root disk and powers off; the registered image has Nova's and the lineage
# properties (and none isoforge must never write), matches its record's hashes, nothing of the
# build is left, and the image booted alone is the installed system, not the ISO.
. "$(dirname "$0")/local-lib.sh"

local_build q35 --machine q35 --iso "$media/installer.iso" --virtio-win "$media/virtio-win.iso" "${small[@]}" \
	--name "debian-test" --chain q35-chain --os-type linux --os-distro debian --os-version 12 \
	--timeout 300 || fail "build failed: $(tail -n 1 "$tmp/q35.json")"
[ "$(field "$tmp/q35.json" state)" = active ] || fail "state is not active"
img=$(field "$tmp/q35.json" image)
[ -f "$img" ] || fail "no image file $img"
python3 - "$tmp/q35.json" "$media/installer.iso" <<'PY' || fail "properties"
import json, sys, hashlib
d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
p = d["properties"]
want = {"hw_disk_bus": "virtio", "hw_machine_type": "q35", "hw_cdrom_bus": "sata",
        "os_type": "linux", "os_distro": "debian", "os_version": "12",
        "isoforge_chain": "q35-chain", "isoforge_version": "1",
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
assert d["chain"] == "q35-chain" and d["version"] == 1
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
id=$(field "$tmp/q35.json" build_id)
virsh dominfo "isoforge-$id" >/dev/null 2>&1 && fail "domain left behind"
[ -z "$(ls -A "$out/.work")" ] || fail "work files left"
grep -q ISOFORGE-INSTALL-DONE "$out/.logs/$id.console.log" || fail "serial log not kept"
"$isoforge" local list --out "$out" | grep -q q35-chain || fail "local list"
verify_boot "$img" q35
echo PASS
