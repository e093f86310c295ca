#!/usr/bin/env bash
# t_worker_trust_retry.sh — a trust that can't be deleted when its build ends (Keystone
# unreachable) stays recorded and the janitor deletes it once Keystone answers again.
# The worker reaches Keystone through a relay of the test's (a fault injector in front of the
# real Keystone; Glance and Nova come from the catalog, directly). A build (through the CLI,
# which makes the trust with the real Keystone) installs; the relay goes away; the build is
# cancelled: cancelled, its trust still in Keystone and reported as left; the relay comes back
# on the same port: the janitor deletes the trust (404 afterwards).
. "$(dirname "$0")/worker-lib.sh"

ks_hostport=${OS_AUTH_URL#*://}
ks_hostport=${ks_hostport%%/*}
ks_path=/${OS_AUTH_URL#*://*/}
rport=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
rpid=
# relay_start — 127.0.0.1:$rport → Keystone, until killed
relay_start() {
	/usr/bin/python3 - "$rport" "${ks_hostport%:*}" "${ks_hostport##*:}" <<'PY' &
import socket, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', int(sys.argv[1])))
s.listen(16)
def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    for x in (a, b):
        try:
            x.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
while True:
    c, _ = s.accept()
    try:
        u = socket.create_connection((sys.argv[2], int(sys.argv[3])))
    except OSError:
        c.close()
        continue
    threading.Thread(target=pipe, args=(c, u), daemon=True).start()
    threading.Thread(target=pipe, args=(u, c), daemon=True).start()
PY
	rpid=$!
	for i in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$rport$ks_path" && return; sleep 0.1; done
	fail "the relay did not start"
}
relay_stop() { [ -n "$rpid" ] && kill "$rpid" && wait "$rpid" 2>/dev/null; rpid=; }
trap 'relay_stop; worker_lib_cleanup' EXIT

worker_conf trust-retry-worker 1 "install_timeout = 900" "cleanup_retry = 3"
sed -i "s#^auth_url = .*#auth_url = http://127.0.0.1:$rport$ks_path#" "$TEST_TMP/isoforge.conf"
hang=$(upload_iso "$ISOFORGE_MEDIA/installer-hang.iso" "t-trust-retry-hang-$$") || fail "image create"
images=("$hang")
alice_id=$(ks_auth "$OS_USERNAME" "$OS_PASSWORD" "$OS_PROJECT_NAME" | cut -d" " -f2)
before=$(trusts_of "$alice_id" | sort)
relay_start
start_worker 1
submit r-hang --iso "$hang"
wait_state r-hang installing 300
id=$(bid r-hang)
trust=$(comm -13 <(echo "$before") <(trusts_of "$alice_id" | sort))
[ -n "$trust" ] && [ "$(wc -l <<<"$trust")" = 1 ] || fail "not one new trust: $trust"
[ "$(trust_status "$trust")" = 200 ] || fail "the build's trust is not there while it installs"

relay_stop
echo "Keystone unreachable for the worker"
"$bin/isoforge" cancel "$id" || fail "cancel"
wait_state r-hang cancelled 120
for i in $(seq 60); do grep -q "build $id: Keystone trust not deleted yet" "$wlog" && break; sleep 0.5; done
grep -q "build $id: Keystone trust not deleted yet" "$wlog" || fail "the failed trust deletion is not logged"
[ "$(trust_status "$trust")" = 200 ] || fail "the trust went without Keystone?"
# what is left to clean up is the worker's own record (the API shows builds, not resources)
left() { sqlite3 "file:$TEST_TMP/work/jobs.db?mode=ro" "SELECT count(*) FROM resources WHERE build_id = '$id'$1"; }
[ "$(left " AND kind = 'trust'")" = 1 ] || fail "the trust is not recorded as left to clean up"

relay_start
echo "Keystone reachable again"
for i in $(seq 60); do [ "$(trust_status "$trust")" = 404 ] && break; sleep 0.5; done
[ "$(trust_status "$trust")" = 404 ] || fail "the janitor did not delete the trust"
grep -q "build $id: Keystone trust deleted" "$wlog" || fail "the deletion is not logged"
sleep 1
[ "$(left "")" = 0 ] || fail "the deleted trust is still recorded"
stop_worker
echo ok
