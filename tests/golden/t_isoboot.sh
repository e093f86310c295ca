#!/usr/bin/env bash
# t_isoboot.sh — golden tests of `isoforge plan` (isoboot: profile + flavor + media → domain XML).
#
# Each folder tests/golden/isoboot/CASE/ holds request.json and args (the options, one per
# line; lines starting with '#' are comments). The output is compared with
#   expected.xml  when the plan succeeds (and the XML must pass `virt-xml-validate FILE domain`)
#   expected.err  when it fails (stderr, then "exit N")
# The repository root in the output is written as @TOP@, so the files are the same everywhere.
# REGEN=1 rewrites the expected files: review the diff like code.
set -u
top=${ISOFORGE_TOP:?}
bin=${ISOFORGE_BIN:?}/isoforge
tmp=${TEST_TMP:-$(mktemp -d)}
cases=$top/tests/golden/isoboot
export ISOFORGE_TEMPLATES=$top/templates

command -v virt-xml-validate >/dev/null || { echo "virt-xml-validate missing (libvirt-clients)"; exit 1; }
cd "$top" || exit 1

failed=0 n=0
for dir in "$cases"/*/; do
	dir=${dir%/}
	name=${dir##*/}
	[ -f "$dir/args" ] || continue
	n=$((n + 1))
	args=()
	while IFS= read -r line; do
		[ -z "$line" ] || [ "${line:0:1}" = "#" ] || args+=("$line")
	done < "$dir/args"
	out=$tmp/$name.out err=$tmp/$name.err
	"$bin" plan "tests/golden/isoboot/$name/request.json" "${args[@]}" > "$out" 2> "$err"
	rc=$?
	if [ $rc = 0 ]; then
		got=$out want=$dir/expected.xml stale=$dir/expected.err
		if [ -s "$err" ]; then
			echo "FAIL $name: exit 0 but stderr:"; cat "$err"; failed=$((failed + 1)); continue
		fi
		if ! virt-xml-validate "$out" domain > "$tmp/$name.validate" 2>&1; then
			echo "FAIL $name: virt-xml-validate rejects the XML:"; cat "$tmp/$name.validate"
			failed=$((failed + 1)); continue
		fi
	else
		if [ -s "$out" ]; then
			echo "FAIL $name: exit $rc but stdout:"; head -5 "$out"; failed=$((failed + 1)); continue
		fi
		echo "exit $rc" >> "$err"
		got=$err want=$dir/expected.err stale=$dir/expected.xml
	fi
	# the checkout's location is not part of the result (after validation: paths are absolute)
	content=$(cat "$got"; printf x)
	content=${content%x}
	printf '%s' "${content//"$top"/@TOP@}" > "$got"
	if [ "${REGEN:-}" = 1 ]; then
		cp "$got" "$want"
		rm -f "$stale"
		echo "regenerated $name (${want##*/})"
		continue
	fi
	if [ ! -f "$want" ]; then
		echo "FAIL $name: no ${want##*/} (exit $rc); run REGEN=1 make check and review it"
		[ -f "$stale" ] && echo "  (there is a ${stale##*/}: the outcome changed)"
		failed=$((failed + 1)); continue
	fi
	if ! diff -u "$want" "$got"; then
		echo "FAIL $name: output differs from ${want##*/}"; failed=$((failed + 1)); continue
	fi
	echo "ok   $name"
done
[ $n -gt 0 ] || { echo "no cases in $cases"; exit 1; }
echo "$((n - failed)) of $n golden cases pass"
[ $failed = 0 ]
