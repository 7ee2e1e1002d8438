"""Answers the proxy makes itself: status codes with a short plain-text body naming the cause."""

import time

from proxyutil import RawConn, get, request


def check_local(r, status, words):
    assert r.status == status, r
    assert "aiohttp" not in (r.get("Server") or ""), f"answered by the backend: {r}"
    assert (r.get("Content-Type") or "").startswith("text/plain"), r.headers
    assert 0 < len(r.body) < 512, r.body
    text = r.body.decode(errors="replace").lower()
    assert any(w in text for w in words), f"body {text!r} names none of {words}"


def test_no_route_404(proxy):
    check_local(get(proxy.http_port, "/no-such-route"), 404, ("not found", "no route"))


def test_no_endpoints_503(proxy):
    check_local(get(proxy.http_port, "/noep/x"), 503,
                ("endpoint", "unavailable", "no upstream", "no backend"))


def test_connect_refused_502(proxy):
    check_local(get(proxy.http_port, "/dead/x"), 502, ("bad gateway", "upstream", "connect"))


def test_upstream_reset_502(proxy):
    check_local(get(proxy.http_port, "/echo/x?do=abort"), 502,
                ("bad gateway", "upstream", "reset", "closed"))


def test_read_timeout_504(proxy):
    t0 = time.monotonic()
    r = get(proxy.http_port, "/slow/x?do=sleep&ms=4000")
    took = time.monotonic() - t0
    check_local(r, 504, ("timeout", "timed out"))
    assert 0.5 < took < 3.0, f"504 after {took:.2f}s, read_timeout_ms is 700"


def test_body_over_limit_413_content_length(proxy):
    body = b"z" * 2000
    r = request(proxy.http_port, b"POST /limited/x HTTP/1.1\r\nHost: t\r\nContent-Length: 2000"
                b"\r\n\r\n" + body)
    check_local(r, 413, ("too large", "body", "limit"))


def test_body_over_limit_413_chunked(proxy):
    c = RawConn(proxy.http_port)
    try:
        c.send(b"POST /limited/x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(4):
            c.send(b"200\r\n" + b"q" * 512 + b"\r\n")
        c.send(b"0\r\n\r\n")
        check_local(c.read_response(), 413, ("too large", "body", "limit"))
    finally:
        c.close()


def test_body_under_limit_passes(proxy):
    r = request(proxy.http_port, b"POST /limited/x HTTP/1.1\r\nHost: t\r\nContent-Length: 1000"
                b"\r\n\r\n" + b"k" * 1000)
    assert r.status == 200 and r.json()["body_len"] == 1000, r
