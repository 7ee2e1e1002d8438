"""The real client address and HSTS through a real weir-proxy: Strict-Transport-Security on
HTTPS answers only; use-forwarded-headers with proxy-real-ip-cidr (source ranges, limits,
X-Real-IP and X-Forwarded-For follow the forwarded client only from a trusted peer); PROXY
protocol v1 and v2 from a real HAProxy in front of weir."""

import socket
import ssl
import struct
import subprocess
import time

import pytest

import proxyutil as pu
from proxyutil import RawConn

CLIENT = "203.0.113.7"  # the address a trusted peer forwards for


def route(path, **policy):
    return {"path": path, "match": "prefix", "backend": 0, "source": f"ca{path}",
            "policy": policy}


def table(backends, certs, **settings):
    return {
        "version": 1,
        "settings": settings,
        "hosts": [{"name": "", "routes": [
            route("/allow", allow=["203.0.113.0/24"]),
            route("/deny", deny=["203.0.113.0/24"]),
            route("/limited", limit_rps=1),
            route("/echo"),
        ]}],
        "backends": [{"name": "ca/echo:80",
                      "endpoints": [{"address": "127.0.0.1", "port": backends["echo"]}]}],
        "certs": [{"name": "ca/default", "cert_pem": certs["default.test"][0],
                   "key_pem": certs["default.test"][1]}],
        "default_cert": 0,
    }


def tls_socket(port, source=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", port), timeout=10,
                                   source_address=(source, 0) if source else None)
    return ctx.wrap_socket(raw, server_hostname="default.test")


def send(conn, path, extra=""):
    try:
        conn.send(f"GET {path} HTTP/1.1\r\nHost: x.test\r\n{extra}\r\n".encode())
        return conn.read_response()
    finally:
        conn.close()


def http(port, path, source=None, extra=""):
    return send(RawConn(port, source=source), path, extra)


def https(port, path, source=None, extra=""):
    return send(RawConn(0, sock=tls_socket(port, source)), path, extra)


def upstream(resp, name):
    assert resp.status == 200, resp
    return [v for k, v in resp.json()["headers"] if k.lower() == name.lower()]


# ---- HSTS ----

def test_hsts_defaults_on_https_only(fresh_proxy, backends, certs):
    p = fresh_proxy(table(backends, certs))
    r = https(p.https_port, "/echo/x")
    assert r.status == 200, r
    assert r.get_all("Strict-Transport-Security") == ["max-age=31536000; includeSubDomains"]
    # the proxy's own answers over HTTPS carry it too
    r = https(p.https_port, "/nothing-here")
    assert r.status == 404, r
    assert r.get_all("Strict-Transport-Security") == ["max-age=31536000; includeSubDomains"]
    r = http(p.http_port, "/echo/x")
    assert r.status == 200, r
    assert r.get_all("Strict-Transport-Security") == [], r.headers


def test_hsts_configured_values_replace_upstream(fresh_proxy, backends, certs):
    p = fresh_proxy(table(backends, certs, hsts_max_age=600, hsts_include_subdomains=False,
                          hsts_preload=True, trusted_proxies=["127.0.0.1"]))
    r = https(p.https_port, "/echo/x?do=hsts")
    assert r.status == 200, r
    assert r.get_all("Strict-Transport-Security") == ["max-age=600; preload"], r.headers
    # a 403 and a 404 made by the proxy itself
    r = https(p.https_port, "/deny/x", extra=f"X-Forwarded-For: {CLIENT}\r\n")
    assert r.status == 403, r
    assert r.get_all("Strict-Transport-Security") == ["max-age=600; preload"], r.headers
    r = https(p.https_port, "/nothing-here")
    assert r.status == 404, r
    assert r.get_all("Strict-Transport-Security") == ["max-age=600; preload"], r.headers
    # over plain HTTP: never ours, the upstream's own header passes as it is
    r = http(p.http_port, "/echo/x?do=hsts")
    assert r.get_all("Strict-Transport-Security") == ["max-age=5"], r.headers
    r = http(p.http_port, "/nothing-here")
    assert r.status == 404 and r.get_all("Strict-Transport-Security") == [], r.headers


def test_hsts_disabled(fresh_proxy, backends, certs):
    p = fresh_proxy(table(backends, certs, hsts=False))
    r = https(p.https_port, "/echo/x")
    assert r.status == 200, r
    assert r.get_all("Strict-Transport-Security") == [], r.headers
    r = https(p.https_port, "/nothing-here")
    assert r.status == 404 and r.get_all("Strict-Transport-Security") == [], r.headers


