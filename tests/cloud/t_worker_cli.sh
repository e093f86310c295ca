#!/usr/bin/env bash
# t_worker_cli.sh — the CLI, isoforge-api and a worker against the minicloud: the CLI finds the
# API in the catalog with the user's OS_* (no broker credentials anywhere in its environment);
# `isoforge build --wait --json` goes queued → resolving → fetching (the ISO lands in the
# cache, verified) → assembling → installing on libvirt's test driver, where it is cancelled;
# ISOs that are not ISOs or not visible to the requester's project fail at resolving with
# the reason; status/list answer only the build's own project; each build's Keystone trust
# (the API makes it, contract v2) is deleted when the build ends; errors are the API's detail;
# clouds.yaml (OS_CLOUD) works as the OS_* variables do.
set -u
[ -n "${ISOFORGE_TRANSPORT_URL:-}" ] && [ -n "${OS_AUTH_URL:-}" ] && [ -n "${ISOFORGE_API_PORT:-}" ] \
	|| { echo "no minicloud: skipped"; exit 77; }
bin=$ISOFORGE_BIN
os=/usr/bin/openstack
api_url=${ISOFORGE_API_URL:-http://127.0.0.1:$ISOFORGE_API_PORT}
api_host=t-cli-api-$$
fail() {
	echo "FAIL: $*"
	[ -f "$TEST_TMP/isoforged.log" ] && tail -n 30 "$TEST_TMP/isoforged.log"
	[ -f "$TEST_TMP/api.log" ] && { echo "-- isoforge-api:"; tail -n 20 "$TEST_TMP/api.log"; }
	exit 1
}
# the CLI as a user runs it: no broker URL, the API from the catalog
cli() { env -u ISOFORGE_TRANSPORT_URL -u ISOFORGE_API_URL -u RABBITMQ_PASS "$bin/isoforge" "$@"; }
# ks_auth USER PASSWORD PROJECT — "TOKEN USER_ID" of a Keystone login (curl)
ks_auth() {
	local b
	b=$(jq -n --arg u "$1" --arg p "$2" --arg pr "$3" '{auth: {identity: {methods: ["password"],
		password: {user: {name: $u, domain: {name: "Default"}, password: $p}}},
		scope: {project: {name: $pr, domain: {name: "Default"}}}}}' |
		curl -s -D "$TEST_TMP/ks.h" -H 'Content-Type: application/json' -d @- "$OS_AUTH_URL/auth/tokens")
	echo "$(awk 'tolower($1) == "x-subject-token:" {print $2}' "$TEST_TMP/ks.h" | tr -d '\r')" \
		"$(jq -r .token.user.id <<<"$b")"
}
export ISOFORGE_TRUSTEE_USER_ID=$(ks_auth "$ISOFORGE_SERVICE_USERNAME" "$ISOFORGE_SERVICE_PASSWORD" \
	"$ISOFORGE_SERVICE_PROJECT_NAME" | cut -d" " -f2)
alice_id=$(ks_auth "$OS_USERNAME" "$OS_PASSWORD" "$OS_PROJECT_NAME" | cut -d" " -f2)
# alice's trusts, asked as admin
alice_trusts() {
	curl -s -H "X-Auth-Token: $(ks_auth "$ADMIN_OS_USERNAME" "$ADMIN_OS_PASSWORD" \
		"$ADMIN_OS_PROJECT_NAME" | cut -d" " -f1)" \
		"$OS_AUTH_URL/OS-TRUST/trusts?trustor_user_id=$alice_id" | jq -r '.trusts[].id'
}
trusts_before=$(alice_trusts | sort)

conf=$TEST_TMP/isoforge.conf
cat > "$conf" <<CONF
[DEFAULT]
transport_url = $ISOFORGE_TRANSPORT_URL
heartbeat = 10
host = cli-test-worker
[keystone_authtoken]
auth_url = $OS_AUTH_URL
username = $ISOFORGE_SERVICE_USERNAME
password = "$ISOFORGE_SERVICE_PASSWORD"
project_name = $ISOFORGE_SERVICE_PROJECT_NAME
[libvirt]
# libvirt's own test driver (in-process): never the host's, and no build gets as far as it
uri = test:///default
domain_type = qemu
[builds]
work_dir = $TEST_TMP/work
cache_dir = $TEST_TMP/cache
max_builds = 2
[api]
bind_host = 127.0.0.1
bind_port = $ISOFORGE_API_PORT
host = $api_host
state_dir = $TEST_TMP/api-state
CONF

