#!/usr/bin/env bash
# tests/bench/h2.sh - HTTP/2 and gRPC through weir-proxy, nginx and HAProxy, side by side.
#
#   tests/bench/h2.sh             (WEIR_BUILD_DIR defaults to <repo>/build)
#   env: BENCH_SECONDS (10) length of each h2load run; BENCH_ROUNDS (3) rounds, the median
#   shown; BENCH_ONLY="weir nginx" a subset of "weir nginx haproxy"; BENCH_KEEP=1 keeps the
#   temp dir (configs, logs).
#
# Not part of the test suite: a human runs it. Everything listens on 127.0.0.1 only.
# Measurements, each proxy configured the same way (TLS with ALPN h2 on the client side, the
# same cipher: TLS 1.3 TLS_AES_256_GCM_SHA384, the server's choice as weir and HAProxy make it;
# nginx before 1.23 leaves TLS 1.3 out unless told and follows the client's order unless told,
# so h2load got TLS 1.2 ECDHE-ECDSA-AES128-GCM-SHA256 from it; one
# HTTP/1.1 backend with upstream keep-alive, same worker count). 640 streams in flight need
# 640 upstream connections: weir and nginx keep up to 1024 idle per worker (HAProxy keeps
# every idle one by default), so no proxy opens a connection per request:
#   - small responses over HTTP/2: h2load -c 64 -m 10 (64 TLS connections, 10 streams each)
#     for BENCH_SECONDS against tests/bench/backend.c; req/s and the p50/p99 of the request
#     times h2load logs (--log-file); 1 and 2 workers
#   - system calls and CPU time per request, 1 worker: perf stat (raw_syscalls:sys_enter) and
#     /proc/PID/stat (user+system) over the proxy's processes while h2load -c 64 -m 10 makes
#     100,000 requests (skipped without perf); both hold on a busy machine
#   - gRPC unary: h2load POSTing one gRPC frame (content-type application/grpc, te: trailers)
#     to tests/backends/grpc_backend.py (grpcio, Python: it is the ceiling here) through
#     weir (backend_protocol GRPC) and nginx (grpc_pass), over h2c on the client side, 2
#     workers; "direct" is h2load against the backend itself; then system calls and proxy
#     CPU time per call, 1 worker (h2load -n 20000 -c 8 -m 4), as above
# A step that fails prints "n/a (reason)" and the rest goes on.
set -u

REPO=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${WEIR_BUILD_DIR:-$REPO/build}
WEIR=$BUILD/weir-proxy
DUR=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-3}
ONLY=${BENCH_ONLY:-weir nginx haproxy}
TMP=$(mktemp -d /tmp/weir-h2bench.XXXXXX)
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
. "$REPO/tests/bench/lib.sh"

for tool in h2load openssl; do
	command -v $tool >/dev/null || { echo "$tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
done
mkdir -p "$BUILD/bench"
gcc -O2 -Wall -o "$BUILD/bench/backend" "$REPO/tests/bench/backend.c" -lcrypto -lpthread ||
	{ echo "cannot build the backend" >&2; exit 1; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench.test \
	-keyout "$TMP/key.pem" -out "$TMP/cert.pem" >/dev/null 2>&1
cat "$TMP/cert.pem" "$TMP/key.pem" >"$TMP/both.pem"

BACKEND_PORT=$(free_port)
"$BUILD/bench/backend" "$BACKEND_PORT" 1 >"$TMP/backend.log" 2>&1 &
BACKEND_PID=$!
PIDS+=($BACKEND_PID)
wait_port "$BACKEND_PORT" 5 || { echo "backend did not start" >&2; exit 1; }

# weir with the bench certificate as its default: the table carries it.
WEIR_CERT_JSON=$(python3 -c 'import json,sys; print(json.dumps({"name": "bench/tls",
  "cert_pem": open(sys.argv[1]).read(), "key_pem": open(sys.argv[2]).read()}))' \
	"$TMP/cert.pem" "$TMP/key.pem")

start_weir_h2() { # workers port(https) [grpc_port] -> PROXY_PID; table with the cert, h2c on
	local workers=$1 port=$2 backend=${3:-$BACKEND_PORT} proto=${4:-HTTP}
	local dir=$TMP/weir-$workers-$proto http
	mkdir -p "$dir/routes"
	http=$(free_port)
	cat >"$dir/routes/routes.json" <<EOF
{"version": 1, "generation": 1,
 "settings": {"upstream_keepalive": 1024, "keepalive_timeout_ms": 75000, "http2_cleartext": true,
              "access_log": false},
 "certs": [$WEIR_CERT_JSON], "default_cert": 0,
 "hosts": [{"name": "", "routes": [{"path": "/", "match": "prefix", "backend": 0,
   "policy": {"read_timeout_ms": 60000, "backend_protocol": "$proto"}}]}],
 "backends": [{"name": "bench/backend:80",
   "endpoints": [{"address": "127.0.0.1", "port": $backend}]}]}
EOF
	local admin; admin=$(free_port)
	"$WEIR" --routes "$dir/routes" --http-port "$http" --https-port "$port" \
		--admin-port "$admin" --workers "$workers" --listen-address 127.0.0.1 \
		--log-format text >"$dir/log" 2>&1 &
	PROXY_PID=$!
	PIDS+=($PROXY_PID)
	H2C_PORT=$http
	wait_port "$port" 10 && wait_port "$http" 10 && return 0
	echo "weir-proxy not ready: $(tail -n 1 "$dir/log")" >"$TMP/why"
	return 1
}

