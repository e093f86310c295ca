#!/usr/bin/env bash
# t_local_watchdog.sh — the inactivity watchdog: an install that stalls (installer-hang.iso
# prints its marker, then nothing, and never writes its disk) fails after
# --inactivity-timeout with the reason and a screenshot of its console (a valid PNG next to the
# serial log, named in the failure), long before --timeout; nothing else is left. Run on a
# terminal (script(1) gives it one): the serial log's path at the start, and the progress
# report as the live status line, redrawn in place.
. "$(dirname "$0")/local-lib.sh"

args=(local build --out "$out" --json --iso "$media/installer-hang.iso" "${small[@]}"
	--timeout 180 --inactivity-timeout 20 --progress-interval 2)
cmd="stty cols 250; exec $(printf '%q ' "$isoforge" "${args[@]}")"
start=$(date +%s)
script -qefc "$cmd" "$tmp/stall.tty" > /dev/null 2>&1
rc=$?
took=$(( $(date +%s) - start ))
tr -d '\r' < "$tmp/stall.tty" | grep '^{' | tail -n 1 > "$tmp/stall.json"
sed 's/\r/\n/g' "$tmp/stall.tty" | sed 's/\x1b\[K//g' | grep -v '^$' | sed 's/^/  [stall] /' | tail -n 25
[ $rc = 1 ] || fail "isoforge local build exited with $rc (a stalled install must fail)"
[ "$(field "$tmp/stall.json" state)" = failed ] || fail "state is not failed"
err=$(field "$tmp/stall.json" error)
echo "reason: $err"
echo "$err" | grep -q "no disk writes and no console output for 20 s" || fail "reason: $err"
# boot to the marker (up to ~60 s under load), then 20 s of nothing: before --timeout 180
[ $took -lt 200 ] || fail "the watchdog took $took s"
id=$(field "$tmp/stall.json" build_id)
shot=$(field "$tmp/stall.json" screenshot)
[ "$shot" = "$out/.logs/$id.screenshot.png" ] || fail "screenshot at '$shot', not next to the serial log"
echo "$err" | grep -qF "$shot" || fail "the failure does not name the screenshot"
[ "$(stat -c %a "$shot")" = 600 ] || fail "screenshot mode $(stat -c %a "$shot"), not 600"
python3 - "$shot" <<'PY' || fail "the screenshot is not a valid PNG"
import struct, sys, zlib
d = open(sys.argv[1], "rb").read()
assert d[:8] == b"\x89PNG\r\n\x1a\n", "signature"
off, chunks, idat = 8, [], b""
while off < len(d):
    n, t = struct.unpack(">I4s", d[off:off + 8])
    body = d[off + 8:off + 8 + n]
    assert struct.unpack(">I", d[off + 8 + n:off + 12 + n])[0] == zlib.crc32(t + body), t
    chunks.append(t)
    if t == b"IHDR":
        w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
    if t == b"IDAT":
        idat += body
    off += 12 + n
assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND", chunks
assert 100 <= w <= 4096 and 100 <= h <= 4096 and depth == 8 and ctype == 2, (w, h, depth, ctype)
raw = zlib.decompress(idat)
assert len(raw) == h * (1 + 3 * w), (len(raw), w, h)
print("screenshot: PNG %dx%d, %d bytes" % (w, h, len(d)))
PY
tty=$(sed 's/\r/\n/g' "$tmp/stall.tty")
# the path at once, the live line with the report (elapsed, bytes written, the console's line)
echo "$tty" | grep -q "^serial log: $out/.work/$id/console.log" || fail "no serial log path at the start"
# (the console's line: the marker, or the boot loader's when the kernel's silent decompression
# under TCG on a loaded host already takes 20 s)
grep -qa $'\x1b\[K\[ *[0-9.]*s\] installing ([0-9]* s): [0-9]* s, 0 B written to the root disk, console: "[^"]*"' "$tmp/stall.tty" ||
	fail "no live status line with the progress report"
echo "$tty" | grep -q '^\[ *[0-9.]*s\] installing: [0-9]' && fail "report lines on a terminal (the live line is for it)"
assert_clean "$tmp/stall.json"
echo PASS
