#!/usr/bin/env bash
# t_worker_kill_states.sh — isoforged killed with SIGKILL in any state of a build loses no build:
# seven builds of one chain are held (the tests' switch ISOFORGE_TEST_PAUSE) in queued,
# resolving, fetching, assembling, installing, snapshotting and uploading (uploading: its
# Glance image created, no data yet); the worker is killed; the restarted worker reruns the
# first four, watches the install, snapshots and uploads the last two again. Every build ends
# active with exactly one image (the half-made one is gone), no two images share a version, and
# no domain or work file is left.
. "$(dirname "$0")/worker-lib.sh"
chain=t-kill-$$
states="queued resolving fetching assembling installing snapshotting uploading"

worker_conf kill-test-worker 7 "install_timeout = 900"
iso=$(upload_iso "$ISOFORGE_MEDIA/installer.iso" "t-kill-iso-$$" --property os_type=linux) || fail "image create"
images=("$iso")
pause=
for s in $states; do pause+="${pause:+,}k-$s=$s"; done
ISOFORGE_TEST_PAUSE=$pause start_worker 1
for s in $states; do submit "k-$s" --iso "$iso" --chain "$chain"; done
for s in $states; do
	for i in $(seq 600); do
		grep -q "build $(bid "k-$s" 2>/dev/null): paused at $s" "$wlog" 2>/dev/null && break
		sleep 0.5
	done
	grep -q "build $(bid "k-$s"): paused at $s" "$wlog" || fail "k-$s never paused at $s"
done
kill_worker
echo "isoforged killed (SIGKILL) with a build held in each of: $states"

start_worker 2
for s in $states; do
	wait_state "k-$s" active 600
done
for p in "${bpids[@]}"; do wait "$p" || fail "a build client exited $?"; done
bpids=()
# every image of the chain, whatever its status (half-made ones included), with its properties
for id in $($os image list --property "isoforge_chain=$chain" -f value -c ID); do
	$os image show "$id" -f json
done | jq -s '[.[] | {id, status, build: (.properties.isoforge_build_id // .isoforge_build_id),
	version: (.properties.isoforge_version // .isoforge_version)}]' > "$TEST_TMP/chain.json" \
	|| fail "images of $chain"
cat "$TEST_TMP/chain.json"
for s in $states; do
	id=$(bid "k-$s")
	n=$(jq --arg id "$id" '[.[] | select(.build == $id)] | length' "$TEST_TMP/chain.json")
	[ "$n" = 1 ] || fail "k-$s (killed while $s): $n images, not 1"
	st=$(jq -r --arg id "$id" '.[] | select(.build == $id) | .status' "$TEST_TMP/chain.json")
	[ "$st" = active ] || fail "k-$s: its image is $st"
	images+=("$(last "k-$s" image_id)")
	assert_gone "$id"
	echo "k-$s: killed while $s, active, one image"
done
jq -e '[.[].version] | length == (unique | length)' "$TEST_TMP/chain.json" >/dev/null \
	|| fail "two images share a version"
stop_worker
echo ok
