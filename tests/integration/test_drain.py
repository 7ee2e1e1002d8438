"""WebSocket draining: on proxy shutdown, and when an endpoint leaves the table, open tunnels
get a close frame 1001 (going away) within the drain window instead of a dropped socket."""

import contextlib
import os
import signal
import threading
import time

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

import proxyutil as pu

N = 20


def table(backends, gen, with_ws=True, drain_ms=1500, global_ms=None):
    eps = [{"address": "127.0.0.1", "port": backends["ws"]}] if with_ws else []
    return {
        "version": 1,
        "generation": gen,
        "settings": {"drain_window_ms": drain_ms if global_ms is None else global_ms},
        "hosts": [{"name": "", "routes": [
            {"path": "/ws", "match": "prefix", "backend": 0,
             "policy": {"drain_window_ms": drain_ms}},
            {"path": "/", "match": "prefix", "backend": 1}]}],
        "backends": [{"name": "d/ws:80", "endpoints": eps},
                     {"name": "d/echo:80", "endpoints": [{"address": "127.0.0.1",
                                                          "port": backends["echo"]}]}],
    }


def open_conns(proxy, stack):
    conns = []
    for i in range(N):
        ws = stack.enter_context(connect(f"ws://127.0.0.1:{proxy.http_port}/ws/d{i}",
                                         proxy=None, ping_interval=None, close_timeout=5))
        ws.send(f"hello {i}")
        assert ws.recv(timeout=5) == f"hello {i}"
        conns.append(ws)
    return conns


def wait_closes(conns, timeout):
    """Per connection: (close code received or None, seconds until closed or None)."""
    out = [None] * len(conns)
    t0 = time.monotonic()

    def watch(i, ws):
        try:
            ws.recv(timeout=timeout)
            out[i] = ("message", None)
        except ConnectionClosed as e:
            out[i] = (e.rcvd.code if e.rcvd else None, time.monotonic() - t0)
        except TimeoutError:
            out[i] = ("open", None)

    ts = [threading.Thread(target=watch, args=(i, ws)) for i, ws in enumerate(conns)]
    for t in ts:
        t.start()
    return ts, out


def test_shutdown_drains_with_1001(fresh_proxy, backends):
    proxy = fresh_proxy(table(backends, 1))
    with contextlib.ExitStack() as stack:
        conns = open_conns(proxy, stack)
        ts, out = wait_closes(conns, 10)
        os.kill(proxy.pid, signal.SIGTERM)
        for t in ts:
            t.join(15)
        codes = [o[0] for o in out]
        times = sorted(o[1] for o in out if o[1] is not None)
        assert codes == [1001] * N, f"close codes on shutdown: {codes}"
        assert times[-1] < 1.5 + 1.5, f"last close after {times[-1]:.2f}s (window 1.5 s)"
        proxy.proc.wait(10)


def test_shutdown_uses_the_route_drain_window(fresh_proxy, backends):
    """The route's drain-window (1.5 s) bounds its tunnels' close frames on
    shutdown, not the global one (30 s), and the proxy exits once they are
    closed."""
    proxy = fresh_proxy(table(backends, 1, drain_ms=1500, global_ms=30000))
    with contextlib.ExitStack() as stack:
        conns = open_conns(proxy, stack)
        ts, out = wait_closes(conns, 20)
        t0 = time.monotonic()
        os.kill(proxy.pid, signal.SIGTERM)
        for t in ts:
            t.join(25)
        codes = [o[0] for o in out]
        times = sorted(o[1] for o in out if o[1] is not None)
        assert codes == [1001] * N, f"close codes on shutdown: {codes}"
        assert times[-1] < 1.5 + 1.5, f"last close after {times[-1]:.2f}s (route window 1.5 s)"
        proxy.proc.wait(10)
        assert time.monotonic() - t0 < 1.5 + 5, "proxy waited past the route's window"


def test_endpoint_removed_drains_with_1001(fresh_proxy, backends):
    proxy = fresh_proxy(table(backends, 1))
    with contextlib.ExitStack() as stack:
        conns = open_conns(proxy, stack)
        ts, out = wait_closes(conns, 10)
        pu.write_table(proxy.routes_dir, table(backends, 2, with_ws=False))
        for t in ts:
            t.join(15)
        codes = [o[0] for o in out]
        times = sorted(o[1] for o in out if o[1] is not None)
        assert codes == [1001] * N, f"close codes after the endpoint left: {codes}"
        assert times[-1] < 1.5 + 1.5, f"last close after {times[-1]:.2f}s (window 1.5 s)"
        # the rest of the table keeps serving
        assert pu.get(proxy.http_port, "/other").status == 200