# ---- use-forwarded-headers ----

FWD = {"use_forwarded_headers": True, "proxy_real_ip_cidr": ["127.0.0.1/32"]}
XFF = f"X-Forwarded-For: {CLIENT}\r\nX-Real-IP: 198.51.100.99\r\n"


def test_forwarded_client_from_trusted_peer(fresh_proxy, backends, certs):
    p = fresh_proxy(table(backends, certs, **FWD))
    assert http(p.http_port, "/allow/x", extra=XFF).status == 200
    assert http(p.http_port, "/deny/x", extra=XFF).status == 403
    r = http(p.http_port, "/echo/x", extra=XFF)
    assert upstream(r, "X-Real-IP") == [CLIENT]
    assert upstream(r, "X-Forwarded-For") == [CLIENT]
    # a trusted address in the chain is skipped, right to left
    r = http(p.http_port, "/echo/x", extra=f"X-Forwarded-For: {CLIENT}, 127.0.0.1\r\n")
    assert upstream(r, "X-Real-IP") == [CLIENT]


def test_forwarded_client_ignored_from_untrusted_peer(fresh_proxy, backends, certs):
    p = fresh_proxy(table(backends, certs, **FWD))
    src = "127.0.0.3"  # not in proxy-real-ip-cidr
    assert http(p.http_port, "/allow/x", source=src, extra=XFF).status == 403
    assert http(p.http_port, "/deny/x", source=src, extra=XFF).status == 200
    r = http(p.http_port, "/echo/x", source=src, extra=XFF)
    assert upstream(r, "X-Real-IP") == [src]
    assert upstream(r, "X-Forwarded-For") == [src]


def test_forwarded_headers_off_by_default(fresh_proxy, backends, certs):
    # proxy-real-ip-cidr alone does nothing without use-forwarded-headers
    p = fresh_proxy(table(backends, certs, proxy_real_ip_cidr=["127.0.0.1/32"]))
    assert http(p.http_port, "/allow/x", extra=XFF).status == 403
    r = http(p.http_port, "/echo/x", extra=XFF)
    assert upstream(r, "X-Real-IP") == ["127.0.0.1"]


def test_compute_full_forwarded_for_and_header_name(fresh_proxy, backends, certs):
    p = fresh_proxy(table(backends, certs, compute_full_forwarded_for=True,
                          forwarded_for_header="X-Client-Addr", **FWD))
    r = http(p.http_port, "/echo/x",
             extra=f"X-Forwarded-For: 198.51.100.1\r\nX-Client-Addr: {CLIENT}\r\n")
    assert upstream(r, "X-Forwarded-For") == ["198.51.100.1, 127.0.0.1"]
    assert upstream(r, "X-Real-IP") == [CLIENT]
    assert http(p.http_port, "/allow/x", extra=f"X-Client-Addr: {CLIENT}\r\n").status == 200


def test_rate_limit_per_forwarded_client(fresh_proxy, backends, certs):
    p = fresh_proxy(table(backends, certs, **FWD))
    a = "X-Forwarded-For: 203.0.113.20\r\n"
    statuses = [http(p.http_port, "/limited/x", extra=a).status for _ in range(30)]
    assert 503 in statuses, statuses
    # another client behind the same peer has its own budget
    assert http(p.http_port, "/limited/x", extra="X-Forwarded-For: 203.0.113.21\r\n").status \
        == 200


# ---- PROXY protocol ----

PP = {"use_proxy_protocol": True, "proxy_real_ip_cidr": ["127.0.0.1/32"]}
HAPROXY_CFG = """global
    maxconn 200
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend v1
    bind 127.0.0.1:{v1}
    default_backend weir_v1
frontend v2
    bind 127.0.0.1:{v2}
    default_backend weir_v2
frontend tls_v2
    bind 127.0.0.1:{tls}
    default_backend weir_tls_v2
backend weir_v1
    server weir 127.0.0.1:{http} send-proxy
backend weir_v2
    server weir 127.0.0.1:{http} send-proxy-v2
backend weir_tls_v2
    server weir 127.0.0.1:{https} send-proxy-v2
"""


