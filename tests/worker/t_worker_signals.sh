#!/usr/bin/env bash
# t_worker_signals.sh — an operator's worker: a wrong configuration is refused at start with one
# clear line (libvirt unreachable, work_dir unwritable, qemu-img missing, domain_type kvm where
# KVM does not run); SIGHUP reopens the log file (logrotate); SIGTERM stops it within 5 s
# while a build fetches a 1 GiB ISO and another one installs, and the restarted worker brings
# both to active.
. "$(dirname "$0")/worker-lib.sh"

# refused FLAGS... — the worker must exit non-zero within 30 s; prints its last line
refused() {
	local out=$TEST_TMP/refused.err rc
	timeout 30 "$@" "$bin/isoforged" -c "$TEST_TMP/isoforge.conf" > /dev/null 2> "$out"
	rc=$?
	[ $rc != 0 ] && [ $rc != 124 ] || fail "started (exit $rc) with a wrong configuration"
	tail -n 1 "$out"
}

worker_conf signals-worker 2 "install_timeout = 900"
sed -i "s|^uri = .*|uri = qemu+unix:///system?socket=$TEST_TMP/no-libvirt-sock|" "$TEST_TMP/isoforge.conf"
refused env | grep -q '\[libvirt\] uri' || fail "libvirt unreachable: not said"
worker_conf signals-worker 2 "install_timeout = 900"
sed -i "s|^work_dir = .*|work_dir = /proc/isoforge-work|" "$TEST_TMP/isoforge.conf"
refused env | grep -q '\[builds\] work_dir' || fail "work_dir unwritable: not said"
worker_conf signals-worker 2 "install_timeout = 900"
mkdir -p "$TEST_TMP/emptybin"
refused env PATH="$TEST_TMP/emptybin" | grep -q 'qemu-img: not found' || fail "qemu-img missing: not said"
worker_conf signals-worker 2 "install_timeout = 900"
sed -i "s|^domain_type = .*|domain_type = kvm|" "$TEST_TMP/isoforge.conf"
if timeout 60 "$bin/isoforged" -n -c "$TEST_TMP/isoforge.conf" >/dev/null 2>&1; then
	timeout 20 "$bin/isoforged" -d -c "$TEST_TMP/isoforge.conf" > /dev/null 2> "$TEST_TMP/kvm.err"
	if grep -q "builds run under KVM" "$TEST_TMP/kvm.err"; then
		echo "KVM works here: domain_type = kvm is right"
	else
		tail -n 1 "$TEST_TMP/kvm.err" | grep -q '\[libvirt\] domain_type: .*KVM' \
			|| fail "domain_type kvm without KVM: $(tail -n 1 "$TEST_TMP/kvm.err")"
	fi
fi

# SIGHUP: the log file again
worker_conf signals-worker 2 "install_timeout = 900"
sed -i "s|^\[DEFAULT\]|[DEFAULT]\nlog_file = $TEST_TMP/worker.log|" "$TEST_TMP/isoforge.conf"
"$bin/isoforged" -d -c "$TEST_TMP/isoforge.conf" 2>> "$wlog" &
wpid=$!
for i in $(seq 50); do grep -q "connected to RabbitMQ" "$TEST_TMP/worker.log" 2>/dev/null && break; sleep 0.2; done
grep -q "connected to RabbitMQ" "$TEST_TMP/worker.log" || fail "nothing in log_file"
mv "$TEST_TMP/worker.log" "$TEST_TMP/worker.log.1"
kill -HUP "$wpid"
for i in $(seq 50); do [ -s "$TEST_TMP/worker.log" ] && break; sleep 0.1; done
grep -q "log file reopened" "$TEST_TMP/worker.log" || fail "SIGHUP did not reopen the log file"
kill -0 "$wpid" || fail "SIGHUP ended the worker"
stop_worker

# SIGTERM within 5 s, a transfer and an install running
worker_conf signals-worker 2 "install_timeout = 900"
big=$TEST_TMP/big.iso
cp "$ISOFORGE_MEDIA/installer.iso" "$big" && truncate -s 1G "$big"	# zeros after the ISO
iso=$(upload_iso "$big" "t-signals-big-$$" --property os_type=linux) || fail "image create"
rm -f "$big"
hang=$(upload_iso "$ISOFORGE_MEDIA/installer-hang.iso" "t-signals-hang-$$") || fail "image create"
images=("$iso" "$hang")
start_worker 1
submit s-hang --iso "$hang"
wait_state s-hang installing 300
submit s-big --iso "$iso"
wait_state s-big fetching 120
sleep 0.3
t0=$(date +%s.%N)
stop_worker
took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
echo "SIGTERM with a fetch and an install running: stopped in $took s"
awk -v t="$took" 'BEGIN { exit !(t <= 5) }' || fail "SIGTERM took $took s"
grep -q "build $(bid s-big): left fetching" "$wlog" || fail "the fetch was not stopped: $(grep "$(bid s-big)" "$wlog" | tail -3)"
h=$($os image show "$iso" -f value -c os_hash_value)
[ -e "$TEST_TMP/cache/$h.iso" ] && fail "the download was not stopped: the ISO is in the cache"
virsh domstate "isoforge-$(bid s-hang)" | grep -q running || fail "the install did not go on"
start_worker 2
wait_state s-big active 600
"$bin/isoforge" finish "$(bid s-hang)" || fail "finish"
wait_state s-hang active 300
for p in "${bpids[@]}"; do wait "$p" || fail "a build client exited $?"; done
bpids=()
images+=("$(last s-big image_id)" "$(last s-hang image_id)")
assert_gone "$(bid s-big)"
assert_gone "$(bid s-hang)"
ls "$TEST_TMP/cache" | grep -q part && fail "a partial download left in the cache"
stop_worker
echo ok
