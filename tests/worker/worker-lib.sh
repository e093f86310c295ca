# tests/worker/worker-lib.sh — shared by the t_worker_*.sh tests (sourced, not a test itself):
# skip without the services, an isoforged configuration, start/stop/kill of the worker, an
# isoforge-api on the catalog's port (started with the first worker), ISO uploads, builds in
# the background through the CLI (over the API, as a user: no broker credentials) and their
# events.
# Needs ISOFORGE_BIN, ISOFORGE_TRANSPORT_URL, ISOFORGE_LIBVIRT_URI, ISOFORGE_MEDIA, OS_*,
# ISOFORGE_SERVICE_*, ISOFORGE_API_PORT, TEST_TMP (tests/run sets them).
set -u
[ -n "${ISOFORGE_TRANSPORT_URL:-}" ] && [ -n "${ISOFORGE_LIBVIRT_URI:-}" ] && [ -n "${ISOFORGE_MEDIA:-}" ] \
	&& [ -n "${ISOFORGE_API_PORT:-}" ] \
	|| { echo "needs the minicloud, a libvirtd and the media: skipped"; exit 77; }
bin=$ISOFORGE_BIN
os=/usr/bin/openstack
wlog=$TEST_TMP/isoforged.log
alog=$TEST_TMP/isoforge-api.log
wpid=
apipid=
api_host=t-worker-api-$$
bpids=()
images=()
# the CLI finds the API in the Keystone catalog, as a user's would (no override)
api_url=${ISOFORGE_API_URL:-http://127.0.0.1:$ISOFORGE_API_PORT}
unset ISOFORGE_API_URL

fail() {
	echo "FAIL: $*"
	[ -f "$wlog" ] && tail -n 40 "$wlog"
	[ -f "$alog" ] && { echo "-- isoforge-api:"; tail -n 20 "$alog"; }
	exit 1
}

# ks_auth USER PASSWORD PROJECT — logs in to Keystone (curl); prints "TOKEN USER_ID PROJECT_ID"
ks_auth() {
	local h b
	h=$(mktemp "$TEST_TMP/ks.XXXXXX")
	b=$(jq -n --arg u "$1" --arg p "$2" --arg pr "$3" '{auth: {identity: {methods: ["password"],
		password: {user: {name: $u, domain: {name: "Default"}, password: $p}}},
		scope: {project: {name: $pr, domain: {name: "Default"}}}}}' |
		curl -s -D "$h" -H 'Content-Type: application/json' -d @- "$OS_AUTH_URL/auth/tokens")
	echo "$(awk 'tolower($1) == "x-subject-token:" {print $2}' "$h" | tr -d '\r')" \
		"$(jq -r .token.user.id <<<"$b")" "$(jq -r .token.project.id <<<"$b")"
	rm -f "$h"
}
admin_token() { ks_auth "$ADMIN_OS_USERNAME" "$ADMIN_OS_PASSWORD" "$ADMIN_OS_PROJECT_NAME" | cut -d" " -f1; }
# trust_status TRUST_ID — Keystone's HTTP status for the trust, asked as admin (200, 404)
trust_status() {
	curl -s -o /dev/null -w '%{http_code}' -H "X-Auth-Token: $(admin_token)" \
		"$OS_AUTH_URL/OS-TRUST/trusts/$1"
}
# trusts_of USER_ID — the ids of the trusts USER_ID gave, asked as admin
trusts_of() {
	curl -s -H "X-Auth-Token: $(admin_token)" "$OS_AUTH_URL/OS-TRUST/trusts?trustor_user_id=$1" |
		jq -r '.trusts[].id'
}
# isoforge's service user, the trustee of every build's trust (the API makes them): its id
ISOFORGE_TRUSTEE_USER_ID=$(ks_auth "$ISOFORGE_SERVICE_USERNAME" "$ISOFORGE_SERVICE_PASSWORD" \
	"$ISOFORGE_SERVICE_PROJECT_NAME" | cut -d" " -f2)
export ISOFORGE_TRUSTEE_USER_ID
virsh() { command virsh -q -c "$ISOFORGE_LIBVIRT_URI" "$@"; }

# worker_conf HOST MAX_BUILDS [LINE...] — $TEST_TMP/isoforge.conf; LINEs go to [builds].
# WORKER_CONF, WORKER_URI, WORKER_DIR (when set) name another file, libvirtd and work area.
worker_conf() {
	local host=$1 max=$2 l f=${WORKER_CONF:-$TEST_TMP/isoforge.conf} d=${WORKER_DIR:-$TEST_TMP}
	shift 2
	cat > "$f" <<-CONF
	[DEFAULT]
	transport_url = $ISOFORGE_TRANSPORT_URL
	host = $host
	[keystone_authtoken]
	auth_url = $OS_AUTH_URL
	username = $ISOFORGE_SERVICE_USERNAME
	password = "$ISOFORGE_SERVICE_PASSWORD"
	project_name = $ISOFORGE_SERVICE_PROJECT_NAME
	[libvirt]
	uri = ${WORKER_URI:-$ISOFORGE_LIBVIRT_URI}
	domain_type = qemu
	[builds]
	work_dir = $d/work
	cache_dir = $d/cache
	max_builds = $max
	CONF
	for l in "$@"; do echo "$l" >> "$f"; done
}

