#!/usr/bin/env bash
# t_dashboard.sh — the isoforge panel of Horizon in a real browser: Debian's openstack-dashboard
# with this tree's plugin (tests/dashboard/horizon), isoforge-api, isoforge-novncproxy and an
# isoforged worker (stack-lib.sh) on the minicloud and the private libvirtd; headless Chromium
# drives it (dashboard-browser.py: login, the panel, the form and the API's validation error,
# a build of installer-hang.iso to installing, its console, Finish, active, the image in
# Project -> Images with isoforge_version, bob sees nothing, a reader cannot build).
# Screenshots in build/test-logs/dashboard/ (DASH_DOCS=1: the panel's and the console's also
# to docs/dashboard-*.png).
set -u
[ -n "${OS_AUTH_URL:-}" ] && [ -n "${ISOFORGE_LIBVIRT_URI:-}" ] && [ -n "${ISOFORGE_MEDIA:-}" ] &&
	[ -n "${ISOFORGE_API_PORT:-}" ] || { echo "needs the minicloud, a libvirtd and the media: skipped"; exit 77; }
for f in /usr/bin/chromium /usr/bin/chromedriver /usr/share/openstack-dashboard/wsgi.py \
    /usr/lib/python3/dist-packages/selenium; do
	[ -e "$f" ] || { echo "needs $f (make deps): skipped"; exit 77; }
done
for p in isoforge-api isoforge-novncproxy isoforged; do
	[ -x "$ISOFORGE_BIN/$p" ] || { echo "FAIL: build $ISOFORGE_BIN/$p first (make san)"; exit 1; }
done
stack_dir=$TEST_TMP/stack
mkdir -p "$stack_dir"
. "$ISOFORGE_TOP/tests/dashboard/stack-lib.sh"
shots=$ISOFORGE_TOP/build/test-logs/dashboard
rm -rf "$shots"; mkdir -p "$shots"
os=/usr/bin/openstack
iso_name=dash-installer-$$
# a chain of its own (a version number is never given twice, not even after its image's deletion)
chain=dash-build-$$
images=()

cleanup() {
	stack_stop
	local chain_images
	chain_images=$($os image list --property isoforge_chain=$chain -f value -c ID 2>/dev/null)
	# shellcheck disable=SC2086
	$os image delete "${images[@]}" $chain_images >/dev/null 2>&1
	return 0
}
trap cleanup EXIT
t0=$(date +%s)

# alice's interactive test ISO (it hangs in the installer until Finish), in parallel with the
# services' start
iso_id=$($os image create --disk-format iso --container-format bare --private \
	--file "$ISOFORGE_MEDIA/installer-hang.iso" "$iso_name" -f value -c id) || stack_fail "ISO upload"
images+=("$iso_id")
stack_up
echo "Horizon answered $horizon_ms ms after its start (the stack in $(( $(date +%s) - t0 )) s)"

flavor=$($os flavor show "$ISOFORGE_FLAVOR_TINY" -f value -c name) || stack_fail "flavor"
HORIZON_URL=$horizon_url DASH_ISO=$iso_name DASH_BUILD_NAME=$chain DASH_FLAVOR=$flavor SHOTS=$shots \
	PROFILE_DIR=$TEST_TMP/chromium-profile DASH_STEPS=${DASH_STEPS:-full} \
	/usr/bin/python3 "$ISOFORGE_TOP/tests/dashboard/dashboard-browser.py" 2>&1 |
	tee "$TEST_TMP/browser.out"
[ "${PIPESTATUS[0]}" = 0 ] || stack_fail "the browser test (screenshots in $shots)"

# no secret in the services' logs: the users' and the service's passwords, the build's VNC
# password (derived by worker and proxy alike, sent nowhere)
secrets=("$OS_PASSWORD" "$ALT_OS_PASSWORD" "$READER_OS_PASSWORD" "$ISOFORGE_SERVICE_PASSWORD")
bid=$(sed -n 's/.*build \([0-9a-f-]\{36\}\) queued.*/\1/p' "$TEST_TMP/browser.out" | head -n 1)
if [ -n "$bid" ] && [ -x "$ISOFORGE_BIN/tests/lib/console-token" ]; then
	ckey=$("$ISOFORGE_BIN/tests/lib/console-token" key "$stack_dir/isoforge.conf")
	secrets+=("$(CONSOLE_KEY=$ckey "$ISOFORGE_BIN/tests/lib/console-token" password "$bid")")
fi
for s in "${secrets[@]}"; do
	[ -n "$s" ] || continue
	grep -lF -- "$s" "$stack_dir"/*.log "$stack_dir"/horizon/horizon.log && stack_fail "a secret in a log"
done
if [ "${DASH_DOCS:-}" = 1 ]; then
	cp "$(ls "$shots"/*-installing.png | head -n 1)" "$ISOFORGE_TOP/docs/dashboard-panel.png"
	cp "$(ls "$shots"/*-console.png | head -n 1)" "$ISOFORGE_TOP/docs/dashboard-console.png"
fi
echo "PASS in $(( $(date +%s) - t0 )) s; screenshots in $shots"
