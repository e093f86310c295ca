#!/usr/bin/env bash
# t_api_tokens.sh — token rules: an expired token is 401; with a valid X-Service-Token that has
# the service role it may still read and act (a service finishing what a user started), but
# never create a build (trusts are made from fresh tokens only); a service token without the
# service role, or a bad one, is 401; an unscoped token is 403; a token revoked in Keystone is
# refused once the cache's ttl is over (token_cache_ttl = 2 here), and at once without a cache.
set -u
. "$(dirname "$0")/lib.sh"
mc=$ISOFORGE_TOP/tests/cloud/minicloud
trap 'api_stop; api_cleanup_bus' EXIT
sed -i 's/^max_depth = 8$/&\ntoken_cache_ttl = 2/' "$conf"
api_start

iso=$(cat /proc/sys/kernel/random/uuid)
expect 202 POST /v1/builds "$alice" "$(build_body "$iso" t-tokens)"
id=$(jq -r .build.id "$TEST_TMP/out")
expired=$("$mc" expire-token "$MINICLOUD_DIR" "$alice" 60) || fail "expire-token"
[ -n "$expired" ] || fail "no expired token"
svc=$(token "$ISOFORGE_SERVICE_USERNAME" "$ISOFORGE_SERVICE_PASSWORD" "$ISOFORGE_SERVICE_PROJECT_NAME")

expect 401 GET "/v1/builds/$id" "$expired"
CALL_HEADERS=(-H "X-Service-Token: $svc")
expect 200 GET "/v1/builds/$id" "$expired"
expect 401 POST /v1/builds "$expired" "$(build_body "$iso" t-tokens-2)"
CALL_HEADERS=(-H "X-Service-Token: $bob")
expect 401 GET "/v1/builds/$id" "$expired"
jq -e '.errors[0].detail | test("service role")' "$TEST_TMP/out" >/dev/null ||
	fail "bob as a service: $(cat "$TEST_TMP/out")"
CALL_HEADERS=(-H "X-Service-Token: not-a-token")
expect 401 GET "/v1/builds/$id" "$expired"
CALL_HEADERS=()

# an unscoped token: who, but not in which project
unscoped=$(curl -s -D - -o /dev/null -H 'Content-Type: application/json' -d "$(jq -n \
	--arg u "$OS_USERNAME" --arg p "$OS_PASSWORD" '{auth: {identity: {methods: ["password"],
	password: {user: {name: $u, domain: {name: "Default"}, password: $p}}}, scope: "unscoped"}}')" \
	"$OS_AUTH_URL/auth/tokens" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-subject-token" {print $2}')
expect 403 GET /v1/builds "$unscoped"

# revoked in Keystone: the cached validation ends with its ttl
fresh=$(token "$OS_USERNAME" "$OS_PASSWORD" "$OS_PROJECT_NAME")
expect 200 GET "/v1/builds/$id" "$fresh"
curl -s -X DELETE -H "X-Auth-Token: $admin" -H "X-Subject-Token: $fresh" "$OS_AUTH_URL/auth/tokens" \
	-o /dev/null -w '%{http_code}' | grep -q 204 || fail "revoke"
sleep 2.5
expect 401 GET "/v1/builds/$id" "$fresh"
api_stop
echo ok
