#!/usr/bin/env bash
# t_console.sh — isoforge-novncproxy against a real VNC server: a qemu domain of the private
# libvirtd booting the hanging test installer, its VNC password console_vnc_password(key, id)
# (the key derived from the service password, as the worker's is).
# 1. /vnc_lite.html and noVNC's modules are served (200, a JavaScript type); no path leaves
#    novnc_dir.
# 2. a minted token: websocket, RFB 3.8 with security type None only, ServerInit, a
#    FramebufferUpdate with lit pixels (the proxy did the VNC authentication).
# 3. the same token again, an expired one, one with a bad signature, one of another key, one
#    from a page of another origin: 403 before any upgrade.
# 4. a token of another build id for this VNC: upgraded, then closed before any RFB byte (the
#    VNC authentication fails: that build's password is another); the same for a VNC address
#    where nothing listens.
# 5. an open console costs no CPU while the screen is still and is closed after idle_timeout;
#    SIGTERM with a console open: it is closed, the proxy exits 0 (ASan: no leak).
# The VNC password and the tokens never appear in the proxy's log.
. "$(dirname "$0")/local-lib.sh"
tool=$ISOFORGE_BIN/tests/lib/console-token
proxy=$ISOFORGE_BIN/isoforge-novncproxy
client=$ISOFORGE_TOP/tests/e2e/console-client.py
[ -x "$tool" ] && [ -x "$proxy" ] || fail "build $tool and $proxy first (make san)"
[ -f /usr/share/novnc/vnc_lite.html ] || { echo "needs Debian's novnc: skipped"; exit 77; }
dom=isoforge-t-console-$$
plog=$tmp/proxy.log
ppid=