# media: alice's ISO, alice's raw image, bob's private ISO
head -c 1048576 /dev/urandom > "$TEST_TMP/fake.iso"
iso=$($os image create --disk-format iso --container-format bare --private \
	--file "$TEST_TMP/fake.iso" "t-cli-iso-$$" -f value -c id) || fail "image create"
raw=$($os image create --disk-format raw --container-format bare --private \
	--file "$TEST_TMP/fake.iso" "t-cli-raw-$$" -f value -c id) || fail "image create"
bobs=$(OS_USERNAME=$ALT_OS_USERNAME OS_PASSWORD=$ALT_OS_PASSWORD OS_PROJECT_NAME=$ALT_OS_PROJECT_NAME \
	$os image create --disk-format iso --container-format bare --private \
	--file "$TEST_TMP/fake.iso" "t-cli-bob-$$" -f value -c id) || fail "image create"
cleanup() {
	[ -n "${wpid:-}" ] && kill "$wpid" 2>/dev/null && wait "$wpid"
	[ -n "${apipid:-}" ] && kill "$apipid" 2>/dev/null && wait "$apipid"
	amqp-delete-queue --url="$(sed 's|^rabbit:|amqp:|; s|/$||' <<<"$ISOFORGE_TRANSPORT_URL")" -q "isoforge.api.$api_host" \
		>/dev/null 2>&1
	$os image delete "$iso" "$raw" >/dev/null 2>&1
	OS_USERNAME=$ALT_OS_USERNAME OS_PASSWORD=$ALT_OS_PASSWORD OS_PROJECT_NAME=$ALT_OS_PROJECT_NAME \
		$os image delete "$bobs" >/dev/null 2>&1
}
trap cleanup EXIT

"$bin/isoforged" -d -c "$conf" 2> "$TEST_TMP/isoforged.log" &
wpid=$!
for i in $(seq 50); do grep -q "connected to RabbitMQ" "$TEST_TMP/isoforged.log" && break; sleep 0.2; done
"$bin/isoforge-api" -d -c "$conf" 2> "$TEST_TMP/api.log" &
apipid=$!
for i in $(seq 150); do
	grep -q "events: consuming" "$TEST_TMP/api.log" && curl -s -o /dev/null "$api_url/" && break
	kill -0 "$apipid" 2>/dev/null || fail "isoforge-api exited"
	sleep 0.2
done

# 1. a build of alice's ISO: resolved and fetched for real, "installed" on libvirt's test
#    driver (nothing runs), cancelled there
cli build --iso "t-cli-iso-$$" --flavor "$ISOFORGE_FLAVOR_TINY" --name t-cli \
	--chain "t-cli-$$" --wait --json > "$TEST_TMP/build1.json" &
bpid=$!
for i in $(seq 300); do grep -q '"state":"installing"' "$TEST_TMP/build1.json" && break; sleep 0.2; done
id=$(head -n 1 "$TEST_TMP/build1.json" | jq -r .build_id)
cli cancel "$id" || fail "cancel"
wait $bpid; rc=$?
out=$(cat "$TEST_TMP/build1.json")
echo "$out"
last=$(tail -n 1 <<<"$out")
[ "$(jq -r .state <<<"$last")" = cancelled ] || fail "build 1 ended $(jq -r .state <<<"$last")"
[ $rc = 1 ] || fail "build 1: exit $rc, want 1"
for s in queued resolving fetching assembling installing cancelled; do
	jq -s -e --arg s "$s" 'map(select(.state == $s)) | length > 0' <<<"$out" >/dev/null || fail "no $s event"
