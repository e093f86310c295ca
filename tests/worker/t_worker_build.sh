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
# 4. one that stalls with --inactivity-timeout 20 (install.inactivity_timeout_s) fails with the
#    reason and a PNG screenshot of its console in work_dir/logs; no domain is left.
# While installing (progress_interval = 2): the first installing event says a serial log is
# kept (the path only in the worker's log), later ones carry the report in their message
# (elapsed, bytes written to the root disk, the console's last line), progress the state's.
. "$(dirname "$0")/worker-lib.sh"
chain=t-worker-$$

worker_conf build-test-worker 2 "install_timeout = 600" "progress_interval = 2"
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
# (queued: the API's, then the worker's "accepted"; installing: then its progress reports)
jq -s -e 'map(select(.progress != null and .state == "queued")) | length >= 1' \
	"$TEST_TMP/first.json" >/dev/null || fail "no queued event"
for s in resolving fetching assembling snapshotting uploading active; do
	jq -s -e --arg s "$s" 'map(select(.progress != null and .state == $s)) | length == 1' \
		"$TEST_TMP/first.json" >/dev/null \
		|| fail "event $s not seen once"
done
# installing: the console and "serial log kept" first, then the reports
jq -s -e 'map(select(.state == "installing"))[0].message | test("^console on vnc://.*; serial log kept$")' \
	"$TEST_TMP/first.json" >/dev/null || fail "the first installing event: no serial log kept"
jq -s -e 'map(select(.state == "installing") | .message) | map(select(test("console\\.log"))) | length == 0' \
	"$TEST_TMP/first.json" >/dev/null || fail "the serial log's path (the builder's) in an event"
jq -s -e 'map(select(.state == "installing" and .progress == 30 and (.message |
	test("^[0-9]+ s, [0-9.]+ (B|KiB|MiB) written to the root disk, console: \".+\"$")))) | length >= 1' \
	"$TEST_TMP/first.json" >/dev/null || fail "no installing event with a progress report"
jq -s -r 'map(select(.state == "installing") | .message) | .[]' "$TEST_TMP/first.json" | sed 's/^/  installing: /'
grep -q "build $(last first build_id): serial log $TEST_TMP/work/$(last first build_id)/console.log" "$wlog" ||
	fail "the serial log's path is not in the worker's log"
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
# its VNC password is the console's (docs/api.md): the proxy derives it, nobody sends it
ckey=$("$bin/tests/lib/console-token" key "$TEST_TMP/isoforge.conf") || fail "console key"
cpw=$(CONSOLE_KEY=$ckey "$bin/tests/lib/console-token" password "$hid")
virsh dumpxml --security-info "isoforge-$hid" | grep -q "passwd='$cpw'" \
	|| fail "the domain's VNC password is not console_vnc_password(key, build id)"
grep -qF -- "$cpw" "$TEST_TMP/hang.json" "$wlog" && fail "the VNC password in an event or the log"
# and isoforge-novncproxy relays a browser to it with a token
cport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf '[console]\nbind_port = %s\nbase_url = http://127.0.0.1:%s\n' "$cport" "$cport" >> "$TEST_TMP/isoforge.conf"
"$bin/isoforge-novncproxy" -c "$TEST_TMP/isoforge.conf" 2> "$TEST_TMP/proxy.log" &
proxypid=$!
bpids+=("$proxypid")	# (killed by the clean-up should the test fail)
for i in $(seq 100); do grep -q "listening on" "$TEST_TMP/proxy.log" && break; sleep 0.1; done
# (the API's events carry no console object: its address from the installing message)
console=$(jq -r 'select(.state == "installing") | .message' "$TEST_TMP/hang.json" |
	grep -o 'vnc://[0-9.]*:[0-9]*' | head -n 1)
vhost=${console#vnc://}; vhost=${vhost%:*}; vport=${console##*:}
[ -n "$vhost" ] && [ -n "$vport" ] || fail "no console address in the installing events"
ctok=$(CONSOLE_KEY=$ckey "$bin/tests/lib/console-token" mint "$hid" "$vhost" "$vport" 600)
out=$(python3 "$ISOFORGE_TOP/tests/e2e/console-client.py" 127.0.0.1 "$cport" "$ctok" rfb) \
	|| { cat "$TEST_TMP/proxy.log"; fail "console through isoforge-novncproxy: $out"; }
echo "console through the proxy: $out"
kill "$proxypid"; wait "$proxypid" || fail "the proxy's exit"
"$bin/isoforge" cancel "$hid" || fail "cancel"
wait "$bpid"; rc=$?
cat "$TEST_TMP/hang.json"
[ $rc = 1 ] || fail "cancelled build: exit $rc"
[ "$(last hang state)" = cancelled ] || fail "hang build ended $(last hang state)"
virsh dominfo "isoforge-$hid" >/dev/null 2>&1 && fail "cancelled domain left behind"
n=$("$bin/isoforge" versions --json "$chain" | jq length)
[ "$n" = 2 ] || fail "$n images in the chain after a cancelled build"
# 4
start=$(date +%s)
"$bin/isoforge" build --flavor "$ISOFORGE_FLAVOR_TINY" --name stall --chain "$chain" --iso "$hang" \
	--inactivity-timeout 20 --wait --json > "$TEST_TMP/stall.json"
rc=$?
took=$(( $(date +%s) - start ))
jq -c 'del(.console)' "$TEST_TMP/stall.json" | tail -n 5
[ $rc = 1 ] || fail "stalled build: exit $rc"
[ "$(last stall state)" = failed ] || fail "stalled build ended $(last stall state)"
sid=$(last stall build_id)
shot=$TEST_TMP/work/logs/$sid.screenshot.png
last stall message | grep -qF "install stalled: no disk writes and no console output for 20 s; the console's screenshot: $shot" ||
	fail "stalled build: $(last stall message)"
[ $took -lt 300 ] || fail "the watchdog took $took s"
python3 - "$shot" <<'PY' || fail "the screenshot is not a PNG"
import struct, sys, zlib
d = open(sys.argv[1], "rb").read()
assert d[:8] == b"\x89PNG\r\n\x1a\n" and d[12:16] == b"IHDR"
w, h = struct.unpack(">II", d[16:24])
assert 100 <= w <= 4096 and 100 <= h <= 4096, (w, h)
print("screenshot %dx%d" % (w, h))
PY
virsh dominfo "isoforge-$sid" >/dev/null 2>&1 && fail "stalled domain left behind"
[ -z "$(ls -A "$TEST_TMP/work/$sid" 2>/dev/null)" ] || fail "stalled build's work files left"
# the worker stops cleanly (under ASan: no leak, no error)
stop_worker
echo ok
