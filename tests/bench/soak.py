#!/usr/bin/env python3
"""Soak benchmark (not part of the test suite; a human runs it): many open WebSockets carrying
traffic through weir-proxy while the route table changes over and over and endpoints churn.

  tests/bench/soak.py [--conns 10000] [--changes 1000] [--duration 180] [--interval 5]
                      [--rotate 200] [--http-rate 100] [--workers 2] [--proxies N]
                      [--build DIR] [--keep]

Everything listens on 127.0.0.1 .. 127.0.0.5 only. weir-controller runs in --manifests mode on
a scratch directory and weir-proxy serves what it publishes. Four C backends
(tests/bench/backend.c: HTTP 200 + WebSocket echo) listen on 127.0.0.2-5, one port; Service
soak/echo lists 127.0.0.2 and .3 in one EndpointSlice ("base", never changed) and .4 and .5 in
another ("extra", churned). Host soak.test routes /ws (Ingress ws) and /api (Ingress api) to it.

  1. ws_soak (tests/bench/ws_soak.c) opens --conns steady tunnels to /ws while only the base
     endpoints are listed, so every one of them lands on an endpoint that stays. Each one
     sends a small frame every --interval seconds and checks its echo byte for byte.
     --rotate more tunnels open and close all the time (5-20 s each, clean close 1000), so
     some land on the extra endpoints and are drained when those go away.
  2. An HTTP keep-alive client sends --http-rate GET /api a second and counts non-2xx.
  3. After one full round of frames, the RSS of weir-proxy and weir-controller is taken.
  4. --changes table changes, spread over at least --duration seconds, each waited for until
     the proxy serves it (weir_proxy_route_table_generation on the admin port):
     40% add or remove an unrelated Ingress (their number goes up to 20 and back to 0, over
     and over), 20% change the response-headers annotation of Ingress ws or api (a live
     tunnel keeps the policy it started with), 40% move an extra endpoint one step through
     absent -> ready -> terminating -> absent (a tunnel on it gets a close frame 1001 within
     the drain window, 5 s here).
  5. One more drain window and round of frames, the RSS again, then the report.

PASS needs: no tunnel ended without a close frame (steady or rotating, including a close of
the client's own that got no answer), every steady tunnel still open with no echo error, no
upgrade refused, 0 non-2xx and 0 failed HTTP requests, every change served, and proxy RSS at
the end <= 105% of the RSS after the ramp-up (the sum over the proxy processes). Exit status
0 on PASS, 1 on FAIL, 2 when it could not run. The work directory (logs, manifests) is kept
with --keep.

A weir-proxy process needs two descriptors per tunnel; RLIMIT_NOFILE is raised to fit when
the hard limit allows. When it does not (a container without CAP_SYS_RESOURCE, hard limit
20,000: 10,200 tunnels need 20,400 + a few), the tunnels are spread over as many weir-proxy
processes as needed (--proxies N forces it), all serving the one routes directory the
controller publishes into, like replicas behind a load balancer: connection i goes to proxy
i mod N, and the HTTP client moves to the next proxy every 100 requests.
"""

from __future__ import annotations

import argparse
import http.client
import os
import queue
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

sys.path.insert(0, str(ROOT / "tests" / "backends"))
from ports import free_port  # noqa: E402  (distinct, outside the ephemeral range)

HOST = "soak.test"
BASE = ["127.0.0.2", "127.0.0.3"]
EXTRA = ["127.0.0.4", "127.0.0.5"]
EXTRA_STATES = ["absent", "ready", "terminating"]
OTHER_MAX = 20


class Fail(Exception):
    """The soak could not run (exit 2)."""


def port_free_on(port: int, addrs: list[str]) -> bool:
    for a in addrs:
        with socket.socket() as s:
            try:
                s.bind((a, port))
            except OSError:
                return False
    return True


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name("." + path.name + ".tmp")  # dot files are not manifests
    tmp.write_text(text)
    os.rename(tmp, path)


# ------------------------------------------------------------------ manifests

def class_yaml() -> str:
    return """apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: weir
spec:
  controller: weir.dev/ingress-controller
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: weir
  namespace: weir-system
data:
  upstream-keepalive: "16"
"""


