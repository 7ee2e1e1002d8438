#!/usr/bin/env bash
# tests/bench/syscalls.sh - the figures that hold on a busy machine: system calls per proxied
# request / WebSocket message for weir-proxy, nginx and HAProxy, and weir's user-space
# instructions per request / message, on loopback.
#
#   tests/bench/syscalls.sh      (WEIR_BUILD_DIR defaults to <repo>/build)
#   env: BENCH_ONLY="weir nginx" a subset of "weir nginx haproxy"; BENCH_SECONDS (5) per step;
#   SYSCALLS_IR=0 skips the callgrind steps
#
# Not part of the test suite: a human runs it (as root, or with perf_event_paranoid <= 1 for
# the tracepoints). Everything listens on 127.0.0.1 only. Each proxy runs with 1 worker,
# configured as in run.sh (lib.sh). Steps, each after a 1 s warm-up:
#   - syscalls: `perf stat` counts the raw_syscalls:sys_enter tracepoint (and the few calls
#     that matter by name) over every process of the proxy while wrk -t2 -c64 (HTTP) or
#     ws_client with 64 connections (64-byte echo) runs; divided by requests / messages done
#   - instructions (weir only): weir-proxy under `valgrind --tool=callgrind`, counters zeroed
#     after a warm-up, then wrk -t1 -c64 for 15 s or ws_client with 8 connections for 5 s;
#     the Ir total of the dump divided by the requests (calls of headers_build_request) or
#     messages (calls of tls_sock_write / 2) in the dump (user space only)
# Needs linux-perf and valgrind (apt-get installs them when missing, as root). ~3 minutes.
set -u

REPO=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${WEIR_BUILD_DIR:-$REPO/build}
WEIR_BIN=$BUILD/weir-proxy
WEIR=$WEIR_BIN
DUR=${BENCH_SECONDS:-5}
TMP=$(mktemp -d /tmp/weir-syscalls.XXXXXX)
PIDS=()
NOFILE=4096

cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.3
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	[ -n "${BENCH_KEEP:-}" ] && echo "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

. "$REPO/tests/bench/lib.sh"

# perf and valgrind are bench-only tools, not test dependencies: installed here when missing.
if ! command -v perf >/dev/null || ! command -v valgrind >/dev/null; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q linux-perf valgrind >/dev/null ||
			echo "apt-get install linux-perf valgrind failed" >&2
	fi
fi
for tool in perf wrk; do
	command -v "$tool" >/dev/null || { echo "$tool not installed" >&2; exit 1; }
done
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

tree_pids() { # pid -> it and its descendants, comma-separated
	python3 - "$1" <<'PY'
import os, sys
todo, out = [int(sys.argv[1])], []
while todo:
    p = todo.pop()
    out.append(str(p))
    for t in os.listdir(f"/proc/{p}/task"):
        todo += [int(c) for c in open(f"/proc/{p}/task/{t}/children").read().split()]
print(",".join(out))
PY
}

load() { # mode port seconds conns -> prints the operations done
	local out
	if [ "$1" = http ]; then
		out=$(timeout $(($3 + 20)) wrk -t"$([ "$4" -ge 2 ] && echo 2 || echo 1)" -c"$4" -d"$3s" \
			"http://127.0.0.1:$2/" 2>&1)
		awk '/requests in/ {print $1}' <<<"$out"
	else
		out=$(timeout $(($3 + 60)) "$BUILD/bench/ws_client" echo "$2" /ws "$4" "$3" 64 2>&1)
		awk '/^messages/ {print $2}' <<<"$out"
	fi
}

EVENTS=raw_syscalls:sys_enter
for c in recvfrom sendto readv writev read write epoll_wait epoll_ctl; do
	EVENTS+=,syscalls:sys_enter_$c
done

