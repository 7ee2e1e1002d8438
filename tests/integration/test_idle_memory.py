"""An idle keep-alive connection costs the proxy little memory: its buffers and request state
are given back once the answer is sent (weir targets <= 4 KiB per idle connection)."""

import time

import proxyutil as pu

CONNS = 500


def table(backends):
    return {"version": 1, "generation": 1,
            "hosts": [{"name": "", "routes": [{"path": "/", "match": "prefix", "backend": 0}]}],
            "backends": [{"name": "m/echo:80", "endpoints": [
                {"address": "127.0.0.1", "port": backends["echo"]}]}]}


def test_idle_keepalive_connections_are_small(fresh_proxy, backends):
    proxy = fresh_proxy(table(backends), workers=1)
    get = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n"
    for _ in range(50):  # warm up: the worker's allocator and the upstream pool
        assert pu.get(proxy.http_port, "/x").status == 200
    time.sleep(0.3)
    before = proxy.rss_kb()
    conns = []
    try:
        for _ in range(CONNS):
            c = pu.RawConn(proxy.http_port, timeout=5)
            conns.append(c)
            c.send(get)
            resp = c.read_response()
            assert resp.status == 200 and resp.get("Connection") != "close"
        time.sleep(0.3)
        per_conn = (proxy.rss_kb() - before) * 1024 / CONNS
        assert per_conn <= 4096, f"{per_conn:.0f} B of RSS per idle keep-alive connection"
        # and they are still usable keep-alive connections
        for c in conns[:20]:
            c.send(get)
            assert c.read_response().status == 200
    finally:
        for c in conns:
            c.close()
