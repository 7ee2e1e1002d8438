#!/usr/bin/env python3
"""Controller benchmark against a real kube-apiserver (not part of the test suite).

  python3 tests/bench/controller_api_bench.py [--count 10000] [--changes 20] [--build DIR]
      [--tls-every N] [--distinct-certs]   # e.g. --tls-every 1 --distinct-certs: 10,000 Secrets,
                                           # each with a certificate of its own
      [--watch-cache on|off] [--restarts N] [--compare-build DIR]

Starts the cluster tests' control plane (etcd + kube-apiserver 1.34 on 127.0.0.1, built and
cached by tests/cluster/build-k8s.sh), with the API server's watch cache on as in a cluster's
default configuration (lists served from memory; --watch-cache off: every list read from etcd,
as the cluster tests run it), applies COUNT generated Ingresses with their Services
and TLS Secrets (tests/bench/gen_ingresses.py, no EndpointSlices: every route answers 503 "no
endpoints", so no request leaves the proxy), runs weir-proxy + weir-controller (admin
credentials) and prints:

  - time from the apply to every host published, and to the last one served;
  - controller start -> complete table published, with COUNT Ingresses already in the API
    (routes.json removed first; the proxy keeps serving its table meanwhile);
  - controller restart with the publish directory kept (as a container restart in the same
    pod) and one Ingress created while it was down -> that Ingress served, with the time the
    controller says its lists took;
    both restarts RESTARTS times (the median is the figure); with --compare-build, alternately
    with the controller of that build (A B B A ...) against the same API server and objects;
  - watch event -> served: CHANGES new Ingresses created one at a time through the API, each
    timed from the POST returning to the proxy answering its host (p50/p99/max);
  - TLS Secret rotated -> the proxy presents the new certificate: CHANGES Secrets that
    Ingresses name get a new certificate; and an unrelated Secret changed, then an Ingress
    created -> served, CHANGES times; with the controller's full compiles over both;
  - EndpointSlice change -> new endpoint receiving traffic: a Service whose slice holds one
    address of a backend in a network namespace of its own (10.213.9.0/24, made here), then
    CHANGES slice updates that swap its second address, each timed from the API call
    returning to the first response from the new address (requests through the proxy);
  - controller and proxy RSS, published size (index + shards).

The publish directory is on tmpfs (/dev/shm), as the chart mounts it (emptyDir, medium Memory).

Loopback only. Bounded: about 10 minutes at 10,000 Ingresses on 2 cores.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "tests" / "cluster"))

sys.path.insert(0, str(ROOT / "tests"))

import kcluster  # noqa: E402
import kweir  # noqa: E402
from netns import Netns  # noqa: E402
import routetable  # noqa: E402

_shard_names: dict[str, str] = {}


def published_hosts(pub: Path) -> set[str]:
    try:
        return routetable.host_names(pub, _shard_names)
    except (OSError, ValueError, AssertionError):
        return set()


def status(port: int, host: str) -> int:
    try:
        return kweir.http_get(port, host, "/ws", timeout=2)[0]
    except OSError:
        return 0


# A host is served when its route answers: 503 (no endpoints: the bench's Services have none)
# or, for a TLS host asked over HTTP, the 308 to HTTPS.
SERVED = (503, 308)


def log_time(line: str) -> float | None:
    """The wall-clock time (s since the epoch) a text log line starts with."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ", line)
    if not m:
        return None
    return datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def split_latency(changes: list[tuple[float, float]], ctl_log: str, proxy_log: str,
                  mark: str) -> list[tuple[str, list[float]]]:
    """Where each change's time went, from the two logs (millisecond timestamps): (API call
    returned at wall time t, served lat ms later) -> the controller's publish line for it
    (the first with mark after t: it says how long the step and the publish took), the proxy's
    load line after that. Segments in ms: API call returned -> controller step began (watch
    event, store, snapshot), controller step + publish, publish done -> new table loaded
    (inotify + load), loaded -> first answer from it (the bench's client)."""
    pubs = []
    for ln in ctl_log.splitlines():
        m = re.search(r"\): ([0-9.]+) ms, published in ([0-9.]+) ms", ln)
        t = log_time(ln)
        if mark in ln and m and t:
            pubs.append((t, float(m.group(1)) + float(m.group(2))))
    loads = [t for t in (log_time(ln) for ln in proxy_log.splitlines()
                         if "route table loaded" in ln) if t]
    seg: list[list[float]] = [[], [], [], []]
    for t, lat in changes:
        pub = next((p for p in pubs if p[0] >= t - 0.02), None)  # changes are 300 ms apart
        if not pub:
            continue
        # The proxy may load the new index before the controller has logged its publish
        # line (the line comes after the garbage collection): the first load after the step
        # began is the one (a negative "publish done -> proxy loaded" is such a case).
        begin = pub[0] - pub[1] / 1000
        load = next((x for x in loads if x >= begin), None)
        if not load:
            continue
        seg[0].append((begin - t) * 1000)
        seg[1].append(pub[1])
        seg[2].append((load - pub[0]) * 1000)
        seg[3].append((t + lat / 1000 - load) * 1000)
    names = ["API call returned -> controller step began", "controller step + publish",
             "publish done -> proxy loaded it", "proxy loaded -> first answer seen"]
    return list(zip(names, seg))


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def wait(pred, timeout: float, what: str, interval: float = 0.01) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--changes", type=int, default=20)
    ap.add_argument("--build", default=os.environ.get("WEIR_BUILD_DIR", str(ROOT / "build")))
    ap.add_argument("--tls-every", type=int, default=10,
                    help="every Nth Ingress has a TLS Secret (1: all)")
    ap.add_argument("--distinct-certs", action="store_true",
                    help="each TLS Secret with a certificate and key of its own")
    ap.add_argument("--skip", action="append", default=[],
                    choices=("restart", "ingress", "secret"),
                    help="leave out a phase, for quicker runs while developing (figures "
                         "to compare come from a full run)")
    ap.add_argument("--watch-cache", choices=("on", "off"), default="on",
                    help="kube-apiserver's watch cache: on (its default, as in a cluster) or off "
                         "(as the cluster tests run it, every list read from etcd)")
    ap.add_argument("--restarts", type=int, default=1,
                    help="repeat the two restart measurements this many times (median shown)")
    ap.add_argument("--compare-build", metavar="DIR",
                    help="also restart the controller of this build, alternating with --build")
    ap.add_argument("--perf-restart", metavar="DIR",
                    help="record the whole machine with perf (call graphs) during the last "
                         "restart with the publish directory kept, into DIR/restart.data "
                         "(the API server and etcd too: see where a restart's time goes)")
    ap.add_argument("--perf", metavar="DIR",
                    help="record the controller and the proxy with perf (call graphs) during "
                         "the EndpointSlice changes, into DIR/controller.data and "
                         "DIR/proxy.data")
    a = ap.parse_args()
    os.environ["WEIR_BUILD_DIR"] = a.build
    kweir.BUILD = Path(a.build)

    work = Path(tempfile.mkdtemp(prefix="weir-api-bench-"))
    c = kcluster.Cluster(work / "cluster", watch_cache=a.watch_cache == "on")
    c.start()
    api = kweir.Api(c)
    w = None
    shm = None
    try:
        gen = work / "gen"
        subprocess.run([sys.executable, str(HERE / "gen_ingresses.py"), "--count", str(a.count),
                        "--out", str(gen), "--namespaces", "10", "--endpoints", "0",
                        "--tls-every", str(a.tls_every)]
                       + (["--distinct-certs"] if a.distinct_certs else []),
                       check=True, stdout=subprocess.DEVNULL)
        c.kubectl("apply", "-f", str(gen / "00-header.yaml"))
        api.apply({"kind": "Namespace", "metadata": {"name": kweir.SYSTEM_NS}})
        # The publish directory on tmpfs, as the chart's emptyDir (medium: Memory).
        shm = Path(tempfile.mkdtemp(prefix="weir-api-bench-", dir="/dev/shm"))
        w = kweir.Weir(c, c.admin_kubeconfig, shm / "weir")
        w.start_proxy()
        w.start_controller()
        t0 = time.monotonic()
        c.kubectl("apply", "--server-side", "-f", str(gen), timeout=1800)
        t_apply = time.monotonic() - t0
        want = {f"app-{i:05d}.bench.weir.test" for i in range(a.count)}
        wait(lambda: want <= published_hosts(w.publish), 600, "all hosts published", 0.25)
        t_pub = time.monotonic() - t0
        last = f"app-{a.count - 1:05d}.bench.weir.test"
        wait(lambda: status(w.http_port, last) in SERVED, 120, "last host served")
        t_srv = time.monotonic() - t0
        size = routetable.published_bytes(w.publish)
        index_size = (w.publish / "routes.json").stat().st_size

        builds = [("A", a.build)] + ([("B", a.compare_build)] if a.compare_build else [])
        runs: dict[str, list[tuple[float, float, float]]] = {tag: [] for tag, _ in builds}
        t_ready = t_warm = float("nan")
        warm_lines: list[str] = []
        ctl_log_path = c.logs / "weir-controller.log"

        def since_start() -> list[str]:
            """The lines of the controller running now (after the previous one's last)."""
            ctl = ctl_log_path.read_text(errors="replace").splitlines()
            since = max((i + 1 for i, ln in enumerate(ctl) if "stopping;" in ln), default=0)
            return ctl[since:]

        def list_ms(lines: list[str]) -> float:
            m = next((re.search(r"listed from the API in ([0-9.]+) ms", ln) for ln in lines
                      if "listed from the API" in ln), None)
            return float(m.group(1)) if m else float("nan")

        def restart(k: int) -> tuple[float, float, float, list[str]]:
            # restart with everything in the API already
            w.stop_controller()
            (w.publish / "routes.json").unlink()
            w.start_controller()
            ready = wait(lambda: want <= published_hosts(w.publish), 120,
                         "table published after the restart", 0.005)
            wait(lambda: status(w.http_port, last) in SERVED, 60, "served after the restart")
            time.sleep(2)
            # restart as a container restart does: the publish directory (an emptyDir) is kept,
            # and one Ingress was created while the controller was down; timed until the proxy
            # serves it (the controller publishes only whole tables, after its first full list)
            w.stop_controller()
            probe = f"restart-probe-{k}.bench.weir.test"
            api.create(kweir.ingress(f"restart-probe-{k}", probe,
                                     [("/ws", "Prefix", "app-00000-svc", 80)], ns="bench-0"))
            rec = None
            if a.perf_restart and k == n_restarts - 1:
                Path(a.perf_restart).mkdir(parents=True, exist_ok=True)
                rec = subprocess.Popen(["perf", "record", "-q", "-a", "-g", "-F", "999", "-o",
                                        f"{a.perf_restart}/restart.data"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1)
            w.start_controller()
            warm = wait(lambda: status(w.http_port, probe) == 503, 120,
                        "the new Ingress served after the restart", 0.005)
            if rec:
                rec.send_signal(signal.SIGINT)
                rec.wait(60)
            # where the restart's time went: the controller's own lines since it started
            # (the listing comes before "running")
            lines = [ln for ln in since_start()
                     if any(m in ln for m in ("running: source", "seeded as valid",
                                              "listed from the API", "compiled in",
                                              "published generation", ": listed in"))][:12]
            time.sleep(2)
            return ready, warm, list_ms(lines), lines

        if "restart" not in a.skip:
            n = 0
            n_restarts = a.restarts * len(builds)
            for k in range(a.restarts):
                for tag, bdir in (builds if k % 2 == 0 else builds[::-1]):
                    kweir.BUILD = Path(bdir)
                    ready, warm, lms, lines = restart(n)
                    n += 1
                    runs[tag].append((ready, warm, lms))
                    if tag == "A":
                        warm_lines = lines
            kweir.BUILD = Path(a.build)
            if runs["A"]:
                t_ready = pct([r[0] for r in runs["A"]], 0.5)
                t_warm = pct([r[1] for r in runs["A"]], 0.5)

        lat = [float("nan")]
        post_at: list[tuple[float, float]] = []
        if "ingress" not in a.skip:
            lat = []
            for i in range(a.changes):
                host = f"change-{i}.bench.weir.test"
                api.create(kweir.ingress(f"change-{i}", host, [("/ws", "Prefix", "app-00000-svc", 80)],
                                         ns="bench-0"))
                ts, wall = time.monotonic(), time.time()
                wait(lambda: status(w.http_port, host) == 503, 60, f"{host} served", 0.002)
                lat.append((time.monotonic() - ts) * 1000)
                post_at.append((wall, lat[-1]))
                time.sleep(0.3)
        # A TLS Secret an Ingress names rotated (as cert-manager renews one): timed from the
        # API call returning to the proxy presenting the new certificate for that host; and an
        # Ingress created just after a Secret no Ingress names changed (another team's). Both
        # are steps for the Ingresses concerned alone; the controller's full compiles (its
        # "compiled in" lines) over the two phases are counted.
        rot_lat: list[float] = []
        unrel_lat: list[float] = []
        full_compiles = -1
        if "secret" not in a.skip:
            mark = len(ctl_log_path.read_text(errors="replace").splitlines())
            certs = work / "rotate"
            tls_idx = [i for i in range(0, a.count, a.tls_every or 1)] if a.tls_every else []
            for i in range(a.changes if tls_idx else 0):
                idx = tls_idx[(i * 97 + 1) % len(tls_idx)]
                host = f"app-{idx:05d}.bench.weir.test"
                crt, key, fp = kweir.self_signed(host, certs, f"r{i}")
                api.apply(kweir.tls_secret(f"app-{idx:05d}-tls", crt, key, ns=f"bench-{idx % 10}"))
                ts = time.monotonic()
                wait(lambda: kweir.tls_cert_sha256(w.https_port, host) == fp, 60,
                     f"{host}: the rotated certificate", 0.002)
                rot_lat.append((time.monotonic() - ts) * 1000)
                time.sleep(0.3)
            for i in range(a.changes):
                api.apply({"kind": "Secret", "type": "Opaque",
                           "metadata": {"name": "not-named", "namespace": "bench-0"},
                           "data": {"n": base64.b64encode(str(i).encode()).decode()}})
                time.sleep(0.3)
                host = f"after-unrelated-{i}.bench.weir.test"
                api.create(kweir.ingress(f"after-unrelated-{i}", host,
                                         [("/ws", "Prefix", "app-00000-svc", 80)], ns="bench-0"))
                ts = time.monotonic()
                wait(lambda: status(w.http_port, host) == 503, 60, f"{host} served", 0.002)
                unrel_lat.append((time.monotonic() - ts) * 1000)
                time.sleep(0.3)
            full_compiles = sum("compiled in" in ln for ln in
                                ctl_log_path.read_text(errors="replace").splitlines()[mark:])
        # EndpointSlice churn: [a0, a1] -> [a0, a2] -> [a0, a1] ...
        net = Netns(9, naddrs=3)
        net.create()
        try:
            net.start_backend(work / "netns")
            ehost = "ep-churn.bench.weir.test"
            api.apply(kweir.service("ep-churn", ns="bench-0"))
            api.apply(kweir.endpointslice("ep-churn", net.addrs[:2], ns="bench-0"))
            api.create(kweir.ingress("ep-churn", ehost, [("/", "Prefix", "ep-churn", 80)],
                                     ns="bench-0"))

            def server() -> str:
                try:
                    st, body, _ = kweir.http_get(w.http_port, ehost, "/", timeout=2)
                    return body.get("server", "") if st == 200 and isinstance(body, dict) else ""
                except OSError:
                    return ""

            wait(lambda: server() == f"{net.addrs[1]}:8080", 60, "ep-churn served")
            time.sleep(1)
            perf = []
            if a.perf:
                Path(a.perf).mkdir(parents=True, exist_ok=True)
                perf = [subprocess.Popen(["perf", "record", "-q", "-g", "-F", "4999", "-p",
                                          str(p.pid), "-o", f"{a.perf}/{name}.data"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        for name, p in (("controller", w.controller), ("proxy", w.proxy))]
                time.sleep(1)
            ep_lat = []
            ep_at: list[tuple[float, float]] = []
            for i in range(a.changes):
                new = net.addrs[2 if i % 2 == 0 else 1]
                api.apply(kweir.endpointslice("ep-churn", [net.addrs[0], new], ns="bench-0"))
                ts, wall = time.monotonic(), time.time()
                wait(lambda: server() == f"{new}:8080", 60, f"{new} receiving traffic", 0)
                ep_lat.append((time.monotonic() - ts) * 1000)
                ep_at.append((wall, ep_lat[-1]))
                time.sleep(0.3)
            for p in perf:
                p.send_signal(signal.SIGINT)
                p.wait(60)
        finally:
            net.delete()
        rss, hwm = w.rss_kib("controller")
        prss, phwm = w.rss_kib("proxy")

        ntls = (a.count + a.tls_every - 1) // a.tls_every if a.tls_every else 0
        print(f"\nweir-controller against kube-apiserver on loopback, {a.count} Ingresses, "
              f"{ntls} TLS Secrets ({'distinct certificates' if a.distinct_certs else 'one shared certificate'}), "
              f"{os.cpu_count()} CPUs")
        print("kube-apiserver watch cache: " + (
            "on (its default: lists served from memory)" if a.watch_cache == "on"
            else "off (--watch-cache=false, as the cluster tests run it: lists read from etcd)"))
        print(f"{'measure':<58}{'value':>12}  notes")
        print(f"{'kubectl apply (server-side), all objects':<58}{t_apply:>10.1f} s")
        print(f"{'apply began -> every host published':<58}{t_pub:>10.1f} s")
        print(f"{'apply began -> last host served':<58}{t_srv:>10.1f} s  "
              f"published {size / 1e6:.1f} MB (routes.json {index_size / 1e3:.0f} KB)")
        nr = len(runs["A"])
        of = f", median of {nr}" if nr > 1 else ""
        print(f"{'controller start -> complete table published':<58}"
              f"{t_ready * 1000:>9.0f} ms  (publish dir emptied; list of every kind + "
              f"compile{of})")
        print(f"{'controller restart, publish dir kept -> new Ingress served':<58}"
              f"{t_warm * 1000:>9.0f} ms  (API list "
              f"{pct([r[2] for r in runs['A']], 0.5) if nr else float('nan'):.0f} ms{of}; "
              f"certificates already published are not checked again)")
        if nr > 1 or a.compare_build:
            for tag, bdir in builds:
                rs = runs[tag]
                print(f"  restarts of build {tag} ({bdir}), in order: emptied dir / dir kept "
                      f"(API list) ms")
                print("    " + ", ".join(f"{r[0] * 1000:.0f} / {r[1] * 1000:.0f} ({r[2]:.0f})"
                                         for r in rs))
                if rs:
                    print(f"    median {pct([r[0] for r in rs], 0.5) * 1000:.0f} / "
                          f"{pct([r[1] for r in rs], 0.5) * 1000:.0f} "
                          f"({pct([r[2] for r in rs], 0.5):.0f})")
        print(f"{'Ingress POST -> served, ' + str(a.changes) + ' changes':<58}"
              f"{'p50 %.0f ms' % pct(lat, 0.5):>12}  p99 {pct(lat, 0.99):.0f} ms, "
              f"max {max(lat):.0f} ms")
        print(f"{'EndpointSlice change -> new endpoint answers, ' + str(a.changes):<58}"
              f"{'p50 %.0f ms' % pct(ep_lat, 0.5):>12}  p99 {pct(ep_lat, 0.99):.0f} ms, "
              f"max {max(ep_lat):.0f} ms")
        if rot_lat:
            print(f"{'TLS Secret rotated -> new certificate served, ' + str(len(rot_lat)):<58}"
                  f"{'p50 %.0f ms' % pct(rot_lat, 0.5):>12}  p99 {pct(rot_lat, 0.99):.0f} ms, "
                  f"max {max(rot_lat):.0f} ms")
        if unrel_lat:
            print(f"{'unrelated Secret changed, Ingress POST -> served, ' + str(len(unrel_lat)):<58}"
                  f"{'p50 %.0f ms' % pct(unrel_lat, 0.5):>12}  p99 {pct(unrel_lat, 0.99):.0f} ms, "
                  f"max {max(unrel_lat):.0f} ms")
        if full_compiles >= 0:
            print(f"{'  full compiles over those two phases':<58}{full_compiles:>12}")
        ctl_log = (c.logs / "weir-controller.log").read_text(errors="replace")
        proxy_log = (c.logs / "weir-proxy.log").read_text(errors="replace")
        for what, at, mark in (("Ingress POST", post_at, "Ingresses changed"),
                               ("EndpointSlice change", ep_at, "Services patched")):
            print(f"  {what}, where the time went:")
            for name, xs in split_latency(at, ctl_log, proxy_log, mark):
                if xs:
                    print(f"{'    ' + name:<58}{'p50 %.1f ms' % pct(xs, 0.5):>12}  "
                          f"p99 {pct(xs, 0.99):.1f} ms  ({len(xs)} matched in the logs)")
        print("  the restart in the controller's log (first lines after it started):")
        for ln in warm_lines:
            print("    " + ln)
        print(f"{'controller RSS':<58}{rss / 1024:>8.0f} MiB  peak {hwm / 1024:.0f} MiB")
        print(f"{'proxy RSS (1 worker)':<58}{prss / 1024:>8.0f} MiB  peak {phwm / 1024:.0f} MiB")
        # Where the time of the last changes went: the controller's publish lines and the
        # proxy's load lines (each says how long it took).
        for name, mark in (("weir-controller", "Ingresses changed"),
                           ("weir-controller", "Services patched"),
                           ("weir-proxy", "route table loaded")):
            lines = [ln for ln in (c.logs / f"{name}.log").read_text(errors="replace")
                     .splitlines() if mark in ln]
            print(f"\nlast {a.changes} lines of {name} with '{mark}':")
            for ln in lines[-a.changes:]:
                print("  " + ln)
        return 0
    finally:
        if w:
            w.stop_controller()
            w.stop_proxy()
        c.destroy()
        shutil.rmtree(work, ignore_errors=True)
        if shm:
            shutil.rmtree(shm, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