syscalls() { # name mode
	local name=$1 mode=$2 port
	port=$(free_port)
	PROXY_PID=0
	if ! "start_$name" 1 "$port"; then
		echo "$name $mode: n/a ($(cat "$TMP/why"))"
		stop_proxy "$name"
		return
	fi
	load "$mode" "$port" 1 64 >/dev/null
	perf stat -x, -e "$EVENTS" -p "$(tree_pids "$PROXY_PID")" -o "$TMP/perf.out" &
	local sp=$! ops
	sleep 0.5
	ops=$(load "$mode" "$port" "$DUR" 64)
	kill -INT "$sp"
	wait "$sp"
	stop_proxy "$name"
	if [ -z "$ops" ] || [ "$ops" = 0 ]; then
		echo "$name $mode: n/a (no load went through)"
		return
	fi
	awk -F, -v n="$ops" -v name="$name" -v mode="$mode" '
		$3 == "raw_syscalls:sys_enter" { total = $1 }
		$3 ~ /^syscalls:sys_enter_/ && $1 + 0 > 0 { sub("syscalls:sys_enter_", "", $3)
			each = each sprintf(" %s %.2f", $3, $1 / n) }
		END { printf "%-8s %-5s %9d ops  %5.2f syscalls/op  (%s )\n", name, mode, n, total / n, each }
	' "$TMP/perf.out"
}

instructions() { # mode: weir-proxy under callgrind
	local mode=$1 port
	if ! command -v valgrind >/dev/null; then echo "weir $mode: n/a (valgrind not installed)"; return; fi
	cat >"$TMP/callgrind.sh" <<W
#!/bin/sh
exec valgrind --tool=callgrind --callgrind-out-file=$TMP/cg.%p "$WEIR_BIN" "\$@" 2>>"$TMP/valgrind.log"
W
	chmod +x "$TMP/callgrind.sh"
	WEIR=$TMP/callgrind.sh
	port=$(free_port)
	PROXY_PID=0
	start_weir 1 "$port" || wait_port "$port" 30 || { echo "weir $mode: n/a (no start)"; WEIR=$WEIR_BIN; return; }
	WEIR=$WEIR_BIN
	local ops
	if [ "$mode" = http ]; then
		load http "$port" 3 64 >/dev/null
		callgrind_control -z "$PROXY_PID" >/dev/null 2>&1
		ops=$(load http "$port" 15 64)
	else
		load ws "$port" 2 8 >/dev/null
		callgrind_control -z "$PROXY_PID" >/dev/null 2>&1
		ops=$(load ws "$port" 5 8)
	fi
	rm -f "$TMP"/cg.*
	callgrind_control -d "$PROXY_PID" >/dev/null 2>&1
	local f ir counted fn=headers_build_request per=1
	[ "$mode" = http ] || { fn=tls_sock_write; per=2; } # a message: one write each way
	for _ in $(seq 100); do # the dump is complete once its totals line is there
		f=$(ls -t "$TMP"/cg.*.* 2>/dev/null | head -n 1)
		[ -n "$f" ] && grep -q '^totals:' "$f" && break
		sleep 0.2
	done
	ir=$(awk '/^totals:/ {print $2; exit}' "${f:-/dev/null}")
	# The operations inside the dump's window (the zero request lands a little late): the
	# calls into fn, summed over its callers.
	counted=$(awk -v fn="$fn" '
		match($0, /^c?fn=\([0-9]+\)/) { id = substr($0, RSTART, RLENGTH); sub(/^c?fn=/, "", id)
			rest = substr($0, RLENGTH + 2); if (rest != "") name[id] = rest
			want = $0 ~ /^cfn=/ && name[id] == fn; next }
		want && /^calls=/ { split($0, a, /[= ]/); total += a[2]; want = 0 }
		END { print total + 0 }' "${f:-/dev/null}")
	stop_proxy weir
	if [ -z "$ir" ] || [ -z "$counted" ] || [ "$counted" = 0 ]; then
		echo "weir     $mode: n/a (no callgrind dump or no load)"
		return
	fi
	awk -v ir="$ir" -v n="$counted" -v per="$per" -v ops="$ops" -v mode="$mode" 'BEGIN {
		printf "weir     %-5s %9d ops  %6.0f user-space instructions/op (callgrind Ir over %d ops in its window)\n",
			mode, ops, ir * per / n, n / per }'
}

read -r -a NAMES <<<"${BENCH_ONLY:-weir nginx haproxy}"
echo "loopback, 1 worker each, $(nproc) CPUs; HTTP: wrk -c64 ${DUR}s; WS: 64 conns x 64 B echo ${DUR}s"
for mode in http ws; do
	for name in "${NAMES[@]}"; do syscalls "$name" "$mode"; done
done
if [ "${SYSCALLS_IR:-1}" != 0 ] && [[ " ${NAMES[*]} " == *" weir "* ]]; then
	for mode in http ws; do instructions "$mode"; done
fi
