"""Client-side timers: idle keep-alive connections close after keepalive_timeout_ms; WebSocket
pings (ws_ping_interval_ms) keep an idle tunnel past its idle timeout."""

import time

from websockets.sync.client import connect

import proxyutil as pu


def table(backends):
    return {
        "version": 1,
        "settings": {"keepalive_timeout_ms": 1000},
        "hosts": [{"name": "", "routes": [
            {"path": "/ws-ping", "match": "prefix", "backend": 1,
             "policy": {"ws_idle_timeout_ms": 1000, "ws_ping_interval_ms": 300}},
            {"path": "/", "match": "prefix", "backend": 0}]}],
        "backends": [
            {"name": "t/echo:80", "endpoints": [{"address": "127.0.0.1",
                                                 "port": backends["echo"]}]},
            {"name": "t/ws:80", "endpoints": [{"address": "127.0.0.1", "port": backends["ws"]}]},
        ],
    }


def test_keepalive_timeout_closes_idle_client(fresh_proxy, backends):
    proxy = fresh_proxy(table(backends))
    c = pu.RawConn(proxy.http_port)
    try:
        c.send(b"GET /ka HTTP/1.1\r\nHost: t\r\n\r\n")
        assert c.read_response().status == 200
        t0 = time.monotonic()
        assert c.closed_by_peer(5.0), "idle keep-alive connection still open after 5 s"
        took = time.monotonic() - t0
        assert 0.7 < took < 3.0, f"closed after {took:.2f}s, keepalive_timeout_ms is 1000"
    finally:
        c.close()


def test_ping_keeps_idle_tunnel_open(fresh_proxy, backends):
    proxy = fresh_proxy(table(backends))
    with connect(f"ws://127.0.0.1:{proxy.http_port}/ws-ping/x", proxy=None,
                 ping_interval=None) as ws:
        ws.send("before")
        assert ws.recv(timeout=5) == "before"
        time.sleep(3.0)  # three idle timeouts long; only the proxy's pings and our pongs flow
        ws.send("after")
        assert ws.recv(timeout=5) == "after"


def _frame(op, payload):
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | op, 0x80 | len(payload)]) + mask + masked


def _read_frame(c):
    while len(c.buf) < 2:
        if not c._fill():
            raise ConnectionError("closed")
    n = c.buf[1] & 0x7F
    assert n < 126 and not c.buf[1] & 0x80
    while len(c.buf) < 2 + n:
        if not c._fill():
            raise ConnectionError("closed")
    op, payload, c.buf = c.buf[0] & 0x0F, c.buf[2:2 + n], c.buf[2 + n:]
    return op, payload


def test_proxy_sends_pings_when_idle(fresh_proxy, backends):
    proxy = fresh_proxy(table(backends))
    c = pu.RawConn(proxy.http_port, timeout=2)
    try:
        c.send(b"GET /ws-ping/raw HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n"
               b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        assert c.read_response().status == 101
        pings = 0
        t_end = time.monotonic() + 2.5
        while time.monotonic() < t_end:
            op, payload = _read_frame(c)
            # The upstream's pongs to the proxy's own pings are the proxy's:
            # none may reach the client.
            assert op == 0x9, f"unexpected frame opcode {op} while idle"
            pings += 1
            c.send(_frame(0xA, payload))
        assert pings >= 3, f"{pings} pings in 2.5 s with ws_ping_interval_ms 300"
        c.send(_frame(0x1, b"still here"))
        while True:
            op, payload = _read_frame(c)
            if op == 0x9:
                c.send(_frame(0xA, payload))
                continue
            assert (op, payload) == (0x1, b"still here")
            break
    finally:
        c.close()
