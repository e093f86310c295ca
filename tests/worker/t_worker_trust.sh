#!/usr/bin/env bash
# t_worker_trust.sh — contract v2 end to end: Keystone trusts instead of tokens on the bus.
# A tap (a queue of the test's bound with '#' to every exchange: isoforge, isoforge.events,
# isoforge.dlx) records every message body and header for the whole test.
# 1. alice makes a trust to isoforge (curl, her own token) and a v2 request carrying its id is
#    published directly: the build ends active, its image owned by alice's project; the trust
#    exists while it installs and is gone (404) once it is active; events are
#    isoforge.event/2 with the project (Keystone's) and the version.
# 2. a build through the CLI (which makes the trust itself) of an ISO whose installer crashes:
#    failed, and its trust deleted too.
# 3. a v1 request with a token, a v2 request with a token field, and a v2 request that is
#    invalid but carries a real trust: dead-lettered with x-isoforge-error (never repeating a
#    token); the third one's trust is deleted.
# 4. no Keystone token anywhere: not alice's, not any other (fernet tokens start "gAAAAA") in
#    any message on the bus, nor in the job store's files.
. "$(dirname "$0")/worker-lib.sh"
tapdir=$TEST_TMP/tap
uuid() { cat /proc/sys/kernel/random/uuid; }

# amqp OP ... — the test's own AMQP client (python3-amqp, Debian's)
amqp() {
	/usr/bin/python3 - "$@" <<'PY'
import json, os, socket, sys
import amqp
c = amqp.Connection('127.0.0.1:%s' % os.environ['RABBITMQ_PORT'], userid=os.environ['RABBITMQ_USER'],
                    password=os.environ['RABBITMQ_PASS'], connect_timeout=5)
c.connect()
ch = c.channel()
op = sys.argv[1]
if op == 'publish':         # ROUTING_KEY BODY: on exchange isoforge, persistent JSON
    ch.basic_publish(amqp.Message(sys.argv[3], content_type='application/json', delivery_mode=2),
                     exchange='isoforge', routing_key=sys.argv[2])
elif op == 'tap':           # DIR: every message of every exchange, one JSON a line, until DIR/stop
    d = sys.argv[2]
    q, _, _ = ch.queue_declare('', exclusive=True)
    for ex in ('isoforge', 'isoforge.events', 'isoforge.dlx'):
        ch.queue_bind(q, ex, '#')
    out = open(os.path.join(d, 'messages'), 'a')
    def on(m):
        body = m.body.decode('utf-8', 'replace') if isinstance(m.body, bytes) else m.body
        out.write(json.dumps({'exchange': m.delivery_info['exchange'],
                              'key': m.delivery_info['routing_key'],
                              'properties': {k: repr(v) for k, v in m.properties.items()},
                              'body': body}) + '\n')
        out.flush()
    ch.basic_consume(q, callback=on, no_ack=True)
    open(os.path.join(d, 'ready'), 'w').close()
    while not os.path.exists(os.path.join(d, 'stop')):
        try:
            c.drain_events(timeout=0.5)
        except socket.timeout:
            pass
c.close()
PY
}

worker_conf trust-test-worker 2 "install_timeout = 600"
iso=$(upload_iso "$ISOFORGE_MEDIA/installer.iso" "t-trust-iso-$$" --property os_type=linux) || fail "image create"
crash=$(upload_iso "$ISOFORGE_MEDIA/installer-crash.iso" "t-trust-crash-$$") || fail "image create"
images=("$iso" "$crash")
read -r atok alice_id alpha_id <<<"$(ks_auth "$OS_USERNAME" "$OS_PASSWORD" "$OS_PROJECT_NAME")"
[ -n "$atok" ] && [ "$alice_id" != null ] || fail "alice's login"
trusts_before=$(trusts_of "$alice_id" | sort)

# make_trust — a trust from alice (her token) to isoforge, member + reader in alpha; prints its id
make_trust() {
	jq -n --arg tor "$alice_id" --arg tee "$ISOFORGE_TRUSTEE_USER_ID" --arg p "$alpha_id" \
		--arg exp "$(date -u -d '+3 hours' +%Y-%m-%dT%H:%M:%S.000000Z)" \
		'{trust: {trustor_user_id: $tor, trustee_user_id: $tee, project_id: $p,
		impersonation: true, roles: [{name: "member"}, {name: "reader"}], expires_at: $exp}}' |
		curl -s -H "X-Auth-Token: $atok" -H 'Content-Type: application/json' -d @- \
		"$OS_AUTH_URL/OS-TRUST/trusts" | jq -r .trust.id
}
# request BUILD_ID TRUST_ID NAME ISO — a v2 request body
request() {
	jq -cn --arg b "$1" --arg t "$2" --arg n "$3" --arg i "$4" --arg f "$ISOFORGE_FLAVOR_TINY" \
		'{schema: "isoforge.build/2", build_id: $b, trust_id: $t, name: $n, iso_image: $i,
		flavor: $f, chain: $n}'
}
msgs=$tapdir/messages
# events_of BUILD_ID — the bodies of its events, one a line
events_of() { jq -c --arg b "$1" 'select(.exchange == "isoforge.events") | .body | fromjson |
	select(.build_id == $b)' "$msgs" 2>/dev/null; }
wait_event() {	# BUILD_ID STATE SECONDS
	local i
	for i in $(seq $(( $3 * 2 ))); do
		events_of "$1" | jq -e --arg s "$2" 'select(.state == $s)' >/dev/null && return 0
		sleep 0.5
	done
	fail "build $1 did not reach $2 in $3 s: $(events_of "$1" | jq -r .state | tr '\n' ' ')"
}

start_worker 1
mkdir -p "$tapdir"
amqp tap "$tapdir" &
tpid=$!
for i in $(seq 50); do [ -e "$tapdir/ready" ] && break; sleep 0.2; done
[ -e "$tapdir/ready" ] || fail "the tap did not start"
stop_tap() { touch "$tapdir/stop"; wait "$tpid" 2>/dev/null; }
trap 'stop_tap; worker_lib_cleanup' EXIT

# 1
t1=$(make_trust)
[ -n "$t1" ] && [ "$t1" != null ] || fail "trust create"
b1=$(uuid)
amqp publish build.request "$(request "$b1" "$t1" "t-trust-ok-$$" "$iso")"
wait_event "$b1" installing 300
[ "$(trust_status "$t1")" = 200 ] || fail "the trust is gone while the build installs"
wait_event "$b1" active 600
events_of "$b1"
img=$(events_of "$b1" | jq -r 'select(.state == "active") | .image_id')
images+=("$img")
events_of "$b1" | jq -s -e --arg p "$alpha_id" 'map(select(.schema != "isoforge.event/2" or
	.worker != "trust-test-worker" or .time == null or (has("console") | not))) == [] and
	(map(select(.state == "active"))[0] | .project_id == $p and .version == 1)' >/dev/null \
	|| fail "events are not isoforge.event/2 with the project and version"
