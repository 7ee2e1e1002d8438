"""Several requests on one client connection, sequential and pipelined."""

from proxyutil import RawConn


def req(path, body=b""):
    if body:
        return (f"POST {path} HTTP/1.1\r\nHost: ka.test\r\nContent-Length: {len(body)}\r\n\r\n"
                .encode() + body)
    return f"GET {path} HTTP/1.1\r\nHost: ka.test\r\n\r\n".encode()


def test_sequential_keepalive(proxy):
    c = RawConn(proxy.http_port)
    try:
        for i in range(10):
            c.send(req(f"/echo/seq/{i}", b"x" * i))
            r = c.read_response()
            assert r.status == 200, r
            info = r.json()
            assert info["path"] == f"/echo/seq/{i}" and info["body_len"] == i
            assert (r.get("Connection") or "").lower() != "close"
    finally:
        c.close()


def test_pipelined_in_order(proxy):
    c = RawConn(proxy.http_port)
    try:
        paths = [f"/echo/pipe/{i}" for i in range(8)]
        data = b"".join(req(p, b"body%d" % i if i % 3 == 1 else b"")
                        for i, p in enumerate(paths))
        c.send(data)
        for i, p in enumerate(paths):
            r = c.read_response()
            assert r.status == 200, r
            info = r.json()
            assert info["path"] == p, f"response {i} out of order: {info['path']}"
            assert info["body_len"] == (len(b"body%d" % i) if i % 3 == 1 else 0)
        # the connection is still usable afterwards
        c.send(req("/echo/after"))
        assert c.read_response().json()["path"] == "/echo/after"
    finally:
        c.close()


def test_http10_keepalive_is_announced(proxy):
    """An HTTP/1.0 client keeps its connection only when the answer says
    "Connection: keep-alive" (else it waits for the close, as `ab -k` did): weir says so
    on proxied answers and on its own (404), and the connection serves the next one."""
    c = RawConn(proxy.http_port)
    try:
        for i in range(3):
            c.send(f"GET /echo/ten/{i} HTTP/1.0\r\nHost: ka.test\r\nConnection: keep-alive\r\n\r\n"
                   .encode())
            r = c.read_response()
            assert r.status == 200, r
            assert r.json()["path"] == f"/echo/ten/{i}"
            assert (r.get("Connection") or "").lower() == "keep-alive", r
        c.send(b"GET / HTTP/1.0\r\nHost: nobody.test\r\nConnection: keep-alive\r\n\r\n")
        r = c.read_response()
        assert r.status == 404, r
        assert (r.get("Connection") or "").lower() == "keep-alive", r
        c.send(b"GET /echo/last HTTP/1.0\r\nHost: ka.test\r\nConnection: keep-alive\r\n\r\n")
        assert c.read_response().json()["path"] == "/echo/last"
    finally:
        c.close()


def test_http10_without_keepalive_closes(proxy):
    c = RawConn(proxy.http_port)
    try:
        c.send(b"GET /echo/once HTTP/1.0\r\nHost: ka.test\r\n\r\n")
        r = c.read_response()
        assert r.status == 200, r
        assert (r.get("Connection") or "").lower() == "close", r
        c.sock.settimeout(5)
        assert c.sock.recv(1) == b"", "the connection stayed open after an HTTP/1.0 answer"
    finally:
        c.close()
