"""TLS past the proxy: ssl-passthrough relays the client's TLS untouched to the backend (the
backend's certificate is the one presented), and backend_protocol HTTPS speaks TLS upstream."""

import json
import socket
import ssl

import pytest

import proxyutil as pu
from proxycerts import make_cert
from proxyutil import RawConn


@pytest.fixture(scope="module")
def tls_backend(tmp_path_factory):
    d = tmp_path_factory.mktemp("tlsb")
    cert_pem, key_pem, der = make_cert("pt.test", str(d))
    (d / "pt.crt").write_text(cert_pem)
    (d / "pt.key").write_text(key_pem)
    port = pu.free_port()
    proc = pu.start_backend("echo_http.py", port, str(d / "tls.log"), "--name", "TLS",
                            "--cert", str(d / "pt.crt"), "--key", str(d / "pt.key"))
    try:
        yield port, der
    finally:
        pu.stop_process(proc)


@pytest.fixture
def tproxy(fresh_proxy, backends, certs, tls_backend):
    port, _ = tls_backend
    table = {
        "version": 1,
        "generation": 1,
        "hosts": [
            {"name": "", "routes": [
                {"path": "/tls-up", "match": "prefix", "backend": 0,
                 "policy": {"backend_protocol": "HTTPS"}},
                {"path": "/", "match": "prefix", "backend": 1}]},
            {"name": "a.test", "cert": 0, "routes": [
                {"path": "/", "match": "prefix", "backend": 1}]},
        ],
        "backends": [
            {"name": "t/tls:443", "endpoints": [{"address": "127.0.0.1", "port": port}]},
            {"name": "t/echo:80", "endpoints": [{"address": "127.0.0.1",
                                                 "port": backends["echo"]}]},
        ],
        "certs": [{"name": "t/a", "cert_pem": certs["a.test"][0],
                   "key_pem": certs["a.test"][1]}],
        "passthrough": [{"host": "pt.test", "backend": 0}],
    }
    return fresh_proxy(table)


def tls_get(proxy, sni, path):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", proxy.https_port), timeout=10),
                        server_hostname=sni)
    try:
        der = s.getpeercert(binary_form=True)
        c = RawConn(0, sock=s)
        c.send(f"GET {path} HTTP/1.1\r\nHost: {sni}\r\nX-Client: 1\r\n\r\n".encode())
        return der, c.read_response()
    finally:
        s.close()


def test_passthrough_relays_tls_untouched(tproxy, tls_backend, certs):
    der, resp = tls_get(tproxy, "pt.test", "/pass")
    assert der == tls_backend[1], "passthrough host got the proxy's certificate, not the backend's"
    assert resp.status == 200, resp
    info = json.loads(resp.body)
    assert info["name"] == "TLS"
    # Not decrypted by the proxy: the request arrives exactly as the client sent it.
    assert info["headers"] == [["Host", "pt.test"], ["X-Client", "1"]], info["headers"]


def test_other_sni_still_terminated(tproxy, certs):
    der, resp = tls_get(tproxy, "a.test", "/term")
    assert der == certs["a.test"][2]
    assert resp.status == 200 and json.loads(resp.body)["name"] == "echo", resp


def test_backend_protocol_https(tproxy):
    resp = pu.get(tproxy.http_port, "/tls-up/x")
    assert resp.status == 200, resp
    info = resp.json()
    assert info["name"] == "TLS" and info["path"] == "/tls-up/x"


def tls_from(proxy, sni, source):
    """The backend's answer through passthrough from a client bound to source, or None when
    the proxy closed the connection before any TLS byte came back."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", proxy.https_port), timeout=10,
                                   source_address=(source, 0))
    try:
        s = ctx.wrap_socket(raw, server_hostname=sni)
    except (ssl.SSLError, ConnectionResetError, OSError):
        raw.close()
        return None
    try:
        c = RawConn(0, sock=s)
        c.send(f"GET /acl HTTP/1.1\r\nHost: {sni}\r\n\r\n".encode())
        return c.read_response().status
    finally:
        s.close()


def test_passthrough_allow_and_deny_lists(fresh_proxy, backends, certs, tls_backend):
    port, _ = tls_backend
    table = {
        "version": 1,
        "backends": [{"name": "t/tls:443",
                      "endpoints": [{"address": "127.0.0.1", "port": port}]}],
        "passthrough": [
            {"host": "pt.test", "backend": 0, "allow": ["127.0.0.0/8"],
             "deny": ["127.0.0.5/32"]},
            {"host": "only.test", "backend": 0, "allow": ["127.0.0.7"]},
        ],
    }
    p = fresh_proxy(table)
    assert tls_from(p, "pt.test", "127.0.0.1") == 200
    assert tls_from(p, "pt.test", "127.0.0.5") is None  # denied: closed, nothing relayed
    assert tls_from(p, "only.test", "127.0.0.7") == 200
    assert tls_from(p, "only.test", "127.0.0.1") is None
    assert p.metric("weir_proxy_requests_total",
                    'host="only.test",path="(ssl-passthrough)",code="403",protocol="-"') == 1


def test_backend_protocol_auto_http(fresh_proxy, backends, tls_backend):
    """AUTO_HTTP (ingress-nginx's $scheme upstream): HTTPS to the upstream for a client that
    came over TLS, plain HTTP for one that did not. With a backend that only speaks TLS, the
    first is answered and the second gets the proxy's 502; with a plain backend, the
    reverse."""
    port, _ = tls_backend
    table = {
        "version": 1, "generation": 1,
        "hosts": [{"name": "", "routes": [
            {"path": "/to-tls", "match": "prefix", "backend": 0,
             "policy": {"backend_protocol": "AUTO_HTTP"}},
            {"path": "/to-plain", "match": "prefix", "backend": 1,
             "policy": {"backend_protocol": "AUTO_HTTP"}}]}],
        "backends": [
            {"name": "t/tls:443", "endpoints": [{"address": "127.0.0.1", "port": port}]},
            {"name": "t/echo:80", "endpoints": [{"address": "127.0.0.1",
                                                 "port": backends["echo"]}]},
        ],
    }
    p = fresh_proxy(table)
    _, resp = tls_get(p, "auto.test", "/to-tls/x")
    assert resp.status == 200 and json.loads(resp.body)["name"] == "TLS", resp
    assert pu.get(p.http_port, "/to-tls/x").status == 502
    assert pu.get(p.http_port, "/to-plain/x").json()["name"] == "echo"
    _, resp = tls_get(p, "auto.test", "/to-plain/x")
    assert resp.status == 502, resp