# upload_iso FILE NAME [ARGS...] — a private ISO image of alice's; prints its id
upload_iso() {
	local f=$1 n=$2 id
	shift 2
	id=$($os image create --disk-format iso --container-format bare --private "$@" \
		--file "$f" "$n" -f value -c id) || fail "image create $n"
	echo "$id"
}

# api_conf FILE HOST PORT — an isoforge-api configuration (the minicloud's broker and Keystone)
api_conf() {
	cat > "$1" <<-CONF
	[DEFAULT]
	transport_url = $ISOFORGE_TRANSPORT_URL
	heartbeat = 10
	[keystone_authtoken]
	auth_url = $OS_AUTH_URL
	username = $ISOFORGE_SERVICE_USERNAME
	password = "$ISOFORGE_SERVICE_PASSWORD"
	project_name = $ISOFORGE_SERVICE_PROJECT_NAME
	[api]
	bind_host = 127.0.0.1
	bind_port = $3
	host = $2
	state_dir = $TEST_TMP/api-state-$2
	CONF
}
# api_wait PID LOG URL — until the API answers and consumes its events queue
api_wait() {
	local i
	for i in $(seq 150); do
		grep -q "events: consuming" "$2" 2>/dev/null && curl -s -o /dev/null "$3/" && return 0
		kill -0 "$1" 2>/dev/null || fail "isoforge-api exited: $(tail -n 5 "$2")"
		sleep 0.2
	done
	fail "isoforge-api does not answer at $3"
}
# start_api — isoforge-api on the catalog's port (ISOFORGE_API_PORT)
start_api() {
	api_conf "$TEST_TMP/api.conf" "$api_host" "$ISOFORGE_API_PORT"
	"$bin/isoforge-api" -d -c "$TEST_TMP/api.conf" 2>> "$alog" &
	apipid=$!
	api_wait "$apipid" "$alog" "$api_url"
}
# stop_api — SIGTERM; it must exit 0 (under ASan: no leak, no error)
stop_api() {
	[ -n "$apipid" ] || return 0
	kill "$apipid"; wait "$apipid"; local rc=$?; apipid=
	[ $rc = 0 ] || fail "isoforge-api exit $rc"
}
# drop_api_queue HOST — an API's own durable events queue, which would fill up once it is gone
drop_api_queue() {
	amqp-delete-queue --url="$(sed 's|^rabbit:|amqp:|; s|/$||' <<<"$ISOFORGE_TRANSPORT_URL")" -q "isoforge.api.$1" \
		>/dev/null 2>&1
	return 0
}

# start_worker N — starts isoforged (and the API, the first time) and waits for the worker's
# Nth "connected" in the shared log
start_worker() {
	local i
	[ -n "$apipid" ] || start_api
	"$bin/isoforged" -d -c "$TEST_TMP/isoforge.conf" 2>> "$wlog" &
	wpid=$!
	for i in $(seq 50); do
		[ "$(grep -c "connected to RabbitMQ" "$wlog")" -ge "$1" ] && return
		sleep 0.2
	done
	fail "the worker did not connect"
}
# stop_worker — SIGTERM; the worker must exit 0 (under ASan: no leak, no error)
stop_worker() { kill "$wpid"; wait "$wpid"; local rc=$?; wpid=; [ $rc = 0 ] || fail "worker exit $rc"; }
# kill_worker — SIGKILL: nothing of the worker runs its clean-up
kill_worker() { kill -9 "$wpid"; wait "$wpid" 2>/dev/null; wpid=; }

worker_lib_cleanup() {
	local p
	[ -n "${wpid:-}" ] && kill "$wpid" 2>/dev/null && wait "$wpid"
	for p in "${bpids[@]}"; do kill "$p" 2>/dev/null; done
	[ -n "${apipid:-}" ] && kill "$apipid" 2>/dev/null && wait "$apipid"
	drop_api_queue "$api_host"
	[ ${#images[@]} -gt 0 ] && $os image delete "${images[@]}" >/dev/null 2>&1
	return 0
}
trap worker_lib_cleanup EXIT

# submit NAME ARGS... — `isoforge build --wait --json` in the background, events in $TEST_TMP/NAME.json
submit() {
	local name=$1
	shift
	"$bin/isoforge" build --flavor "$ISOFORGE_FLAVOR_TINY" --name "$name" "$@" \
		--wait --json > "$TEST_TMP/$name.json" &
	bpids+=($!)
}
seen() { grep -q "\"state\":\"$2\"" "$TEST_TMP/$1.json" 2>/dev/null; }
wait_state() {	# NAME STATE SECONDS
	local i
	for i in $(seq $(( $3 * 2 ))); do seen "$1" "$2" && return 0; sleep 0.5; done
	fail "$1 did not reach $2 in $3 s"
}
bid() { head -n 1 "$TEST_TMP/$1.json" | jq -r .build_id; }
last() { tail -n 1 "$TEST_TMP/$1.json" | jq -r ".$2 // empty"; }

# assert_gone BUILD_ID — no domain (within 10 s) and no work files of the build
assert_gone() {
	local i
	for i in $(seq 20); do virsh dominfo "isoforge-$1" >/dev/null 2>&1 || break; sleep 0.5; done
	virsh dominfo "isoforge-$1" >/dev/null 2>&1 && fail "domain of build $1 left behind"
	[ -z "$(ls -A "$TEST_TMP/work/$1" 2>/dev/null)" ] || fail "work files of build $1 left"
	return 0
}