@pytest.fixture
def haproxy(tmp_path):
    """Start HAProxy in front of a weir-proxy: returns a function(proxy) -> ports."""
    procs = []

    def start(p):
        ports = {"v1": pu.free_port(), "v2": pu.free_port(), "tls": pu.free_port()}
        cfg = tmp_path / "haproxy.cfg"
        cfg.write_text(HAPROXY_CFG.format(http=p.http_port, https=p.https_port, **ports))
        log = open(tmp_path / "haproxy.log", "wb")
        proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        procs.append(proc)
        deadline = time.monotonic() + 10
        for port in ports.values():
            while True:
                assert proc.poll() is None, (tmp_path / "haproxy.log").read_text()
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "haproxy did not listen"
                    time.sleep(0.05)
        return ports

    yield start
    for proc in procs:
        pu.stop_process(proc)


@pytest.mark.parametrize("front", ["v1", "v2"])
def test_haproxy_proxy_protocol_http(fresh_proxy, backends, certs, haproxy, front):
    p = fresh_proxy(table(backends, certs, **PP))
    ports = haproxy(p)
    src = "127.0.0.5"  # the client as HAProxy sees it; HAProxy itself connects from 127.0.0.1
    r = http(ports[front], "/echo/x", source=src, extra=XFF)
    assert upstream(r, "X-Real-IP") == [src]
    assert upstream(r, "X-Forwarded-For") == [src]
    # keep-alive: the second request on the connection has the same client
    c = RawConn(ports[front], source=src)
    try:
        for _ in range(2):
            c.send(b"GET /echo/y HTTP/1.1\r\nHost: x.test\r\n\r\n")
            assert upstream(c.read_response(), "X-Real-IP") == [src]
    finally:
        c.close()


def test_haproxy_proxy_protocol_v2_tls(fresh_proxy, backends, certs, haproxy):
    p = fresh_proxy(table(backends, certs, **PP))
    ports = haproxy(p)
    r = https(ports["tls"], "/echo/x", source="127.0.0.6")
    assert upstream(r, "X-Real-IP") == ["127.0.0.6"]
    assert upstream(r, "X-Forwarded-Proto") == ["https"]
    assert r.get_all("Strict-Transport-Security") == ["max-age=31536000; includeSubDomains"]


def test_proxy_protocol_required(fresh_proxy, backends, certs):
    p = fresh_proxy(table(backends, certs, **PP))
    # plain HTTP without a PROXY header: closed without an answer
    c = RawConn(p.http_port)
    try:
        c.send(b"GET /echo/x HTTP/1.1\r\nHost: x.test\r\n\r\n")
        assert c.closed_by_peer(), "connection without a PROXY header stayed open"
        assert c.extra == b"", c.extra
    finally:
        c.close()
    # TLS without a PROXY header: the handshake fails
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        tls_socket(p.https_port).close()
    # garbage where the header should be
    c = RawConn(p.http_port)
    try:
        c.send(b"PROXY TCP4 not-an-address 127.0.0.1 1 2\r\nGET / HTTP/1.1\r\n\r\n")
        assert c.closed_by_peer() and c.extra == b""
    finally:
        c.close()


def test_proxy_protocol_hand_made(fresh_proxy, backends, certs):
    p = fresh_proxy(table(backends, certs, **PP))
    # v2 LOCAL (a balancer's health check): the peer is the client
    local = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x20, 0x00, 0, 0])
    c = RawConn(p.http_port)
    c.send(local)
    assert upstream(send(c, "/echo/x"), "X-Real-IP") == ["127.0.0.1"]
    # v1 from a peer outside proxy-real-ip-cidr: its claim is not believed
    c = RawConn(p.http_port, source="127.0.0.3")
    c.send(b"PROXY TCP4 192.0.2.44 127.0.0.1 5555 80\r\n")
    assert upstream(send(c, "/echo/x"), "X-Real-IP") == ["127.0.0.3"]
    # v2 TCP6 from the trusted peer, header and request in one segment
    addrs = socket.inet_pton(socket.AF_INET6, "2001:db8::44") + \
        socket.inet_pton(socket.AF_INET6, "2001:db8::1") + struct.pack("!HH", 4444, 80)
    v2 = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x21]) + struct.pack("!H", len(addrs)) + addrs
    c = RawConn(p.http_port)
    c.send(v2)
    r = send(c, "/allow/x")
    assert r.status == 403, r  # 2001:db8::44 is not in the allow list
    c = RawConn(p.http_port)
    c.send(v2)
    assert upstream(send(c, "/echo/x"), "X-Real-IP") == ["2001:db8::44"]

