#!/usr/bin/env python3
"""Forward-auth latency benchmark (not part of the test suite).

  python3 tests/bench/forward_auth_bench.py [--rate 1000] [--seconds 10] [--conns 32]
                                            [--workers 1] [--auth-delay-ms 0] [--rounds 3]

Goal: forward auth adds at most 10% to p99 over the auth server's own latency at
1,000 req/s. Three open-loop runs at the same constant rate (latency counted from each
request's scheduled time, so a stall is not hidden by the generator waiting):

  direct  GET the auth endpoint itself                 -> p99(auth server)
  plain   GET through weir-proxy, no auth              -> p99(proxy)
  auth    GET through weir-proxy with auth-url          -> p99(proxy + auth)

and reports added = p99(auth) - p99(plain) against p99(direct): the target is
added <= 1.10 * p99(direct). The upstream is tests/bench/backend.c. The auth server is the
same C backend (a fast auth server: the hardest case for the ratio) or, with
--auth-delay-ms N, tests/backends/auth_server.py answering 200 after N ms. The runs are
interleaved for --rounds rounds and the median of each figure is reported. Loopback only.
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import proxyutil as pu  # noqa: E402


async def one_conn(port, head, queue, lat, errors):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            t_sched = await queue.get()
            if t_sched is None:
                return
            writer.write(head)
            data = await reader.readuntil(b"\r\n\r\n")
            status = int(data[9:12])
            length = 0
            for line in data.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            if status != 200:
                errors.append(status)
            lat.append(time.perf_counter() - t_sched)
    finally:
        writer.close()


async def open_loop(port, head, rate, seconds, conns):
    """Send rate req/s for seconds over conns keep-alive connections; latencies in ms."""
    lat, errors = [], []
    queues = [asyncio.Queue() for _ in range(conns)]
    tasks = [asyncio.create_task(one_conn(port, head, q, lat, errors)) for q in queues]
    n = int(rate * seconds)
    start = time.perf_counter() + 0.05
    for i in range(n):
        t = start + i / rate
        delay = t - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queues[i % conns].put_nowait(t)
    for q in queues:
        q.put_nowait(None)
    await asyncio.gather(*tasks)
    lat.sort()
    return [x * 1000 for x in lat], errors


def pct(sorted_ms, p):
    return sorted_ms[min(len(sorted_ms) - 1, int(len(sorted_ms) * p / 100))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--auth-delay-ms", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="weir-fa-bench-")
    bench_dir = os.path.join(pu.BUILD_DIR, "bench")
    os.makedirs(bench_dir, exist_ok=True)
    backend_bin = os.path.join(bench_dir, "backend")
    subprocess.run(["gcc", "-O2", "-Wall", "-o", backend_bin,
                    os.path.join(REPO, "tests", "bench", "backend.c"), "-lcrypto", "-lpthread"],
                   check=True)
    procs = []
    try:
        bport = pu.free_port()
        procs.append(pu.start_ready([backend_bin, str(bport), "1"], "backend ready on",
                                    os.path.join(tmp, "backend.log")))
        if a.auth_delay_ms:
            aport = pu.free_port()
            procs.append(pu.start_backend("auth_server.py", aport,
                                          os.path.join(tmp, "auth.log")))
            auth_head = (f"GET /check HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Test-Auth: slow\r\n"
                         f"X-Test-Delay: {a.auth_delay_ms}\r\n\r\n").encode()
            extra = f"X-Test-Auth: slow\r\nX-Test-Delay: {a.auth_delay_ms}\r\n"
        else:
            aport = bport
            auth_head = b"GET /check HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            extra = ""
        routes = os.path.join(tmp, "routes")
        os.makedirs(routes)
        ep = [{"address": "127.0.0.1", "port": bport}]
        pu.write_table(routes, {
            "version": 1, "generation": 1,
            "hosts": [{"name": "", "routes": [
                {"path": "/plain", "match": "prefix", "backend": 0},
                {"path": "/auth", "match": "prefix", "backend": 0,
                 "policy": {"ext_auth": {"url": f"http://127.0.0.1:{aport}/check"}}},
            ]}],
            "backends": [{"name": "bench/backend:80", "endpoints": ep}],
        })
        proxy = pu.Proxy(routes, os.path.join(tmp, "proxy.log"), workers=a.workers)
        procs.append(proxy)
        proxy.wait_ready()
        runs = {
            "direct": (aport, auth_head),
            "plain": (proxy.http_port,
                      f"GET /plain/x HTTP/1.1\r\nHost: b.test\r\n{extra}\r\n".encode()),
            "auth": (proxy.http_port,
                     f"GET /auth/x HTTP/1.1\r\nHost: b.test\r\n{extra}\r\n".encode()),
        }
        figures = {k: [] for k in runs}
        for rnd in range(a.rounds):
            for name, (port, head) in runs.items():
                asyncio.run(open_loop(port, head, a.rate, 1, a.conns))  # warm-up
                lat, errors = asyncio.run(open_loop(port, head, a.rate, a.seconds, a.conns))
                if errors:
                    raise SystemExit(f"{name}: {len(errors)} non-200 answers, e.g. {errors[:5]}")
                f = {"p50": pct(lat, 50), "p90": pct(lat, 90), "p99": pct(lat, 99),
                     "max": lat[-1], "n": len(lat)}
                figures[name].append(f)
                print(f"round {rnd + 1} {name:6s} n={f['n']} p50={f['p50']:.3f} "
                      f"p90={f['p90']:.3f} p99={f['p99']:.3f} max={f['max']:.3f} ms",
                      flush=True)
        med = {k: {m: statistics.median(r[m] for r in v) for m in ("p50", "p90", "p99", "max")}
               for k, v in figures.items()}
        added = med["auth"]["p99"] - med["plain"]["p99"]
        ratio = added / med["direct"]["p99"] if med["direct"]["p99"] else float("inf")
        print(json.dumps({"rate": a.rate, "seconds": a.seconds, "conns": a.conns,
                          "workers": a.workers, "auth_delay_ms": a.auth_delay_ms,
                          "median_ms": med, "added_p99_ms": added,
                          "added_over_auth_p99": ratio}, indent=1))
        verdict = "met" if ratio <= 1.10 else "NOT met"
        print(f"forward auth adds {added:.3f} ms to p99; the auth server's own p99 is "
              f"{med['direct']['p99']:.3f} ms: {ratio:.2f}x (target <= 1.10x): {verdict}")
    finally:
        for p in procs:
            if isinstance(p, pu.Proxy):
                p.stop()
            else:
                pu.stop_process(p)


if __name__ == "__main__":
    main()
