#!/usr/bin/env bash
# t_worker_cli.sh — the CLI and a worker against the minicloud: `isoforge build --wait --json`
# goes queued → resolving → fetching (the ISO lands in the cache, verified) and then fails for
# want of a hypervisor (this group has no libvirtd; tests/worker builds for real);
# ISOs that are not ISOs or not visible to the requester's project fail at resolving with
# the reason; status answers only the build's own project (the CLI checks: control v2 carries
# no token), list is the API's now; each build's Keystone trust (the CLI makes it, contract
# v2) is deleted when the build ends.
set -u
[ -n "${ISOFORGE_TRANSPORT_URL:-}" ] && [ -n "${OS_AUTH_URL:-}" ] || { echo "no minicloud: skipped"; exit 77; }
bin=$ISOFORGE_BIN
os=/usr/bin/openstack
fail() { echo "FAIL: $*"; [ -f "$TEST_TMP/isoforged.log" ] && tail -n 30 "$TEST_TMP/isoforged.log"; exit 1; }
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
	$os image delete "$iso" "$raw" >/dev/null 2>&1
	OS_USERNAME=$ALT_OS_USERNAME OS_PASSWORD=$ALT_OS_PASSWORD OS_PROJECT_NAME=$ALT_OS_PROJECT_NAME \
		$os image delete "$bobs" >/dev/null 2>&1
}
trap cleanup EXIT

"$bin/isoforged" -d -c "$conf" 2> "$TEST_TMP/isoforged.log" &
wpid=$!
for i in $(seq 50); do grep -q "connected to RabbitMQ" "$TEST_TMP/isoforged.log" && break; sleep 0.2; done

# 1. a build of alice's ISO: resolved and fetched for real, "installed" on libvirt's test
#    driver (nothing runs), cancelled there
"$bin/isoforge" build --iso "t-cli-iso-$$" --flavor "$ISOFORGE_FLAVOR_TINY" --name t-cli \
	--chain "t-cli-$$" --wait --json > "$TEST_TMP/build1.json" &
bpid=$!
for i in $(seq 300); do grep -q '"state":"installing"' "$TEST_TMP/build1.json" && break; sleep 0.2; done
id=$(head -n 1 "$TEST_TMP/build1.json" | jq -r .build_id)
"$bin/isoforge" cancel "$id" || fail "cancel"
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
out=$("$bin/isoforge" build --iso "$raw" --flavor "$ISOFORGE_FLAVOR_TINY" --name t-raw --wait --json)
echo "$out" | tail -n 1
grep -q 'disk_format raw, not iso' <<<"$(tail -n 1 <<<"$out")" || fail "raw image not refused"
out=$("$bin/isoforge" build --iso "$bobs" --flavor "$ISOFORGE_FLAVOR_TINY" --name t-bob --wait --json)
echo "$out" | tail -n 1
[ "$(tail -n 1 <<<"$out" | jq -r .state)" = failed ] || fail "bob's ISO used by alice"
grep -qi 'iso_image: .*not' <<<"$(tail -n 1 <<<"$out")" || fail "bob's ISO: unexpected reason"

# 4. status and list: alice sees her build; bob does not
"$bin/isoforge" status "$id" || fail "status"
st=$("$bin/isoforge" status --json "$id") || fail "status --json"
[ "$(jq -r .state <<<"$st")" = cancelled ] || fail "status says $(jq -r .state <<<"$st")"
[ "$(jq '.history | length' <<<"$st")" -ge 4 ] || fail "status: short history"
jq -e '.request.token' <<<"$st" >/dev/null && fail "status shows the token"
jq -e '.request.trust_id' <<<"$st" >/dev/null && fail "status shows the trust id"
if OS_USERNAME=$ALT_OS_USERNAME OS_PASSWORD=$ALT_OS_PASSWORD OS_PROJECT_NAME=$ALT_OS_PROJECT_NAME \
	"$bin/isoforge" status "$id"; then fail "bob sees alice's build"; fi
# list is not answered over AMQP any more (contract v2): the CLI says so
"$bin/isoforge" list --json 2> "$TEST_TMP/list.err" && fail "list over AMQP answered"
grep -q "isoforge-api" "$TEST_TMP/list.err" || fail "list: $(cat "$TEST_TMP/list.err")"

# 5. every build's trust was deleted when it ended (also the failed ones)
for i in $(seq 40); do [ "$(alice_trusts | sort)" = "$trusts_before" ] && break; sleep 0.5; done
[ "$(alice_trusts | sort)" = "$trusts_before" ] || fail "trusts left: $(alice_trusts | tr '\n' ' ')"

# 6. usage errors exit 2 without sending anything
"$bin/isoforge" build --iso "$iso" --name x; [ $? = 2 ] || fail "missing --flavor: not exit 2"
"$bin/isoforge" build --iso "$iso" --flavor x --name x --visibility everyone; [ $? = 2 ] \
	|| fail "bad visibility: not exit 2"

grep -q "$OS_PASSWORD" "$TEST_TMP/isoforged.log" && fail "a password in the log"
echo ok
