"""Route table hot swap under load: 100 live WebSocket connections keep echoing while the
table is replaced 200 times; every new route is served shortly after its table lands; a bad
table is refused and the old one keeps serving."""

import asyncio
import os
import random
import statistics
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import proxyutil as pu

NCONN = 100
NSWAP = 200
BAD_AT = 100


def table(backends, gen):
    routes = [{"path": f"/gen-{i}", "match": "exact", "backend": 0} for i in range(gen, 0, -1)]
    routes.append({"path": "/ws", "match": "prefix", "backend": 1})
    return {
        "version": 1,
        "generation": gen,
        "hosts": [{"name": "", "routes": routes}],
        "backends": [
            {"name": "hs/echo:80", "endpoints": [{"address": "127.0.0.1",
                                                  "port": backends["echo"]}]},
            {"name": "hs/ws:80", "endpoints": [{"address": "127.0.0.1", "port": backends["ws"]}]},
        ],
    }


async def http_status(port, path):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    line = data.split(b"\r\n", 1)[0]
    return int(line.split()[1]), data


class Stats:
    def __init__(self):
        self.messages = [0] * NCONN
        self.bytes = 0
        self.altered = []
        self.dropped = []


async def talker(i, port, stats, stop):
    rng = random.Random(i)
    async with connect(f"ws://127.0.0.1:{port}/ws/c{i}", proxy=None, compression=None,
                       ping_interval=None, max_size=None, open_timeout=20) as ws:
        try:
            while not stop.is_set():
                n = rng.randint(1, 4096)
                msg = os.urandom(n) if rng.random() < 0.5 else "".join(
                    rng.choice("weir→ws ") for _ in range(n))
                await ws.send(msg)
                got = await asyncio.wait_for(ws.recv(), 10)
                if got != msg:
                    stats.altered.append((i, stats.messages[i]))
                stats.messages[i] += 1
                stats.bytes += len(msg)
                await asyncio.sleep(rng.random() * 0.02)
        except (ConnectionClosed, asyncio.TimeoutError, OSError) as e:
            stats.dropped.append((i, repr(e)))


async def scenario(proxy, backends):
    stats = Stats()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(talker(i, proxy.http_port, stats, stop)) for i in range(NCONN)]
    await asyncio.sleep(1.0)
    latencies = []
    bad_checked = False
    for gen in range(2, NSWAP + 2):
        n = gen - 1  # /gen-n is new in this table
        if n == BAD_AT:
            failed0 = proxy.metric("weir_proxy_reloads_total", 'result="failed"')
            pu.write_raw_table(proxy.routes_dir, b'{"version": 1, "hosts": [{"name": "", '
                               b'"routes": [{"path": "/x", "match": "prefix", "backend": 7}]}]}')
            t_end = time.monotonic() + 5
            while (proxy.metric("weir_proxy_reloads_total", 'result="failed"') < failed0 + 1
                   and time.monotonic() < t_end):
                await asyncio.sleep(0.02)
            assert proxy.metric("weir_proxy_reloads_total", 'result="failed"') == failed0 + 1, \
                proxy.metrics()
            assert pu.http_get(proxy.admin_port, "/readyz")[0] == 200
            assert proxy.metric("weir_proxy_route_table_generation") == gen - 1
            status, _ = await http_status(proxy.http_port, f"/gen-{n - 1}")
            assert status == 200, "old table stopped serving after a bad table"
            bad_checked = True
        t0 = time.monotonic()
        pu.write_table(proxy.routes_dir, table(backends, gen))
        deadline = t0 + 5
        while True:
            status, data = await http_status(proxy.http_port, f"/gen-{n}")
            if status == 200:
                assert b'"path": "/gen-%d"' % n in data
                latencies.append(time.monotonic() - t0)
                break
            assert status == 404, f"/gen-{n}: unexpected {status}"
            assert time.monotonic() < deadline, f"/gen-{n} not served 5s after its swap"
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    return stats, latencies, bad_checked


@pytest.mark.slow
def test_hot_swap_keeps_websockets(fresh_proxy, backends):
    proxy = fresh_proxy(table(backends, 1))
    proxy.wait_generation(1)
    stats, lat, bad_checked = asyncio.run(scenario(proxy, backends))
    lat_ms = sorted(x * 1000 for x in lat)
    p50 = statistics.median(lat_ms)
    p99 = lat_ms[min(len(lat_ms) - 1, int(len(lat_ms) * 0.99))]
    print(f"hot swap: {len(lat_ms)} swaps, swap-to-served p50 {p50:.1f} ms p99 {p99:.1f} ms "
          f"max {lat_ms[-1]:.1f} ms; {sum(stats.messages)} echoes, {stats.bytes} bytes "
          f"on {NCONN} connections")
    assert bad_checked
    assert stats.dropped == [], f"connections dropped: {stats.dropped[:5]}"
    assert stats.altered == [], f"echoes altered: {stats.altered[:5]}"
    assert len(lat_ms) == NSWAP
    assert min(stats.messages) > 0
    assert proxy.metric("weir_proxy_route_table_generation") == NSWAP + 1
