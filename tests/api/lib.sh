# tests/api/lib.sh — shared by the api group's scripts: a configuration for isoforge-api on the
# minicloud's catalog port, starting and stopping it, Keystone tokens, curl helpers.
# Sourced; needs TEST_TMP and the minicloud's env.sh (tests/run sets both).
[ -n "${ISOFORGE_API_PORT:-}" ] && [ -n "${OS_AUTH_URL:-}" ] || { echo "no minicloud: skipped"; exit 77; }
bin=$ISOFORGE_BIN
api=$ISOFORGE_API_URL
api_host=t-api-$$
amqp_url=${ISOFORGE_TRANSPORT_URL/rabbit:/amqp:}
amqp_url=${amqp_url%/}	# amqp-tools: no vhost part for "/"
apipid=

fail() {
	echo "FAIL: $*"
	[ -f "$TEST_TMP/api.log" ] && tail -n 30 "$TEST_TMP/api.log"
	exit 1
}

conf=$TEST_TMP/isoforge.conf
cat > "$conf" <<CONF
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
bind_port = $ISOFORGE_API_PORT
host = $api_host
state_dir = $TEST_TMP/api-state
max_body = 4096
max_depth = 8
CONF

# Starts isoforge-api and waits until it answers and consumes its events queue.
api_start() {
	"$bin/isoforge-api" -d -c "$conf" 2>> "$TEST_TMP/api.log" &
	apipid=$!
	local i
	for i in $(seq 100); do
		grep -q "events: consuming" "$TEST_TMP/api.log" 2>/dev/null &&
			curl -s -o /dev/null "$api/" && return 0
		kill -0 "$apipid" 2>/dev/null || fail "isoforge-api exited"
		sleep 0.1
	done
	fail "isoforge-api does not answer"
}

# Stops it (SIGTERM); fails when that takes more than a second or it exits with an error.
api_stop() {
	[ -n "$apipid" ] || return 0
	local t0=$(date +%s%N) rc
	kill -TERM "$apipid"
	wait "$apipid"; rc=$?
	apipid=
	[ $rc = 0 ] || fail "isoforge-api exited $rc on SIGTERM"
	[ $(( ($(date +%s%N) - t0) / 1000000 )) -le 1500 ] || fail "SIGTERM took more than a second"
}

# The builds the tests posted wait in isoforge.build (no worker here): take them out, and
# drop this process's own events queue.
api_drain_requests() {
	local i
	for i in $(seq 200); do
		amqp-get --url="$amqp_url" -q isoforge.build > /dev/null 2>&1 || break
	done
}
api_cleanup_bus() {
	api_drain_requests
	amqp-delete-queue --url="$amqp_url" -q "isoforge.api.$api_host" > /dev/null 2>&1
}

# token USER PASSWORD PROJECT — a project-scoped token
token() {
	curl -s -D - -o /dev/null -H 'Content-Type: application/json' -d "$(jq -n \
		--arg u "$1" --arg p "$2" --arg pr "$3" '{auth: {identity: {methods: ["password"],
		password: {user: {name: $u, domain: {name: "Default"}, password: $p}}},
		scope: {project: {name: $pr, domain: {name: "Default"}}}}}')" \
		"$OS_AUTH_URL/auth/tokens" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-subject-token" {print $2}'
}

# call METHOD PATH TOKEN [BODY] — prints the body to $TEST_TMP/out, headers to $TEST_TMP/hdr,
# the status on stdout
call() {
	local m=$1 p=$2 t=$3 args=()
	[ -n "$t" ] && args+=(-H "X-Auth-Token: $t")
	[ $# -ge 4 ] && args+=(-H 'Content-Type: application/json' --data-binary "$4")
	curl -s -X "$m" -D "$TEST_TMP/hdr" -o "$TEST_TMP/out" -w '%{http_code}' "${args[@]}" \
		"${CALL_HEADERS[@]}" "$api$p"
}
CALL_HEADERS=()

# expect STATUS METHOD PATH TOKEN [BODY] — call, and fail unless the status is STATUS
expect() {
	local want=$1 got
	shift
	got=$(call "$@")
	[ "$got" = "$want" ] || fail "$1 $2: status $got, want $want: $(cat "$TEST_TMP/out")"
}

# header NAME — a header of the last answer
header() {
	tr -d '\r' < "$TEST_TMP/hdr" | awk -v n="$(tr A-Z a-z <<<"$1")" -F': ' \
		'tolower($1) == n {print $2}'
}

# a build body for ISO image $1
build_body() {
	jq -cn --arg iso "$1" --arg name "${2:-t-api}" --arg flavor "$ISOFORGE_FLAVOR_TINY" \
		'{build: {name: $name, iso_image: $iso, flavor: $flavor, chain: $name,
		  os: {type: "linux"}, install: {mode: "interactive", timeout_s: 600}}}'
}

alice=$(token "$OS_USERNAME" "$OS_PASSWORD" "$OS_PROJECT_NAME")
bob=$(token "$ALT_OS_USERNAME" "$ALT_OS_PASSWORD" "$ALT_OS_PROJECT_NAME")
carol=$(token "$READER_OS_USERNAME" "$READER_OS_PASSWORD" "$READER_OS_PROJECT_NAME")
admin=$(token "$ADMIN_OS_USERNAME" "$ADMIN_OS_PASSWORD" "$ADMIN_OS_PROJECT_NAME")
[ -n "$alice" ] && [ -n "$bob" ] && [ -n "$carol" ] && [ -n "$admin" ] || fail "no tokens"
