#!/usr/bin/env bash
# tests/bench/gzip.sh - compression cost: req/s and CPU per request of weir-proxy and
# nginx, both with gzip on at level 1 (ingress-nginx's use-gzip defaults), for a 64 KiB
# text/plain response (backend.c's GET /text64k), asked for with and without
# "Accept-Encoding: gzip", weir also with enable-brotli (level 4) and "Accept-Encoding: br"
# (Debian's nginx has no brotli module), and the backend direct for reference.
#
#   tests/bench/gzip.sh           (WEIR_BUILD_DIR defaults to <repo>/build)
#   env: BENCH_SECONDS (10) per step; BENCH_WORKERS (1); BENCH_CONNS (16)
#
# Not part of the test suite: a human runs it. Loopback only.
set -u

REPO=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${WEIR_BUILD_DIR:-$REPO/build}
WEIR=$BUILD/weir-proxy
DUR=${BENCH_SECONDS:-10}
WORKERS=${BENCH_WORKERS:-1}
CONNS=${BENCH_CONNS:-16}
TMP=$(mktemp -d /tmp/weir-gzip-bench.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.3
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null
NOFILE=$(ulimit -n)

. "$REPO/tests/bench/lib.sh"

mkdir -p "$BUILD/bench"
gcc -O2 -Wall -o "$BUILD/bench/backend" "$REPO/tests/bench/backend.c" -lcrypto -lpthread ||
	{ echo "cannot build the backend" >&2; exit 1; }
BACKEND_PORT=$(free_port)
"$BUILD/bench/backend" "$BACKEND_PORT" 1 >"$TMP/backend.log" 2>&1 &
BACKEND_PID=$!
PIDS+=($BACKEND_PID)
wait_port "$BACKEND_PORT" 5 || { echo "backend did not start" >&2; exit 1; }

export WEIR_SETTINGS_EXTRA=', "use_gzip": true, "enable_brotli": true'
export NGINX_HTTP_EXTRA='gzip on; gzip_comp_level 1; gzip_http_version 1.1; gzip_min_length 256; gzip_proxied any; gzip_vary on; gzip_types text/plain;'

AE_HEADER="Accept-Encoding: gzip"
BR_HEADER="Accept-Encoding: br"
run() { # name header-or-empty -> "req/s|us/req|MB/s read"
	local name=$1 hdr=$2 port=$BACKEND_PORT out cpu0 cpu1 reqs rps
	PROXY_PID=0
	[ "$name" = direct ] || port=$(free_port)
	if ! "start_$name" "$WORKERS" "$port"; then
		echo "n/a ($(cat "$TMP/why"))"
		return
	fi
	# the answer is what it should be
	local ce
	ce=$(curl -s -o /dev/null -D - ${hdr:+-H "$hdr"} "http://127.0.0.1:$port/text64k" |
		tr -d '\r' | awk -F': ' 'tolower($1) == "content-encoding" {print $2}')
	cpu0=$(cpu_tree_us "$PROXY_PID")
	out=$(timeout $((DUR + 20)) wrk -t1 -c"$CONNS" -d"${DUR}s" ${hdr:+-H "$hdr"} \
		"http://127.0.0.1:$port/text64k" 2>&1)
	cpu1=$(cpu_tree_us "$PROXY_PID")
	rps=$(awk '/Requests\/sec/ {printf "%d", $2}' <<<"$out")
	reqs=$(awk '/requests in/ {print $1}' <<<"$out")
	printf '%s req/s|%s us/req|%s|%s\n' "${rps:-n/a}" \
		"$(awk -v n="${reqs:-0}" -v a="$cpu0" -v b="$cpu1" \
			'BEGIN { if (n > 0) printf "%.1f", (b - a) / n; else print "n/a" }')" \
		"$(awk '/Transfer\/sec/ {print $2}' <<<"$out")/s" "${ce:-identity}"
	stop_proxy "$name"
}

printf '%-8s | %-22s | %-14s | %-14s | %-10s | %s\n' proxy request rate "CPU per req" read encoding
for name in direct weir nginx; do
	for hdr in "" "$AE_HEADER" "$BR_HEADER"; do
		[ "$name" = direct ] && [ -n "$hdr" ] && continue
		[ "$name" != weir ] && [ "$hdr" = "$BR_HEADER" ] && continue # nginx has no brotli here
		IFS='|' read -r rate cpu mbs enc <<<"$(run "$name" "$hdr")"
		printf '%-8s | %-22s | %-14s | %-14s | %-10s | %s\n' "$name" "${hdr:-no Accept-Encoding}" \
			"$rate" "$cpu" "$mbs" "$enc"
	done
done
echo "wrk -t1 -c$CONNS -d${DUR}s GET /text64k (64 KiB text/plain), $WORKERS proxy worker(s), $(nproc) CPUs;"
echo "gzip level 1 in both, brotli level 4; CPU: user + system time of the proxy's processes per request"