done
hash=$(sha512sum < "$TEST_TMP/fake.iso" | cut -d" " -f1)
cmp "$TEST_TMP/cache/$hash.iso" "$TEST_TMP/fake.iso" || fail "the ISO is not in the cache as $hash.iso"
[ -z "$(ls "$TEST_TMP/cache" | grep -v '\.iso$')" ] || fail "temporary files left in the cache"

# 2. a raw image is not an ISO; 3. bob's private ISO is not visible to alice
out=$(cli build --iso "$raw" --flavor "$ISOFORGE_FLAVOR_TINY" --name t-raw --wait --json)
echo "$out" | tail -n 1
grep -q 'disk_format raw, not iso' <<<"$(tail -n 1 <<<"$out")" || fail "raw image not refused"
out=$(cli build --iso "$bobs" --flavor "$ISOFORGE_FLAVOR_TINY" --name t-bob --wait --json)
echo "$out" | tail -n 1
[ "$(tail -n 1 <<<"$out" | jq -r .state)" = failed ] || fail "bob's ISO used by alice"
grep -qi 'iso_image: .*not' <<<"$(tail -n 1 <<<"$out")" || fail "bob's ISO: unexpected reason"

# 3b. --wait without --json: plain lines when stdout is no terminal, one live line per state
#     (carriage return + erase line) on a terminal; either way the end is said and exit 1
out=$(cli build --iso "$raw" --flavor "$ISOFORGE_FLAVOR_TINY" --name t-plain --wait); rc=$?
echo "$out"
[ $rc = 1 ] || fail "plain --wait of a failing build: exit $rc"
grep -q '^20[0-9-]*T[0-9:]*Z  resolving ' <<<"$out" || fail "plain --wait: no resolving line"
grep -q $'\r' <<<"$out" && fail "plain --wait wrote terminal controls"
grep -q '^build .* failed: .*disk_format raw, not iso' <<<"$out" || fail "plain --wait: no end line"
script -qec "env -u ISOFORGE_TRANSPORT_URL -u ISOFORGE_API_URL $bin/isoforge build --iso $raw \
	--flavor $ISOFORGE_FLAVOR_TINY --name t-tty --wait" /dev/null > "$TEST_TMP/tty.out"; rc=$?
cat -v "$TEST_TMP/tty.out" | tail -n 3
[ $rc = 1 ] || fail "--wait on a terminal: exit $rc"
grep -q $'\r\033\[Kresolving ' "$TEST_TMP/tty.out" || fail "--wait on a terminal: no live line"
grep -q 'failed: .*disk_format raw, not iso' "$TEST_TMP/tty.out" || fail "--wait on a terminal: no end"

# 4. status and list: alice sees her build; bob does not
cli status "$id" || fail "status"
st=$(cli status --json "$id") || fail "status --json"
[ "$(jq -r .state <<<"$st")" = cancelled ] || fail "status says $(jq -r .state <<<"$st")"
[ "$(jq '.history | length' <<<"$st")" -ge 4 ] || fail "status: short history"
jq -e '.request.token' <<<"$st" >/dev/null && fail "status shows the token"
cli list --json | jq -e --arg id "$id" 'map(select(.build_id == $id)) | length == 1' \
	>/dev/null || fail "list misses the build"
if OS_USERNAME=$ALT_OS_USERNAME OS_PASSWORD=$ALT_OS_PASSWORD OS_PROJECT_NAME=$ALT_OS_PROJECT_NAME \
	cli status "$id"; then fail "bob sees alice's build"; fi
OS_USERNAME=$ALT_OS_USERNAME OS_PASSWORD=$ALT_OS_PASSWORD OS_PROJECT_NAME=$ALT_OS_PROJECT_NAME \
	cli list --json | jq -e --arg id "$id" 'map(select(.build_id == $id)) | length == 0' \
	>/dev/null || fail "bob's list shows alice's build"
jq -e '.request.trust_id // .trust_id' <<<"$st" >/dev/null && fail "status shows the trust id"

# 5. every build's trust was deleted when it ended (also the failed ones)
for i in $(seq 40); do [ "$(alice_trusts | sort)" = "$trusts_before" ] && break; sleep 0.5; done
[ "$(alice_trusts | sort)" = "$trusts_before" ] || fail "trusts left: $(alice_trusts | tr '\n' ' ')"

