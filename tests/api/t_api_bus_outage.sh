#!/usr/bin/env bash
# t_api_bus_outage.sh — RabbitMQ goes away: isoforge-api keeps answering from its view, a POST
# answers 503 and deletes the trust it made (nothing half-started), an action answers 503; when
# RabbitMQ is back the API reconnects by itself (backoff) and builds are accepted again, and
# events published meanwhile reach the view (its queue is durable); its queue deleted under it is
# declared again.
set -u
. "$(dirname "$0")/lib.sh"
mc=$ISOFORGE_TOP/tests/cloud/minicloud
trap 'api_stop; "$mc" start-service "$MINICLOUD_DIR" rabbitmq >/dev/null 2>&1; api_cleanup_bus' EXIT
api_start

iso=$(cat /proc/sys/kernel/random/uuid)
alice_id=$(curl -s -H "X-Auth-Token: $alice" -H "X-Subject-Token: $alice" \
	"$OS_AUTH_URL/auth/tokens?nocatalog" | jq -r .token.user.id)
trusts() {
	curl -s -H "X-Auth-Token: $admin" "$OS_AUTH_URL/OS-TRUST/trusts?trustor_user_id=$alice_id" |
		jq '.trusts | length'
}
expect 202 POST /v1/builds "$alice" "$(build_body "$iso" t-outage-1)"
id=$(jq -r .build.id "$TEST_TMP/out")
n0=$(trusts)

"$mc" stop-service "$MINICLOUD_DIR" rabbitmq > "$TEST_TMP/stop.log" 2>&1 || fail "stop rabbitmq: $(cat "$TEST_TMP/stop.log")"
for i in $(seq 100); do grep -q "connecting again" "$TEST_TMP/api.log" && break; sleep 0.1; done
grep -q "connecting again" "$TEST_TMP/api.log" || fail "the API did not notice RabbitMQ leaving"

# the view answers meanwhile
expect 200 GET "/v1/builds/$id" "$alice"
expect 200 GET /v1/builds "$alice"
# a build cannot be queued: 503, and its trust is gone again
expect 503 POST /v1/builds "$alice" "$(build_body "$iso" t-outage-2)"
jq -e '.errors[0].code == "image-build.bus_unavailable"' "$TEST_TMP/out" >/dev/null ||
	fail "503 body: $(cat "$TEST_TMP/out")"
[ "$(trusts)" = "$n0" ] || fail "the trust of a build that was not queued is left: $(trusts), had $n0"
expect 503 POST "/v1/builds/$id/action" "$alice" '{"cancel": null}'
api_alive() { kill -0 "$apipid" 2>/dev/null || fail "isoforge-api exited"; }
api_alive

"$mc" start-service "$MINICLOUD_DIR" rabbitmq > "$TEST_TMP/start.log" 2>&1 || fail "start rabbitmq: $(cat "$TEST_TMP/start.log")"
# an event published while the API may still be away reaches the view through its queue
for i in $(seq 100); do
	amqp-publish --url="$amqp_url" -e isoforge.events -r "build.$id.failed" -b "$(jq -cn \
		--arg id "$id" '{schema: "isoforge.event/2", build_id: $id, state: "failed",
		progress: 0, message: "failed: t", time: (now | todate), console: null}')" \
		2>/dev/null && break
	sleep 0.3
done
for i in $(seq 200); do
	[ "$(call GET "/v1/builds/$id" "$alice")" = 200 ] &&
		[ "$(jq -r .build.state "$TEST_TMP/out")" = failed ] && break
	sleep 0.2
done
[ "$(jq -r .build.state "$TEST_TMP/out")" = failed ] || fail "the view missed the event: $(cat "$TEST_TMP/out")"
expect 202 POST /v1/builds "$alice" "$(build_body "$iso" t-outage-3)"
api_alive

# its queue deleted under it (an operator, a policy): the broker cancels the consumer, the API
# declares the queue again and goes on receiving
n=$(grep -c "events: consuming" "$TEST_TMP/api.log")
amqp-delete-queue --url="$amqp_url" -q "isoforge.api.$api_host" > /dev/null || fail "delete queue"
for i in $(seq 100); do [ "$(grep -c "events: consuming" "$TEST_TMP/api.log")" -gt "$n" ] && break; sleep 0.1; done
[ "$(grep -c "events: consuming" "$TEST_TMP/api.log")" -gt "$n" ] || fail "the API did not notice its queue deleted"
expect 202 POST /v1/builds "$alice" "$(build_body "$iso" t-outage-4)"
id4=$(jq -r .build.id "$TEST_TMP/out")
amqp-publish --url="$amqp_url" -e isoforge.events -r "build.$id4.resolving" -b "$(jq -cn \
	--arg id "$id4" '{schema: "isoforge.event/2", build_id: $id, state: "resolving",
	progress: 5, message: "resolving", time: (now | todate), console: null}')"
for i in $(seq 100); do
	call GET "/v1/builds/$id4" "$alice" > /dev/null
	[ "$(jq -r .build.state "$TEST_TMP/out")" = resolving ] && break
	sleep 0.1
done
[ "$(jq -r .build.state "$TEST_TMP/out")" = resolving ] || fail "no events after the queue came back"
api_stop
echo ok
