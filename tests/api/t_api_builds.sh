#!/usr/bin/env bash
# t_api_builds.sh — builds through isoforge-api: POST makes a Keystone trust from alice to
# isoforge's service user (impersonation, alpha, an expiry) and publishes an isoforge.build/2
# request with the trust id and no token, then the queued event; a queue bound to every
# exchange sees no token at all. Roles: carol (reader) reads but cannot post or act; bob (beta)
# gets 404 for alice's build; admin sees it with all_projects. Actions publish
# isoforge.control/2 (no token); terminal builds answer 409 to actions, can be forgotten
# (DELETE), running ones cannot; the view follows the events; remote-console mints a URL while
# installing. Paging with limit/marker/next links and sort.
set -u
. "$(dirname "$0")/lib.sh"
consumers=()
trap 'api_stop; for p in "${consumers[@]}"; do kill "$p" 2>/dev/null; done; api_cleanup_bus' EXIT

api_start
# everything published on isoforge's exchanges, one message per line
for ex in isoforge isoforge.events isoforge.dlx; do
	amqp-consume --url="$amqp_url" -e "$ex" -r '#' -A -- sh -c 'cat; echo' \
		>> "$TEST_TMP/bus.$ex" 2>> "$TEST_TMP/consume.log" &
	consumers+=($!)
done
sleep 1

uid() { curl -s -H "X-Auth-Token: $1" -H "X-Subject-Token: $1" "$OS_AUTH_URL/auth/tokens?nocatalog" | jq -r "$2"; }
alice_id=$(uid "$alice" .token.user.id)
alpha_id=$(uid "$alice" .token.project.id)
svc=$(token "$ISOFORGE_SERVICE_USERNAME" "$ISOFORGE_SERVICE_PASSWORD" "$ISOFORGE_SERVICE_PROJECT_NAME")
isoforge_id=$(uid "$svc" .token.user.id)
iso=$(cat /proc/sys/kernel/random/uuid)
trusts() {
	curl -s -H "X-Auth-Token: $admin" "$OS_AUTH_URL/OS-TRUST/trusts?trustor_user_id=$alice_id" |
		jq -c '.trusts'
}
ntrusts0=$(trusts | jq length)

# 1. POST as alice
expect 202 POST /v1/builds "$alice" "$(build_body "$iso" t-api-one)"
id=$(jq -r .build.id "$TEST_TMP/out")
[ "$(header Location)" = "$api/v1/builds/$id" ] || fail "Location: $(header Location)"
jq -e --arg p "$alpha_id" --arg u "$alice_id" --arg iso "$iso" '.build | .state == "queued" and
	.name == "t-api-one" and .project_id == $p and .user_id == $u and .iso_image == $iso and
	.chain == "t-api-one" and .install.timeout_s == 600 and .os.type == "linux" and
	.links[0].href == ("'"$api"'/v1/builds/" + .id)' "$TEST_TMP/out" >/dev/null ||
	fail "POST answer: $(cat "$TEST_TMP/out")"
expect 200 GET "/v1/builds/$id" "$alice"
jq -e '.build.state == "queued"' "$TEST_TMP/out" >/dev/null || fail "GET: $(cat "$TEST_TMP/out")"
expect 200 GET "/v1/builds/$id/events" "$alice"
jq -e '.events | length >= 1 and .[0].state == "queued"' "$TEST_TMP/out" >/dev/null ||
	fail "events: $(cat "$TEST_TMP/out")"

# the trust: alice → isoforge, impersonation, on alpha, expiring
t=$(trusts)
[ "$(jq length <<<"$t")" = $((ntrusts0 + 1)) ] || fail "trusts of alice: $t (had $ntrusts0)"
jq -e --arg s "$isoforge_id" --arg p "$alpha_id" 'map(select(.trustee_user_id == $s and
	.impersonation == true and .project_id == $p and .expires_at != null)) | length >= 1' \
	<<<"$t" >/dev/null || fail "the trust is not what it should be: $t"

# the request on the bus: v2, the trust id, no token
for i in $(seq 50); do grep -q "$id" "$TEST_TMP/bus.isoforge" 2>/dev/null && break; sleep 0.1; done
req=$(grep "$id" "$TEST_TMP/bus.isoforge" | head -n 1)
[ -n "$req" ] || fail "no request on the bus"
jq -e --arg id "$id" '.schema == "isoforge.build/2" and .build_id == $id and
	(.trust_id | type == "string") and (has("token") | not) and .flavor != null' <<<"$req" \
	>/dev/null || fail "the request on the bus: $req"