# 5b. usage errors exit 2 without sending anything
cli build --iso "$iso" --name x; [ $? = 2 ] || fail "missing --flavor: not exit 2"
cli build --iso "$iso" --flavor x --name x --visibility everyone; [ $? = 2 ] \
	|| fail "bad visibility: not exit 2"

# 6. errors are the API's own detail: finishing a cancelled build is a 409
tok=$($os token issue -f value -c id) || fail "token issue"
curl -s -X POST -H "X-Auth-Token: $tok" -H 'Content-Type: application/json' -d '{"finish": null}' \
	"$api_url/v1/builds/$id/action" > "$TEST_TMP/409.json"
detail=$(jq -r '.errors[0].detail' "$TEST_TMP/409.json")
[ -n "$detail" ] && [ "$detail" != null ] || fail "the API gave no detail: $(cat "$TEST_TMP/409.json")"
cli finish "$id" 2> "$TEST_TMP/finish.err"; rc=$?
[ $rc = 1 ] || fail "finish of a cancelled build: exit $rc"
[ "$(cat "$TEST_TMP/finish.err")" = "isoforge finish: $detail" ] \
	|| fail "finish said '$(cat "$TEST_TMP/finish.err")', the API '$detail'"
cli status "$(cat /proc/sys/kernel/random/uuid)"; [ $? = 1 ] || fail "status of no build: not exit 1"

# 7. the catalog: another region has no image-build endpoint; the override names one directly
cli list --os-region-name Nowhere 2> "$TEST_TMP/region.err" && fail "a region without the API"
grep -q "image-build" "$TEST_TMP/region.err" || fail "no endpoint: $(cat "$TEST_TMP/region.err")"
cli list --os-region-name Nowhere --os-endpoint-override "$api_url/v1/" --json | \
	jq -e --arg id "$id" 'map(select(.id == $id)) | length == 1' >/dev/null || fail "override"

# 8. clouds.yaml: OS_CLOUD (or --os-cloud) instead of OS_*, the password in secure.yaml, the
#    auth URL without /v3; --os-* options override it (bob sees nothing of alice's)
cat > "$TEST_TMP/clouds.yaml" <<YAML
clouds:
  mini:
    auth:
      auth_url: ${OS_AUTH_URL%/v3}
      username: $OS_USERNAME
      project_name: $OS_PROJECT_NAME
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    interface: public
YAML
cat > "$TEST_TMP/secure.yaml" <<YAML
clouds:
  mini:
    auth:
      password: '$OS_PASSWORD'
YAML
# yaml_cli [NAME=VALUE...] ARGS... — the CLI with no OS_* at all, only the two files
yaml_cli() {
	env $(env | sed -n 's/^\(OS_[A-Z_]*\)=.*/-u \1/p') -u ISOFORGE_TRANSPORT_URL -u ISOFORGE_API_URL \
		OS_CLIENT_CONFIG_FILE="$TEST_TMP/clouds.yaml" OS_CLIENT_SECURE_FILE="$TEST_TMP/secure.yaml" \
		"$@"
}
yaml_cli OS_CLOUD=mini "$bin/isoforge" status --json "$id" | jq -e '.state == "cancelled"' \
	>/dev/null || fail "status through clouds.yaml"
yaml_cli "$bin/isoforge" list --json --os-cloud mini | \
	jq -e --arg id "$id" 'map(select(.id == $id)) | length == 1' >/dev/null || fail "list --os-cloud"
yaml_cli "$bin/isoforge" list --json --os-cloud mini --os-username "$ALT_OS_USERNAME" \
	--os-password "$ALT_OS_PASSWORD" --os-project-name "$ALT_OS_PROJECT_NAME" | \
	jq -e --arg id "$id" 'map(select(.id == $id)) | length == 0' >/dev/null || fail "--os-* over clouds.yaml"
yaml_cli OS_CLOUD=nowhere "$bin/isoforge" list; [ $? = 2 ] || fail "an unknown cloud: not exit 2"

grep -q "$OS_PASSWORD" "$TEST_TMP/isoforged.log" "$TEST_TMP/api.log" && fail "a password in a log"
echo ok
