"""proxy-next-upstream as a user sees it: a failed attempt moves on to another endpoint (a
refused connection, a listed status, a bad response head), within the tries limit, and never
for a request that is not safe to send twice."""

import http.server
import socket
import threading

import pytest

import proxyutil as pu


class Backend:
    """A loopback HTTP server that counts the requests it gets and answers `status`,
    naming itself in the body. mode "garbage" answers bytes that are not HTTP."""

    def __init__(self, name, status=200, mode="http"):
        self.name = name
        self.status = status
        self.mode = mode
        self.hits = 0
        self.bodies = []
        self.lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with owner.lock:
                    owner.hits += 1
                    owner.bodies.append(body)
                if owner.mode == "garbage":
                    self.wfile.write(b"\x00\x01 not http\r\n\r\n")
                    return
                out = owner.name.encode()
                self.send_response(owner.status)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def closed_port(address):
    """A port on address where nothing listens (the connection is refused)."""
    s = socket.socket()
    s.bind((address, 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def servers():
    made = {}

    def make(name, **kw):
        made[name] = Backend(name, **kw)
        return made[name]

    yield make
    for b in made.values():
        b.stop()


def endpoints(*pairs):
    eps = [{"address": a, "port": p} for a, p in pairs]
    return sorted(eps, key=lambda e: (e["address"], e["port"]))


def table(routes, backends):
    return {"version": 1, "generation": 1,
            "hosts": [{"name": "", "routes": [
                {"path": path, "match": "prefix", "backend": be, "policy": pol}
                for path, be, pol in routes]}],
            "backends": [{"name": f"n/b{i}:80", "endpoints": eps}
                         for i, eps in enumerate(backends)]}


def send(proxy, method, path, body=b""):
    head = f"{method} {path} HTTP/1.1\r\nHost: t.local\r\nConnection: close\r\n"
    if body or method in ("POST", "PUT", "PATCH"):
        head += f"Content-Length: {len(body)}\r\n"
    return pu.request(proxy.http_port, head.encode() + b"\r\n" + body, method)


def test_refused_endpoint_is_skipped_by_default(fresh_proxy, servers):
    ok = servers("ok")
    dead = closed_port("127.0.0.2")
    p = fresh_proxy(table([("/", 0, {})],
                          [endpoints(("127.0.0.1", ok.port), ("127.0.0.2", dead))]))
    statuses = [send(p, "GET", f"/r{i}").status for i in range(20)]
    assert statuses == [200] * 20
    assert ok.hits == 20
    # round robin sent about half of the first attempts to the refusing endpoint
    assert p.metric("weir_proxy_upstream_retries_total", 'condition="error"') >= 5
    assert p.metric("weir_proxy_upstream_errors_total", 'kind="connect"') >= 5


def test_off_answers_502(fresh_proxy, servers):
    ok = servers("ok")
    dead = closed_port("127.0.0.2")
    p = fresh_proxy(table([("/", 0, {"next_upstream": []})],
                          [endpoints(("127.0.0.1", ok.port), ("127.0.0.2", dead))]))
    statuses = [send(p, "GET", f"/r{i}").status for i in range(10)]
    assert sorted(set(statuses)) == [200, 502]
    assert statuses.count(502) >= 4
    assert ok.hits == statuses.count(200)
    assert p.metric("weir_proxy_upstream_retries_total", 'condition="error"') == 0


def test_http_503_condition_retries_to_the_healthy_one(fresh_proxy, servers):
    ok = servers("ok")
    busy = servers("busy", status=503)
    plain = [("127.0.0.1", ok.port), ("127.0.0.1", busy.port)]
    p = fresh_proxy(table([("/retry", 0, {"next_upstream": ["error", "timeout", "http_503"]}),
                           ("/", 0, {})],
                          [endpoints(*plain)]))
    got = [send(p, "GET", f"/retry/{i}") for i in range(10)]
    assert [r.status for r in got] == [200] * 10
    assert all(r.body == b"ok" for r in got)
    assert busy.hits >= 3  # it was asked, and its 503 was not passed on
    assert ok.hits == 10
    assert p.metric("weir_proxy_upstream_retries_total", 'condition="http_503"') == busy.hits
    # without http_503 in the list the 503 reaches the client
    plain_statuses = [send(p, "GET", f"/x{i}").status for i in range(10)]
    assert plain_statuses.count(503) >= 3


def test_tries_limit_counts_attempts(fresh_proxy, servers):
    busy = [servers(f"busy{i}", status=503) for i in range(5)]
    eps = endpoints(*[("127.0.0.1", b.port) for b in busy])
    p = fresh_proxy(table([("/two", 0, {"next_upstream": ["http_503"], "next_upstream_tries": 2}),
                           ("/all", 0, {"next_upstream": ["http_503"], "next_upstream_tries": 0}),
                           ("/", 0, {"next_upstream": ["http_503"]})],
                          [eps]))
    r = send(p, "GET", "/two")
    assert r.status == 503  # the last attempt's answer is passed on
    assert sum(b.hits for b in busy) == 2
    r = send(p, "GET", "/dflt")
    assert r.status == 503
    assert sum(b.hits for b in busy) == 2 + 3  # default tries: 3
    r = send(p, "GET", "/all")
    assert r.status == 503
    assert sum(b.hits for b in busy) == 5 + 5  # 0: no limit, each endpoint once
    assert all(b.hits >= 1 for b in busy)


def test_post_body_not_resent_unless_non_idempotent(fresh_proxy, servers):
    garbage = servers("garbage", mode="garbage")
    ok = servers("ok")
    eps = endpoints(("127.0.0.1", garbage.port), ("127.0.0.1", ok.port))
    cond = ["error", "timeout", "invalid_header"]
    p = fresh_proxy(table([("/safe", 0, {"next_upstream": cond}),
                           ("/unsafe", 0, {"next_upstream": cond + ["non_idempotent"]})],
                          [eps]))
    body = b"payload=" + b"x" * 3000
    posts = [send(p, "POST", f"/safe/{i}", body) for i in range(6)]
    # the endpoint answering garbage got the POST: it is not sent again
    assert sorted({r.status for r in posts}) == [200, 502]
    assert garbage.hits == [r.status for r in posts].count(502) >= 2
    assert all(b == body for b in ok.bodies)
    # PUT is idempotent: its body is sent again to the other endpoint
    puts = [send(p, "PUT", f"/safe/{i}", body) for i in range(6)]
    assert [r.status for r in puts] == [200] * 6
    # with non_idempotent the POST goes on, with its whole body
    before_ok, before_bad = ok.hits, garbage.hits
    posts = [send(p, "POST", f"/unsafe/{i}", body) for i in range(6)]
    assert [r.status for r in posts] == [200] * 6
    assert ok.hits - before_ok == 6
    assert garbage.hits - before_bad >= 2
    assert all(b == body for b in ok.bodies)


def test_post_to_refusing_endpoint_is_retried(fresh_proxy, servers):
    """Nothing was sent when the connection was refused: any method may go on (nginx)."""
    ok = servers("ok")
    dead = closed_port("127.0.0.2")
    p = fresh_proxy(table([("/", 0, {})],
                          [endpoints(("127.0.0.1", ok.port), ("127.0.0.2", dead))]))
    body = b"a=1&b=2"
    got = [send(p, "POST", f"/p{i}", body) for i in range(8)]
    assert [r.status for r in got] == [200] * 8
    assert ok.bodies == [body] * 8


def test_body_not_held_is_not_resent(fresh_proxy, servers):
    """A body larger than what stays in memory is streamed: once sent it cannot be sent
    again, even for an idempotent method."""
    garbage = servers("garbage", mode="garbage")
    ok = servers("ok")
    eps = endpoints(("127.0.0.1", garbage.port), ("127.0.0.1", ok.port))
    p = fresh_proxy(table([("/", 0, {"next_upstream": ["error", "invalid_header"],
                                     "body_limit": 0})], [eps]))
    body = b"y" * (512 * 1024)
    got = [send(p, "PUT", f"/big{i}", body).status for i in range(6)]
    assert sorted(set(got)) == [200, 502]
    assert garbage.hits == got.count(502)
    assert all(b == body for b in ok.bodies)


def test_read_timeout_moves_on(fresh_proxy, servers):
    ok = servers("ok")
    silent = socket.socket()  # accepts in its backlog, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    try:
        eps = endpoints(("127.0.0.1", ok.port), ("127.0.0.1", silent.getsockname()[1]))
        p = fresh_proxy(table([("/noretry", 0, {"read_timeout_ms": 300,
                                                "next_upstream": ["error"]}),
                               ("/", 0, {"read_timeout_ms": 300})], [eps]))
        assert [send(p, "GET", f"/t{i}").status for i in range(4)] == [200] * 4
        assert p.metric("weir_proxy_upstream_retries_total", 'condition="timeout"') >= 1
        got = [send(p, "GET", f"/noretry/{i}").status for i in range(4)]
        assert sorted(set(got)) == [200, 504]
    finally:
        silent.close()


def test_websocket_upgrade_skips_refusing_endpoint(fresh_proxy, backends):
    from websockets.sync.client import connect
    dead = closed_port("127.0.0.2")
    p = fresh_proxy(table([("/", 0, {})],
                          [endpoints(("127.0.0.1", backends["ws"]), ("127.0.0.2", dead))]))
    for i in range(6):
        with connect(f"ws://127.0.0.1:{p.http_port}/ws{i}", open_timeout=5) as ws:
            ws.send(f"hello {i}")
            assert f"hello {i}" in ws.recv(timeout=5)
    assert p.metric("weir_proxy_upstream_retries_total", 'condition="error"') >= 2


def test_body_in_several_reads_is_resent(fresh_proxy, servers):
    """A body that still fits the proxy's client buffer is kept whole, even when it arrives
    in pieces, so an idempotent request with it can go to another endpoint."""
    import time
    garbage = servers("garbage", mode="garbage")
    ok = servers("ok")
    eps = endpoints(("127.0.0.1", garbage.port), ("127.0.0.1", ok.port))
    p = fresh_proxy(table([("/", 0, {"next_upstream": ["error", "invalid_header"]})], [eps]))
    body = bytes(range(256)) * 24  # 6 KiB
    for i in range(4):
        c = pu.RawConn(p.http_port)
        try:
            c.send(f"PUT /pieces{i} HTTP/1.1\r\nHost: t.local\r\nConnection: close\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n".encode())
            for k in range(0, len(body), 2048):
                time.sleep(0.05)
                c.send(body[k:k + 2048])
            r = c.read_response("PUT")
        finally:
            c.close()
        assert r.status == 200, r
    assert ok.bodies == [body] * 4
    assert garbage.hits >= 1
