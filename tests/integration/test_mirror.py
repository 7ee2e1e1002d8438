"""Request mirroring (mirror-target) through a real weir-proxy: a mirror server in this
process sees the copy (method, target, headers, body); the client's answer does not
wait for a slow mirror nor fail with a dead one; mirror-request-body off; the counter
weir_proxy_mirror_requests_total."""

import http.server
import queue
import socket
import threading
import time

import pytest

import proxyutil as pu


class Mirror:
    """An HTTP server recording each request it gets (answers 204, after delay s)."""

    def __init__(self, delay=0.0):
        self.got = queue.Queue()
        self.delay = delay
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                outer.got.put({"method": self.command, "target": self.path,
                               "headers": list(self.headers.items()), "body": body})
                time.sleep(outer.delay)
                self.send_response(204)
                self.send_header("Connection", "close")
                self.end_headers()

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def next(self, timeout=5.0):
        return self.got.get(timeout=timeout)

    def none_within(self, s):
        try:
            self.got.get(timeout=s)
            return False
        except queue.Empty:
            return True

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def mirror():
    m = Mirror()
    yield m
    m.close()


@pytest.fixture
def hole():
    """A listening socket that never accepts: a mirror that never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    yield s.getsockname()[1]
    s.close()


def dead_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def r(path, **policy):
    return {"path": path, "match": "prefix", "backend": 0, "policy": policy}


def table(backends, mport, hole_port):
    base = f"http://127.0.0.1:{mport}"
    return {
        "version": 1,
        "generation": 1,
        "hosts": [{"name": "", "routes": [
            r("/m", mirror={"url": base + "/copy$request_uri"}),
            r("/vars", mirror={"url": base + "$uri?a=$args&h=$host", "host": "shadow.test"}),
            r("/nobody", mirror={"url": base + "$request_uri", "request_body": False}),
            r("/slow", read_timeout_ms=400, mirror={"url": f"http://127.0.0.1:{hole_port}/"}),
            r("/dead", mirror={"url": f"http://127.0.0.1:{dead_port()}/"}),
            r("/byname", mirror={"url": f"http://localhost:{mport}/n$request_uri"}),
            r("/plain"),
        ]}],
        "backends": [{"name": "mi/echo:80",
                      "endpoints": [{"address": "127.0.0.1", "port": backends["echo"]}]}],
    }


@pytest.fixture
def mproxy(fresh_proxy, backends, mirror, hole):
    # One worker: the slow-mirror test needs the client request on the same event loop.
    return fresh_proxy(table(backends, mirror.port, hole), workers=1)


def hv(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


def metric(p, result):
    return p.metric("weir_proxy_mirror_requests_total", f'result="{result}"')


def wait_metric(p, result, want, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metric(p, result) >= want:
            return
        time.sleep(0.05)
    raise AssertionError(f"mirror {result} stayed at {metric(p, result)}, wanted {want}")


def test_mirror_sees_method_target_headers_and_body(mproxy, mirror):
    body = b"hello mirror " * 20
    resp = pu.request(mproxy.http_port,
                      b"POST /m/x?q=a%20b HTTP/1.1\r\nHost: App.Test\r\nX-Custom: kept\r\n"
                      b"Content-Type: text/plain\r\nConnection: keep-alive\r\n"
                      b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    assert resp.status == 200, resp
    assert resp.json()["body_len"] == len(body)  # the upstream still gets the body
    got = mirror.next()
    h = got["headers"]
    assert got["method"] == "POST" and got["target"] == "/copy/m/x?q=a%20b", got
    assert got["body"] == body, got
    assert hv(h, "Host") == ["127.0.0.1"], h  # the target's host, without port
    assert hv(h, "X-Custom") == ["kept"] and hv(h, "Content-Type") == ["text/plain"], h
    assert hv(h, "Content-Length") == [str(len(body))], h
    assert hv(h, "Connection") == ["close"], h
    wait_metric(mproxy, "sent", 1)
    assert metric(mproxy, "failed") == 0 and metric(mproxy, "dropped") == 0


def test_chunked_body_goes_with_a_length(mproxy, mirror):
    resp = pu.request(mproxy.http_port,
                      b"PUT /m/c HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    assert resp.status == 200, resp
    got = mirror.next()
    assert got["method"] == "PUT" and got["body"] == b"hello world", got
    assert hv(got["headers"], "Content-Length") == ["11"], got
    assert hv(got["headers"], "Transfer-Encoding") == [], got


def test_variables_and_mirror_host(mproxy, mirror):
    resp = pu.get(mproxy.http_port, "/vars/p?x=1", host="Shop.Example:8080")
    assert resp.status == 200, resp
    got = mirror.next()
    assert got["method"] == "GET" and got["target"] == "/vars/p?a=x=1&h=shop.example", got
    assert hv(got["headers"], "Host") == ["shadow.test"], got


def test_request_body_off(mproxy, mirror):
    resp = pu.request(mproxy.http_port,
                      b"POST /nobody/x HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4\r\n\r\n"
                      b"data")
    assert resp.status == 200, resp
    assert resp.json()["body_len"] == 4
    got = mirror.next()
    assert got["method"] == "POST" and got["target"] == "/nobody/x", got
    assert got["body"] == b"" and hv(got["headers"], "Content-Length") == [], got


def test_host_name_target(mproxy, mirror):
    resp = pu.get(mproxy.http_port, "/byname/q")
    assert resp.status == 200, resp
    got = mirror.next()
    assert got["target"] == "/n/byname/q" and hv(got["headers"], "Host") == ["localhost"], got


def test_slow_mirror_does_not_delay_the_client(mproxy, mirror):
    # The mirror never answers: the client's answers come at once, on the same
    # keep-alive connection, and the mirrors fail after the route's 400 ms.
    c = pu.RawConn(mproxy.http_port, 5)
    try:
        for _ in range(3):
            t0 = time.monotonic()
            c.send(b"GET /slow/x HTTP/1.1\r\nHost: app.test\r\n\r\n")
            resp = c.read_response("GET")
            assert resp.status == 200, resp
            assert time.monotonic() - t0 < 0.3
    finally:
        c.close()
    wait_metric(mproxy, "failed", 3)
    assert metric(mproxy, "sent") == 0


def test_slow_answering_mirror_does_not_delay_the_client(fresh_proxy, backends, hole):
    slow = Mirror(delay=2.0)
    try:
        p = fresh_proxy(table(backends, slow.port, hole), workers=1)
        t0 = time.monotonic()
        resp = pu.request(p.http_port, b"POST /m/s HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n"
                          b"\r\nok")
        assert resp.status == 200, resp
        assert time.monotonic() - t0 < 1.0
        assert slow.next()["body"] == b"ok"  # it did get the copy
        wait_metric(p, "sent", 1)
    finally:
        slow.close()


def test_dead_mirror_does_not_fail_the_client(mproxy, mirror):
    for _ in range(2):
        resp = pu.get(mproxy.http_port, "/dead/x")
        assert resp.status == 200, resp
    wait_metric(mproxy, "failed", 2)


def test_body_over_the_cap_is_not_mirrored(mproxy, mirror):
    body = b"z" * (64 * 1024 + 1)
    resp = pu.request(mproxy.http_port,
                      b"POST /m/big HTTP/1.1\r\nHost: a\r\nContent-Length: "
                      + str(len(body)).encode() + b"\r\n\r\n" + body)
    assert resp.status == 200, resp
    assert resp.json()["body_len"] == len(body)
    wait_metric(mproxy, "dropped", 1)
    # The same for a chunked body, found too large only as it comes in.
    chunk = b"c" * 16384
    data = (b"POST /m/bigchunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            + (b"4000\r\n" + chunk + b"\r\n") * 4 + b"1\r\nc\r\n0\r\n\r\n")
    resp = pu.request(mproxy.http_port, data)
    assert resp.status == 200, resp
    assert resp.json()["body_len"] == 4 * 16384 + 1
    wait_metric(mproxy, "dropped", 2)
    assert mirror.none_within(0.3)  # neither went to the mirror
    # A body of exactly the cap still goes.
    body = b"y" * (64 * 1024)
    resp = pu.request(mproxy.http_port,
                      b"POST /m/cap HTTP/1.1\r\nHost: a\r\nContent-Length: "
                      + str(len(body)).encode() + b"\r\n\r\n" + body)
    assert resp.status == 200, resp
    got = mirror.next()
    assert got["target"] == "/copy/m/cap" and got["body"] == body


def test_routes_without_mirror_send_nothing(mproxy, mirror):
    assert pu.get(mproxy.http_port, "/plain/x").status == 200
    assert mirror.none_within(0.3)
    assert metric(mproxy, "sent") == 0 and metric(mproxy, "dropped") == 0
