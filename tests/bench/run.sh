#!/usr/bin/env bash
# tests/bench/run.sh - side-by-side benchmark of weir-proxy, nginx and HAProxy on loopback.
#
#   tests/bench/run.sh            (WEIR_BUILD_DIR defaults to <repo>/build)
#   env: BENCH_SECONDS (10) run length of each load step; BENCH_ROUNDS (3) HTTP rounds, the
#   median shown with the spread; BENCH_ONLY="weir nginx" a subset of
#   "direct weir nginx haproxy"; BENCH_KEEP=1 keeps the temp dir (configs, logs).
#
# Not part of the test suite: a human runs it. Everything listens on 127.0.0.1 only.
# One small C backend (backend.c) serves all proxies; each proxy is configured the same way
# (same backend, upstream keep-alive, same worker count), started, measured and stopped.
# Measurements:
#   - HTTP keep-alive req/s and p50/p99 latency: wrk -t2 -c64 -d10s --latency, 1 and 2 workers
#   - WebSocket echo messages/s: 64 connections ping-ponging 64-byte, then 1 KiB frames for
#     10 s each (2 workers)
#   - CPU microseconds per request (HTTP) and per message (WS echo): user + system time of the
#     proxy's process tree from /proc/PID/stat, read before and after each step, divided by
#     the requests or messages completed (for "direct": the backend's own CPU)
#   - user-space memory per idle proxied WebSocket: RSS of the proxy's process tree after
#     opening N idle tunnels minus before, divided by N (N = 10,000, or less when
#     RLIMIT_NOFILE cannot hold 2 sockets per tunnel)
# A step that fails prints "n/a (reason)" and the rest goes on. About 6 minutes (2 CPUs), and
# bounded by the per-step timeouts.
set -u

REPO=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${WEIR_BUILD_DIR:-$REPO/build}
WEIR=$BUILD/weir-proxy
DUR=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-3}
WS_CONNS=64
IDLE_WANT=10000
TMP=$(mktemp -d /tmp/weir-bench.XXXXXX)
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
IDLE_N=$(( (NOFILE - 200) / 2 ))
[ "$IDLE_N" -gt "$IDLE_WANT" ] && IDLE_N=$IDLE_WANT

. "$REPO/tests/bench/lib.sh"

echo "building the backend and the WebSocket client into $BUILD/bench ..."
mkdir -p "$BUILD/bench"
if ! gcc -O2 -Wall -o "$BUILD/bench/backend" "$REPO/tests/bench/backend.c" -lcrypto -lpthread ||
   ! gcc -O2 -Wall -o "$BUILD/bench/ws_client" "$REPO/tests/bench/ws_client.c"; then
	echo "cannot build the benchmark tools" >&2
	exit 1
fi
BACKEND_PORT=$(free_port)
"$BUILD/bench/backend" "$BACKEND_PORT" 1 >"$TMP/backend.log" 2>&1 &
BACKEND_PID=$!
PIDS+=($BACKEND_PID)
wait_port "$BACKEND_PORT" 5 || { echo "backend did not start" >&2; exit 1; }

# ---------------------------------------------------------------- measurements
declare -A RES RUNS

# cpu_per OPS US0 US1 -> microseconds of the proxy tree's CPU time per operation ("X.Y")
cpu_per() {
	awk -v n="$1" -v a="$2" -v b="$3" \
		'BEGIN { if (n > 0) printf "%.1f", (b - a) / n; else print "n/a" }'
}

measure_http() { # name workers
	local name=$1 w=$2 port=$BACKEND_PORT
	PROXY_PID=0
	[ "$name" = direct ] || port=$(free_port)
	if ! "start_$name" "$w" "$port"; then
		RES[$name,http$w]="n/a ($(cat "$TMP/why"))"
		stop_proxy "$name"
		return
	fi
	local out cpu0 cpu1
	cpu0=$(cpu_tree_us "$PROXY_PID")
	out=$(timeout $((DUR + 20)) wrk -t2 -c64 -d"${DUR}s" --latency "http://127.0.0.1:$port/" 2>&1)
	cpu1=$(cpu_tree_us "$PROXY_PID")
	local rps reqs p50 p99 errs
	rps=$(awk '/Requests\/sec/ {printf "%d", $2}' <<<"$out")
	reqs=$(awk '/requests in/ {print $1}' <<<"$out")
	p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
	p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
	errs=$(awk '/Non-2xx|Socket errors/' <<<"$out" | tr -s ' ' | tr '\n' ';')
	if [ -z "$rps" ] || [ "$rps" = 0 ]; then
		RES[$name,http$w]="n/a (wrk: $(tail -n 1 <<<"$out"))"
	else
		RUNS[$name,http$w]+="$rps|$(cpu_per "${reqs:-0}" "$cpu0" "$cpu1")|p50 $p50 p99 $p99${errs:+ [$errs]}"$'\n'
	fi
	stop_proxy "$name"
}

