#!/usr/bin/env python3
"""Controller benchmark (not part of the test suite): --once compile time and peak RSS at
1,000 and 10,000 generated Ingresses, then controller + proxy in --manifests mode at the largest
count: ready time (start -> proxy /readyz 200 and a generated host served) and event-to-served
latency (a new Ingress file written -> the proxy answers its host) over N changes, 200 ms
apart. The publish directories are on /dev/shm when it exists, as the chart's emptyDir (on a
disk each publish also waits for its fsyncs: 10 to 140 ms per change on this machine's disk).
Loopback only; every wait is bounded. Prints one table.

  controller_bench.py --build BUILD_DIR [--counts 1000,10000] [--changes 20] [--work DIR]
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

sys.path.insert(0, str(ROOT / "tests" / "backends"))
from ports import free_port  # noqa: E402  (distinct, outside the ephemeral range)


def gen(count: int, out: Path, port: int) -> None:
    if (out / ".complete").exists() and (out / ".port").read_text() == str(port):
        return
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([sys.executable, str(HERE / "gen_ingresses.py"), "--count", str(count),
                    "--out", str(out), "--addresses", "127.0.0.1", "--endpoints", "1",
                    "--port", str(port)], check=True, stdout=subprocess.DEVNULL, timeout=600)
    (out / ".port").write_text(str(port))
    (out / ".complete").write_text("")


def run_once(ctl: Path, mdir: Path, pub: Path) -> tuple[float, int]:
    shutil.rmtree(pub, ignore_errors=True)
    pub.mkdir(parents=True)
    t0 = time.monotonic()
    p = subprocess.Popen([str(ctl), "--manifests", str(mdir), "--once", "--publish", str(pub)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"--once failed on {mdir}: status {status}")
    return wall, ru.ru_maxrss  # KiB on Linux


def status_of(conn_box: list, port: int, host: str, path: str = "/api") -> int:
    """One GET through the proxy on a kept-alive connection; 0 when it fails."""
    for _ in range(2):
        if conn_box[0] is None:
            conn_box[0] = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn_box[0].request("GET", path, headers={"Host": host})
            r = conn_box[0].getresponse()
            r.read()
            if r.getheader("connection", "").lower() == "close":
                conn_box[0].close()
                conn_box[0] = None
            return r.status
        except (OSError, http.client.HTTPException):
            if conn_box[0] is not None:
                conn_box[0].close()
            conn_box[0] = None
    return 0


def readyz(port: int) -> bool:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        c.request("GET", "/readyz")
        ok = c.getresponse().status == 200
        c.close()
        return ok
    except (OSError, http.client.HTTPException):
        return False


NEW_INGRESS = """apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: bench-change-{i}
  namespace: bench-0
spec:
  ingressClassName: weir
  rules:
  - host: change-{i}.bench.weir.test
    http:
      paths:
      - path: /api
        pathType: Prefix
        backend:
          service:
            name: app-00000-svc
            port:
              number: 80
"""


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def publish_dir(work: Path, name: str) -> Path:
    """A publish directory on tmpfs (/dev/shm) when there is one, as the chart mounts it (an
    emptyDir with medium Memory): on a disk each publish pays for its fsyncs."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return shm / f"weir-ctl-bench-{os.getpid()}" / name
    return work / name


def live(build: Path, mdir: Path, work: Path, count: int, changes: int, backend_port: int):
    pub = publish_dir(work, "pub-live")
    shutil.rmtree(pub, ignore_errors=True)
    pub.mkdir(parents=True)
    http_port, admin_port = free_port(), free_port()
    for f in mdir.glob("zz-change-*.yaml"):
        f.unlink()
    logs = open(work / "live.log", "w")
    procs = []
    try:
        procs.append(subprocess.Popen(
            [sys.executable, str(ROOT / "tests/backends/echo_http.py"), "--host", "127.0.0.1",
             "--port", str(backend_port)], stdout=logs, stderr=logs))
        procs.append(subprocess.Popen(
            [str(build / "weir-proxy"), "--routes", str(pub), "--http-port", str(http_port),
             "--https-port", "0", "--admin-port", str(admin_port), "--workers", "1",
             "--listen-address", "127.0.0.1"], stdout=logs, stderr=logs))
        t0 = time.monotonic()
        procs.append(subprocess.Popen(
            [str(build / "weir-controller"), "--manifests", str(mdir), "--publish", str(pub)],
            stdout=logs, stderr=logs))
        last = f"app-{count - 1:05d}.bench.weir.test"
        box = [None]
        ready = None
        while time.monotonic() - t0 < 120:
            if readyz(admin_port) and status_of(box, http_port, last, "/healthz") not in (0, 404):
                ready = time.monotonic() - t0
                break
            time.sleep(0.01)
        if ready is None:
            raise SystemExit("not ready within 120 s (see live.log)")
        lat = []
        for i in range(changes):
            host = f"change-{i}.bench.weir.test"
            tmp = mdir / f".zz-change-{i}.tmp"
            tmp.write_text(NEW_INGRESS.format(i=i))
            ts = time.monotonic()
            os.rename(tmp, mdir / f"zz-change-{i}.yaml")
            served = None
            while time.monotonic() - ts < 30:
                st = status_of(box, http_port, host)
                if st not in (0, 404):
                    served = time.monotonic() - ts
                    break
            if served is None:
                raise SystemExit(f"{host} not served within 30 s")
            lat.append(served * 1000)
            time.sleep(0.2)  # isolated changes: within 50 ms of a compile the next one is batched (5 ms)
        return ready, lat
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        logs.close()
        for f in mdir.glob("zz-change-*.yaml"):
            f.unlink()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True, type=Path)
    ap.add_argument("--counts", default="1000,10000")
    ap.add_argument("--changes", type=int, default=20)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "weir-ctl-bench")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    # Reuse the port of earlier generated manifests (regenerating 10k takes ~20 s) when free.
    backend_port = free_port()
    for f in sorted(a.work.glob("m*/.port")):
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", int(f.read_text())))
            backend_port = int(f.read_text())
            break
        except (OSError, ValueError):
            continue
    counts = [int(c) for c in a.counts.split(",")]
    rows = []
    for n in counts:
        mdir = a.work / f"m{n}"
        gen(n, mdir, backend_port)
        wall, rss = run_once(a.build / "weir-controller", mdir, publish_dir(a.work, f"pub{n}"))
        rows.append((f"--once compile+publish, {n} Ingresses", f"{wall * 1000:.0f} ms",
                     f"peak RSS {rss / 1024:.0f} MiB"))
    n = counts[-1]
    ready, lat = live(a.build, a.work / f"m{n}", a.work, n, a.changes, backend_port)
    rows.append((f"ready (start -> /readyz 200 + route served), {n}", f"{ready * 1000:.0f} ms", ""))
    rows.append((f"event-to-served over {len(lat)} new Ingresses, {n}",
                 f"p50 {pct(lat, 0.5):.1f} ms", f"p99 {pct(lat, 0.99):.1f} ms, "
                 f"max {max(lat):.1f} ms"))
    shutil.rmtree(Path("/dev/shm") / f"weir-ctl-bench-{os.getpid()}", ignore_errors=True)
    w = max(len(r[0]) for r in rows)
    print(f"{'measure':<{w}}  {'value':>12}  notes")
    for r in rows:
        print(f"{r[0]:<{w}}  {r[1]:>12}  {r[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
