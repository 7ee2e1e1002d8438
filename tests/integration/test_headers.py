"""Header handling through weir-proxy, checked on the bytes the backend receives and the
client gets: end-to-end headers pass unchanged and in order, hop-by-hop ones are removed,
the X-Forwarded-* family is set."""

import re

from proxyutil import RawConn, get

ADDED = {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port",
         "x-real-ip", "x-request-id", "content-length", "transfer-encoding"}
HOP = ("keep-alive", "te", "upgrade", "proxy-connection", "x-drop-me", "trailer")

REQUEST = (b"GET /echo/hdr?x=1&y=%20 HTTP/1.1\r\n"
           b"Host: Echo.Example:1234\r\n"
           b"X-Custom-One: a b  c\r\n"
           b"x-MiXeD-CaSe: v\r\n"
           b"X-Dup: 1\r\n"
           b"Accept: */*\r\n"
           b"X-Dup: 2\r\n"
           b"Connection: keep-alive, X-Drop-Me\r\n"
           b"X-Drop-Me: secret\r\n"
           b"Keep-Alive: timeout=5\r\n"
           b"TE: trailers\r\n"
           b"Upgrade: h2c\r\n"
           b"Proxy-Connection: keep-alive\r\n"
           b"X-Forwarded-For: 203.0.113.9\r\n"
           b"X-Request-ID: client-chosen\r\n"
           b"X-Unknown-Thing: \xc3\xa9t\xc3\xa9\r\n"
           b"X-Dup: 3\r\n"
           b"\r\n")


def upstream_headers(proxy, source=None):
    c = RawConn(proxy.http_port, source=source)
    try:
        c.send(REQUEST)
        r = c.read_response()
    finally:
        c.close()
    assert r.status == 200, r
    info = r.json()
    assert info["path"] == "/echo/hdr" and info["query"] == "x=1&y=%20"
    return info["headers"]


def values(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


def test_end_to_end_headers_unchanged_and_in_order(proxy):
    hs = upstream_headers(proxy)
    passed = [[k, v] for k, v in hs if k.lower() not in ADDED and k.lower() != "connection"]
    assert passed == [["Host", "Echo.Example:1234"], ["X-Custom-One", "a b  c"],
                      ["x-MiXeD-CaSe", "v"], ["X-Dup", "1"], ["Accept", "*/*"],
                      ["X-Dup", "2"], ["X-Unknown-Thing", "\xc3\xa9t\xc3\xa9"],
                      ["X-Dup", "3"]], hs


def test_hop_by_hop_removed(proxy):
    hs = upstream_headers(proxy)
    names = [k.lower() for k, _ in hs]
    for h in HOP:
        assert h not in names, f"hop-by-hop header {h} reached the backend: {hs}"
    for v in values(hs, "Connection"):
        assert v.lower() in ("keep-alive", "close"), f"client Connection forwarded: {hs}"


def test_forwarded_headers_untrusted_peer(proxy):
    hs = upstream_headers(proxy)
    assert values(hs, "X-Forwarded-For") == ["127.0.0.1"], hs
    assert values(hs, "X-Real-IP") == ["127.0.0.1"], hs
    assert values(hs, "X-Forwarded-Proto") == ["http"], hs
    assert values(hs, "X-Forwarded-Host") == ["Echo.Example:1234"], hs
    assert values(hs, "X-Forwarded-Port") == [str(proxy.http_port)], hs
    rid = values(hs, "X-Request-ID")
    assert len(rid) == 1 and re.fullmatch(r"[0-9a-f]{32}", rid[0]), hs


def test_forwarded_for_appended_for_trusted_peer(proxy):
    # 127.0.0.2 is in the table's trusted_proxies: its chain is kept and the peer appended.
    hs = upstream_headers(proxy, source="127.0.0.2")
    assert values(hs, "X-Forwarded-For") == ["203.0.113.9, 127.0.0.2"], hs
    assert values(hs, "X-Request-ID") == ["client-chosen"], hs


def test_request_ids_differ(proxy):
    ids = set()
    for _ in range(5):
        r = get(proxy.http_port, "/echo/id")
        assert r.status == 200
        ids.update(values(r.json()["headers"], "X-Request-ID"))
    assert len(ids) == 5


def test_response_headers_repeated_and_unknown(proxy):
    r = get(proxy.http_port, "/echo/c?do=cookies")
    assert r.status == 200, r
    assert r.get_all("Set-Cookie") == ["a=1; Path=/", "b=2; HttpOnly", "c=3"], r.headers
    assert r.get_all("X-Unknown-Resp") == ["kept as is"], r.headers
    assert r.get_all("X-Repeat") == ["1", "2"], r.headers
    order = [k.lower() for k, _ in r.headers if k.lower() in ("set-cookie", "x-unknown-resp",
                                                              "x-repeat")]
    assert order == ["set-cookie"] * 3 + ["x-unknown-resp", "x-repeat", "x-repeat"]
