#!/usr/bin/env bash
# The whole weir test suite: installs what it needs, builds, then runs the
# unit tests (CTest, ASan+UBSan), the golden, integration, cluster and
# packaging tests (pytest), and the kind end-to-end suite (a one-node kind
# cluster from a node image built here, no registry). Heavy build products
# (Kubernetes binaries, Go caches, images) are cached under $WEIR_CACHE
# (default /var/cache/weir) so a second run is fast.
set -euo pipefail
cd "$(dirname "$0")/.."
export WEIR_CACHE="${WEIR_CACHE:-/var/cache/weir}"
export WEIR_BUILD_DIR="${WEIR_BUILD_DIR:-$PWD/build}"
mkdir -p "$WEIR_CACHE"

./scripts/install-deps.sh
cmake -S . -B "$WEIR_BUILD_DIR" -G Ninja -DWEIR_WERROR=ON >/dev/null
cmake --build "$WEIR_BUILD_DIR"
(cd "$WEIR_BUILD_DIR" && ctest --output-on-failure)
# ---- sanitizers and fuzzing (issue 9) ----
# The golden and integration suites again, against a tree where the libraries
# and both programs carry ASan+UBSan (any report fails), then a libFuzzer
# smoke run: each harness of tests/fuzz for a few seconds from its seeds.
./scripts/test-sanitized.sh
tests/fuzz/run.sh "${WEIR_FUZZ_SECONDS:-8}"
# ---- end sanitizers and fuzzing ----
python3 -m pytest "$@"
tests/e2e/kind/run.sh
