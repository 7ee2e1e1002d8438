#!/usr/bin/env bash
# Build the libFuzzer harnesses (clang, ASan + UBSan) and run each for SECONDS,
# one process at a time, starting from the checked-in seeds of
# tests/fuzz/corpus/<harness>/. New inputs go to a scratch corpus, so the
# checked-in one is never changed; crash/leak/timeout inputs are kept under
# $WEIR_FUZZ_OUT (default <build>/fuzz-out). Prints runs, execs/s and findings
# per harness; exits 1 when any harness found something.
# Usage: tests/fuzz/run.sh SECONDS [HARNESS...]   (default: every harness)
# Env: WEIR_FUZZ_BUILD_DIR (default <repo>/build-fuzz).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
SECONDS_EACH=${1:?usage: tests/fuzz/run.sh SECONDS [HARNESS...]}
shift
BUILD=${WEIR_FUZZ_BUILD_DIR:-$REPO/build-fuzz}
OUT=${WEIR_FUZZ_OUT:-$BUILD/fuzz-out}
ALL=(http_request http_response tls_sni fastcgi h2_session route_table annotations manifests k8s_watch)
HARNESSES=("$@")
[ ${#HARNESSES[@]} -gt 0 ] || HARNESSES=("${ALL[@]}")

cmake -S . -B "$BUILD" -G Ninja -DCMAKE_C_COMPILER=clang -DWEIR_FUZZ=ON -DBUILD_TESTING=OFF \
	-DWEIR_WERROR=ON >/dev/null
cmake --build "$BUILD" --target weir_fuzz >/dev/null

mkdir -p "$OUT"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

failed=0
printf '%-14s %10s %9s %8s  %s\n' harness runs execs/s seconds findings
for h in "${HARNESSES[@]}"; do
	bin=$BUILD/tests/fuzz/fuzz_$h
	seeds=$REPO/tests/fuzz/corpus/$h
	[ -x "$bin" ] && [ -d "$seeds" ] || { echo "no harness or corpus for '$h'" >&2; exit 2; }
	mkdir -p "$scratch/$h"
	log=$OUT/$h.log
	rm -f "$OUT/$h"-crash-* "$OUT/$h"-leak-* "$OUT/$h"-timeout-* "$OUT/$h"-oom-* \
		"$OUT/$h"-slow-unit-*
	rc=0
	"$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$OUT/$h-" \
		"$scratch/$h" "$seeds" >"$log" 2>&1 || rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
	took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
	found=$(cd "$OUT" && ls -1 "$h"-crash-* "$h"-leak-* "$h"-timeout-* "$h"-oom-* 2>/dev/null || true)
	if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
		failed=1
		printf '%-14s %10s %9s %8s  %s\n' "$h" "${runs:-?}" "${speed:-?}" "${took:-?}" \
			"exit $rc: ${found:-no artifact} (log: $log)"
		grep -m1 -E 'ERROR: |runtime error|invariant failed' "$log" >&2 || true
		# The input itself, so a finding on a machine that is gone (CI) can
		# be replayed: base64 -d > f; build-fuzz/tests/fuzz/fuzz_<harness> f
		for f in $found; do
			echo "$f (base64, first 4 KiB): $(head -c 4096 "$OUT/$f" | base64 -w0)" >&2
		done
	else
		printf '%-14s %10s %9s %8s  %s\n' "$h" "$runs" "$speed" "$took" none
	fi
done
exit $failed
