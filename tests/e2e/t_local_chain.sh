#!/usr/bin/env bash
# t_local_chain.sh — two builds of one chain at once get versions 1 and 2 (never the same).
. "$(dirname "$0")/local-lib.sh"

local_build one --iso "$media/installer-linux.iso" "${small[@]}" --chain twins --timeout 300 &
p1=$!
local_build two --iso "$media/installer-linux.iso" "${small[@]}" --chain twins --timeout 300 &
p2=$!
wait $p1 || fail "build one failed: $(tail -n 1 "$tmp/one.json")"
wait $p2 || fail "build two failed: $(tail -n 1 "$tmp/two.json")"
v="$(field "$tmp/one.json" version) $(field "$tmp/two.json" version)"
case $v in "1 2"|"2 1") ;; *) fail "versions: $v";; esac
[ "$(field "$tmp/one.json" properties.isoforge_chain)" = twins ] || fail "chain property"
[ "$(ls "$out"/*.qcow2 | wc -l)" = 2 ] || fail "two images expected"
echo "versions: $v"
echo PASS
