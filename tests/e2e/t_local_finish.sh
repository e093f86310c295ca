#!/usr/bin/env bash
# t_local_finish.sh — `isoforge local finish BUILD_ID` ends an install that would not end by
# itself (interactive installs): ACPI shutdown, destroy after the grace period; the build then
# snapshots and registers the disk (state active, version 1), and nothing of it is left.
. "$(dirname "$0")/local-lib.sh"

"$isoforge" local build --out "$out" --json --iso "$media/installer-hang.iso" "${small[@]}" \
	--chain finished --finish-grace 3 --timeout 300 > "$tmp/finish.json" 2> "$tmp/finish.err" &
pid=$!
n=0
until id=$(sed -n 's/^build \([0-9a-f-]*\):.*/\1/p' "$tmp/finish.err") && [ -n "$id" ] &&
    [ "$(virsh domstate "isoforge-$id" 2>/dev/null)" = running ]; do
	n=$((n + 1))
	[ $n -lt 1200 ] || { kill -KILL $pid; fail "the install did not start"; }
	kill -0 $pid 2>/dev/null || { cat "$tmp/finish.err"; fail "the build ended early"; }
	sleep 0.1
done
"$isoforge" local finish "$id" --out "$out" || fail "isoforge local finish"
wait $pid
rc=$?
sed "s/^/  [finish] /" "$tmp/finish.err"
[ $rc = 0 ] || fail "exit status $rc"
[ "$(field "$tmp/finish.json" state)" = active ] || fail "state is not active"
[ "$(field "$tmp/finish.json" version)" = 1 ] || fail "version"
[ -f "$(field "$tmp/finish.json" image)" ] || fail "no image"
virsh dominfo "isoforge-$id" >/dev/null 2>&1 && fail "domain left behind"
[ -z "$(ls -A "$out/.work")" ] || fail "work files left"
"$isoforge" local finish "$id" --out "$out" 2>/dev/null && fail "finish of an ended build succeeded"
echo PASS