start_nginx_h2() { # workers port [grpc backend port]
	local workers=$1 port=$2 grpc=${3:-}
	local dir=$TMP/nginx-$workers-${grpc:-http}
	mkdir -p "$dir/logs" "$dir/tmp"
	local location="proxy_pass http://backend; proxy_http_version 1.1;
            proxy_set_header Connection \"\"; proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;"
	local up="server 127.0.0.1:$BACKEND_PORT;"
	local listen="listen 127.0.0.1:$port ssl http2 reuseport;"
	if [ -n "$grpc" ]; then
		location="grpc_pass grpc://backend;"
		up="server 127.0.0.1:$grpc;"
		listen="listen 127.0.0.1:$port http2 reuseport;"
	fi
	cat >"$dir/nginx.conf" <<EOF
worker_processes $workers;
worker_rlimit_nofile $NOFILE;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 16384; multi_accept on; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    http2_max_requests 1000000;
    upstream backend { $up keepalive 1024; keepalive_requests 1000000; }
    server {
        $listen
        ssl_certificate $TMP/cert.pem;
        ssl_certificate_key $TMP/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_prefer_server_ciphers on;
        location / { $location }
    }
}
EOF
	nginx -c "$dir/nginx.conf" -p "$dir" -g 'daemon off;' >"$dir/out.log" 2>&1 &
	PROXY_PID=$!
	PIDS+=($PROXY_PID)
	wait_port "$port" 5 && return 0
	echo "nginx did not start: $(tail -n 1 "$dir/logs/error.log" "$dir/out.log" 2>/dev/null | tail -n 1)" >"$TMP/why"
	return 1
}

start_haproxy_h2() { # workers port
	local workers=$1 port=$2
	local dir=$TMP/haproxy-$workers
	mkdir -p "$dir"
	cat >"$dir/haproxy.cfg" <<EOF
global
    nbthread $workers
    maxconn $(( NOFILE / 2 - 100 ))
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 75s
    timeout server 60s
frontend fe
    bind 127.0.0.1:$port ssl crt $TMP/both.pem alpn h2,http/1.1
    option forwardfor
    default_backend be
backend be
    server s1 127.0.0.1:$BACKEND_PORT maxconn 0
EOF
	haproxy -f "$dir/haproxy.cfg" -db >"$dir/out.log" 2>&1 &
	PROXY_PID=$!
	PIDS+=($PROXY_PID)
	wait_port "$port" 5 && return 0
	echo "haproxy did not start: $(tail -n 1 "$dir/out.log")" >"$TMP/why"
	return 1
}

# h2load_run URL [extra args...] -> "REQS_PER_S P50_MS P99_MS OK FAILED" (or "n/a (why)")
h2load_run() {
	local url=$1; shift
	local log=$TMP/h2load.log
	rm -f "$log"
	local out
	out=$(timeout $((DUR + 30)) h2load -D "$DUR" -c 64 -m 10 -t 2 --log-file="$log" "$@" "$url" 2>&1)
	local rps ok failed
	rps=$(awk '/^finished in/ { for (i = 1; i <= NF; i++) if ($i == "req/s,") print $(i-1) }' <<<"$out")
	ok=$(awk '/^requests:/ { for (i = 1; i <= NF; i++) if ($i == "succeeded,") print $(i-1) }' <<<"$out")
	failed=$(awk '/^requests:/ { for (i = 1; i <= NF; i++) if ($i == "failed,") print $(i-1) }' <<<"$out")
	if [ -z "$rps" ] || [ ! -s "$log" ]; then
		echo "n/a (h2load: $(tail -n 1 <<<"$out"))"
		return
	fi
	# --log-file: start time, status, request time in microseconds (tab separated)
	python3 - "$log" "$rps" "$ok" "$failed" <<'EOF'
import sys
lat = sorted(int(l.split("\t")[2]) for l in open(sys.argv[1]) if l.count("\t") >= 2)
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] / 1000 if lat else float("nan")
print(f"{float(sys.argv[2].rstrip('req/s')):.0f} {q(0.50):.2f} {q(0.99):.2f} {sys.argv[3]} {sys.argv[4]}")
EOF
}