fail() { echo "FAIL: $*"; [ -f "$plog" ] && { echo "--- proxy log"; tail -n 40 "$plog"; }; exit 1; }
cleanup() {
	[ -n "$ppid" ] && kill "$ppid" 2>/dev/null && wait "$ppid"
	virsh destroy "$dom" >/dev/null 2>&1
	virsh undefine "$dom" >/dev/null 2>&1
	return 0
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$tmp/isoforge.conf" <<CONF
[DEFAULT]
transport_url = rabbit://isoforge:unused@127.0.0.1:5672/
[keystone_authtoken]
auth_url = http://127.0.0.1:5000/v3
username = isoforge
password = service-secret-$$
project_name = service
[console]
bind_host = 127.0.0.1
bind_port = $port
base_url = http://127.0.0.1:$port
idle_timeout = 10
CONF
key=$("$tool" key "$tmp/isoforge.conf") || fail "console key"
export CONSOLE_KEY=$key
id=$(python3 -c 'import uuid; print(uuid.uuid4())')
pw=$("$tool" password "$id") || fail "password"
[ ${#pw} = 8 ] || fail "VNC password of ${#pw} characters"

# the console: the hanging installer, VNC with the build's password
cat > "$tmp/dom.xml" <<XML
<domain type='qemu'>
  <name>$dom</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='cdrom'/></os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <disk type='file' device='cdrom'>
      <source file='$media/installer-hang.iso'/>
      <target dev='hda' bus='ide'/>
      <readonly/>
    </disk>
    <graphics type='vnc' autoport='yes' listen='127.0.0.1' passwd='$pw'/>
    <video><model type='vga'/></video>
    <controller type='usb' model='none'/>
  </devices>
</domain>
XML
virsh create "$tmp/dom.xml" >/dev/null || fail "virsh create"
disp=$(virsh vncdisplay "$dom") || fail "vncdisplay"
vport=$((5900 + ${disp##*:}))
echo "VNC of $dom on 127.0.0.1:$vport"

# a wrong novnc_dir: one line saying so, at start
{ cat "$tmp/isoforge.conf"; echo "novnc_dir = $tmp/nowhere"; } > "$tmp/bad.conf"
"$proxy" -c "$tmp/bad.conf" 2> "$tmp/bad.err" && fail "the proxy started without noVNC"
grep -q "novnc_dir $tmp/nowhere: no readable vnc_lite.html" "$tmp/bad.err" || { cat "$tmp/bad.err"; fail "no reason"; }

"$proxy" -d -c "$tmp/isoforge.conf" 2> "$plog" &
ppid=$!
for i in $(seq 100); do
	grep -q "listening on" "$plog" && break
	kill -0 "$ppid" 2>/dev/null || { cat "$plog"; fail "the proxy exited"; }
	sleep 0.1
done
grep -q "listening on" "$plog" || fail "the proxy does not listen"

# 1
code=$(curl -s -o "$tmp/lite.html" -w '%{http_code}' "http://127.0.0.1:$port/vnc_lite.html")
[ "$code" = 200 ] || fail "GET /vnc_lite.html: $code"
cmp -s "$tmp/lite.html" /usr/share/novnc/vnc_lite.html || fail "vnc_lite.html differs"
ct=$(curl -s -o /dev/null -w '%{content_type}' "http://127.0.0.1:$port/core/rfb.js")
case $ct in text/javascript*) ;; *) fail "core/rfb.js served as '$ct'";; esac
for bad in /../../etc/passwd /%2e%2e/%2e%2e/etc/passwd /core/../../../etc/passwd /.hidden /core/ /nope.html; do
	code=$(curl -s --path-as-is -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$bad")
	[ "$code" = 404 ] || fail "GET $bad: $code"
done
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$port/vnc_lite.html")
[ "$code" = 405 ] || fail "POST: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/websockify?token=x")
[ "$code" = 400 ] || fail "a plain GET of /websockify: $code"

# 2 (a guest under TCG takes a while to draw: the client waits for lit pixels)
tok=$("$tool" mint "$id" 127.0.0.1 "$vport" 600) || fail "mint"
url=$("$tool" url "http://127.0.0.1:$port" "$tok")
case $url in "http://127.0.0.1:$port/vnc_lite.html?path=websockify%3Ftoken%3D$tok") ;; *) fail "url $url";; esac
out=$(python3 "$client" 127.0.0.1 "$port" "$tok" rfb) || fail "the console: $out"
echo "$out"
case $out in "ok "*x*" "*) ;; *) fail "console: $out";; esac

# 3
code=$(python3 "$client" 127.0.0.1 "$port" "$tok" status)
[ "$code" = 403 ] || fail "the same token again: $code"
old=$("$tool" mint "$id" 127.0.0.1 "$vport" -5)
code=$(python3 "$client" 127.0.0.1 "$port" "$old" status)
[ "$code" = 403 ] || fail "an expired token: $code"
fresh=$("$tool" mint "$id" 127.0.0.1 "$vport" 600)
bad=${fresh%?}$( [ "${fresh: -1}" = A ] && echo Q || echo A )
code=$(python3 "$client" 127.0.0.1 "$port" "$bad" status)
[ "$code" = 403 ] || fail "a bad signature: $code"
foreign=$(CONSOLE_KEY=another-deployment "$tool" mint "$id" 127.0.0.1 "$vport" 600)
code=$(python3 "$client" 127.0.0.1 "$port" "$foreign" status)
[ "$code" = 403 ] || fail "a token of another key: $code"
evil=$("$tool" mint "$id" 127.0.0.1 "$vport" 600)
code=$(CONSOLE_ORIGIN=http://evil.example python3 "$client" 127.0.0.1 "$port" "$evil" status)
[ "$code" = 403 ] || fail "a page of another origin: $code"
grep -q "refused: from a page of another origin" "$plog" || fail "no log of the origin"
code=$(python3 "$client" 127.0.0.1 "$port" "" status)
[ "$code" = 403 ] || fail "no token: $code"
grep -q "refused: the token of build $id was used already" "$plog" || fail "no log of the reuse"
grep -q "refused: console token of build $id: expired" "$plog" || fail "no log of the expiry"

# 4
other=$("$tool" mint "$(python3 -c 'import uuid; print(uuid.uuid4())')" 127.0.0.1 "$vport" 600)
out=$(python3 "$client" 127.0.0.1 "$port" "$other" refused) || fail "another build's token: $out"
echo "$out"
case $out in "closed 1011 "*) ;; *) fail "another build's token: $out";; esac

