#!/usr/bin/env bash
# t_local_crash.sh — an installer that panics mid-install: the build fails with the reason
# (the guest crashed) and leaves nothing: no domain, no work files, no image.
# The panic reaches libvirt through a pvpanic device (<panic model='isa'/>) with on_crash
# destroy; a base domain template with one is used here.
. "$(dirname "$0")/local-lib.sh"

templates=$ISOFORGE_TOP/templates
mkdir -p "$tmp/templates"
cp -r "$templates/profiles" "$tmp/templates/"
if grep -q "<panic" "$templates/domain.xml"; then
	cp "$templates/domain.xml" "$tmp/templates/domain.xml"
else
	sed 's|<devices>|<devices>\n    <panic model='"'"'isa'"'"'/>|' "$templates/domain.xml" > "$tmp/templates/domain.xml"
fi

local_build crash --iso "$media/installer-crash.iso" "${small[@]}" --templates "$tmp/templates" \
	--timeout 240 && fail "the build of a crashing installer succeeded"
[ "$(field "$tmp/crash.json" state)" = failed ] || fail "state is not failed"
field "$tmp/crash.json" error | grep -qi crash || fail "reason does not say crash: $(field "$tmp/crash.json" error)"
assert_clean "$tmp/crash.json"
echo PASS
