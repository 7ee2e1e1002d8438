# tests/bench/lib.sh - shared by the benchmark scripts (sourced, not run): port helpers,
# the RSS and the CPU time of a process tree, and the launchers that start weir-proxy, nginx
# and HAProxy with the same settings (one backend, upstream keep-alive, same worker count).
#
# The caller sets: TMP (a scratch directory), WEIR (the weir-proxy binary), BACKEND_PORT and
# BACKEND_PID (the running backend), NOFILE (the file limit the proxies may use) and PIDS (an
# array; every started process is added for the caller's cleanup).

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # port timeout_s
	local end=$((SECONDS + $2))
	while [ $SECONDS -lt $end ]; do
		(exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

rss_tree_kb() { # pid -> VmRSS of it and its descendants, kB
	python3 - "$1" <<'EOF'
import os, sys
todo, seen, total = [int(sys.argv[1])], set(), 0
while todo:
    p = todo.pop()
    if p in seen:
        continue
    seen.add(p)
    try:
        for line in open(f"/proc/{p}/status"):
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
        for t in os.listdir(f"/proc/{p}/task"):
            todo += [int(c) for c in open(f"/proc/{p}/task/{t}/children").read().split()]
    except OSError:
        pass
print(total)
EOF
}

cpu_tree_us() { # pid -> user + system CPU time of it and its live descendants, microseconds
	python3 - "$1" <<'EOF'
import os, sys
tick = os.sysconf("SC_CLK_TCK")
todo, seen, total = [int(sys.argv[1])], set(), 0
while todo:
    p = todo.pop()
    if p in seen:
        continue
    seen.add(p)
    try:
        # the fields after the ")" that closes the command name: utime is the 12th, stime the 13th
        f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        total += int(f[11]) + int(f[12])
        for t in os.listdir(f"/proc/{p}/task"):
            todo += [int(c) for c in open(f"/proc/{p}/task/{t}/children").read().split()]
    except OSError:
        pass
print(total * 1000000 // tick)
EOF
}

# ---------------------------------------------------------------- proxy launchers
# Each start_<proxy> WORKERS PORT starts it in the background, sets PROXY_PID, returns 0/1 and
# leaves a reason in $TMP/why.
# WEIR_SETTINGS_EXTRA (JSON members, each with a leading comma) is added to weir's settings,
# NGINX_HTTP_EXTRA (directives) to nginx's http block: the gzip benchmark sets both.

start_direct() { PROXY_PID=$BACKEND_PID; return 0; }

start_weir() {
	local workers=$1 port=$2
	local dir=$TMP/weir-$workers
	if [ ! -x "$WEIR" ]; then echo "no binary at $WEIR" >"$TMP/why"; return 1; fi
	mkdir -p "$dir/routes"
	cat >"$dir/routes/.routes.json.tmp" <<EOF
{"version": 1, "generation": 1,
 "settings": {"upstream_keepalive": 64, "keepalive_timeout_ms": 75000${WEIR_SETTINGS_EXTRA:-}},
 "hosts": [{"name": "", "routes": [{"path": "/", "match": "prefix", "backend": 0,
   "policy": {"ws_idle_timeout_ms": 3600000, "read_timeout_ms": 60000}}]}],
 "backends": [{"name": "bench/backend:80",
   "endpoints": [{"address": "127.0.0.1", "port": $BACKEND_PORT}]}]}
EOF
	mv "$dir/routes/.routes.json.tmp" "$dir/routes/routes.json"
	local admin; admin=$(free_port)
	"$WEIR" --routes "$dir/routes" --http-port "$port" --https-port "$(free_port)" \
		--admin-port "$admin" --workers "$workers" --listen-address 127.0.0.1 \
		--log-format text >"$dir/log" 2>&1 &
	PROXY_PID=$!
	PIDS+=($PROXY_PID)
	local end=$((SECONDS + 10))
	while [ $SECONDS -lt $end ]; do
		if curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin/readyz" 2>/dev/null |
			grep -q 200; then
			return 0
		fi
		kill -0 "$PROXY_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "weir-proxy not ready: $(tail -n 1 "$dir/log")" >"$TMP/why"
	return 1
}

start_nginx() {
	local workers=$1 port=$2
	local dir=$TMP/nginx-$workers
	if ! command -v nginx >/dev/null; then echo "nginx not installed" >"$TMP/why"; return 1; fi
	mkdir -p "$dir/logs" "$dir/tmp"
	cat >"$dir/nginx.conf" <<EOF
worker_processes $workers;
worker_rlimit_nofile $NOFILE;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections $NOFILE; multi_accept on; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    ${NGINX_HTTP_EXTRA:-}
    map \$http_upgrade \$connection_upgrade { default upgrade; '' ''; }
    upstream backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$port reuseport;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Host \$host;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$connection_upgrade;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_read_timeout 3600s;
        }
    }
}
EOF
	nginx -c "$dir/nginx.conf" -p "$dir" -g 'daemon off;' >"$dir/out.log" 2>&1 &
	PROXY_PID=$!
	PIDS+=($PROXY_PID)
	if wait_port "$port" 5; then return 0; fi
	echo "nginx did not start: $(tail -n 1 "$dir/out.log" "$dir/logs/error.log" 2>/dev/null | tail -n 1)" >"$TMP/why"
	return 1
}

