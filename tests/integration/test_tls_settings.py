"""TLS protocols and ciphers (ssl-protocols, ssl-ciphers: the ConfigMap's for every
connection, the annotation's for the host the SNI selects) and the global block lists
(block-cidrs, block-user-agents, block-referers: 403 before any route), through a real
weir-proxy with real TLS clients."""

import socket
import ssl

import pytest

from proxyutil import RawConn

# The test certificates are ECDSA (P-256): these are the suites they can use.
IN_DEFAULT = "ECDHE-ECDSA-AES128-GCM-SHA256"
NOT_IN_DEFAULT = "ECDHE-ECDSA-AES128-SHA"  # CBC: OpenSSL offers it, ingress-nginx's list not


def table(backends, certs, settings=None, a_ciphers=None):
    def host(name, cert, ciphers=None):
        h = {"name": name, "cert": cert,
             "routes": [{"path": "/", "match": "prefix", "backend": 0, "source": "t/t"}]}
        if ciphers:
            h["ssl_ciphers"] = ciphers
        return h
    return {
        "version": 1,
        "settings": settings or {},
        "hosts": [host("", -1), host("a.test", 0, a_ciphers), host("b.test", 1)],
        "backends": [{"name": "t/echo:80",
                      "endpoints": [{"address": "127.0.0.1", "port": backends["echo"]}]}],
        "certs": [{"name": f"t/{h}", "cert_pem": certs[h][0], "key_pem": certs[h][1]}
                  for h in ("a.test", "b.test")],
    }


def handshake(port, sni="a.test", version=None, ciphers=None):
    """(protocol, cipher) the proxy agreed to, or None when it refused."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    if ciphers:
        ctx.set_ciphers(ciphers)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s = ctx.wrap_socket(raw, server_hostname=sni)
    except (ssl.SSLError, ConnectionResetError):
        raw.close()
        return None
    try:
        c = RawConn(0, sock=s)
        c.send(f"GET /x HTTP/1.1\r\nHost: {sni}\r\n\r\n".encode())
        r = c.read_response()
        assert r.status == 200, r
        return s.version(), s.cipher()[0]
    finally:
        s.close()


TLS12 = ssl.TLSVersion.TLSv1_2
TLS13 = ssl.TLSVersion.TLSv1_3


def test_default_ciphers_are_ingress_nginx_list(fresh_proxy, backends, certs):
    p = fresh_proxy(table(backends, certs))
    assert handshake(p.https_port, version=TLS12, ciphers=IN_DEFAULT) == ("TLSv1.2", IN_DEFAULT)
    assert handshake(p.https_port, version=TLS12, ciphers=NOT_IN_DEFAULT) is None
    assert handshake(p.https_port, version=TLS13)[0] == "TLSv1.3"


def test_configmap_protocols_and_ciphers(fresh_proxy, backends, certs):
    p = fresh_proxy(table(backends, certs, settings={
        "ssl_protocols": "TLSv1.2", "ssl_ciphers": "ECDHE-ECDSA-AES256-GCM-SHA384"}))
    # TLS 1.3 switched off; TLS 1.2 only with the one cipher listed
    assert handshake(p.https_port, version=TLS13) is None
    assert handshake(p.https_port) == ("TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384")
    assert handshake(p.https_port, version=TLS12, ciphers=IN_DEFAULT) is None
    p2 = fresh_proxy(table(backends, certs, settings={"ssl_protocols": "TLSv1.3"}))
    assert handshake(p2.https_port, version=TLS12) is None
    assert handshake(p2.https_port)[0] == "TLSv1.3"


def test_host_ciphers_follow_sni(fresh_proxy, backends, certs):
    chacha = "ECDHE-ECDSA-CHACHA20-POLY1305"
    p = fresh_proxy(table(backends, certs, a_ciphers=chacha))
    assert handshake(p.https_port, "a.test", version=TLS12) == ("TLSv1.2", chacha)
    assert handshake(p.https_port, "a.test", version=TLS12, ciphers=IN_DEFAULT) is None
    # b.test has no list of its own: the default one, which does not put CHACHA20 first
    got = handshake(p.https_port, "b.test", version=TLS12)
    assert got and got[1] != chacha, got
    assert handshake(p.https_port, "b.test", version=TLS12, ciphers=IN_DEFAULT) == \
        ("TLSv1.2", IN_DEFAULT)


def get(port, ua=None, referer=None, source=None, extra=""):
    c = RawConn(port, source=source)
    try:
        h = "GET /x HTTP/1.1\r\nHost: a.test\r\n"
        if ua is not None:
            h += f"User-Agent: {ua}\r\n"
        if referer is not None:
            h += f"Referer: {referer}\r\n"
        c.send((h + extra + "\r\n").encode())
        return c.read_response().status
    finally:
        c.close()


def test_block_lists(fresh_proxy, backends, certs):
    p = fresh_proxy(table(backends, certs, settings={
        "block_cidrs": ["127.0.0.3/32"],
        "block_user_agents": ["BadBot/1.0", "~*crawler", "~^curl/7\\.[0-4]"],
        "block_referers": ["~*spam\\.example", "http://evil.example/"],
        "trusted_proxies": ["127.0.0.4"]}))
    port = p.http_port
    assert get(port) == 200
    assert get(port, source="127.0.0.3") == 403
    assert get(port, source="127.0.0.2") == 200
    # the real client address: a trusted hop's X-Forwarded-For names a blocked client
    assert get(port, source="127.0.0.4", extra="X-Forwarded-For: 127.0.0.3\r\n") == 403
    assert get(port, source="127.0.0.2", extra="X-Forwarded-For: 127.0.0.3\r\n") == 200
    # plain entries: the whole value, any case
    assert get(port, ua="badbot/1.0") == 403
    assert get(port, ua="BadBot/1.0 (compatible)") == 200
    # ~* ignores case and searches anywhere; ~ keeps case
    assert get(port, ua="Mozilla/5.0 SuperCrawler") == 403
    assert get(port, ua="curl/7.3.0") == 403
    assert get(port, ua="Curl/7.3.0") == 200
    assert get(port, ua="curl/8.1.0") == 200
    assert get(port, referer="https://www.SPAM.example/page") == 403
    assert get(port, referer="http://evil.example/") == 403
    assert get(port, referer="http://evil.example/other") == 200
    # over HTTPS too, and a WebSocket upgrade is refused before any upstream
    s = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    s.check_hostname = False
    s.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", p.https_port), timeout=10)
    conn = RawConn(0, sock=s.wrap_socket(raw, server_hostname="a.test"))
    try:
        conn.send(b"GET /ws HTTP/1.1\r\nHost: a.test\r\nUser-Agent: crawler\r\n"
                  b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        assert conn.read_response().status == 403
    finally:
        conn.close()


@pytest.mark.parametrize("settings,why", [
    ({"block_user_agents": ["~*bad("]}, "settings.block_user_agents[0]"),
    ({"ssl_ciphers": "NOT-A-CIPHER"}, "settings.ssl_ciphers"),
    ({"ssl_protocols": "SSLv3"}, "settings.ssl_protocols"),
])
def test_bad_settings_refuse_the_table(fresh_proxy, backends, certs, settings, why):
    import proxyutil as pu
    p = fresh_proxy(table(backends, certs, settings={"max_connections": 100}))
    t = table(backends, certs, settings=settings)
    t["generation"] = 2
    pu.write_table(p.routes_dir, t)
    import time
    deadline = time.monotonic() + 10
    while why not in p.log_tail() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert why in p.log_tail(), p.log_tail()
    assert get(p.http_port, ua="anything") == 200