def service_yaml(port: int) -> str:
    eps = "".join(f"""  - addresses: ["{a}"]
    conditions:
      ready: true
""" for a in BASE)
    return f"""apiVersion: v1
kind: Service
metadata:
  name: echo
  namespace: soak
spec:
  ports:
  - name: http
    port: 80
    targetPort: {port}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: echo-base
  namespace: soak
  labels:
    kubernetes.io/service-name: echo
addressType: IPv4
ports:
- name: http
  port: {port}
endpoints:
{eps}"""


def extra_yaml(port: int, states: dict[str, str]) -> str:
    eps = ""
    for a in EXTRA:
        if states[a] == "ready":
            eps += f"""- addresses: ["{a}"]
  conditions:
    ready: true
"""
        elif states[a] == "terminating":
            eps += f"""- addresses: ["{a}"]
  conditions:
    ready: false
    serving: true
    terminating: true
"""
    return f"""apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: echo-extra
  namespace: soak
  labels:
    kubernetes.io/service-name: echo
addressType: IPv4
ports:
- name: http
  port: {port}
endpoints:{" []" if not eps else chr(10) + eps}
"""


def ingress_yaml(name: str, host: str, path: str, change: int, extra_ann: str = "") -> str:
    return f"""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: soak
  annotations:
    weir.dev/response-headers: "X-Soak-Change: {change}"
{extra_ann}spec:
  ingressClassName: weir
  rules:
  - host: {host}
    http:
      paths:
      - path: {path}
        pathType: Prefix
        backend:
          service:
            name: echo
            port:
              number: 80
"""


WS_ANN = """    weir.dev/drain-window: "5s"
    weir.dev/websocket-idle-timeout: "1h"
"""


# ------------------------------------------------------------------ HTTP client

