#!/usr/bin/env bash
# t_local_progress.sh — a long install reports its progress and the watchdog lets it be:
# installer-slow.iso writes 60 MiB to its disk over 60 s with a silent console, then talks on
# the console for 60 s with no disk writes, then installs. With --progress-interval 2 (stderr
# not a terminal) the build prints the serial log's path at once, then one line per report:
# elapsed growing, the bytes written growing while the console is silent, the console's last
# line once it talks; with --inactivity-timeout 50 (shorter than either half, longer than the
# silent kernel decompression under TCG on a loaded host: ~30 s measured at load 10) the build ends
# active: disk writes alone and console output alone each count as activity.
. "$(dirname "$0")/local-lib.sh"

local_build slow --iso "$media/installer-slow.iso" "${small[@]}" --timeout 900 \
	--progress-interval 2 --inactivity-timeout 50 ||
	fail "the build failed: $(field "$tmp/slow.json" error)"
[ "$(field "$tmp/slow.json" state)" = active ] || fail "state is not active"
id=$(field "$tmp/slow.json" build_id)
python3 - "$tmp/slow.err" "$out/.work/$id/console.log" <<'PY' || fail "progress reports"
import re, sys
lines = open(sys.argv[1], errors="replace").read().splitlines()
first = next(i for i, l in enumerate(lines) if "installing" in l)
assert lines[first + 1] == "serial log: " + sys.argv[2] or any(
    l == "serial log: " + sys.argv[2] for l in lines[first:first + 3]), lines[first:first + 3]
pat = re.compile(r'^\[ *[0-9.]+s\] installing: (?:(\d+)m)?(\d+) ?s, ([0-9.]+) (B|KiB|MiB|GiB) '
                 r'written to the root disk, console: (?:"(.*)"|nothing yet)$')
unit = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3}
reps = []
for l in lines:
    m = pat.match(l)
    if m:
        reps.append((int(m.group(1) or 0) * 60 + int(m.group(2)),
                     float(m.group(3)) * unit[m.group(4)], m.group(5) or ""))
assert len(reps) >= 30, "only %d reports" % len(reps)
el = [r[0] for r in reps]
wr = [r[1] for r in reps]
assert el == sorted(el) and el[-1] - el[0] >= 110, el
assert wr == sorted(wr), "the bytes written went down: %s" % wr
assert wr[-1] - wr[0] >= 50 * 1024 ** 2, "written %s" % wr
# while the console was silent, the reports still saw the disk grow
silent = [r for r in reps if r[2].startswith("isoforge: slow install: writing")]
assert len(silent) >= 5 and silent[-1][1] - silent[0][1] >= 20 * 1024 ** 2, silent
talking = [r for r in reps if r[2].startswith("isoforge: slow install: working on the console")]
assert len(talking) >= 5 and len(set(r[2] for r in talking)) >= 3, talking
print("%d reports over %d s: %.1f -> %.1f MiB written; last console line %r" %
      (len(reps), el[-1] - el[0], wr[0] / 2 ** 20, wr[-1] / 2 ** 20, reps[-1][2]))
PY
grep -q "ISOFORGE-INSTALL-DONE" "$out/.logs/$id.console.log" || fail "serial log not kept"
ls "$out/.logs/$id.screenshot.png" >/dev/null 2>&1 && fail "a screenshot without a stall"
virsh dominfo "isoforge-$id" >/dev/null 2>&1 && fail "domain left behind"
[ -z "$(ls -A "$out/.work" 2>/dev/null)" ] || fail "work files left"
echo PASS
