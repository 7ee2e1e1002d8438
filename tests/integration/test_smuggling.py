"""Ambiguous or malformed request heads are refused with 4xx and the connection is closed."""

import time

from proxyutil import RawConn


def refused(proxy, data, status, timeout=10.0):
    c = RawConn(proxy.http_port, timeout=timeout)
    try:
        c.send(data)
        r = c.read_response()
        assert r.status == status, f"expected {status}, got {r}"
        assert "aiohttp" not in (r.get("Server") or ""), f"refused by the backend, not the proxy: {r}"
        assert c.closed_by_peer(3.0), "connection left open after a refused request"
        assert b"HTTP/1." not in c.extra, f"more answered after the refusal: {c.extra!r}"
    finally:
        c.close()
    return r


def test_cl_and_te_400(proxy):
    refused(proxy, b"POST /echo/s HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /echo/smuggled HTTP/1.1\r\n"
            b"Host: t\r\n\r\n", 400)


def test_upgrade_with_te_llhttp_does_not_read_as_chunked_400(proxy):
    # "chunked<TAB>" is not chunked to llhttp, which then ends this Upgrade
    # request at its head; a proxy that took it for chunked would send the
    # backend a head announcing a body it never frames.
    refused(proxy, b"GET /echo/s HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\n"
            b"Upgrade: x\r\nTransfer-Encoding: chunked\t\r\n\r\n"
            b"GET /echo/smuggled HTTP/1.1\r\nHost: t\r\n\r\n", 400)


def test_two_content_lengths_400(proxy):
    refused(proxy, b"POST /echo/s HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
            b"Content-Length: 6\r\n\r\nhello!", 400)


def test_bad_chunk_size_400(proxy):
    refused(proxy, b"POST /echo/s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"zz\r\nhello\r\n0\r\n\r\n", 400)


def test_obs_fold_400(proxy):
    refused(proxy, b"GET /echo/s HTTP/1.1\r\nHost: t\r\nX-Folded: a\r\n  b\r\n\r\n", 400)


def test_bare_lf_400(proxy):
    refused(proxy, b"GET /echo/s HTTP/1.1\r\nHost: t\r\nX-A: 1\nX-B: 2\r\n\r\n", 400)


def test_header_section_too_big_431(proxy):
    refused(proxy, b"GET /echo/s HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 10000 +
            b"\r\n\r\n", 431)


def test_slow_head_408(proxy):
    c = RawConn(proxy.http_port, timeout=10)
    try:
        t0 = time.monotonic()
        c.send(b"GET /echo/s HTTP/1.1\r\nHost: t\r\n")
        r = c.read_response()
        took = time.monotonic() - t0
        assert r.status == 408, r
        assert "aiohttp" not in (r.get("Server") or ""), r
        assert 1.5 < took < 5.0, f"408 after {took:.2f}s, header_timeout_ms is 2000"
        assert c.closed_by_peer(3.0), "connection left open after 408"
    finally:
        c.close()


def test_connect_405(proxy):
    # llhttp ends a CONNECT request at its head whatever its framing headers
    # say, so a body sent with one would reach the upstream as the start of a
    # "next" request. A reverse proxy has no use for CONNECT: refused, as
    # ingress-nginx (nginx answers 405 to CONNECT).
    refused(proxy, b"CONNECT t:443 HTTP/1.1\r\nHost: t:443\r\n\r\n", 405)
    refused(proxy, b"CONNECT t:443 HTTP/1.1\r\nHost: t:443\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\n\r\n", 405)
