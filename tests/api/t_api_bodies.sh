#!/usr/bin/env bash
# t_api_bodies.sh — bad bodies of POST /v1/builds are refused before anything happens (no trust,
# nothing on the bus), each with the reason of the worker's own request validator: malformed
# JSON, too big (413, also when the length is not declared), too deep, unknown fields (also a
# token or trust_id a user tries to slip in), a missing flavor, bad values; a non-JSON
# Content-Type (415).
set -u
. "$(dirname "$0")/lib.sh"
trap 'api_stop; api_cleanup_bus' EXIT
api_start

iso=$(cat /proc/sys/kernel/random/uuid)
alice_id=$(curl -s -H "X-Auth-Token: $alice" -H "X-Subject-Token: $alice" \
	"$OS_AUTH_URL/auth/tokens?nocatalog" | jq -r .token.user.id)
trusts() {
	curl -s -H "X-Auth-Token: $admin" "$OS_AUTH_URL/OS-TRUST/trusts?trustor_user_id=$alice_id" |
		jq '.trusts | length'
}
n0=$(trusts)

# bad BODY STATUS DETAIL-REGEX — posts BODY, wants STATUS and a detail matching the regex
bad() {
	expect "$2" POST /v1/builds "$alice" "$1"
	jq -e --arg re "$3" --argjson s "$2" '.errors[0] | .status == $s and (.detail | test($re))' \
		"$TEST_TMP/out" >/dev/null || fail "body $(head -c 80 <<<"$1"): $(cat "$TEST_TMP/out")"
	echo "refused $2: $(jq -r '.errors[0].detail' "$TEST_TMP/out" | head -c 120)"
}

good=$(build_body "$iso" t-bodies)
bad '{"build": {"name": "x",' 400 'not valid JSON'
bad '[1, 2]' 400 'must be a JSON object'
bad "{\"build\": {\"name\": \"$(head -c 5000 /dev/zero | tr '\0' x)\"}}" 413 'larger than 4096 bytes'
deep=$(printf '{"a":%.0s' $(seq 9))1$(printf '}%.0s' $(seq 9))
bad "{\"build\": $deep}" 400 'nested deeper than 8'
bad "$(jq -c '.build.colour = "red"' <<<"$good")" 400 '^colour: unknown field'
bad "$(jq -c '.build.token = "gAAAAsecret"' <<<"$good")" 400 'token: unknown field'
bad "$(jq -c '.build.trust_id = "abc"' <<<"$good")" 400 'trust_id: unknown field'
bad "$(jq -c '.build.schema = "isoforge.build/1"' <<<"$good")" 400 'schema: unknown field'
bad "$(jq -c '.extra = 1' <<<"$good")" 400 '^extra: unknown field'
bad "$(jq -c 'del(.build.flavor)' <<<"$good")" 400 '^flavor: missing$'
bad "$(jq -c 'del(.build.name) | .build.os.type = "beos"' <<<"$good")" 400 \
	'name: missing; os.type: must be one of windows\|linux\|other'
bad "$(jq -c '.build.iso_image = "not-a-uuid"' <<<"$good")" 400 'iso_image: must be a UUID'
bad "$(jq -c '.build.install.timeout_s = 5' <<<"$good")" 400 'install.timeout_s: must be within'
bad '{"nobuild": {}}' 400 'nobuild: unknown field'
bad '{}' 400 'build: missing'
# a chunked body (no Content-Length) over the bound
head -c 6000 /dev/zero | tr '\0' ' ' > "$TEST_TMP/big"
st=$(curl -s -o "$TEST_TMP/out" -w '%{http_code}' -H "X-Auth-Token: $alice" \
	-H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' \
	--data-binary @"$TEST_TMP/big" "$api/v1/builds")
[ "$st" = 413 ] || fail "chunked big body: $st $(cat "$TEST_TMP/out")"
# another media type
st=$(curl -s -o "$TEST_TMP/out" -w '%{http_code}' -H "X-Auth-Token: $alice" \
	-H 'Content-Type: text/plain' --data-binary "$good" "$api/v1/builds")
[ "$st" = 415 ] || fail "text/plain: $st"

[ "$(trusts)" = "$n0" ] || fail "a refused body made a trust"
expect 200 GET "/v1/builds?name=t-bodies" "$alice"
[ "$(jq '.builds | length' "$TEST_TMP/out")" = 0 ] || fail "a refused body made a build"

# the good one passes
expect 202 POST /v1/builds "$alice" "$good"
[ "$(trusts)" = $((n0 + 1)) ] || fail "no trust for the good body"
api_stop
echo ok
