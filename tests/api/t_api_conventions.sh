#!/usr/bin/env bash
# t_api_conventions.sh — isoforge-api follows OpenStack's API conventions: the version document
# (no token), microversions (1.0, latest; 406 outside; 400 for nonsense), a request id on every
# answer, {"errors": [...]} bodies, 401 with WWW-Authenticate without or with a bad token,
# 404/405 for unknown routes and methods, the catalog's image-build endpoint, -n masks secrets,
# SIGTERM stops it within a second, an idle API uses no CPU, its view is 0700/0600.
set -u
. "$(dirname "$0")/lib.sh"
trap 'api_stop; api_cleanup_bus' EXIT

# -n: the configuration, secrets masked
"$bin/isoforge-api" -n -c "$conf" > "$TEST_TMP/dump" 2>&1 || fail "-n: $(cat "$TEST_TMP/dump")"
grep -q "^bind_port = $ISOFORGE_API_PORT" "$TEST_TMP/dump" || fail "-n does not show bind_port"
grep -qF "$ISOFORGE_SERVICE_PASSWORD" "$TEST_TMP/dump" && fail "-n shows the password"
grep -qF "$RABBITMQ_PASS" "$TEST_TMP/dump" && fail "-n shows the broker password"

api_start
# the view is private: it names users and projects
[ "$(stat -c %a "$TEST_TMP/api-state")" = 700 ] || fail "state_dir is $(stat -c %a "$TEST_TMP/api-state")"
[ "$(stat -c %a "$TEST_TMP/api-state/builds.db")" = 600 ] || fail "builds.db is not 0600"

# the catalog names this endpoint as image-build
cat=$(curl -s -H "X-Auth-Token: $alice" -H "X-Subject-Token: $alice" "$OS_AUTH_URL/auth/tokens")
url=$(jq -r '.token.catalog[] | select(.type == "image-build") | .endpoints[] |
	select(.interface == "public") | .url' <<<"$cat")
[ "$url" = "$api" ] || fail "catalog's image-build endpoint is '$url', want $api"

# the version document, without a token
expect 200 GET / ""
jq -e --arg h "$api/v1/" '.versions[0] | .id == "v1.0" and .status == "CURRENT" and
	.min_version == "1.0" and .max_version == "1.0" and .links[0].href == $h' "$TEST_TMP/out" \
	>/dev/null || fail "version document: $(cat "$TEST_TMP/out")"
grep -Eq '^req-[0-9a-f-]{36}$' <<<"$(header x-openstack-request-id)" || fail "no request id on /"
expect 200 GET /v1/ ""
jq -e '.version.id == "v1.0"' "$TEST_TMP/out" >/dev/null || fail "/v1/: $(cat "$TEST_TMP/out")"
[ "$(header OpenStack-API-Version)" = "image-build 1.0" ] || fail "no OpenStack-API-Version"
grep -q OpenStack-API-Version <<<"$(header Vary)" || fail "no Vary: OpenStack-API-Version"

# 401 without a token and with a bad one: WWW-Authenticate, error body, request id
expect 401 GET /v1/builds ""
[ "$(header WWW-Authenticate)" = "Keystone uri=\"$OS_AUTH_URL\"" ] ||
	fail "401: WWW-Authenticate is '$(header WWW-Authenticate)'"
rid=$(header x-openstack-request-id)
jq -e --arg r "$rid" '.errors | length == 1 and (.[0] | .request_id == $r and .status == 401 and
	.code == "image-build.unauthorized" and .title == "Unauthorized" and
	(.detail | test("X-Auth-Token")))' "$TEST_TMP/out" >/dev/null ||
	fail "401 body: $(cat "$TEST_TMP/out")"
expect 401 GET /v1/builds "gAAAAABnot-a-token"
jq -e '.errors[0].detail | test("not valid")' "$TEST_TMP/out" >/dev/null ||
	fail "bad token: $(cat "$TEST_TMP/out")"
[ -n "$(header WWW-Authenticate)" ] || fail "bad token: no WWW-Authenticate"

# a good token
expect 200 GET /v1/builds "$alice"
jq -e '.builds | type == "array"' "$TEST_TMP/out" >/dev/null || fail "list: $(cat "$TEST_TMP/out")"

# microversions
CALL_HEADERS=(-H "OpenStack-API-Version: image-build 1.0")
expect 200 GET /v1/builds "$alice"
CALL_HEADERS=(-H "OpenStack-API-Version: image-build latest")
expect 200 GET /v1/builds "$alice"
[ "$(header OpenStack-API-Version)" = "image-build 1.0" ] || fail "latest is not 1.0"
CALL_HEADERS=(-H "OpenStack-API-Version: compute 2.90, image-build 1.0")
expect 200 GET /v1/builds "$alice"
for v in 1.1 2.0 0.9; do
	CALL_HEADERS=(-H "OpenStack-API-Version: image-build $v")
	expect 406 GET /v1/builds "$alice"
	jq -e '.errors[0] | .status == 406 and .code == "image-build.version_not_supported"' \
		"$TEST_TMP/out" >/dev/null || fail "406 body: $(cat "$TEST_TMP/out")"
	[ -n "$(header x-openstack-request-id)" ] || fail "no request id on a 406"
done
CALL_HEADERS=(-H "OpenStack-API-Version: image-build banana")
expect 400 GET /v1/builds "$alice"
CALL_HEADERS=()

# unknown routes and methods; a request id on each
expect 404 GET /v2/builds "$alice"
[ -n "$(header x-openstack-request-id)" ] || fail "no request id on a 404"
expect 404 GET /v1/builds/not-a-uuid "$alice"
expect 404 GET /v1/builds/$(cat /proc/sys/kernel/random/uuid) "$alice"
jq -e '.errors[0].code == "image-build.not_found"' "$TEST_TMP/out" >/dev/null || fail "404 body"
expect 405 PUT /v1/builds "$alice" '{}'
expect 200 GET /v1/profiles "$alice"
jq -e '.profiles | map(.name) | index("linux") != null' "$TEST_TMP/out" >/dev/null ||
	fail "profiles: $(cat "$TEST_TMP/out")"

# an idle API does not spend CPU: user+system ticks over 3 s
ticks() { awk '{print $14 + $15}' "/proc/$apipid/stat"; }
t0=$(ticks); sleep 3; t1=$(ticks)
[ $((t1 - t0)) -le 5 ] || fail "idle API used $((t1 - t0)) ticks in 3 s"

grep -qF "$alice" "$TEST_TMP/api.log" && fail "a token in the log"
api_stop
echo ok
