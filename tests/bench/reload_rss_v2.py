#!/usr/bin/env python3
"""weir-proxy RSS with 10 sharded (v2) route table generations pinned by live connections.

Issue 7's figure, on the production path: weir-controller follows a manifests directory and
publishes a v2 table (index + shards) to a publish directory on tmpfs; weir-proxy (1 worker)
follows that directory. The manifests are copied to a scratch directory (the source is never
changed) plus one file of our own: a WebSocket echo backend (tests/backends/ws_echo.py on a
free loopback port) behind a TLS Ingress ws.rss.weir.test. Then GENS times:

  1. open an HTTPS connection to host app-<g>, send one keep-alive request (404: no route for
     "/", no backend involved) and keep it open: from its handshake on the connection holds a
     reference to the table then served (server.c, conn->tls_table), so that generation stays
     alive until the connection closes;
  2. open a wss:// tunnel through the proxy to the echo backend (a tunnel holds no table by
     design, see docs/route-table.md; it is here because issue 7 speaks of tunnels, and to
     check that tunnels survive reloads);
  3. change one Ingress (a path of app-<g>; --change secret: a fresh certificate in app-<g>'s
     TLS Secret instead) in the scratch manifests (temp file + rename), wait until the proxy
     serves the next generation (admin /metrics polled every 5 ms), record the time and VmRSS.

At the end every pinned connection answers one more request and every tunnel echoes a message,
and the proxy's connection / tunnel gauges are printed: a closed connection would pin nothing.
Then the pinned connections are closed, and, for comparison, a fresh proxy loads the last
published table alone (no controller, no connections).

Loopback only (127.0.0.1). About 1.5 minutes at 10,000 Ingresses with a certificate each on 2
cores. The manifests (10,000 Ingresses, a certificate each, one loopback endpoint each):

  python3 tests/bench/gen_ingresses.py --count 10000 --tls-every 1 --distinct-certs \\
      --endpoints 1 --addresses 127.0.0.1 --out /tmp/mdc
  ninja -C build weir-proxy weir-controller
  python3 tests/bench/reload_rss_v2.py --build build --manifests /tmp/mdc [--gens 10]
      [--change ingress|secret] [--no-pin]

--no-pin is the control: the same changes with no HTTPS connection held (tunnels only), so
every old generation is freed as soon as the next one is served.

Seen on 2 shared cores (RelWithDebInfo build, no sanitizer): 10,000 certificates: 250 MiB with
one generation, 303 MiB with 10 old ones pinned (1.21x; --no-pin: 256 MiB). 10,000 Ingresses
of which 1,000 have TLS, all with one shared pair (gen_ingresses.py --count 10000 --endpoints 1
--addresses 127.0.0.1, no --tls-every / --distinct-certs): 60 -> 101 MiB (1.68x). A pinned
generation costs 4-5.3 MiB either way: the shards are shared, the per-table arrays (10,000
hosts and backends, the certificate slots, their shard ids) are not, so the ratio holds only
while the certificates' contexts dominate one table's memory.
"""

import argparse
import base64
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, ".."))
import proxyutil as pu  # noqa: E402
import routetable  # noqa: E402
from reload_rss import fresh_cert  # noqa: E402

WS_HOST = "ws.rss.weir.test"


def app_host(i):
    return f"app-{i:05d}.bench.weir.test"


def ws_manifest(port, cert_pem, key_pem):
    b64 = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
    return f"""apiVersion: v1
kind: Service
metadata:
  name: ws-rss-svc
  namespace: bench-0
spec:
  ports:
  - name: http
    port: 80
    targetPort: {port}
    protocol: TCP
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ws-rss-svc-0
  namespace: bench-0
  labels:
    kubernetes.io/service-name: ws-rss-svc
addressType: IPv4
endpoints:
- addresses:
  - 127.0.0.1
  conditions:
    ready: true
ports:
- name: http
  port: {port}
  protocol: TCP
---
apiVersion: v1
kind: Secret
type: kubernetes.io/tls
metadata:
  name: ws-rss-tls
  namespace: bench-0
data:
  tls.crt: {b64(cert_pem)}
  tls.key: {b64(key_pem)}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: ws-rss
  namespace: bench-0
spec:
  ingressClassName: weir
  rules:
  - host: {WS_HOST}
    http:
      paths:
      - path: /ws
        pathType: Prefix
        backend:
          service:
            name: ws-rss-svc
            port:
              number: 80
  tls:
  - hosts:
    - {WS_HOST}
    secretName: ws-rss-tls
"""


