#!/usr/bin/env bash
# t_local_timeout.sh — an installer that never finishes: after --timeout the build fails
# ("timed out") and leaves nothing: no domain, no work files, no image.
. "$(dirname "$0")/local-lib.sh"

start=$(date +%s)
local_build hang --iso "$media/installer-hang.iso" "${small[@]}" --timeout 8 &&
	fail "the build of a hanging installer succeeded"
[ "$(field "$tmp/hang.json" state)" = failed ] || fail "state is not failed"
field "$tmp/hang.json" error | grep -q "timed out" || fail "reason: $(field "$tmp/hang.json" error)"
[ $(( $(date +%s) - start )) -lt 90 ] || fail "the timeout took too long"
assert_clean "$tmp/hang.json"
echo PASS
