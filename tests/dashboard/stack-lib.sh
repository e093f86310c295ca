# tests/dashboard/stack-lib.sh — sourced by t_dashboard.sh and run-dashboard: isoforge-api,
# isoforge-novncproxy, one isoforged worker and Horizon (tests/dashboard/horizon) on 127.0.0.1
# against a running minicloud (its env.sh sourced) and a private libvirtd, all state in
# $stack_dir. The services are this shell's children, stopped by stack_stop.
# Needs: stack_dir, ISOFORGE_BIN, ISOFORGE_TOP, ISOFORGE_LIBVIRT_URI, the minicloud's env.
stack_pids=()
stack_log() { echo "[$(date +%T)] $*"; }
stack_fail() {
	echo "FAIL: $*"
	local f
	for f in "$stack_dir"/api.log "$stack_dir"/proxy.log "$stack_dir"/worker.log \
	    "$stack_dir"/horizon/horizon.log; do
		[ -s "$f" ] && { echo "--- $f"; tail -n 25 "$f"; }
	done
	exit 1
}
stack_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# stack_conf — $stack_dir/isoforge.conf for all three daemons (0600: it holds the service
# password). The console key is derived from that password on every side (docs/api.md).
stack_conf() {
	mkdir -p "$stack_dir/work" "$stack_dir/cache" "$stack_dir/api-state"
	console_port=$(stack_port)
	console_url=http://127.0.0.1:$console_port
	umask 077
	cat > "$stack_dir/isoforge.conf" <<-CONF
	[DEFAULT]
	transport_url = $ISOFORGE_TRANSPORT_URL
	host = dash-worker-$$
	[keystone_authtoken]
	auth_url = $OS_AUTH_URL
	username = $ISOFORGE_SERVICE_USERNAME
	password = "$ISOFORGE_SERVICE_PASSWORD"
	project_name = $ISOFORGE_SERVICE_PROJECT_NAME
	[libvirt]
	uri = $ISOFORGE_LIBVIRT_URI
	domain_type = qemu
	[builds]
	work_dir = $stack_dir/work
	cache_dir = $stack_dir/cache
	max_builds = 2
	finish_grace = 5
	vnc_listen = 127.0.0.1
	[console]
	bind_host = 127.0.0.1
	bind_port = $console_port
	base_url = $console_url
	[api]
	bind_host = 127.0.0.1
	bind_port = $ISOFORGE_API_PORT
	host = dash-api-$$
	state_dir = $stack_dir/api-state
	CONF
	umask 022
}

# stack_wait_log FILE TEXT SECONDS PID WHAT
stack_wait_log() {
	local i
	for i in $(seq $(( $3 * 10 ))); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		kill -0 "$4" 2>/dev/null || stack_fail "$5 exited"
		sleep 0.1
	done
	stack_fail "$5 did not start in $3 s"
}

stack_start_api() {
	"$ISOFORGE_BIN/isoforge-api" -d -c "$stack_dir/isoforge.conf" 2>> "$stack_dir/api.log" &
	stack_pids+=($!)
	stack_wait_log "$stack_dir/api.log" "events: consuming" 30 $! isoforge-api
	local i
	for i in $(seq 100); do curl -s -o /dev/null "$ISOFORGE_API_URL/" && return 0; sleep 0.1; done
	stack_fail "isoforge-api does not answer"
}
stack_start_proxy() {
	"$ISOFORGE_BIN/isoforge-novncproxy" -c "$stack_dir/isoforge.conf" 2>> "$stack_dir/proxy.log" &
	stack_pids+=($!)
	stack_wait_log "$stack_dir/proxy.log" "listening on" 20 $! isoforge-novncproxy
}
stack_start_worker() {
	"$ISOFORGE_BIN/isoforged" -d -c "$stack_dir/isoforge.conf" 2>> "$stack_dir/worker.log" &
	stack_pids+=($!)
	stack_wait_log "$stack_dir/worker.log" "connected to RabbitMQ" 30 $! isoforged
}
stack_start_horizon() {
	# the catalog's image-build endpoint is the API's: Horizon finds it there
	env -u ISOFORGE_API_URL "$ISOFORGE_TOP/tests/dashboard/horizon" up "$stack_dir/horizon" \
		> "$stack_dir/horizon-up.log" 2>&1 || { cat "$stack_dir/horizon-up.log"; stack_fail "horizon"; }
}

# stack_up — all of it; prints what it started and how long Horizon took
stack_up() {
	stack_conf
	stack_log "starting isoforge-api, isoforge-novncproxy, isoforged and Horizon"
	stack_start_horizon &	# the slowest (Python imports): in parallel with the daemons
	local hz=$!
	stack_start_api
	stack_start_proxy
	stack_start_worker
	wait $hz || stack_fail "horizon did not start"
	horizon_url=$(cat "$stack_dir/horizon/url")
	horizon_ms=$(sed -n 's/.* after \([0-9]*\) ms/\1/p' "$stack_dir/horizon-up.log")
	stack_log "isoforge-api $ISOFORGE_API_URL, console proxy $console_url, $(cat "$stack_dir/horizon-up.log")"
}

# stack_stop — SIGTERM to each daemon, then Horizon. A stopped worker leaves a running install
# to a later run (libvirt keeps it): nothing will resume it, so the build domains of this
# (private) libvirtd go too.
stack_stop() {
	local p d
	for p in "${stack_pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${stack_pids[@]}"; do wait "$p" 2>/dev/null; done
	stack_pids=()
	for d in $(virsh -q -c "$ISOFORGE_LIBVIRT_URI" list --all --name 2>/dev/null | grep '^isoforge-'); do
		[ -d "$stack_dir/work/${d#isoforge-}" ] || continue	# only this stack's builds
		virsh -q -c "$ISOFORGE_LIBVIRT_URI" destroy "$d" >/dev/null 2>&1
		virsh -q -c "$ISOFORGE_LIBVIRT_URI" undefine --nvram "$d" >/dev/null 2>&1
	done
	"$ISOFORGE_TOP/tests/dashboard/horizon" down "$stack_dir/horizon" 2>/dev/null
	return 0
}
