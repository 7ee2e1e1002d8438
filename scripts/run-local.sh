#!/usr/bin/env bash
# Run weir locally without a cluster: installs what is needed, builds, starts
# the demo backends (HTTP echo on 127.0.0.1:18081, WebSocket echo on
# 127.0.0.1:18082, routed for host demo.localhost), weir-controller in --manifests mode on examples/manifests
# and weir-proxy serving the compiled table on :8080 (admin :9090).
# Ctrl-C stops everything. Edit a file in examples/manifests and the route
# table follows within milliseconds.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${WEIR_BUILD_DIR:-$PWD/build}"
MANIFESTS="${WEIR_MANIFESTS:-$PWD/examples/manifests}"
RUN_DIR="$(mktemp -d /tmp/weir-local.XXXXXX)"

./scripts/install-deps.sh
cmake -S . -B "$BUILD" -G Ninja >/dev/null
cmake --build "$BUILD" --target weir-proxy weir-controller

pids=()
cleanup() {
	kill "${pids[@]}" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$RUN_DIR"
}
trap cleanup EXIT INT TERM

python3 tests/backends/echo_http.py --host 127.0.0.1 --port 18081 &
pids+=($!)
python3 tests/backends/ws_echo.py --host 127.0.0.1 --port 18082 &
pids+=($!)
"$BUILD/weir-controller" --manifests "$MANIFESTS" --publish "$RUN_DIR" --metrics-port 0 &
pids+=($!)
"$BUILD/weir-proxy" --routes "$RUN_DIR" --http-port "${WEIR_HTTP_PORT:-8080}" \
	--https-port "${WEIR_HTTPS_PORT:-8443}" --admin-port "${WEIR_ADMIN_PORT:-9090}" &
pids+=($!)

cat <<TXT

weir is running (route table in $RUN_DIR):
  curl -H 'Host: demo.localhost' http://127.0.0.1:${WEIR_HTTP_PORT:-8080}/app/hello
  curl -i --max-time 2 -H 'Host: demo.localhost' -H 'Connection: Upgrade' -H 'Upgrade: websocket' \\
       -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' http://127.0.0.1:${WEIR_HTTP_PORT:-8080}/ws
  curl http://127.0.0.1:${WEIR_ADMIN_PORT:-9090}/metrics
  $BUILD/weir-controller --manifests $MANIFESTS --explain
Ctrl-C to stop.
TXT
wait -n "${pids[@]}"
