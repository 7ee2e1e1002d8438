"""proxy-request-buffering and proxy-buffering through weir-proxy: with request buffering
the upstream is contacted only once the body is in (or 1 MiB of it), the proxy answers
"100 Continue" itself, a client that stops sending gets 408 and an oversized chunked body
413, all without the upstream seeing a request; without it the request reaches the upstream
before its body is complete. Response buffering delivers every byte to a slow reader."""

import hashlib
import http.server
import json
import os
import socket
import threading
import time

import pytest
import proxyutil as pu
from proxyutil import RawConn


class Recorder(http.server.BaseHTTPRequestHandler):
    """Records when each request head arrived; answers with the body's length and sha256,
    or (GET /big?n=N) N bytes of a pattern."""

    protocol_version = "HTTP/1.1"
    heads = []  # (path, monotonic time the head was read)

    def do_POST(self):  # noqa: N802 - http.server's name
        Recorder.heads.append((self.path, time.monotonic()))
        data = b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
        else:
            data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = json.dumps({"len": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def do_GET(self):  # noqa: N802
        Recorder.heads.append((self.path, time.monotonic()))
        n = int(self.path.split("n=")[1]) if "n=" in self.path else 0
        self.send_response(200)
        self.send_header("Content-Length", str(n))
        self.end_headers()
        block = bytes(range(256)) * 256
        sent = 0
        while sent < n:
            piece = block[: min(len(block), n - sent)]
            self.wfile.write(piece)
            sent += len(piece)

    def log_message(self, *args):
        pass


def expected_big(n):
    block = bytes(range(256)) * 256
    return (block * (n // len(block) + 1))[:n]


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    tmp = tmp_path_factory.mktemp("buffering")
    routes = tmp / "routes"
    routes.mkdir()

    def route(path, **policy):
        return {"path": path, "match": "prefix", "backend": 0,
                "policy": {"send_timeout_ms": 1500, **policy}}

    pu.write_table(str(routes), {
        "version": 1,
        "backends": [{"name": "default/rec:80",
                      "endpoints": [{"address": "127.0.0.1", "port": srv.server_address[1]}]}],
        "hosts": [{"name": "buf.test", "routes": [
            route("/on", request_buffering=True, body_limit=0),
            route("/small", request_buffering=True, body_limit=4096),
            route("/off"),
            route("/resp", response_buffering=True),
        ]}],
    })
    p = pu.Proxy(str(routes), str(tmp / "proxy.log"), workers=1)
    try:
        p.wait_ready()
        yield p
    finally:
        p.stop()
        srv.shutdown()
        srv.server_close()


def heads_for(path):
    return [t for p, t in Recorder.heads if p == path]


def post_in_two_parts(port, path, total, pause, chunked=False):
    """Sends the head and half the body, waits pause seconds, sends the rest; returns the
    time the second half started and the response."""
    body = os.urandom(total)
    c = RawConn(port, timeout=30)
    try:
        if chunked:
            c.send(f"POST {path} HTTP/1.1\r\nHost: buf.test\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n".encode())
            half = total // 2
            c.send(b"%x\r\n" % half + body[:half] + b"\r\n")
            time.sleep(pause)
            t = time.monotonic()
            c.send(b"%x\r\n" % (total - half) + body[half:] + b"\r\n0\r\n\r\n")
        else:
            c.send(f"POST {path} HTTP/1.1\r\nHost: buf.test\r\n"
                   f"Content-Length: {total}\r\n\r\n".encode())
            c.send(body[: total // 2])
            time.sleep(pause)
            t = time.monotonic()
            c.send(body[total // 2:])
        r = c.read_response()
    finally:
        c.close()
    assert r.status == 200, r
    assert r.json() == {"len": total, "sha256": hashlib.sha256(body).hexdigest()}, r
    return t, r


@pytest.mark.parametrize("chunked", [False, True])
def test_request_buffered_before_the_upstream_sees_it(proxy, chunked):
    path = f"/on/whole-{int(chunked)}"
    t, _ = post_in_two_parts(proxy.http_port, path, 200_000, 0.5, chunked)
    heads = heads_for(path)
    assert len(heads) == 1 and heads[0] >= t, (heads, t)


def test_request_streamed_without_buffering(proxy):
    t, _ = post_in_two_parts(proxy.http_port, "/off/stream", 200_000, 0.5)
    heads = heads_for("/off/stream")
    assert len(heads) == 1 and heads[0] < t, (heads, t)


def test_body_over_the_memory_cap_streams_the_rest(proxy):
    # 1.5 MiB before the pause: the upstream is contacted once 1 MiB is held
    path = "/on/large"
    total = 3 << 20
    t, _ = post_in_two_parts(proxy.http_port, path, total, 0.5)
    heads = heads_for(path)
    assert len(heads) == 1 and heads[0] < t, (heads, t)


def test_expect_continue_answered_by_the_proxy(proxy):
    body = b"x" * 5000
    c = RawConn(proxy.http_port, timeout=10)
    try:
        c.send(b"POST /on/expect HTTP/1.1\r\nHost: buf.test\r\nExpect: 100-continue\r\n"
               b"Content-Length: 5000\r\n\r\n")
        c.sock.settimeout(3)
        first = c.sock.recv(100)
        assert first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), first
        assert heads_for("/on/expect") == []
        c.buf = first[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
        c.send(body)
        r = c.read_response()
    finally:
        c.close()
    assert r.status == 200 and r.json()["len"] == 5000, r


def test_stalled_body_gets_408_without_the_upstream(proxy):
    c = RawConn(proxy.http_port, timeout=10)
    try:
        c.send(b"POST /on/stall HTTP/1.1\r\nHost: buf.test\r\nContent-Length: 1000\r\n\r\n")
        c.send(b"y" * 10)
        r = c.read_response()
    finally:
        c.close()
    assert r.status == 408, r
    assert heads_for("/on/stall") == []


def test_oversized_chunked_body_gets_413_without_the_upstream(proxy):
    c = RawConn(proxy.http_port, timeout=10)
    try:
        c.send(b"POST /small/big HTTP/1.1\r\nHost: buf.test\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n")
        c.send(b"2000\r\n" + b"z" * 0x2000 + b"\r\n")
        r = c.read_response()
    except (ConnectionError, socket.timeout):
        pytest.fail("no answer")
    finally:
        c.close()
    assert r.status == 413, r
    assert heads_for("/small/big") == []


def test_buffered_response_reaches_a_slow_reader_whole(proxy):
    n = 5 << 20
    c = RawConn(proxy.http_port, timeout=30)
    try:
        c.send(f"GET /resp/big?n={n} HTTP/1.1\r\nHost: buf.test\r\n\r\n".encode())
        time.sleep(1.0)  # the proxy reads ahead meanwhile
        r = c.read_response()
    finally:
        c.close()
    assert r.status == 200, r
    assert len(r.body) == n and r.body == expected_big(n)