# a console that is not there (nothing listens): closed with the reason, no RFB byte
gone=$("$tool" mint "$id" 127.0.0.1 1 600)
out=$(python3 "$client" 127.0.0.1 "$port" "$gone" refused) || fail "a console not there: $out"
case $out in "closed 1011 the console is not reachable") ;; *) fail "a console not there: $out";; esac

# the fresh token (unused: its forgery was refused) still works
out=$(python3 "$client" 127.0.0.1 "$port" "$fresh" rfb) || fail "a fresh token: $out"

# noVNC itself (Debian's, in headless Chromium), when python3-selenium and chromium are there
if /usr/bin/python3 -c 'import selenium' 2>/dev/null && [ -x /usr/bin/chromedriver ]; then
	btok=$("$tool" mint "$id" 127.0.0.1 "$vport" 600)
	shot=$ISOFORGE_TOP/build/test-logs/console-novnc.png
	out=$(/usr/bin/python3 "$ISOFORGE_TOP/tests/e2e/console-browser.py" \
		"$("$tool" url "http://127.0.0.1:$port" "$btok")" "$shot") || fail "noVNC in Chromium: $out"
	echo "noVNC: $out (screenshot $shot)"
else
	echo "no python3-selenium or chromium-driver: noVNC in a browser not tried"
fi

# 5: an open console costs no CPU while nothing moves, and is closed after idle_timeout
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hold_console() {	# hold_console NAME — a console kept open in the background (pid in $cpid)
	local t i
	t=$("$tool" mint "$id" 127.0.0.1 "$vport" 600)
	holds+=("$t")
	python3 "$client" 127.0.0.1 "$port" "$t" hold "$tmp/$1.open" > "$tmp/$1.out" 2>&1 &
	cpid=$!
	for i in $(seq 600); do [ -f "$tmp/$1.open" ] && break; sleep 0.2; done
	[ -f "$tmp/$1.open" ] || { cat "$tmp/$1.out"; fail "the held console $1 did not open"; }
}
holds=()
hold_console idle
t0=$(ticks "$ppid"); sleep 3; t1=$(ticks "$ppid")
echo "proxy CPU with an idle console open: $((t1 - t0)) ticks in 3 s"
[ $((t1 - t0)) -le 5 ] || fail "the proxy spins: $((t1 - t0)) ticks in 3 s"
wait "$cpid" || { cat "$tmp/idle.out"; fail "the idle console"; }
grep -q "closed by the proxy" "$tmp/idle.out" || fail "the idle console was not closed"
grep -q "idle for 10 s, closing" "$plog" || fail "no idle close in the log"
# SIGTERM with a console open
hold_console held
kill -TERM "$ppid"
wait "$ppid"; rc=$?
ppid=
[ $rc = 0 ] || { tail -n 30 "$plog"; fail "the proxy exited $rc on SIGTERM"; }
wait "$cpid" || { cat "$tmp/held.out"; fail "the held console"; }
grep -q "closed by the proxy" "$tmp/held.out" || fail "the held console was not closed"

echo "--- proxy log"
cat "$plog"
grep -qF -- "$pw" "$plog" && fail "the VNC password is in the proxy's log"
for t in "$tok" "$old" "$fresh" "$foreign" "$evil" "$other" "$gone" "${holds[@]}" ${btok:+"$btok"} "${tok#*.}" "${tok%%.*}"; do
	grep -qF -- "$t" "$plog" && fail "a token is in the proxy's log"
done
grep -q "relaying to 127.0.0.1:$vport" "$plog" || fail "no relay logged"
echo ok