events_of "$b1" | jq -s -e 'map(select(.state == "installing"))[0].console | keys == ["host", "port"]' \
	>/dev/null || fail "the installing event's console is not just host and port"
owner=$($os image show "$img" -f value -c owner) || fail "image show"
[ "$owner" = "$alpha_id" ] || fail "the image is owned by $owner, not alice's project"
for i in $(seq 40); do [ "$(trust_status "$t1")" = 404 ] && break; sleep 0.5; done
[ "$(trust_status "$t1")" = 404 ] || fail "trust of the active build not deleted"
echo "1: active, image alice's, trust $t1 deleted"

# 2
"$bin/isoforge" build --flavor "$ISOFORGE_FLAVOR_TINY" --name t-trust-crash --iso "$crash" \
	--wait --json > "$TEST_TMP/crash.json"
cat "$TEST_TMP/crash.json"
[ "$(tail -n 1 "$TEST_TMP/crash.json" | jq -r .state)" = failed ] || fail "the crash build did not fail"
for i in $(seq 40); do [ "$(trusts_of "$alice_id" | sort)" = "$trusts_before" ] && break; sleep 0.5; done
[ "$(trusts_of "$alice_id" | sort)" = "$trusts_before" ] \
	|| fail "the failed build's trust is left: $(trusts_of "$alice_id" | tr '\n' ' ')"
echo "2: failed, its trust deleted"

# 3
fake=v1-bearer-$$-secret
b3=$(uuid)
amqp publish build.request "$(jq -cn --arg i "$iso" --arg t "$fake" '{schema: "isoforge.build/1",
	token: $t, name: "t-trust-v1", iso_image: $i, flavor: "x"}')"
amqp publish build.request "$(request "$(uuid)" notatrust t-trust-tok "$iso" | jq -c --arg t "$fake" '. + {token: $t}')"
t3=$(make_trust)
amqp publish build.request "$(request "$b3" "$t3" t-trust-bad "$iso" | jq -c 'del(.flavor)')"
for i in $(seq 40); do
	[ "$(jq -s 'map(select(.exchange == "isoforge.dlx")) | length' "$msgs")" -ge 3 ] && break
	sleep 0.5
done
jq -r 'select(.exchange == "isoforge.dlx") | .properties.application_headers' "$msgs" > "$TEST_TMP/reasons"
cat "$TEST_TMP/reasons"
[ "$(wc -l < "$TEST_TMP/reasons")" = 3 ] || fail "not 3 refused requests dead-lettered"
grep -q "isoforge.build/1 is refused" "$TEST_TMP/reasons" || fail "no reason for the v1 request"
grep -q "token: refused" "$TEST_TMP/reasons" || fail "no reason for the token field"
grep -q "flavor: missing" "$TEST_TMP/reasons" || fail "no reason for the invalid request"
grep -q "$fake" "$TEST_TMP/reasons" && fail "a reason repeats the token"
for i in $(seq 40); do [ "$(trust_status "$t3")" = 404 ] && break; sleep 0.5; done
[ "$(trust_status "$t3")" = 404 ] || fail "the refused request's trust was not deleted"
wait_event "$b3" failed 10
echo "3: refused with reasons; the refused request's trust deleted"

# 4
stop_worker
stop_tap
n=$(wc -l < "$msgs")
echo "4: $n messages on the bus"
[ "$n" -gt 15 ] || fail "the tap saw only $n messages"
grep -q "$atok" "$msgs" && fail "alice's token on the bus"
grep -q "gAAAAA" "$msgs" && fail "a Keystone token on the bus: $(grep -o '.\{40\}gAAAAA.\{20\}' "$msgs" | head -n 3)"
grep -qi "password" "$msgs" && fail "a password on the bus: $(grep -io '.\{40\}password.\{20\}' "$msgs" | head -n 3)"
for f in "$TEST_TMP"/work/jobs.db*; do
	grep -q "$atok" "$f" && fail "alice's token in $f"
	grep -q "gAAAAA" "$f" && fail "a Keystone token in $f"
done
grep -q "gAAAAA" "$wlog" && fail "a Keystone token in the worker's log"
echo ok
