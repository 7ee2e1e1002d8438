#!/bin/sh
# Controller benchmark (not part of the test suite; bounded in time): --once compile time and
# peak RSS at 1,000 and 10,000 Ingresses, ready time and event-to-served p50/p99 at 10,000 with
# a running weir-proxy. Loopback only.
#   tests/bench/controller_bench.sh [BUILD_DIR] [CHANGES]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build}
changes=${2:-20}
exec timeout 1500 python3 "$here/controller_bench.py" --build "$build" --changes "$changes"