summarize_http() { # name w: the median round by req/s and by CPU per request, with the spread
	local runs=${RUNS[$1,http$2]:-}
	[ -n "$runs" ] || return 0
	local by_rps by_cpu
	by_rps=$(sort -t'|' -k1,1n <<<"${runs%$'\n'}")
	by_cpu=$(sort -t'|' -k2,2n <<<"${runs%$'\n'}")
	RES[$1,http$2]=$(awk -F'|' -v by_cpu="$by_cpu" '
		{ r[NR] = $1; d[NR] = $3 }
		END { n = split(by_cpu, c, "\n"); for (i = 1; i <= n; i++) { split(c[i], f, "|"); c[i] = f[2] }
		      m = int((NR + 1) / 2); s = r[m] " req/s|" c[m] " us/req|" d[m]
		      if (NR > 1) s = s " (" NR " rounds: " r[1] "-" r[NR] " req/s, " c[1] "-" c[NR] " us/req)"
		      print s }' <<<"$by_rps")
}

measure_ws() { # name (2 workers): echo rate and CPU per message for 64 B and 1 KiB, then idle memory
	local name=$1 port=$BACKEND_PORT
	PROXY_PID=0
	[ "$name" = direct ] || port=$(free_port)
	if ! "start_$name" 2 "$port"; then
		RES[$name,ws64]="n/a ($(cat "$TMP/why"))"
		RES[$name,ws1024]=${RES[$name,ws64]}
		RES[$name,mem]=${RES[$name,ws64]}
		stop_proxy "$name"
		return
	fi
	local out size cpu0 cpu1
	for size in 64 1024; do
		cpu0=$(cpu_tree_us "$PROXY_PID")
		out=$(timeout $((DUR + 60)) "$BUILD/bench/ws_client" echo "$port" /ws "$WS_CONNS" "$DUR" "$size" 2>&1)
		cpu1=$(cpu_tree_us "$PROXY_PID")
		if grep -q '^messages' <<<"$out"; then
			local msgs
			msgs=$(awk '/^messages/ {print $2}' <<<"$out")
			RES[$name,ws$size]=$(awk '/^messages/ {printf "%d msg/s", $6}' <<<"$out")
			RES[$name,ws$size]+="|$(cpu_per "$msgs" "$cpu0" "$cpu1") us/msg|"
			RES[$name,ws$size]+=$(awk '/^messages/ {printf "errors %s, conns %s", $8, $10}' <<<"$out")
		else
			RES[$name,ws$size]="n/a ($(tail -n 1 <<<"$out"))"
		fi
		sleep 1
	done
	if [ "$name" = direct ]; then
		RES[$name,mem]="-"
		stop_proxy "$name"
		return
	fi
	idle_rss 120 "$BUILD/bench/ws_client" idle "$port" /ws "$IDLE_N"
	if [ "$IDLE_OPEN" -gt 0 ]; then
		RES[$name,mem]="${IDLE_MSG%% (*}||(${IDLE_MSG#* (}"
		[ "$IDLE_OPEN" -lt "$IDLE_N" ] && RES[$name,mem]+=" only $IDLE_OPEN of $IDLE_N opened: $IDLE_OTHER"
	else
		RES[$name,mem]="n/a ($(head -n 1 "$TMP/idle.out"))"
	fi
	stop_proxy "$name"
}

read -r -a NAMES <<<"${BENCH_ONLY:-direct weir nginx haproxy}"
# HTTP rounds go through every proxy in turn, so a slow minute of the machine hits all of them.
for ((round = 1; round <= ROUNDS; round++)); do
	for name in "${NAMES[@]}"; do
		echo "HTTP round $round/$ROUNDS: $name ..."
		measure_http "$name" 1
		if [ "$name" = direct ]; then
			RES[direct,http2]="(same backend)"
		else
			measure_http "$name" 2
		fi
	done
done
for name in "${NAMES[@]}"; do
	summarize_http "$name" 1
	[ "$name" = direct ] || summarize_http "$name" 2
	echo "WebSocket: $name ..."
	measure_ws "$name"
	sleep 1
done

echo
echo "weir benchmark, loopback, $(nproc) CPUs, backend: tests/bench/backend.c (1 thread)"
echo "HTTP: wrk -t2 -c64 -d${DUR}s --latency, median of $ROUNDS interleaved rounds (req/s and CPU"
echo "  separately); WS echo: $WS_CONNS conns x 64 B or 1 KiB frames, ${DUR}s, 2 workers;"
echo "CPU: user + system time of the proxy's processes (/proc/PID/stat) over the step / requests"
echo "  or messages done (for direct: the backend's); memory: (RSS after - RSS before) / conns"
echo "  for $IDLE_N idle tunnels (RLIMIT_NOFILE $NOFILE)"
echo
row() { # step proxy "rate|cpu|detail"
	local rate cpu detail
	IFS='|' read -r rate cpu detail <<<"$3"
	printf '%-16s | %-8s | %-13s | %-12s | %s\n' "$1" "$2" "$rate" "$cpu" "$detail"
}
row step proxy "rate|CPU per op|detail"
printf '%s\n' "$(printf -- '-%.0s' $(seq 120))"
for step in "http1|HTTP, 1 worker" "http2|HTTP, 2 workers" "ws64|WS echo 64 B" \
	"ws1024|WS echo 1 KiB" "mem|idle WS memory"; do
	for name in "${NAMES[@]}"; do
		row "${step#*|}" "$name" "${RES[$name,${step%%|*}]:-n/a}"
	done
done