class HttpLoad(threading.Thread):
    """GET /api on a keep-alive connection at a fixed rate; a fresh connection every 100
    requests, to the next proxy of ports."""

    def __init__(self, ports: list[int], rate: float):
        super().__init__(daemon=True)
        self.ports, self.rate = ports, rate
        self.stop = threading.Event()
        self.total = self.ok = self.non2xx = self.failed = 0
        self.first_bad = ""

    def run(self) -> None:
        conn = None
        t0 = time.monotonic()
        while not self.stop.is_set():
            due = t0 + self.total / self.rate
            d = due - time.monotonic()
            if d > 0:
                time.sleep(d)
            if conn is None:
                port = self.ports[(self.total // 100) % len(self.ports)]
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            self.total += 1
            try:
                conn.request("GET", "/api/soak", headers={"Host": HOST})
                r = conn.getresponse()
                r.read()
                if 200 <= r.status < 300:
                    self.ok += 1
                else:
                    self.non2xx += 1
                    self.first_bad = self.first_bad or f"request {self.total}: {r.status}"
                if r.will_close or self.total % 100 == 0:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                self.failed += 1
                self.first_bad = self.first_bad or f"request {self.total}: {e!r}"
                conn.close()
                conn = None
        if conn is not None:
            conn.close()


# ------------------------------------------------------------------ the run

class Soak:
    def __init__(self, a: argparse.Namespace):
        self.a = a
        self.build = Path(a.build)
        self.work = Path(tempfile.mkdtemp(prefix="weir-soak."))
        self.mdir = self.work / "manifests"
        self.pub = self.work / "routes"
        self.procs: list[subprocess.Popen] = []
        self.logs: list = []
        self.extra_state = {a: "absent" for a in EXTRA}
        self.others: list[int] = []
        self.next_other = 0
        self.others_growing = True
        self.changes_by_kind = {"ingress add/remove": 0, "annotation": 0, "endpoint": 0}
        self.ann_change = 0

    def log(self, name: str):
        f = open(self.work / f"{name}.log", "w")
        self.logs.append(f)
        return f

    def start(self, name: str, argv: list[str], **kw) -> subprocess.Popen:
        out = self.log(name)
        p = subprocess.Popen(argv, stdout=kw.pop("stdout", out), stderr=out, **kw)
        self.procs.append(p)
        return p

    def metric(self, name: str, admin: int) -> int | None:
        """An unlabelled gauge from one proxy's /metrics; None when it cannot be read."""
        try:
            c = http.client.HTTPConnection("127.0.0.1", admin, timeout=2)
            c.request("GET", "/metrics")
            body = c.getresponse().read().decode()
            c.close()
        except (OSError, http.client.HTTPException):
            return None
        m = re.search(rf"^{name} (\d+)$", body, re.M)
        return int(m.group(1)) if m else None

    def generation(self) -> int | None:
        """The route table generation every proxy serves (the lowest)."""
        gens = [self.metric("weir_proxy_route_table_generation", a) for a in self.admins]
        return None if None in gens else min(gens)

    def proxy_rss(self) -> list[int]:
        return [rss_kb(p.pid) for p in self.proxies]

    def get_status(self, port: int, path: str) -> int:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path, headers={"Host": HOST})
            st = c.getresponse().status
            c.close()
            return st
        except (OSError, http.client.HTTPException):
            return 0

    def setup(self) -> None:
        a = self.a
        conns = a.conns + a.rotate
        need = 2 * conns + 512
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard < need:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
            except (ValueError, OSError):
                pass
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < need:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            except (ValueError, OSError):
                pass
        self.nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if self.nofile == resource.RLIM_INFINITY:
            self.nofile = 1 << 20
        # One weir-proxy holds 2 descriptors a tunnel; when the limit cannot be raised that
        # far, the tunnels are spread over replicas (one routes directory, as pods share a
        # controller's output), each taking every n-th connection.
        self.nproxies = a.proxies or max(1, -(-need // self.nofile))
        per_proxy = 2 * -(-conns // self.nproxies) + 512
        if self.nofile < per_proxy or self.nofile < conns + 256:
            raise Fail(f"RLIMIT_NOFILE {self.nofile}: {self.nproxies} proxies need {per_proxy} "
                       f"descriptors each and ws_soak {conns + 256}; raise it (as root) or "
                       "use --proxies / lower --conns")
        for exe in ("weir-proxy", "weir-controller"):
            if not (self.build / exe).exists():
                raise Fail(f"no {self.build / exe}; build first (cmake --build build)")
        bench = self.build / "bench"
        bench.mkdir(exist_ok=True)
        for src, out, libs in (("backend.c", "backend", ["-lcrypto", "-lpthread"]),
                               ("ws_soak.c", "ws_soak", [])):
            r = subprocess.run(["gcc", "-O2", "-Wall", "-o", str(bench / out), str(HERE / src)]
                               + libs, capture_output=True, text=True)
            if r.returncode != 0:
                raise Fail(f"cannot build {src}: {r.stderr.strip()}")
        self.backend_bin, self.ws_bin = bench / "backend", bench / "ws_soak"

        for _ in range(50):
            self.bport = free_port()
            if port_free_on(self.bport, BASE + EXTRA):
                break
        else:
            raise Fail("no port free on 127.0.0.2-5")
        self.https = [free_port() for _ in range(self.nproxies)]
        self.admins = [free_port() for _ in range(self.nproxies)]

        self.mdir.mkdir()
        self.pub.mkdir()
        write_atomic(self.mdir / "00-class.yaml", class_yaml())
        write_atomic(self.mdir / "10-service.yaml", service_yaml(self.bport))
        write_atomic(self.mdir / "11-extra.yaml", extra_yaml(self.bport, self.extra_state))
        write_atomic(self.mdir / "20-ws.yaml", ingress_yaml("ws", HOST, "/ws", 0, WS_ANN))
        write_atomic(self.mdir / "21-api.yaml", ingress_yaml("api", HOST, "/api", 0))

        for addr in BASE + EXTRA:
            self.start(f"backend-{addr}", [str(self.backend_bin), str(self.bport), "1", addr])
        self.proxies = [self.start(f"proxy-{i}", [
            str(self.build / "weir-proxy"), "--routes", str(self.pub), "--http-port",
            str(self.https[i]), "--https-port", "0", "--admin-port", str(self.admins[i]),
            "--workers", str(a.workers), "--listen-address", "127.0.0.1",
            "--log-format", "text"]) for i in range(self.nproxies)]
        self.ctl = self.start("controller", [
            str(self.build / "weir-controller"), "--manifests", str(self.mdir), "--publish",
            str(self.pub), "--metrics-port", "0", "--log-format", "text"])
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if all(self.get_status(p, "/api/ready") == 200 for p in self.https):
                break
            for p in self.proxies + [self.ctl]:
                if p.poll() is not None:
                    raise Fail(f"{p.args[0]} exited with {p.returncode} (see {self.work})")
            time.sleep(0.1)
        else:
            raise Fail(f"/api not served within 30 s (see {self.work})")

    def wait_generation(self, want: int, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            g = self.generation()
            if g is not None and g >= want:
                return True
            time.sleep(0.005)
        return False

    def change(self, i: int) -> None:
        """One edit of the manifests that changes the route table."""
        op = i % 10
        if op in (0, 1, 5, 6):
            # the pool of unrelated Ingresses grows to OTHER_MAX, shrinks to none, and again
            if len(self.others) == OTHER_MAX:
                self.others_growing = False
            elif not self.others:
                self.others_growing = True
            if self.others_growing:
                k = self.next_other
                self.next_other += 1
                self.others.append(k)
                write_atomic(self.mdir / f"30-other-{k}.yaml",
                             ingress_yaml(f"other-{k}", f"other-{k}.soak.test", "/", k))
            else:
                k = self.others.pop(0)
                os.unlink(self.mdir / f"30-other-{k}.yaml")
            self.changes_by_kind["ingress add/remove"] += 1
        elif op in (2, 7):
            self.ann_change += 1
            if op == 2:
                write_atomic(self.mdir / "20-ws.yaml",
                             ingress_yaml("ws", HOST, "/ws", self.ann_change, WS_ANN))
            else:
                write_atomic(self.mdir / "21-api.yaml",
                             ingress_yaml("api", HOST, "/api", self.ann_change))
            self.changes_by_kind["annotation"] += 1
        else:
            addr = EXTRA[op % 2]
            s = EXTRA_STATES[(EXTRA_STATES.index(self.extra_state[addr]) + 1) % 3]
            self.extra_state[addr] = s
            write_atomic(self.mdir / "11-extra.yaml", extra_yaml(self.bport, self.extra_state))
            self.changes_by_kind["endpoint"] += 1

    def ws_line(self, timeout: float) -> str | None:
        """The next line ws_soak printed; None on timeout or once it exited."""
        try:
            return self.ws_lines.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def ws_cmd(self, cmd: str, timeout: float = 30) -> list[str]:
        """Send cmd to ws_soak; returns its answer ("stats": one line; "stop": the report)."""
        self.ws.stdin.write(cmd + "\n")
        self.ws.stdin.flush()
        lines: list[str] = []
        end = time.monotonic() + timeout
        while True:
            line = self.ws_line(end - time.monotonic())
            if line is None:
                break
            lines.append(line)
            if cmd == "stats" or line == "end":
                break
        return lines or ["(no answer)"]

    def run(self) -> int:
        a = self.a
        t_start = time.monotonic()
        self.setup()
        print(f"weir soak: {a.conns} steady + {a.rotate} rotating WebSockets, {a.changes} "
              f"table changes over >= {a.duration} s, {self.nproxies} weir-proxy process(es) "
              f"with {a.workers} workers each, "
              f"RLIMIT_NOFILE {self.nofile}, work dir {self.work}", flush=True)
        ports = ",".join(str(p) for p in self.https)
        self.ws = self.start("ws_soak", [str(self.ws_bin), ports, HOST, "/ws/soak",
                                         str(a.conns), str(a.interval), str(a.rotate)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.ws_lines: queue.Queue = queue.Queue()

        def reader() -> None:
            for line in self.ws.stdout:
                self.ws_lines.put(line.rstrip("\n"))

        threading.Thread(target=reader, daemon=True).start()
        ramp = None
        end = time.monotonic() + 600
        while time.monotonic() < end and ramp is None:
            line = self.ws_line(end - time.monotonic())
            if line is None:
                break
            if line.startswith("ramped"):
                ramp = line.split()
        if ramp is None:
            raise Fail(f"ws_soak did not finish its ramp-up (see {self.work}/ws_soak.log)")
        print(f"ramp-up: {ramp[1]} tunnels open, {ramp[2]} failed, {ramp[3]} s", flush=True)
        gen0 = self.generation() or 0
        http_load = HttpLoad(self.https, a.http_rate)
        http_load.start()
        time.sleep(a.interval + 2)  # one full round of frames on every tunnel
        rss0_each = self.proxy_rss()
        rss0 = sum(rss0_each)
        ctl0 = rss_kb(self.ctl.pid)
        samples = [(0, rss0)]
        print(f"after ramp-up: proxy RSS {rss0} kB, controller RSS {ctl0} kB, "
              f"table generation {gen0}; {self.ws_cmd('stats')[0]}", flush=True)

        pace = a.duration / a.changes
        t_changes = time.monotonic()
        unserved = 0
        lat = []
        want = gen0
        for i in range(a.changes):
            self.change(i)
            want += 1
            t = time.monotonic()
            if self.wait_generation(want, 15):
                lat.append(time.monotonic() - t)
            else:
                unserved += 1
                want = self.generation() or want
            d = t_changes + (i + 1) * pace - time.monotonic()
            if d > 0:
                time.sleep(d)
            if (i + 1) % max(1, a.changes // 10) == 0:
                r = sum(self.proxy_rss())
                samples.append((i + 1, r))
                print(f"  {i + 1} changes, {time.monotonic() - t_changes:.0f} s: proxy RSS "
                      f"{r} kB; {self.ws_cmd('stats')[0]}; HTTP {http_load.total} "
                      f"(non-2xx {http_load.non2xx}, failed {http_load.failed})", flush=True)
        changes_s = time.monotonic() - t_changes
        time.sleep(5 + a.interval + 2)  # the drain window, then one more round of frames
        rss1_each = self.proxy_rss()
        rss1 = sum(rss1_each)
        ctl1 = rss_kb(self.ctl.pid)
        gen1 = self.generation() or 0
        tunnels_metric = [self.metric("weir_proxy_open_websocket_tunnels", a)
                          for a in self.admins]
        http_load.stop.set()
        http_load.join(15)
        alive = {f"weir-proxy-{i}": p.poll() is None for i, p in enumerate(self.proxies)}
        alive["weir-controller"] = self.ctl.poll() is None
        rep = {}
        for line in self.ws_cmd("stop", 60):
            k, _, v = line.partition(" ")
            rep[k] = v
        if "end" not in rep:
            raise Fail(f"no report from ws_soak (see {self.work}/ws_soak.log)")
        wall = time.monotonic() - t_start

        n = lambda k: int(rep.get(k, "0"))  # noqa: E731
        dropped = n("steady_dropped") + n("rotating_dropped")
        unanswered = n("steady_close_unanswered") + n("rotating_close_unanswered")
        echo_err = (n("steady_echo_bad") + n("steady_echo_timeout") + n("rotating_echo_bad")
                    + n("rotating_echo_timeout"))
        upgrade_failed = n("steady_upgrade_failed") + n("rotating_upgrade_failed")
        growth = (rss1 - rss0) * 100.0 / rss0 if rss0 else float("inf")
        served = gen1 - gen0
        lat.sort()
        pct = lambda q: lat[min(len(lat) - 1, int(q * (len(lat) - 1)))] * 1000 if lat else 0  # noqa: E731

        rows = [
            ("steady WebSockets open (ramp / at end)",
             f"{rep['steady_opened']} / {rep['steady_open_at_end']} of {rep['steady_want']}"),
            ("  closed by the proxy with a close frame", rep["steady_closed_by_peer"]),
            ("  ended without a close frame", rep["steady_dropped"]),
            ("  echoes checked / bad / missing",
             f"{rep['steady_echoes']} / {rep['steady_echo_bad']} / {rep['steady_echo_timeout']}"),
            ("rotating WebSockets opened", rep["rotating_opened"]),
            ("  clean close by the client (1000 answered)", rep["rotating_clean_close"]),
            ("  closed by the proxy with a close frame (1001 / other)",
             f"{rep['rotating_closed_by_peer']} ({rep['rotating_close_1001']} / "
             f"{rep['rotating_close_other']})"),
            ("  ended without a close frame", rep["rotating_dropped"]),
            ("  close of the client's unanswered", rep["rotating_close_unanswered"]),
            ("  echoes checked / bad / missing",
             f"{rep['rotating_echoes']} / {rep['rotating_echo_bad']} / "
             f"{rep['rotating_echo_timeout']}"),
            ("upgrades refused or failed", str(upgrade_failed)),
            ("first failure seen by ws_soak", rep.get("first_failure", "-")),
            ("HTTP requests / 2xx / non-2xx / failed",
             f"{http_load.total} / {http_load.ok} / {http_load.non2xx} / {http_load.failed}"),
            ("first bad HTTP answer", http_load.first_bad or "-"),
            ("table changes made / served (generation delta) / not served within 15 s",
             f"{a.changes} / {served} / {unserved}"),
            ("  of which", ", ".join(f"{k} {v}" for k, v in self.changes_by_kind.items())),
            ("  change-to-served p50 / p99 / max",
             f"{pct(0.5):.0f} / {pct(0.99):.0f} / {(lat[-1] * 1000 if lat else 0):.0f} ms"),
            ("  time for the changes", f"{changes_s:.0f} s"),
            ("proxy RSS after ramp-up / end / growth", f"{rss0} / {rss1} kB / {growth:+.2f}%"),
            ("  each proxy (after ramp-up -> end)",
             ", ".join(f"{b} -> {e} kB" for b, e in zip(rss0_each, rss1_each))),
            ("  samples (changes: kB)", ", ".join(f"{c}: {r}" for c, r in samples)),
            ("controller RSS after ramp-up / end", f"{ctl0} / {ctl1} kB"),
            ("weir_proxy_open_websocket_tunnels at end, each proxy",
             " + ".join(str(t) for t in tunnels_metric)),
            ("processes alive at end", ", ".join(f"{k} {v}" for k, v in alive.items())),
            ("wall time", f"{wall:.0f} s"),
        ]
        goals = [
            ("0 tunnels dropped without a close frame",
             dropped == 0 and unanswered == 0 and n("steady_open_at_end") == a.conns
             and n("steady_closed_by_peer") == 0 and echo_err == 0 and upgrade_failed == 0,
             f"dropped {dropped}, unanswered closes {unanswered}, steady open at end "
             f"{rep['steady_open_at_end']}/{a.conns}, steady closed by the proxy "
             f"{rep['steady_closed_by_peer']}, echo errors {echo_err}, upgrades failed "
             f"{upgrade_failed}"),
            ("0 non-2xx for healthy backends",
             http_load.non2xx == 0 and http_load.failed == 0 and http_load.total > 0,
             f"{http_load.non2xx} non-2xx, {http_load.failed} failed of {http_load.total}"),
            ("RSS growth <= 5%", growth <= 5.0, f"{growth:+.2f}%"),
            (f"{a.changes} table changes served", served >= a.changes and unserved == 0
             and all(alive.values()), f"{served} served, {unserved} late"),
        ]
        print()
        w = max(len(r[0]) for r in rows)
        for k, v in rows:
            print(f"{k:<{w}}  {v}")
        print()
        ok = True
        for name, passed, detail in goals:
            ok &= passed
            print(f"{'PASS' if passed else 'FAIL'}  {name}: {detail}")
        print(f"\nsoak {'PASS' if ok else 'FAIL'}", flush=True)
        return 0 if ok else 1

    def cleanup(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in self.logs:
            f.close()
        if self.a.keep:
            print(f"kept {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("WEIR_BUILD_DIR", str(ROOT / "build")))
    ap.add_argument("--conns", type=int, default=10000, help="steady WebSockets (10000)")
    ap.add_argument("--changes", type=int, default=1000, help="table changes (1000)")
    ap.add_argument("--duration", type=float, default=180,
                    help="seconds the changes are spread over, at least (180)")
    ap.add_argument("--interval", type=float, default=5,
                    help="seconds between frames on each steady tunnel (5)")
    ap.add_argument("--rotate", type=int, default=200, help="rotating WebSockets (200)")
    ap.add_argument("--http-rate", type=float, default=100, help="HTTP requests a second (100)")
    ap.add_argument("--workers", type=int, default=2, help="proxy worker threads (2)")
    ap.add_argument("--proxies", type=int, default=0,
                    help="weir-proxy processes sharing the tunnels (default: as few as "
                    "RLIMIT_NOFILE allows)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    if a.conns < 1 or a.changes < 1 or a.duration <= 0 or a.interval <= 0 or a.rotate < 0 \
            or a.http_rate <= 0 or not 0 <= a.proxies <= 16:
        ap.error("counts and times must be positive")
    s = Soak(a)
    try:
        return s.run()
    except Fail as e:
        print(f"soak could not run: {e}", file=sys.stderr)
        s.a.keep = True
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        s.cleanup()


if __name__ == "__main__":
    sys.exit(main())
