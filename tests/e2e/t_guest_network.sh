#!/usr/bin/env bash
# t_guest_network.sh — the guest network policy, tried from inside a build VM as a hostile
# installer would: installer-netcheck.iso opens TCP connections to listeners this test places
# (see tests/fixtures/media/init, netcheck) and reports each result on its serial console.
#   loopback  a listener on the host's 127.0.0.1, through the guest's gateway
#   gateway   a listener on every host address, at the guest's gateway
#   host      a listener on 198.51.100.2, an address of this host outside the denied ranges
#   denied    100.64.77.1 (shared address space: denied by default), in a netns of the test
#   outside   198.51.100.1 (not denied), in the same netns, reached over a veth
# Default policy (isolated): only outside answers, and DNS works; the listeners' own logs agree.
# That build starts its own private libvirtd (as `isoforge local build` without a URI does):
# afterwards its network, bridge and nftables table must be gone.
# --guest-network none: no NIC, nothing answers. T_GUEST_NETWORK_FULL=1 adds a third boot:
# --guest-deny moved to deny outside and allow 100.64/10, the reverse (each boot is ~7 s of
# guest time, 15-20 s under TCG on a loaded machine). The fixed addresses make one run at a time
# per machine (a lock).
. "$(dirname "$0")/local-lib.sh"

for c in ip nft python3 flock; do
	command -v "$c" >/dev/null || fail "$c missing (make deps)"
done
[ -f "$media/installer-netcheck.iso" ] || fail "no $media/installer-netcheck.iso (make-media)"
ns=gn$$
listeners=$ISOFORGE_TOP/tests/lib/tcp-listeners
host_pid= ns_pid=

cleanup() {
	[ -n "$host_pid" ] && kill "$host_pid" 2>/dev/null
	[ -n "$ns_pid" ] && kill "$ns_pid" 2>/dev/null
	ip route del 100.64.77.1/32 via 198.51.100.1 dev "${ns}h" 2>/dev/null
	ip link del "${ns}h" 2>/dev/null
	ip netns del "$ns" 2>/dev/null
}
trap cleanup EXIT

exec 8> "${TMPDIR:-/tmp}/isoforge-t-guest-network.lock"
flock -w 600 8 || fail "another t_guest_network holds the lock"
ip -o addr | grep -q ' 198\.51\.100\.' && fail "198.51.100.0/24 is already used on this host"
[ -z "$(ip route show 100.64.77.1/32)" ] || fail "a route to 100.64.77.1 exists already"

# ---- the outside: a netns on a veth; this host's end is one of its own addresses ----
ip netns add "$ns" || fail "ip netns add $ns"
ip link add "${ns}h" type veth peer name "${ns}n" netns "$ns" || fail "veth"
ip addr add 198.51.100.2/24 dev "${ns}h" && ip link set "${ns}h" up || fail "host end"
ip -n "$ns" link set lo up && ip -n "$ns" link set "${ns}n" up &&
	ip -n "$ns" addr add 198.51.100.1/24 dev "${ns}n" &&
	ip -n "$ns" addr add 100.64.77.1/32 dev lo &&
	ip -n "$ns" route add default via 198.51.100.2 || fail "netns end"
ip route add 100.64.77.1/32 via 198.51.100.1 dev "${ns}h" || fail "route to 100.64.77.1"

"$listeners" 127.0.0.1:47801:loopback 0.0.0.0:47802:gateway 198.51.100.2:47803:host \
	> "$tmp/listen-host.log" 2>&1 &
host_pid=$!
ip netns exec "$ns" "$listeners" 100.64.77.1:47804:denied 198.51.100.1:47805:outside \
	> "$tmp/listen-ns.log" 2>&1 &
ns_pid=$!
for f in listen-host listen-ns; do
	n=0
	until grep -q '^ready' "$tmp/$f.log"; do
		n=$((n + 1)); [ $n -lt 100 ] || fail "$f: $(cat "$tmp/$f.log")"; sleep 0.1
	done
done
# the listeners answer the host itself: a probe that fails from the guest failed there
python3 - <<'PY' || fail "the listeners do not answer this host"
import socket
for name, addr, port in (("loopback", "127.0.0.1", 47801), ("gateway", "127.0.0.1", 47802),
        ("host", "198.51.100.2", 47803), ("denied", "100.64.77.1", 47804),
        ("outside", "198.51.100.1", 47805)):
    s = socket.create_connection((addr, port), timeout=3)
    got = s.recv(100).decode()
    assert got == "ISOFORGE-LISTENER %s\n" % name, (name, got)
