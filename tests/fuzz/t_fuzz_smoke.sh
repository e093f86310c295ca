#!/usr/bin/env bash
# t_fuzz_smoke.sh — each libFuzzer target of tests/fuzz/ (build/fuzz/fuzz_*, `make fuzzers`)
# for FUZZ_SMOKE_SECONDS (30) from its committed seeds: no crash, no leak, no sanitizer report,
# no timeout. Five targets: 2.5 min in all. The long runs are `make fuzz` (bench/README.md).
set -u
top=${ISOFORGE_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
for n in request amqp config profile replies; do
	[ -x "$top/build/fuzz/fuzz_$n" ] || { echo "build/fuzz/fuzz_$n missing (make fuzzers): skipped"; exit 77; }
done
export ISOFORGE_FUZZ_DIR=${TEST_TMP:-$(mktemp -d)}/fuzz
# the sanitizers' options of tests/run are for the test programs, not for libFuzzer's runs
unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS
"$top/tests/fuzz/run-fuzzers" "${FUZZ_SMOKE_SECONDS:-30}"
