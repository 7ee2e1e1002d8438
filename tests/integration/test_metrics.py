"""The admin port: /healthz, /readyz and /metrics as a user scrapes them."""

import contextlib
import time

from websockets.sync.client import connect

from proxyutil import get, http_get


def poll(fn, want, timeout=5.0):
    deadline = time.monotonic() + timeout
    v = fn()
    while v != want and time.monotonic() < deadline:
        time.sleep(0.05)
        v = fn()
    return v


def test_health_and_ready(proxy):
    assert http_get(proxy.admin_port, "/healthz")[0] == 200
    assert http_get(proxy.admin_port, "/readyz")[0] == 200


def test_requests_by_route_and_code(proxy):
    ok = 'weir_proxy_requests_total{host="",path="/echo",code="200",protocol="HTTP/1.1"}'
    nf = 'weir_proxy_requests_total{host="",path="-",code="404",protocol="HTTP/1.1"}'
    before_ok = max(proxy.metric(ok.split("{")[0], ok.split("{")[1][:-1]), 0)
    before_nf = max(proxy.metric(nf.split("{")[0], nf.split("{")[1][:-1]), 0)
    for _ in range(3):
        assert get(proxy.http_port, "/echo/m").status == 200
    assert get(proxy.http_port, "/not-routed/m").status == 404
    after_ok = poll(lambda: proxy.metric(ok.split("{")[0], ok.split("{")[1][:-1]),
                    before_ok + 3)
    after_nf = poll(lambda: proxy.metric(nf.split("{")[0], nf.split("{")[1][:-1]),
                    before_nf + 1)
    assert after_ok == before_ok + 3, proxy.metrics()
    assert after_nf == before_nf + 1, proxy.metrics()


def test_open_tunnels_gauge(proxy):
    name = "weir_proxy_open_websocket_tunnels"
    base = proxy.metric(name)
    assert base >= 0, proxy.metrics()
    with contextlib.ExitStack() as stack:
        conns = [stack.enter_context(connect(f"ws://127.0.0.1:{proxy.http_port}/ws/m{i}",
                                             proxy=None, ping_interval=None))
                 for i in range(3)]
        for ws in conns:
            ws.send("x")
            assert ws.recv(timeout=5) == "x"
        assert poll(lambda: proxy.metric(name), base + 3) == base + 3, proxy.metrics()
    assert poll(lambda: proxy.metric(name), base) == base, proxy.metrics()


def test_generation_and_reloads(proxy):
    assert proxy.metric("weir_proxy_route_table_generation") == 1, proxy.metrics()
    assert proxy.metric("weir_proxy_reloads_total", 'result="ok"') >= 1, proxy.metrics()
    assert proxy.metric("weir_proxy_reloads_total", 'result="failed"') >= 0, proxy.metrics()