tid=$(jq -r .trust_id <<<"$req")
jq -e --arg t "$tid" 'map(select(.id == $t)) | length == 1' <<<"$t" >/dev/null ||
	fail "the request's trust $tid is not alice's"
for i in $(seq 50); do grep -q "\"queued\"" "$TEST_TMP/bus.isoforge.events" 2>/dev/null && break; sleep 0.1; done
ev=$(grep "$id" "$TEST_TMP/bus.isoforge.events" | head -n 1)
jq -e --arg id "$id" '.schema == "isoforge.event/2" and .build_id == $id and .state == "queued"
	and .build.name == "t-api-one" and .build.user_id != null and (.build.install | has("answers") | not)' \
	<<<"$ev" >/dev/null || fail "the queued event: $ev"

# 2. roles: carol (reader) reads, cannot post or act
expect 200 GET "/v1/builds/$id" "$carol"
expect 403 POST /v1/builds "$carol" "$(build_body "$iso" t-api-carol)"
jq -e '.errors[0].code == "image-build.forbidden"' "$TEST_TMP/out" >/dev/null || fail "403 body"
expect 403 POST "/v1/builds/$id/action" "$carol" '{"cancel": null}'
expect 403 DELETE "/v1/builds/$id" "$carol"
# bob (beta): 404, never 403; his list does not show it
expect 404 GET "/v1/builds/$id" "$bob"
expect 404 GET "/v1/builds/$id/events" "$bob"
expect 404 POST "/v1/builds/$id/action" "$bob" '{"cancel": null}'
expect 404 DELETE "/v1/builds/$id" "$bob"
expect 200 GET /v1/builds "$bob"
jq -e --arg id "$id" '.builds | map(select(.id == $id)) | length == 0' "$TEST_TMP/out" >/dev/null ||
	fail "bob lists alice's build"
# all_projects: admins only
expect 403 GET "/v1/builds?all_projects=1" "$alice"
expect 200 GET "/v1/builds?all_projects=1" "$admin"
jq -e --arg id "$id" '.builds | map(select(.id == $id)) | length == 1' "$TEST_TMP/out" >/dev/null ||
	fail "admin's all_projects misses the build"

# 3. actions: cancel publishes isoforge.control/2 without a token
expect 202 POST "/v1/builds/$id/action" "$alice" '{"cancel": null}'
for i in $(seq 50); do grep -q '"action"' "$TEST_TMP/bus.isoforge" && break; sleep 0.1; done
ctl=$(grep '"action"' "$TEST_TMP/bus.isoforge" | head -n 1)
jq -e --arg id "$id" '. == {"schema": "isoforge.control/2", "action": "cancel", "build_id": $id}' \
	<<<"$ctl" >/dev/null || fail "control message: $ctl"
expect 400 POST "/v1/builds/$id/action" "$alice" '{"explode": null}'
expect 409 DELETE "/v1/builds/$id" "$alice"
# a console only while installing: the worker's events tell the view
pub_event() {	# ID STATE [CONSOLE-JSON]
	amqp-publish --url="$amqp_url" -e isoforge.events -r "build.$1.$2" -b "$(jq -cn \
		--arg id "$1" --arg s "$2" --argjson c "${3:-null}" --arg p "$alpha_id" \
		'{schema: "isoforge.event/2", build_id: $id, state: $s, progress: 50,
		  message: ("now " + $s), image_id: null, version: null, project_id: $p,
		  worker: "t-worker", time: (now | todate), console: $c}')"
}
wait_state() {	# ID STATE
	for i in $(seq 100); do
		[ "$(call GET "/v1/builds/$1" "$alice")" = 200 ] &&
			[ "$(jq -r .build.state "$TEST_TMP/out")" = "$2" ] && return 0
		sleep 0.1
	done
	fail "build $1 never became $2: $(cat "$TEST_TMP/out")"
}
expect 409 POST "/v1/builds/$id/remote-console" "$alice" '{"remote_console": {"protocol": "vnc", "type": "novnc"}}'
pub_event "$id" installing '{"host": "127.0.0.1", "port": 5901}'
wait_state "$id" installing
[ "$(jq -r .build.worker "$TEST_TMP/out")" = t-worker ] || fail "worker not in the view"
expect 200 POST "/v1/builds/$id/remote-console" "$alice" '{"remote_console": {"protocol": "vnc", "type": "novnc"}}'
jq -e '.remote_console | .protocol == "vnc" and .type == "novnc" and
	(.url | test("vnc_lite.html\\?path=websockify%3Ftoken%3D.+")) and .expires_at != null' \
	"$TEST_TMP/out" >/dev/null || fail "remote-console: $(cat "$TEST_TMP/out")"