median_of() { # lines "rps p50 p99 ok failed" -> the line with the median rps
	sort -n -k1,1 | awk '{ a[NR] = $0 } END { if (NR) print a[int((NR + 1) / 2)] }'
}

declare -A RES
# Rounds interleave the proxies (weir nginx haproxy, weir nginx haproxy, ...), so a
# machine that speeds up or slows down during the run moves every proxy's median alike.
for w in 1 2; do
	declare -A RUNS=() NOSTART=()
	for r in $(seq "$ROUNDS"); do
		for name in $ONLY; do
			[ -n "${NOSTART[$name]:-}" ] && continue
			port=$(free_port)
			if ! "start_${name}_h2" "$w" "$port"; then
				NOSTART[$name]="n/a ($(cat "$TMP/why"))"
				stop_proxy "$name"
				continue
			fi
			RUNS[$name]+="$(h2load_run "https://127.0.0.1:$port/")"$'\n'
			stop_proxy "$name"
		done
	done
	for name in $ONLY; do
		if [ -n "${NOSTART[$name]:-}" ]; then
			RES[$name,$w]=${NOSTART[$name]}
		else
			RES[$name,$w]=$(printf '%s' "${RUNS[$name]:-}" | grep -v '^n/a' | grep . | median_of)
			# every round failed: the first reason
			[ -n "${RES[$name,$w]}" ] || RES[$name,$w]=$(printf '%s' "${RUNS[$name]:-}" | head -n 1)
		fi
	done
	unset RUNS NOSTART
done