PY
: > "$tmp/listen-host.log.seen"; : > "$tmp/listen-ns.log.seen"
cp "$tmp/listen-host.log" "$tmp/listen-host.log.seen"
cp "$tmp/listen-ns.log" "$tmp/listen-ns.log.seen"

# netcheck NAME ARGS... — a build of installer-netcheck.iso; its console log in $tmp/NAME.log
netcheck() {
	local name=$1 id; shift
	local_build "$name" --iso "$media/installer-netcheck.iso" "${small[@]}" --timeout 240 "$@" ||
		fail "$name: the build failed: $(tail -n 1 "$tmp/$name.json")"
	id=$(field "$tmp/$name.json" build_id)
	cp "$out/.logs/$id.console.log" "$tmp/$name.log" || fail "$name: no console log"
	grep -a '^ISOFORGE-NET' "$tmp/$name.log" | sed "s/^/  [$name guest] /"
	grep -aq '^ISOFORGE-NET-DONE' "$tmp/$name.log" || fail "$name: the probe did not finish"
}

# expect NAME PROBE ok|fail
expect() {
	grep -aq "^ISOFORGE-NET probe $2 [^ ]* $3" "$tmp/$1.log" ||
		fail "$1: probe $2 should be $3: $(grep -a "^ISOFORGE-NET probe $2 " "$tmp/$1.log")"
}

# accepted NAME: the listener names that accepted a connection since the last call
accepted() {
	local f new
	for f in listen-host listen-ns; do
		new=$(diff "$tmp/$f.log.seen" "$tmp/$f.log" | sed -n 's/^> accept \([a-z]*\) .*/\1/p')
		cp "$tmp/$f.log" "$tmp/$f.log.seen"
		[ -n "$new" ] && echo "$new"
	done | sort -u | tr '\n' ' '
}

# ---- 1. the default (isolated), on a private libvirtd of the build: the outside only ----
netcheck isolated --connect ""
grep -aq '^ISOFORGE-NET nic eth0 ip=10\.122\.' "$tmp/isolated.log" || fail "isolated: no DHCP lease"
for p in loopback gateway host denied; do expect isolated $p fail; done
expect isolated outside ok
grep -aq '^ISOFORGE-NET dns ok' "$tmp/isolated.log" || fail "isolated: DNS does not work"
got=$(accepted)
[ "$got" = "outside " ] || fail "isolated: listeners that saw the guest: '$got' (want outside)"
# its network was 10.122.N.0/24 on bridge isoforgeN: destroyed (dnsmasq and libvirt's rules
# with it) and its table deleted before that libvirtd stopped
n=$(sed -n 's/^ISOFORGE-NET nic eth0 ip=10\.122\.\([0-9]*\)\..*/\1/p' "$tmp/isolated.log" | head -n 1)
ip link show "isoforge$n" >/dev/null 2>&1 && fail "bridge isoforge$n left behind"
nft list table inet "isoforge$n" >/dev/null 2>&1 && fail "nftables table isoforge$n left behind"

# ---- 2. none: no NIC at all ----
netcheck none --guest-network none
grep -aq '^ISOFORGE-NET nic none' "$tmp/none.log" || fail "none: the guest has a NIC"
for p in loopback gateway host denied outside; do expect none $p fail; done
got=$(accepted)
[ -z "$got" ] || fail "none: listeners that saw the guest: '$got'"

# ---- 3. the operator's deny list: outside denied, 100.64/10 no longer ----
if [ "${T_GUEST_NETWORK_FULL:-}" = 1 ]; then
	netcheck deny --guest-network isolated --guest-deny "10.0.0.0/8, 198.51.100.1"
	bridge=$(virsh net-info isoforge-guests | awk '$1 == "Bridge:" { print $2 }')
	nft list table inet "$bridge" >/dev/null || fail "no nftables table inet $bridge"
	for p in loopback gateway host outside; do expect deny $p fail; done
	expect deny denied ok
	got=$(accepted)
	[ "$got" = "denied " ] || fail "deny: listeners that saw the guest: '$got' (want denied)"
fi
echo PASS