expect 404 POST "/v1/builds/$id/remote-console" "$bob" '{"remote_console": {"protocol": "vnc", "type": "novnc"}}'
pub_event "$id" cancelled
wait_state "$id" cancelled
# a late event does not bring a terminal build back
pub_event "$id" installing '{"host": "127.0.0.1", "port": 5901}'
sleep 0.5
expect 200 GET "/v1/builds/$id" "$alice"
[ "$(jq -r .build.state "$TEST_TMP/out")" = cancelled ] || fail "a late event revived the build"
expect 409 POST "/v1/builds/$id/action" "$alice" '{"finish": null}'
expect 409 POST "/v1/builds/$id/remote-console" "$alice" '{"remote_console": {}}'
expect 200 GET "/v1/builds/$id/events" "$alice"
jq -e '[.events[].state] | index("installing") != null and index("cancelled") != null' \
	"$TEST_TMP/out" >/dev/null || fail "events: $(cat "$TEST_TMP/out")"
expect 204 DELETE "/v1/builds/$id" "$alice"
expect 404 GET "/v1/builds/$id" "$alice"

# 4. paging over five builds
ids=()
for n in c a e b d; do
	expect 202 POST /v1/builds "$alice" "$(build_body "$iso" "t-page-$n")"
	ids+=("$(jq -r .build.id "$TEST_TMP/out")")
done
seen=() path="/v1/builds?limit=2&sort=name:asc&chain=" pages=0
path="/v1/builds?limit=2&sort=name:asc"
while [ -n "$path" ]; do
	expect 200 GET "$path" "$alice"
	pages=$((pages + 1))
	[ "$(jq '.builds | length' "$TEST_TMP/out")" -le 2 ] || fail "limit=2 gave more"
	seen+=($(jq -r '.builds[].name' "$TEST_TMP/out"))
	next=$(jq -r '.builds_links[]? | select(.rel == "next") | .href' "$TEST_TMP/out")
	path=${next#"$api"}
	[ $pages -le 5 ] || fail "paging does not end"
done
[ "${seen[*]}" = "t-page-a t-page-b t-page-c t-page-d t-page-e" ] ||
	fail "pages in name order: ${seen[*]} ($pages pages)"
[ $pages = 3 ] || fail "$pages pages of 2 for 5 builds"
expect 200 GET "/v1/builds?sort=name:desc&limit=1" "$alice"
[ "$(jq -r '.builds[0].name' "$TEST_TMP/out")" = t-page-e ] || fail "sort=name:desc"
expect 200 GET "/v1/builds?name=t-page-b" "$alice"
[ "$(jq -r '[.builds[].name] | join(",")' "$TEST_TMP/out")" = t-page-b ] || fail "name filter"
expect 200 GET "/v1/builds?state=queued&limit=1000" "$alice"
[ "$(jq '.builds | length' "$TEST_TMP/out")" = 5 ] || fail "state filter: $(jq '.builds | length' "$TEST_TMP/out")"
jq -e 'has("builds_links") | not' "$TEST_TMP/out" >/dev/null || fail "a last page with a next link"
# (builds posted within one second share their created_at: ties go by id, so check the order)
expect 200 GET "/v1/builds?limit=1000" "$alice"
jq -e '[.builds[].created_at] | . == (sort | reverse) and length >= 5' "$TEST_TMP/out" >/dev/null ||
	fail "default sort is not created_at:desc"
expect 400 GET "/v1/builds?marker=$(cat /proc/sys/kernel/random/uuid)" "$alice"
expect 400 GET "/v1/builds?sort=password:asc" "$alice"
expect 400 GET "/v1/builds?limit=-1" "$alice"
# bob cannot use alice's build as a marker
expect 400 GET "/v1/builds?marker=${ids[0]}" "$bob"

# 5. nothing on any exchange carries a token or a password
sleep 0.5
for tok in "$alice" "$bob" "$carol" "$admin" "$ISOFORGE_SERVICE_PASSWORD" "$OS_PASSWORD"; do
	grep -qF "$tok" "$TEST_TMP"/bus.* && fail "a secret on the bus"
done
grep -q '"token"' "$TEST_TMP"/bus.* && fail "a token field on the bus"
[ "$(grep -c '"isoforge.build/2"' "$TEST_TMP/bus.isoforge")" = 6 ] ||
	fail "want 6 requests on the bus: $(grep -c . "$TEST_TMP/bus.isoforge")"
grep -qF "$alice" "$TEST_TMP/api.log" && fail "a token in the log"
api_stop
echo ok