# System calls per request, 1 worker (a figure that holds on a busy machine): perf stat
# counts raw_syscalls:sys_enter over the proxy's processes (nginx: its workers) while
# h2load makes SYSCALL_REQS requests after a warm-up.
SYSCALL_REQS=100000
declare -A SC
cpu_ticks() { # pid... -> user+system clock ticks of those processes (all their threads)
	local t=0 p
	for p in "$@"; do
		t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
	done
	echo "$t"
}
# Globals SC_URL (default https://127.0.0.1:PORT/), SC_N (default SYSCALL_REQS), SC_LOAD
# (h2load's connection and stream options) and SC_ARGS (more h2load arguments) change what
# is asked.
SC_URL="" SC_N="" SC_LOAD="" SC_ARGS=()
syscalls_run() { # name port pid...
	local name=$1 port=$2; shift 2
	local pids; pids=$(IFS=,; echo "$*")
	local url=${SC_URL:-https://127.0.0.1:$port/} n=${SC_N:-$SYSCALL_REQS}
	local load=${SC_LOAD:--c 64 -m 10 -t 2}
	# shellcheck disable=SC2086
	h2load -n $((n / 5)) $load "${SC_ARGS[@]}" "$url" >/dev/null 2>&1
	perf stat -e raw_syscalls:sys_enter -p "$pids" -o "$TMP/perf.txt" 2>/dev/null &
	local sp=$!
	sleep 0.5
	local t0; t0=$(cpu_ticks "$@")
	# shellcheck disable=SC2086
	local out; out=$(h2load -n "$n" $load "${SC_ARGS[@]}" "$url" 2>&1)
	local t1; t1=$(cpu_ticks "$@")
	kill -INT $sp 2>/dev/null
	wait $sp 2>/dev/null
	local n ok
	n=$(awk '/raw_syscalls/ { gsub(",", "", $1); print $1 }' "$TMP/perf.txt" 2>/dev/null)
	ok=$(awk '/^requests:/ { for (i = 1; i <= NF; i++) if ($i == "succeeded,") print $(i-1) }' <<<"$out")
	if [ -z "$n" ] || [ "${ok:-0}" -eq 0 ]; then
		SC[$name]="n/a (perf stat or h2load failed)"
	else
		SC[$name]=$(awk -v n="$n" -v ok="$ok" -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" \
			'BEGIN { printf "%.2f syscalls, %.1f us CPU (user+system)", n / ok, t / hz * 1e6 / ok }')
	fi
}
if command -v perf >/dev/null; then
	for name in $ONLY; do
		port=$(free_port)
		if ! "start_${name}_h2" 1 "$port"; then
			SC[$name]="n/a ($(cat "$TMP/why"))"
			stop_proxy "$name"
			continue
		fi
		if [ "$name" = nginx ]; then
			sleep 0.3
			syscalls_run "$name" "$port" $(pgrep -P "$PROXY_PID")
		else
			syscalls_run "$name" "$port" "$PROXY_PID"
		fi
		stop_proxy "$name"
	done
fi

# gRPC unary: one 16-byte message in a gRPC frame.
GRPC_RES=()
if python3 -c 'import grpc' 2>/dev/null; then
	GRPC_PORT=$(free_port)
	python3 "$REPO/tests/backends/grpc_backend.py" --port "$GRPC_PORT" >"$TMP/grpc.log" 2>&1 &
	PIDS+=($!)
	wait_port "$GRPC_PORT" 10
	printf '\x00\x00\x00\x00\x10abcdefghijklmnop' >"$TMP/grpc.body"
	gargs=(-d "$TMP/grpc.body" -H 'content-type: application/grpc' -H 'te: trailers')
	GRPC_RES+=("direct|$(h2load_run "http://127.0.0.1:$GRPC_PORT/test.Echo/Unary" "${gargs[@]}")")
	start_grpc_proxy() { # name workers -> port (h2c) in $port, PROXY_PID
		port=$(free_port)
		if [ "$1" = weir ]; then
			start_weir_h2 "$2" "$port" "$GRPC_PORT" GRPC && port=$H2C_PORT
		else
			start_nginx_h2 "$2" "$port" "$GRPC_PORT"
		fi
	}
	for name in weir nginx; do
		[[ " $ONLY " == *" $name "* ]] || continue
		if ! start_grpc_proxy "$name" 2; then
			GRPC_RES+=("$name|n/a ($(cat "$TMP/why"))")
		else
			GRPC_RES+=("$name|$(h2load_run "http://127.0.0.1:$port/test.Echo/Unary" "${gargs[@]}")")
		fi
		stop_proxy "$name"
	done
	# What each call costs the proxy, 1 worker (the backend, not the proxy, bounds req/s).
	GRPC_SC=()
	for name in weir nginx; do
		[[ " $ONLY " == *" $name "* ]] && command -v perf >/dev/null || continue
		if ! start_grpc_proxy "$name" 1; then
			SC[grpc-$name]="n/a ($(cat "$TMP/why"))"
		else
			SC_URL="http://127.0.0.1:$port/test.Echo/Unary" SC_N=20000 SC_LOAD="-c 8 -m 4"
			SC_ARGS=("${gargs[@]}")
			if [ $name = nginx ]; then
				sleep 0.3
				syscalls_run "grpc-$name" "$port" $(pgrep -P "$PROXY_PID")
			else
				syscalls_run "grpc-$name" "$port" "$PROXY_PID"
			fi
			SC_URL="" SC_N="" SC_LOAD="" SC_ARGS=()
		fi
		GRPC_SC+=("$name")
		stop_proxy "$name"
	done
fi

echo
echo "weir HTTP/2 benchmark, loopback, $(nproc) CPUs, h2load -D ${DUR}s -c 64 -m 10 -t 2 over TLS"
echo "backend: tests/bench/backend.c (1 thread, HTTP/1.1 keep-alive); median of $ROUNDS rounds"
printf '%-10s %-8s %12s %10s %10s %12s %8s\n' proxy workers "req/s" "p50 ms" "p99 ms" succeeded failed
for w in 1 2; do
	for name in $ONLY; do
		v=${RES[$name,$w]}
		if [[ $v == n/a* ]]; then
			printf '%-10s %-8s %s\n' "$name" "$w" "$v"
		else
			read -r rps p50 p99 ok failed <<<"$v"
			printf '%-10s %-8s %12s %10s %10s %12s %8s\n' "$name" "$w" "$rps" "$p50" "$p99" "$ok" "$failed"
		fi
	done
done
if [ ${#SC[@]} -gt 0 ]; then
	echo
	echo "per request, 1 worker (h2load -n $SYSCALL_REQS -c 64 -m 10 over TLS): system calls, proxy CPU time"
	for name in $ONLY; do
		printf '%-10s %s\n' "$name" "${SC[$name]:-n/a}"
	done
fi
if [ ${#GRPC_RES[@]} -gt 0 ]; then
	echo
	echo "gRPC unary (h2load over h2c, 16-byte message, backend grpc_backend.py), 2 workers"
	for line in "${GRPC_RES[@]}"; do
		name=${line%%|*}
		v=${line#*|}
		if [[ $v == n/a* ]]; then
			printf '%-10s %s\n' "$name" "$v"
		else
			read -r rps p50 p99 ok failed <<<"$v"
			printf '%-10s %12s req/s  p50 %s ms  p99 %s ms  succeeded %s failed %s\n' \
				"$name" "$rps" "$p50" "$p99" "$ok" "$failed"
		fi
	done
	if [ ${#GRPC_SC[@]} -gt 0 ]; then
		echo "per call, 1 worker (h2load -n 20000 -c 8 -m 4 over h2c): system calls, proxy CPU time"
		for name in "${GRPC_SC[@]}"; do
			printf '%-10s %s\n' "$name" "${SC[grpc-$name]:-n/a}"
		done
	fi
fi
