#!/usr/bin/env bash
# t_isoboot_libvirt.sh — the domain XML of every golden isoboot case is accepted and started
# by the real libvirtd + qemu (TCG), with its disks in the planned order; then destroyed.
# virt-xml-validate (the golden test) checks the schema; this checks what libvirt itself
# rejects: buses a machine lacks, OVMF/Secure Boot selection, swtpm for the TPM.
set -u
top=${ISOFORGE_TOP:?}
uri=${ISOFORGE_LIBVIRT_URI:?}
bin=${ISOFORGE_BIN:?}/isoforge
tmp=${TEST_TMP:?}
export ISOFORGE_TEMPLATES=$top/templates
cd "$top" || exit 1

virsh() { command virsh -q -c "$uri" "$@"; }
failed=0 n=0
for dir in tests/golden/isoboot/*/; do
	dir=${dir%/}
	name=${dir##*/}
	[ -f "$dir/expected.xml" ] || continue
	# an unattended build's answer media are made by the build (plan writes nothing):
	# the local builds of t_local_unattended.sh start such domains
	jq -e '.install.mode == "unattended"' "$dir/request.json" >/dev/null && continue
	n=$((n + 1))
	args=() skip=
	while IFS= read -r line; do
		# the cases' networks and bridges do not exist here: no NIC (--guest-network none
		# below); t_guest_network.sh starts guests on the isolated network
		if [ -n "$skip" ]; then skip=; continue; fi
		if [ "$line" = --network ] || [ "$line" = --guest-network ]; then skip=1; continue; fi
		[ -z "$line" ] || [ "${line:0:1}" = "#" ] || args+=("$line")
	done < "$dir/args"
	work=$tmp/$name
	mkdir -p "$work"
	qemu-img create -q -f qcow2 "$work/root.qcow2" 1G || exit 1
	# last options win: a private work dir, TCG, little RAM; one build id per case
	if ! "$bin" plan "$dir/request.json" "${args[@]}" --work-dir "$work" \
	    --build-id "t-$name" --domain-type qemu --ram 256 --guest-network none \
	    > "$work/domain.xml"; then
		echo "FAIL $name: isoforge plan failed"; failed=$((failed + 1)); continue
	fi
	dom=isoforge-t-$name
	if ! virsh define "$work/domain.xml" > "$work/define.out" 2>&1; then
		echo "FAIL $name: libvirt does not define it:"; cat "$work/define.out"
		failed=$((failed + 1)); continue
	fi
	if ! virsh start "$dom" > "$work/start.out" 2>&1; then
		echo "FAIL $name: libvirt does not start it:"; cat "$work/start.out"
		virsh undefine --nvram "$dom" >/dev/null 2>&1
		failed=$((failed + 1)); continue
	fi
	state=$(virsh domstate "$dom")
	want=$(grep -o '<target dev="[a-z]*"' "$work/domain.xml" | tr -d '"' | sed 's/.*=//' | tr '\n' ' ')
	got=$(virsh dumpxml "$dom" | grep -o "<target dev='[a-z]*'" | tr -d "'" | sed 's/.*=//' | tr '\n' ' ')
	virsh destroy "$dom" >/dev/null 2>&1
	virsh undefine --nvram "$dom" >/dev/null 2>&1
	if [ "$state" != running ]; then
		echo "FAIL $name: state '$state' after start, not running"; failed=$((failed + 1)); continue
	fi
	if [ "$want" != "$got" ]; then
		echo "FAIL $name: libvirt's disks '$got', planned '$want'"; failed=$((failed + 1)); continue
	fi
	echo "ok   $name: $got"
done
[ $n -gt 0 ] || { echo "no golden cases with expected.xml"; exit 1; }
echo "$((n - failed)) of $n domains defined and started"
[ $failed = 0 ]
