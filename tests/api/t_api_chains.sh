#!/usr/bin/env bash
# t_api_chains.sh — GET /v1/chains and /v1/chains/{name} come from Glance as the user: the
# project's own images with isoforge_chain, versions in order with their parents; another
# project's chain images are not seen; a chain with no image of the project is 404.
set -u
. "$(dirname "$0")/lib.sh"
imgs=()
cleanup() {
	api_stop
	for i in "${imgs[@]}"; do
		curl -s -X DELETE -H "X-Auth-Token: $admin" "$GLANCE_URL/v2/images/$i" -o /dev/null
	done
	api_cleanup_bus
}
trap cleanup EXIT
api_start

chain=t-chain-$$
# image TOKEN VERSION [PARENT] — a chain image (no data needed) of the token's project
image() {
	local id
	id=$(curl -s -H "X-Auth-Token: $1" -H 'Content-Type: application/json' -d "$(jq -cn \
		--arg c "$chain" --arg v "$2" --arg p "${3:-}" '{name: ($c + "-v" + $v),
		disk_format: "qcow2", container_format: "bare", isoforge_chain: $c,
		isoforge_version: $v} + (if $p == "" then {} else {isoforge_parent: $p} end)')" \
		"$GLANCE_URL/v2/images" | jq -r .id)
	[ -n "$id" ] && [ "$id" != null ] || fail "image create"
	imgs+=("$id")
	echo "$id"
}
v1=$(image "$alice" 1); imgs+=("$v1")
v2=$(image "$alice" 2 "$v1"); imgs+=("$v2")
b1=$(image "$bob" 7); imgs+=("$b1")

expect 200 GET /v1/chains "$alice"
jq -e --arg c "$chain" --arg v2 "$v2" '.chains | map(select(.name == $c)) | length == 1 and
	(.[0] | .versions == 2 and .latest_version == 2 and .latest_image == $v2)' "$TEST_TMP/out" \
	>/dev/null || fail "chains: $(cat "$TEST_TMP/out")"
expect 200 GET "/v1/chains/$chain" "$alice"
jq -e --arg v1 "$v1" --arg v2 "$v2" '.chain.versions | length == 2 and .[0].version == 1 and
	.[0].image_id == $v1 and .[0].parent == null and .[1].version == 2 and
	.[1].image_id == $v2 and .[1].parent == $v1' "$TEST_TMP/out" >/dev/null ||
	fail "chain: $(cat "$TEST_TMP/out")"
# bob sees only his own version 7
expect 200 GET "/v1/chains/$chain" "$bob"
jq -e --arg b "$b1" '.chain.versions | length == 1 and .[0].image_id == $b' "$TEST_TMP/out" \
	>/dev/null || fail "bob's chain: $(cat "$TEST_TMP/out")"
expect 404 GET "/v1/chains/nothing-$$" "$alice"
expect 200 GET /v1/chains "$carol"
expect 401 GET /v1/chains ""
api_stop
echo ok
