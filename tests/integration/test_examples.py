"""The local quick start: examples/routes.json loads and routes to the demo backends
(started here on free ports; the table's fixed ports 9101-9103 are rewritten)."""

import os

from websockets.sync.client import connect

import proxyutil as pu


def test_example_table_serves(proxy_bin, tmp_path):
    ports = [pu.free_port() for _ in range(3)]
    procs = []
    try:
        for script, port in zip(("echo_http.py", "ws_echo.py", "bad_handshake.py"), ports):
            procs.append(pu.start_backend(script, port, str(tmp_path / f"{script}.log")))
        with open(os.path.join(pu.REPO, "examples", "routes.json"), "rb") as f:
            data = f.read()
        for fixed, port in zip((b"9101", b"9102", b"9103"), ports):
            assert fixed in data
            data = data.replace(fixed, str(port).encode())
        routes = tmp_path / "routes"
        routes.mkdir()
        pu.write_raw_table(str(routes), data)
        p = pu.Proxy(str(routes), str(tmp_path / "proxy.log"))
        procs.append(p.proc)
        p.wait_ready()
        r = pu.get(p.http_port, "/hello?x=1")
        assert r.status == 200 and r.json()["path"] == "/hello", r
        with connect(f"ws://127.0.0.1:{p.http_port}/ws", proxy=None) as ws:
            ws.send("hi")
            assert ws.recv(timeout=5) == "hi"
        r = pu.request(p.http_port, b"GET /bad-ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n"
                       b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                       b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        assert r.status == 502, r
    finally:
        for proc in reversed(procs):
            pu.stop_process(proc)
