#!/usr/bin/env bash
# t_isoforged_check.sh — `isoforged -n -c FILE` prints the effective configuration with
# secrets masked and exits 0; a bad file exits 1 naming FILE:LINE.
set -eu
bin=$ISOFORGE_BIN/isoforged
conf=$TEST_TMP/isoforge.conf
cat > "$conf" <<'CONF'
[DEFAULT]
transport_url = rabbit://isoforge:rabbit-secret@10.0.0.1:5672,isoforge:rabbit-secret@10.0.0.2:5672/
[keystone_authtoken]
auth_url = http://10.0.0.1:5000/v3
username = isoforge
password = keystone-secret
project_name = service
[builds]
max_builds = 3
CONF
out=$("$bin" -n -c "$conf")
echo "$out"
if grep -q secret <<<"$out"; then echo "FAIL: a secret is printed"; exit 1; fi
grep -qx 'password = \*\*\*' <<<"$out"
grep -qx 'transport_url = rabbit://isoforge:\*\*\*@10.0.0.1:5672,isoforge:\*\*\*@10.0.0.2:5672/' <<<"$out"
grep -qx 'max_builds = 3' <<<"$out"
grep -qx 'work_dir = /var/lib/isoforge' <<<"$out"

# the sample that ships is valid
"$bin" -n -c "$ISOFORGE_TOP/etc/isoforge.conf.sample" >/dev/null

printf '[libvirt]\ndomain_type = xen\n' >> "$conf"
set +e
err=$("$bin" -n -c "$conf" 2>&1 >/dev/null); rc=$?
set -e
echo "$err"
[ "$rc" = 1 ]
grep -q "$conf:11: \[libvirt\] domain_type: must be one of auto|kvm|qemu" <<<"$err"
echo ok
