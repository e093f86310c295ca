#!/usr/bin/env bash
# t_local_cancel.sh — SIGTERM (and SIGINT) to `isoforge local build` mid-install cancels it
# cleanly: state cancelled, exit 1, no domain, no work files, no image; and so does
# `isoforge local cancel BUILD_ID`. A SIGKILLed build's guest does not outlive it either.
. "$(dirname "$0")/local-lib.sh"

cancel_with() {
	local sig=$1 name=cancel-$1 pid n=0
	"$isoforge" local build --out "$out" --json --iso "$media/installer-hang.iso" "${small[@]}" \
		--timeout 300 > "$tmp/$name.json" 2> "$tmp/$name.err" &
	pid=$!
	# wait until the install runs (its domain is up)
	until grep -q "installing" "$tmp/$name.err" &&
	    id=$(sed -n 's/^build \([0-9a-f-]*\):.*/\1/p' "$tmp/$name.err") && [ -n "$id" ] &&
	    [ "$(virsh domstate "isoforge-$id" 2>/dev/null)" = running ]; do
		n=$((n + 1))
		[ $n -lt 1200 ] || { kill -KILL $pid; fail "the install did not start"; }
		kill -0 $pid 2>/dev/null || { cat "$tmp/$name.err"; fail "the build ended early"; }
		sleep 0.1
	done
	sleep 1
	if [ "$sig" = KILL ]; then
		# no clean-up possible: libvirtd must still destroy the guest with the connection
		kill -KILL $pid
		wait $pid
		n=0
		while [ "$(virsh domstate "isoforge-$id" 2>/dev/null)" = running ]; do
			n=$((n + 1))
			[ $n -lt 100 ] || fail "the guest outlived its killed build"
			sleep 0.1
		done
		virsh undefine "isoforge-$id" >/dev/null 2>&1
		rm -rf "$out/.work"/*
		return 0
	fi
	if [ "$sig" = CMD ]; then
		"$isoforge" local cancel "$id" --out "$out" || fail "isoforge local cancel $id"
	else
		kill -"$sig" $pid
	fi
	wait $pid
	local rc=$?
	sed "s/^/  [$name] /" "$tmp/$name.err"
	[ $rc = 1 ] || fail "exit status $rc after SIG$sig"
	[ "$(field "$tmp/$name.json" state)" = cancelled ] || fail "state is not cancelled after SIG$sig"
	assert_clean "$tmp/$name.json"
}
cancel_with TERM
cancel_with INT
cancel_with CMD		# isoforge local cancel BUILD_ID, from another process
cancel_with KILL	# no chance to clean up: the guest still goes (autodestroy)
echo PASS
