#!/usr/bin/env bash
# t_worker_build.sh — full builds through a worker: the minicloud (RabbitMQ, Keystone, Glance,
# nova-api), a private libvirtd and the test installer ISO.
# 1. `isoforge build --wait --json` of alice's ISO (virtio-win: auto, the worker's): queued → …
#    → installing (console) → snapshotting → uploading → active; the image is alice's
#    project's, private, with Nova's and the lineage properties, version 1 of its chain; no
#    domain or work files are left.
# 2. a second build of the chain, from the first, is version 2 (`isoforge versions`, `tree`).
# 3. an install that never ends is cancelled with `isoforge cancel`: cancelled, no image, no
#    domain.
. "$(dirname "$0")/worker-lib.sh"
chain=t-worker-$$

worker_conf build-test-worker 2 "install_timeout = 600"
iso=$(upload_iso "$ISOFORGE_MEDIA/installer.iso" "t-worker-iso-$$" --property os_type=linux) || fail "image create"
hang=$(upload_iso "$ISOFORGE_MEDIA/installer-hang.iso" "t-worker-hang-$$") || fail "image create"
virtio=$(upload_iso "$ISOFORGE_MEDIA/virtio-win.iso" "t-worker-virtio-$$") || fail "image create"
images=("$iso" "$hang" "$virtio")
# the operator's virtio-win image, for requests that say "auto"
echo "virtio_win_image = $virtio" >> "$TEST_TMP/isoforge.conf"

start_worker 1

build() {	# build NAME ARGS... → stdout in $TEST_TMP/NAME.json
	local name=$1; shift
	"$bin/isoforge" build --flavor "$ISOFORGE_FLAVOR_TINY" --name "$name" --chain "$chain" \
		--os-distro debian --os-version 12 --wait --json "$@" > "$TEST_TMP/$name.json"
	local rc=$?
	cat "$TEST_TMP/$name.json"
	return $rc
}

# 1
build first --iso "$iso" --virtio-win auto || fail "first build: $(last first message)"
[ "$(last first state)" = active ] || fail "first build ended $(last first state)"
img=$(last first image_id)
images+=("$img")
# (queued: the API's, then the worker's "accepted")
jq -s -e 'map(select(.progress != null and .state == "queued")) | length >= 1' \
	"$TEST_TMP/first.json" >/dev/null || fail "no queued event"
for s in resolving fetching assembling installing snapshotting uploading active; do
	jq -s -e --arg s "$s" 'map(select(.progress != null and .state == $s)) | length == 1' \
		"$TEST_TMP/first.json" >/dev/null \
		|| fail "event $s not seen once"
done
# consoles come only from remote-console (a URL with a single-use token), never in events
jq -s -e 'map(select(.console != null or .password != null)) | length == 0' "$TEST_TMP/first.json" \
	>/dev/null || fail "a console in an event"
$os image show "$img" -f json > "$TEST_TMP/img.json" || fail "image show"
python3 - "$TEST_TMP/img.json" "$chain" "$(last first build_id)" "$iso" "$virtio" <<'PY' || fail "image properties"
import json, sys
img = json.load(open(sys.argv[1]))
p = dict(img.get("properties") or {})
p.update({k: v for k, v in img.items() if k != "properties"})
assert p["status"] == "active" and p["visibility"] == "private", (p["status"], p["visibility"])
assert p["disk_format"] == "qcow2"
want = {"hw_disk_bus": "virtio", "os_type": "linux", "os_distro": "debian", "os_version": "12",
        "isoforge_chain": sys.argv[2], "isoforge_version": "1", "isoforge_build_id": sys.argv[3],
        "isoforge_source_iso": sys.argv[4], "isoforge_virtio_win": sys.argv[5]}
for k, v in want.items():
    assert str(p.get(k)) == v, (k, p.get(k), v)
for k in ("hw_vif_model", "hw_machine_type", "isoforge_source_iso_hash", "isoforge_built_at"):
    assert p.get(k), k
assert int(p["min_disk"]) == 2, p["min_disk"]
for k in p:
    assert not k.startswith("os_glance_") and k not in ("base_image_ref", "instance_uuid", "image_type"), k
print("image ok")
PY
owner=$(jq -r .owner "$TEST_TMP/img.json")
[ "$owner" = "$($os token issue -f value -c project_id)" ] || fail "image owner $owner is not alice's project"
id=$(last first build_id)
virsh dominfo "isoforge-$id" >/dev/null 2>&1 && fail "domain left behind"
[ -z "$(ls -A "$TEST_TMP/work/$id" 2>/dev/null)" ] || fail "work files left"

# 2 (a descendant of the first)
build second --iso "$iso" --parent "$img" || fail "second build: $(last second message)"
img2=$(last second image_id)
images+=("$img2")
[ "$($os image show "$img2" -f json | jq -r '.properties.isoforge_parent // .isoforge_parent')" = "$img" ] \
	|| fail "isoforge_parent of the second image"
"$bin/isoforge" tree "$img" | tee "$TEST_TMP/tree.txt"
grep -q "^$img " "$TEST_TMP/tree.txt" && grep -q "^  $img2 " "$TEST_TMP/tree.txt" || fail "tree"
"$bin/isoforge" versions "$chain"
v=$("$bin/isoforge" versions --json "$chain" | jq -r 'map(.version | tostring) | join(",")')
[ "$v" = "1,2" ] || fail "versions of $chain: $v"

# 3
"$bin/isoforge" build --flavor "$ISOFORGE_FLAVOR_TINY" --name hang --chain "$chain" --iso "$hang" \
	--wait --json > "$TEST_TMP/hang.json" &
bpid=$!
for i in $(seq 300); do
	grep -q '"state":"installing"' "$TEST_TMP/hang.json" 2>/dev/null && break
	sleep 0.5
done
hid=$(head -n 1 "$TEST_TMP/hang.json" | jq -r .build_id)
url=$("$bin/isoforge" console "$hid" | head -n 1) || fail "console"
echo "console: ${url%%token*}token=..."
grep -q '^http.*token' <<<"$url" || fail "console: no URL with a token: $url"
"$bin/isoforge" cancel "$hid" || fail "cancel"
wait "$bpid"; rc=$?
cat "$TEST_TMP/hang.json"
[ $rc = 1 ] || fail "cancelled build: exit $rc"
[ "$(last hang state)" = cancelled ] || fail "hang build ended $(last hang state)"
virsh dominfo "isoforge-$hid" >/dev/null 2>&1 && fail "cancelled domain left behind"
n=$("$bin/isoforge" versions --json "$chain" | jq length)
[ "$n" = 2 ] || fail "$n images in the chain after a cancelled build"
# the worker stops cleanly (under ASan: no leak, no error)
stop_worker
echo ok
