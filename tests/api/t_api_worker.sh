#!/usr/bin/env bash
# t_api_worker.sh — a build through isoforge-api taken by a real worker (isoforged on libvirt's
# in-process test driver: nothing runs, the states are real): the API's view follows the
# worker's events (resolving … installing with the worker's name; no console on the test
# driver, so remote-console is 409), the cancel action reaches the worker through build.control (v2, no
# token), the build ends cancelled in the view and its trust is deleted by the worker.
set -u
. "$(dirname "$0")/lib.sh"
os=/usr/bin/openstack
wpid= iso=
cleanup() {
	api_stop
	[ -n "$wpid" ] && kill "$wpid" 2>/dev/null && wait "$wpid"
	[ -n "$iso" ] && $os image delete "$iso" >/dev/null 2>&1
	api_cleanup_bus
}
trap cleanup EXIT

wconf=$TEST_TMP/worker.conf
cat > "$wconf" <<CONF
[DEFAULT]
transport_url = $ISOFORGE_TRANSPORT_URL
heartbeat = 10
host = t-api-worker-$$
[keystone_authtoken]
auth_url = $OS_AUTH_URL
username = $ISOFORGE_SERVICE_USERNAME
password = "$ISOFORGE_SERVICE_PASSWORD"
project_name = $ISOFORGE_SERVICE_PROJECT_NAME
[libvirt]
uri = test:///default
domain_type = qemu
[builds]
work_dir = $TEST_TMP/work
cache_dir = $TEST_TMP/cache
max_builds = 2
CONF
head -c 1048576 /dev/urandom > "$TEST_TMP/fake.iso"
iso=$($os image create --disk-format iso --container-format bare --private \
	--file "$TEST_TMP/fake.iso" "t-api-iso-$$" -f value -c id) || fail "image create"

api_start
api_drain_requests	# nothing of earlier tests for this worker
"$bin/isoforged" -d -c "$wconf" 2> "$TEST_TMP/isoforged.log" &
wpid=$!
for i in $(seq 100); do grep -q "connected to RabbitMQ" "$TEST_TMP/isoforged.log" && break; sleep 0.2; done
grep -q "connected to RabbitMQ" "$TEST_TMP/isoforged.log" || fail "the worker did not connect"

alice_id=$(curl -s -H "X-Auth-Token: $alice" -H "X-Subject-Token: $alice" \
	"$OS_AUTH_URL/auth/tokens?nocatalog" | jq -r .token.user.id)
trusts() {
	curl -s -H "X-Auth-Token: $admin" "$OS_AUTH_URL/OS-TRUST/trusts?trustor_user_id=$alice_id" |
		jq '.trusts | length'
}
n0=$(trusts)
expect 202 POST /v1/builds "$alice" "$(build_body "$iso" t-api-worker)"
id=$(jq -r .build.id "$TEST_TMP/out")
[ "$(trusts)" = $((n0 + 1)) ] || fail "no trust made"

st=
for i in $(seq 300); do
	call GET "/v1/builds/$id" "$alice" > /dev/null
	st=$(jq -r .build.state "$TEST_TMP/out")
	case $st in installing|failed|cancelled|active) break;; esac
	sleep 0.2
done
[ "$st" = installing ] || { tail -n 20 "$TEST_TMP/isoforged.log"; fail "the build is $st, not installing: $(cat "$TEST_TMP/out")"; }
[ "$(jq -r .build.worker "$TEST_TMP/out")" = "t-api-worker-$$" ] || fail "worker: $(jq -r .build.worker "$TEST_TMP/out")"
# libvirt's test driver gives no VNC port: the worker says so, and so does the API
expect 409 POST "/v1/builds/$id/remote-console" "$alice" '{"remote_console": {"protocol": "vnc", "type": "novnc"}}'
expect 202 POST "/v1/builds/$id/action" "$alice" '{"cancel": null}'
for i in $(seq 300); do
	call GET "/v1/builds/$id" "$alice" > /dev/null
	st=$(jq -r .build.state "$TEST_TMP/out")
	case $st in failed|cancelled|active) break;; esac
	sleep 0.2
done
[ "$st" = cancelled ] || fail "after cancel the build is $st: $(cat "$TEST_TMP/out")"
expect 200 GET "/v1/builds/$id/events" "$alice"
for s in queued resolving fetching assembling installing cancelled; do
	jq -e --arg s "$s" '[.events[].state] | index($s) != null' "$TEST_TMP/out" >/dev/null ||
		fail "no $s event in the view: $(cat "$TEST_TMP/out")"
done
for i in $(seq 100); do [ "$(trusts)" = "$n0" ] && break; sleep 0.2; done
[ "$(trusts)" = "$n0" ] || fail "the build's trust is left after it ended"
expect 409 POST "/v1/builds/$id/action" "$alice" '{"finish": null}'
grep -qF "$alice" "$TEST_TMP/isoforged.log" "$TEST_TMP/api.log" && fail "a token in a log"
api_stop
echo ok
