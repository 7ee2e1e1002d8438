#!/usr/bin/env bash
# tests/bench/idle_keepalive.sh - user-space memory per idle keep-alive HTTP connection of
# weir-proxy, nginx and HAProxy, side by side, on loopback.
#
#   tests/bench/idle_keepalive.sh [CONNS]   (default 10000; WEIR_BUILD_DIR defaults to
#                                           <repo>/build; BENCH_ONLY="weir nginx" a subset)
#
# Not part of the test suite: a human runs it. Everything listens on 127.0.0.1 only. Each
# proxy is started with 2 workers (configured as in run.sh, see lib.sh), warmed with 200
# short connections, then CONNS connections each send one GET and stay open; the figure is
# (RSS of the proxy's process tree after - before) / CONNS. RLIMIT_NOFILE is raised to the
# hard limit; CONNS is lowered when that cannot hold a client and a proxy socket per
# connection. Bounded: about a minute per proxy.
set -u

REPO=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${WEIR_BUILD_DIR:-$REPO/build}
WEIR=$BUILD/weir-proxy
WANT=${1:-10000}
TMP=$(mktemp -d /tmp/weir-bench-ka.XXXXXX)
PIDS=()

cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.3
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	[ -n "${BENCH_KEEP:-}" ] && echo "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ulimit -n "$(ulimit -Hn)" 2>/dev/null
NOFILE=$(ulimit -n)
N=$((NOFILE - 200))
[ "$N" -gt "$WANT" ] && N=$WANT

. "$REPO/tests/bench/lib.sh"

mkdir -p "$BUILD/bench"
if ! gcc -O2 -Wall -o "$BUILD/bench/backend" "$REPO/tests/bench/backend.c" -lcrypto -lpthread; then
	echo "cannot build the backend" >&2
	exit 1
fi
BACKEND_PORT=$(free_port)
"$BUILD/bench/backend" "$BACKEND_PORT" 1 >"$TMP/backend.log" 2>&1 &
BACKEND_PID=$!
PIDS+=($BACKEND_PID)
wait_port "$BACKEND_PORT" 5 || { echo "backend did not start" >&2; exit 1; }

CLIENT="python3 $REPO/tests/bench/ka_client.py"
declare -A RES

measure() { # name
	local name=$1 port
	port=$(free_port)
	PROXY_PID=0
	if ! "start_$name" 2 "$port"; then
		RES[$name]="n/a ($(cat "$TMP/why"))"
		stop_proxy "$name"
		return
	fi
	local warm
	warm=$($CLIENT warm "$port" 200 2>&1 | tail -n 1)
	sleep 1
	idle_rss 300 $CLIENT idle "$port" "$N"
	if [ "$IDLE_OPEN" -gt 0 ]; then
		RES[$name]=$IDLE_MSG
		[ "$IDLE_OPEN" -lt "$N" ] && RES[$name]+=" only $IDLE_OPEN of $N: $IDLE_OTHER"
	else
		RES[$name]="n/a (warm-up: $warm; $(head -n 1 "$TMP/idle.out"))"
	fi
	stop_proxy "$name"
}

read -r -a NAMES <<<"${BENCH_ONLY:-weir nginx haproxy}"
for name in "${NAMES[@]}"; do
	echo "idle keep-alive: $name ..."
	measure "$name"
	sleep 1
done

echo
echo "memory per idle keep-alive connection after one GET each: (RSS after - RSS before) / conns,"
echo "$N connections, 2 workers, RLIMIT_NOFILE $NOFILE, loopback, $(nproc) CPUs"
echo
for name in "${NAMES[@]}"; do
	printf '%-8s | %s\n' "$name" "${RES[$name]:-n/a}"
done