def write_atomic(path, text):
    d, base = os.path.split(path)
    # next to the manifests directory, not in it: the controller re-reads the directory on
    # any event in it, so one change is one re-read
    tmp = os.path.join(os.path.dirname(d), f".{base}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def find_doc(mdir, pattern):
    """(path, text, match) of the first manifest file where pattern matches."""
    rx = re.compile(pattern, re.M)
    for name in sorted(os.listdir(mdir)):
        if not name.endswith(".yaml"):
            continue
        p = os.path.join(mdir, name)
        with open(p) as f:
            text = f.read()
        m = rx.search(text)
        if m:
            return p, text, m
    raise SystemExit(f"no manifest matches {pattern!r}")


def change_ingress(mdir, i, n):
    """A path of Ingress app-<i> changes: /healthz (or a earlier change) -> /healthz-<n>."""
    p, text, m = find_doc(mdir, rf"^kind: Ingress\nmetadata:\n  name: app-{i:05d}\n")
    rx = re.compile(r"^      - path: /healthz[-0-9]*\n", re.M)
    pm = rx.search(text, m.end())
    if not pm:
        raise SystemExit(f"app-{i:05d}: no /healthz path in {p}")
    write_atomic(p, text[:pm.start()] + f"      - path: /healthz-{n}\n" + text[pm.end():])


def change_secret(mdir, i, _n):
    """app-<i>'s TLS Secret gets a fresh certificate and key."""
    p, text, m = find_doc(mdir, rf"^  name: app-{i:05d}-tls\n")
    cert, key = fresh_cert(app_host(i))
    crt = re.compile(r"^  tls\.crt: \S+\n  tls\.key: \S+\n", re.M)
    cm = crt.search(text, m.end())
    if not cm:
        raise SystemExit(f"app-{i:05d}-tls: no tls.crt/tls.key in {p}")
    new = (f"  tls.crt: {base64.b64encode(cert.encode()).decode()}\n"
           f"  tls.key: {base64.b64encode(key.encode()).decode()}\n")
    write_atomic(p, text[:cm.start()] + new + text[cm.end():])


def tls_ctx():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def https_pin(proxy, host):
    """An HTTPS keep-alive connection after its handshake and one request."""
    raw = socket.create_connection(("127.0.0.1", proxy.https_port), timeout=30)
    c = pu.RawConn(0, sock=tls_ctx().wrap_socket(raw, server_hostname=host), timeout=30)
    https_request(c, host)
    return c


def https_request(c, host):
    c.send(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    r = c.read_response()
    if r.status != 404 or (r.get("Connection") or "").lower() == "close":
        raise SystemExit(f"{host}: unexpected answer {r.status} {r.headers}")


class WsTunnel:
    """A wss:// connection through the proxy, written by hand on one thread. The websockets
    sync client (17.4) over TLS sometimes hung in its opening handshake here: its socket had
    sent the TLS handshake but never the upgrade request (its reader thread sat in libssl),
    so the proxy never saw a request; 1,000 tunnels opened this way never hung."""

    def __init__(self, proxy, i):
        raw = socket.create_connection(("127.0.0.1", proxy.https_port), timeout=30)
        self.sock = tls_ctx().wrap_socket(raw, server_hostname=WS_HOST)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(f"GET /ws/{i} HTTP/1.1\r\nHost: {WS_HOST}\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                          f"Sec-WebSocket-Version: 13\r\n\r\n".encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise SystemExit(f"tunnel {i}: {head[:200]!r}")
        self.echo(f"hello {i}")

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise ConnectionError("tunnel closed by the proxy")
        self.buf += d

    def echo(self, text):
        """Send a short text message and check it comes back."""
        data, mask = text.encode(), os.urandom(4)
        assert len(data) < 126
        self.sock.sendall(bytes([0x81, 0x80 | len(data)]) + mask +
                          bytes(b ^ mask[k % 4] for k, b in enumerate(data)))
        while len(self.buf) < 2 or len(self.buf) < 2 + (self.buf[1] & 0x7F):
            self._fill()
        n = self.buf[1] & 0x7F
        frame, self.buf = self.buf[:2 + n], self.buf[2 + n:]
        if frame[0] != 0x81 or frame[2:] != data:
            raise SystemExit(f"tunnel: wrong echo {frame!r} for {text!r}")

    def close(self):
        self.sock.close()


def index_hosts(pub):
    try:
        with open(os.path.join(pub, "routes.json")) as f:
            idx = json.load(f)
        return idx["generation"], len(routetable.ids(pub, idx, "hosts"))
    except (OSError, ValueError, KeyError):
        return None, 0


def wait_for(pred, timeout, what, interval=0.005):
    t = time.monotonic()
    while not pred():
        if time.monotonic() - t > timeout:
            raise SystemExit(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - t


def settle_rss(proxy, pause=0.5):
    time.sleep(pause)  # let the reload thread's transient memory go
    return pu.rss_tree_kb(proxy.pid)


def mib(kb):
    return f"{kb / 1024:.1f} MiB"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--manifests", required=True, help="gen_ingresses.py output (not changed)")
    ap.add_argument("--gens", type=int, default=10)
    ap.add_argument("--change", choices=("ingress", "secret"), default="ingress")
    ap.add_argument("--no-pin", action="store_true",
                    help="control run: no HTTPS connections (tunnels only), nothing pinned")
    ap.add_argument("--keep", action="store_true", help="keep the logs and publish directory")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    pu.PROXY_BIN = os.path.join(build, "weir-proxy")
    change = change_ingress if a.change == "ingress" else change_secret

    work = tempfile.mkdtemp(prefix="weir-rss-v2-")
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    pub = tempfile.mkdtemp(prefix="weir-rss-v2-pub-", dir=shm)
    mdir = os.path.join(work, "manifests")
    shutil.copytree(a.manifests, mdir)
    procs, held, tunnels = [], [], []
    proxy = None
    try:
        ws_port = pu.free_port()
        procs.append(pu.start_backend("ws_echo.py", ws_port, os.path.join(work, "ws.log")))
        with open(os.path.join(mdir, "zz-ws-rss.yaml"), "w") as f:
            f.write(ws_manifest(ws_port, *fresh_cert(WS_HOST)))
        nfiles = len([n for n in os.listdir(mdir) if n.endswith(".yaml")])

        t0 = time.monotonic()
        clog = open(os.path.join(work, "controller.log"), "wb")
        ctl = subprocess.Popen([os.path.join(build, "weir-controller"), "--manifests", mdir,
                                "--publish", pub, "--metrics-port", "0", "--log-format", "text"],
                               stdout=clog, stderr=subprocess.STDOUT, start_new_session=True)
        clog.close()
        procs.append(ctl)
        # The first complete publish: a host per Ingress (each has one rule), ours included.
        expect = 0
        for name in os.listdir(mdir):
            if name.endswith(".yaml"):
                with open(os.path.join(mdir, name)) as f:
                    expect += len(re.findall(r"^kind: Ingress$", f.read(), re.M))

        def published():
            if ctl.poll() is not None:
                raise SystemExit(f"weir-controller exited {ctl.returncode}")
            return index_hosts(pub)[1] == expect
        wait_for(published, 600, "the first publish", 0.1)
        t_pub = time.monotonic() - t0

        proxy = pu.Proxy(pub, os.path.join(work, "proxy.log"), workers=1)
        t1 = time.monotonic()
        proxy.wait_ready(600)
        t_load = time.monotonic() - t1
        gen = int(proxy.metric("weir_proxy_route_table_generation"))
        rss1 = settle_rss(proxy, 1.0)
        print(f"{nfiles} manifest files, {expect} hosts; controller start -> first publish "
              f"{t_pub:.1f} s; proxy start -> ready {t_load:.2f} s (load "
              f"{proxy.metric('weir_proxy_route_table_load_microseconds') / 1e3:.0f} ms); "
              f"generation {gen}")
        print(f"RSS after the first load (1 generation): {mib(rss1)}")

        took, loads = [], []
        for g in range(1, a.gens + 1):
            if not a.no_pin:
                held.append(https_pin(proxy, app_host(g)))
            tunnels.append(WsTunnel(proxy, g))
            old = int(proxy.metric("weir_proxy_route_table_generation"))
            t = time.monotonic()
            change(mdir, g, g)
            took.append(wait_for(
                lambda: proxy.metric("weir_proxy_route_table_generation") > old, 120,
                f"a generation after {old}"))
            loads.append(proxy.metric("weir_proxy_route_table_load_microseconds") / 1e3)
            # Keep the pinned connections from idling out, and check them.
            for i, c in enumerate(held):
                https_request(c, app_host(i + 1))
            rss = settle_rss(proxy)
            print(f"change {g} ({a.change} app-{g:05d}): served after {took[-1]:.2f} s "
                  f"(proxy load {loads[-1]:.1f} ms), RSS {mib(rss)}, {g + 1} generations, "
                  f"{len(held)} pinned")
        rss_n = settle_rss(proxy, 1.0)
        # The pins are real: every connection answers, every tunnel echoes.
        for i, c in enumerate(held):
            https_request(c, app_host(i + 1))
        for i, ws in enumerate(tunnels):
            ws.echo(f"again {i + 1}")
        conns = proxy.metric("weir_proxy_open_connections")
        tuns = proxy.metric("weir_proxy_open_websocket_tunnels")
        print(f"at the end: {len(held)} pinning HTTPS connections answered, {len(tunnels)} "
              f"tunnels echoed; proxy gauges: open_connections {conns:.0f}, "
              f"open_websocket_tunnels {tuns:.0f}")
        print(f"RSS with {len(held)} old generations pinned (+ the current one) after {a.gens} "
              f"changes: {mib(rss_n)}; ratio to one generation {rss_n / rss1:.2f} (goal <= 1.30); "
              f"{(rss_n - rss1) / a.gens / 1024:.2f} MiB more per change")
        s = sorted(took)
        print(f"change -> served: min {s[0]:.2f} s, median {s[len(s) // 2]:.2f} s, "
              f"max {s[-1]:.2f} s; proxy load median {sorted(loads)[len(loads) // 2]:.1f} ms")
        # What the connections themselves cost: as many again, all on the current table.
        extra = [https_pin(proxy, app_host(i + 1)) for i in range(a.gens)]
        extra_ws = [WsTunnel(proxy, 100 + i) for i in range(a.gens)]
        rss_c = settle_rss(proxy, 1.0)
        print(f"{len(extra)} more HTTPS connections + {len(extra_ws)} more tunnels, all on the "
              f"current generation: RSS {mib(rss_c)} (+{mib(rss_c - rss_n)}: the connections' "
              f"own share of the figure above)")
        for c in held + extra:
            c.close()
        held = []
        time.sleep(0.5)
        pu.get(proxy.http_port, "/")  # the worker's view lets go of the old tables
        print(f"HTTPS connections closed: RSS {mib(settle_rss(proxy, 1.0))}")
        for ws in tunnels + extra_ws:
            ws.close()
        tunnels = []
        proxy.stop()
        pu.stop_process(ctl)

        # For comparison: one table loaded alone, by a fresh proxy.
        alone = pu.Proxy(pub, os.path.join(work, "proxy-alone.log"), workers=1)
        try:
            t1 = time.monotonic()
            alone.wait_ready(600)
            t_alone = time.monotonic() - t1
            rss_alone = settle_rss(alone, 1.0)
        finally:
            alone.stop()
        print(f"fresh proxy, last table alone: ready after {t_alone:.2f} s, RSS {mib(rss_alone)}; "
              f"pinned figure / this = {rss_n / rss_alone:.2f}")
    finally:
        for c in held:
            c.close()
        for ws in tunnels:
            ws.close()
        if proxy:
            proxy.stop()
        for p in procs:
            pu.stop_process(p)
        if a.keep:
            print(f"kept: {work} (logs, manifests), {pub} (published table)")
        else:
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(pub, ignore_errors=True)


if __name__ == "__main__":
    main()