start_haproxy() {
	local workers=$1 port=$2
	local dir=$TMP/haproxy-$workers
	if ! command -v haproxy >/dev/null; then echo "haproxy not installed" >"$TMP/why"; return 1; fi
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
    timeout tunnel 3600s
    timeout http-keep-alive 75s
frontend fe
    bind 127.0.0.1:$port
    maxconn $(( NOFILE / 2 - 100 ))
    option forwardfor
    default_backend be
backend be
    server s1 127.0.0.1:$BACKEND_PORT maxconn 0
EOF
	haproxy -f "$dir/haproxy.cfg" -db >"$dir/out.log" 2>&1 &
	PROXY_PID=$!
	PIDS+=($PROXY_PID)
	if wait_port "$port" 5; then return 0; fi
	echo "haproxy did not start: $(tail -n 1 "$dir/out.log")" >"$TMP/why"
	return 1
}

stop_proxy() {
	[ "${PROXY_PID:-0}" -gt 0 ] || return 0
	[ "$1" = direct ] || [ "$PROXY_PID" = "$BACKEND_PID" ] && { PROXY_PID=0; return 0; }
	kill "$PROXY_PID" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$PROXY_PID" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$PROXY_PID" 2>/dev/null
	wait "$PROXY_PID" 2>/dev/null
	PROXY_PID=0
}

# idle_rss WAIT_S CMD...: run CMD, a client that opens idle connections
# through the proxy ($PROXY_PID), prints "connected N" once they are open
# and holds them until its stdin closes; measure the proxy's RSS growth
# meanwhile (waiting at most WAIT_S for the client), then let it go. Sets
# IDLE_OPEN (connections held, 0 when none), IDLE_MSG ("X B/conn (...)")
# and IDLE_OTHER (the client's first line other than "connected").
idle_rss() {
	local wait_s=$1
	shift
	local before after fifo=$TMP/idle.fifo
	before=$(rss_tree_kb "$PROXY_PID")
	rm -f "$fifo"
	mkfifo "$fifo"
	"$@" <"$fifo" >"$TMP/idle.out" 2>&1 &
	local cpid=$!
	exec 3>"$fifo"
	local end=$((SECONDS + wait_s))
	while [ $SECONDS -lt $end ] && ! grep -q '^connected' "$TMP/idle.out" 2>/dev/null &&
		kill -0 "$cpid" 2>/dev/null; do
		sleep 0.2
	done
	sleep 2
	after=$(rss_tree_kb "$PROXY_PID")
	IDLE_OPEN=$(awk '/^connected/ {print $2}' "$TMP/idle.out")
	exec 3>&-
	wait "$cpid" 2>/dev/null
	IDLE_OTHER=$(grep -v '^connected' "$TMP/idle.out" | head -n 1)
	if [ -n "$IDLE_OPEN" ] && [ "$IDLE_OPEN" -gt 0 ]; then
		IDLE_MSG=$(awk -v a="$after" -v b="$before" -v n="$IDLE_OPEN" \
			'BEGIN {printf "%.0f B/conn (%d conns, RSS %d -> %d kB)", (a - b) * 1024 / n, n, b, a}')
	else
		IDLE_OPEN=0
		IDLE_MSG=
	fi
}
