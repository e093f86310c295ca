#!/usr/bin/env bash
# t_answers.sh — golden tests of the answer files (isoboot/answers.c via `isoforge plan --answers`):
# each template of templates/answers/ rendered for a reference request.
#
# Each folder tests/golden/answers/CASE/ holds request.json and args (the options, one per line;
# '#' lines are comments); `isoforge plan request.json ARGS --answers` must print expected.txt
# (or fail with expected.err: stderr, then "exit N"). Output that is XML (autounattend.xml) must
# be well-formed (xmllint) and have the passes Windows setup needs: windowsPE (with the virtio-win
# driver paths and the disk), specialize, oobeSystem (with the FirstLogonCommands ending in a
# shutdown). No unattend schema ships with Windows' ADK in a form we can fetch: see README.
# The repository root in the output is written as @TOP@. REGEN=1 rewrites the expected files.
set -u
top=${ISOFORGE_TOP:?}
bin=${ISOFORGE_BIN:?}/isoforge
tmp=${TEST_TMP:-$(mktemp -d)}
cases=$top/tests/golden/answers
export ISOFORGE_TEMPLATES=$top/templates

command -v xmllint >/dev/null || { echo "xmllint missing (libxml2-utils)"; exit 1; }
cd "$top" || exit 1

# The passes and elements an autounattend.xml must have (XPath, namespace-agnostic).
xml_checks() {
	local f=$1 x n
	for x in \
	    "//*[local-name()='settings'][@pass='windowsPE']//*[local-name()='DriverPaths']/*[local-name()='PathAndCredentials']" \
	    "//*[local-name()='settings'][@pass='windowsPE']//*[local-name()='DiskConfiguration']" \
	    "//*[local-name()='settings'][@pass='windowsPE']//*[local-name()='ImageInstall']" \
	    "//*[local-name()='settings'][@pass='specialize']//*[local-name()='ComputerName']" \
	    "//*[local-name()='settings'][@pass='oobeSystem']//*[local-name()='AdministratorPassword']" \
	    "//*[local-name()='settings'][@pass='oobeSystem']//*[local-name()='FirstLogonCommands']/*[local-name()='SynchronousCommand']/*[local-name()='CommandLine'][contains(., 'sshd')]" \
	    "//*[local-name()='settings'][@pass='oobeSystem']//*[local-name()='FirstLogonCommands']/*[local-name()='SynchronousCommand'][last()]/*[local-name()='CommandLine'][starts-with(., 'shutdown /s')]"; do
		n=$(xmllint --xpath "count($x)" "$f" 2>/dev/null)
		if [ "${n:-0}" = 0 ]; then echo "missing: $x"; return 1; fi
	done
	# no template control attribute or namespace survives
	if grep -q 'isoforge.dev/xmlns/answers\|isoforge:\(if\|unless\|each\)\|{{' "$f"; then
		echo "template syntax left in the output"; return 1
	fi
}

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
	"$bin" plan "tests/golden/answers/$name/request.json" "${args[@]}" --answers > "$out" 2> "$err"
	rc=$?
	if [ $rc = 0 ]; then
		got=$out want=$dir/expected.txt stale=$dir/expected.err
		if [ -s "$err" ]; then
			echo "FAIL $name: exit 0 but stderr:"; cat "$err"; failed=$((failed + 1)); continue
		fi
		if head -c 100 "$out" | grep -q '^<?xml'; then
			if ! xmllint --noout "$out" 2> "$tmp/$name.xmllint"; then
				echo "FAIL $name: not well-formed XML:"; cat "$tmp/$name.xmllint"
				failed=$((failed + 1)); continue
			fi
			if ! msg=$(xml_checks "$out"); then
				echo "FAIL $name: autounattend.xml: $msg"; failed=$((failed + 1)); continue
			fi
		fi
	else
		if [ -s "$out" ]; then
			echo "FAIL $name: exit $rc but stdout:"; head -5 "$out"; failed=$((failed + 1)); continue
		fi
		echo "exit $rc" >> "$err"
		got=$err want=$dir/expected.err stale=$dir/expected.txt
	fi
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
		echo "FAIL $name: no ${want##*/} (exit $rc); run REGEN=1 tests/run t_answers and review it"
		failed=$((failed + 1)); continue
	fi
	if ! diff -u "$want" "$got"; then
		echo "FAIL $name: output differs from ${want##*/}"; failed=$((failed + 1)); continue
	fi
	echo "ok   $name"
done
[ $n -gt 0 ] || { echo "no cases in $cases"; exit 1; }
echo "$((n - failed)) of $n golden answer cases pass"
[ $failed = 0 ]
