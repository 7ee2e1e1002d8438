"""TLS to HTTPS backends with a backend TLS profile (proxy-ssl-*): the proxy
verifies the backend's certificate against the profile's CA and name, sends
SNI when asked, presents a client certificate, and never reuses a pooled
connection across profiles or names. The backends are Python ssl servers
that report the SNI they received and the client certificate they saw."""

import base64
import datetime
import json
import os
import socket
import ssl
import subprocess
import threading
import time

import pytest
import yaml

import proxyutil as pu

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def make_ca(cn):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


def issue(ca, cn, dns=(), client=False):
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
         .issuer_name(ca_cert.subject).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=30))
         .add_extension(x509.ExtendedKeyUsage(
             [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
             critical=False))
    if dns:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]),
                            critical=False)
    return _pem(b.sign(ca_key, hashes.SHA256())), _key_pem(key)


class TLSBackend:
    """A keep-alive HTTPS server on 127.0.0.1 answering every GET with JSON:
    the SNI it received, the CN of the client certificate, and the number of
    the TLS connection the request came on."""

    def __init__(self, tmp, cert_pem, key_pem, client_ca_pem=None):
        (tmp / "srv.crt").write_text(cert_pem)
        (tmp / "srv.key").write_text(key_pem)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(tmp / "srv.crt"), str(tmp / "srv.key"))
        if client_ca_pem:
            self.ctx.load_verify_locations(cadata=client_ca_pem)
            self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx.sni_callback = self._sni
        self.sni = {}
        self.conns = 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _sni(self, sslsock, name, ctx):
        self.sni[id(sslsock)] = name

    def _accept(self):
        while not self.stopped:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw):
        raw.settimeout(10)
        try:
            s = self.ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            return
        with self.lock:
            self.conns += 1
            conn = self.conns
        peer = s.getpeercert()
        cn = None
        if peer:
            cn = dict(x[0] for x in peer["subject"]).get("commonName")
        sni = self.sni.pop(id(s), None)
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = s.recv(4096)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                path = head.split(b" ")[1].decode()
                body = json.dumps({"sni": sni, "client_cn": cn, "conn": conn,
                                   "path": path}).encode()
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        except (ssl.SSLError, OSError):
            pass
        finally:
            s.close()

    def close(self):
        self.stopped = True
        self.sock.close()


@pytest.fixture(scope="module")
def pki():
    ca = make_ca("weir test backend CA")
    other_ca = make_ca("weir test other CA")
    client_ca = make_ca("weir test client CA")
    return {
        "ca": _pem(ca[0]),
        "other_ca": _pem(other_ca[0]),
        "client_ca": _pem(client_ca[0]),
        "server": issue(ca, "backend.test", ["backend.test"]),
        "client": issue(client_ca, "weir-proxy-client", client=True),
        "self_signed": issue(other_ca, "self.test", ["self.test"]),
    }


@pytest.fixture(scope="module")
def backend(pki, tmp_path_factory):
    b = TLSBackend(tmp_path_factory.mktemp("btls"), *pki["server"])
    yield b
    b.close()


@pytest.fixture(scope="module")
def mtls_backend(pki, tmp_path_factory):
    b = TLSBackend(tmp_path_factory.mktemp("bmtls"), *pki["server"],
                   client_ca_pem=pki["client_ca"])
    yield b
    b.close()


def route(path, backend, tls=None):
    pol = {"backend_protocol": "HTTPS"}
    if tls is not None:
        pol["backend_tls"] = tls
    return {"path": path, "match": "prefix", "backend": backend, "policy": pol}


def table(port, routes, profiles):
    return {
        "version": 1,
        "generation": 1,
        "hosts": [{"name": "", "routes": routes}],
        "backends": [{"name": "t/tls:443", "endpoints": [{"address": "127.0.0.1",
                                                          "port": port}]}],
        "backend_tls": profiles,
    }


def test_verify_with_right_ca_and_sni(fresh_proxy, backend, pki):
    p = fresh_proxy(table(backend.port, [
        route("/sni", 0, {"profile": 0, "name": "backend.test", "server_name": True}),
        route("/nosni", 0, {"profile": 0, "name": "backend.test"}),
    ], [{"name": "t/ca", "verify": True, "ca_pem": pki["ca"]}]))
    resp = pu.get(p.http_port, "/sni/x")
    assert resp.status == 200, resp
    assert resp.json()["sni"] == "backend.test"
    # proxy-ssl-server-name off (the default): verified, but no SNI sent.
    resp = pu.get(p.http_port, "/nosni/x")
    assert resp.status == 200, resp
    assert resp.json()["sni"] is None


def test_wrong_ca_is_502(fresh_proxy, backend, pki):
    p = fresh_proxy(table(backend.port, [
        route("/", 0, {"profile": 0, "name": "backend.test", "server_name": True}),
    ], [{"name": "t/other", "verify": True, "ca_pem": pki["other_ca"]}]))
    assert pu.get(p.http_port, "/x").status == 502
    assert p.metric("weir_proxy_upstream_errors_total", 'kind="tls"') == 1
    assert "TLS handshake failed: certificate verify failed: unable to get local issuer " \
        "certificate" in p.log_tail()


def test_name_mismatch_is_502(fresh_proxy, backend, pki):
    p = fresh_proxy(table(backend.port, [
        route("/", 0, {"profile": 0, "name": "elsewhere.test", "server_name": True}),
    ], [{"name": "t/ca", "verify": True, "ca_pem": pki["ca"]}]))
    assert pu.get(p.http_port, "/x").status == 502
    assert "TLS handshake failed: certificate verify failed: hostname mismatch" in p.log_tail()


def test_default_name_is_the_request_host(fresh_proxy, backend, pki):
    p = fresh_proxy(table(backend.port, [route("/", 0, {"profile": 0, "server_name": True})],
                          [{"name": "t/ca", "verify": True, "ca_pem": pki["ca"]}]))
    resp = pu.get(p.http_port, "/x", host="backend.test:8080")
    assert resp.status == 200, resp
    assert resp.json()["sni"] == "backend.test"
    assert pu.get(p.http_port, "/x", host="other.test").status == 502


def test_client_certificate(fresh_proxy, mtls_backend, pki):
    cert, key = pki["client"]
    p = fresh_proxy(table(mtls_backend.port, [
        route("/with", 0, {"profile": 0, "name": "backend.test"}),
        route("/without", 0, {"profile": 1, "name": "backend.test"}),
    ], [{"name": "t/client", "verify": True, "ca_pem": pki["ca"], "cert_pem": cert,
         "key_pem": key},
        {"name": "t/ca", "verify": True, "ca_pem": pki["ca"]}]))
    resp = pu.get(p.http_port, "/with/x")
    assert resp.status == 200, resp
    assert resp.json()["client_cn"] == "weir-proxy-client"
    assert pu.get(p.http_port, "/without/x").status == 502


def test_verify_off_by_default_with_self_signed(fresh_proxy, pki, tmp_path):
    b = TLSBackend(tmp_path, *pki["self_signed"])
    try:
        p = fresh_proxy(table(b.port, [route("/", 0)], []))
        resp = pu.get(p.http_port, "/x")
        assert resp.status == 200, resp
        assert resp.json()["sni"] is None
    finally:
        b.close()


def test_pool_not_shared_across_profiles_or_names(fresh_proxy, backend, pki):
    p = fresh_proxy(table(backend.port, [
        route("/plain", 0),
        route("/wrong", 0, {"profile": 0, "name": "backend.test"}),
        route("/a", 0, {"profile": 1, "name": "backend.test", "server_name": True}),
        route("/b", 0, {"profile": 1, "name": "elsewhere.test", "server_name": True}),
    ], [{"name": "t/other", "verify": True, "ca_pem": pki["other_ca"]},
        {"name": "t/ca", "verify": True, "ca_pem": pki["ca"]}]), workers=1)
    c = pu.RawConn(p.http_port)
    try:
        for path in ("/plain/1", "/plain/2"):
            c.send(f"GET {path} HTTP/1.1\r\nHost: x.test\r\n\r\n".encode())
            r = c.read_response()
            assert r.status == 200, r
        # The unverified connection now idles in the pool: a verified route to the
        # same endpoint must not take it (its CA does not sign the backend).
        c.send(b"GET /wrong/1 HTTP/1.1\r\nHost: x.test\r\n\r\n")
        assert c.read_response().status == 502
    finally:
        c.close()
    first = pu.get(p.http_port, "/a/1")
    assert first.status == 200, first
    again = pu.get(p.http_port, "/a/2")
    assert again.status == 200 and again.json()["conn"] == first.json()["conn"], again
    # Same profile and endpoint, another name: a new connection, verified anew (and failing).
    assert pu.get(p.http_port, "/b/1").status == 502


def test_bad_ca_pem_refuses_table(fresh_proxy, backend, pki, tmp_path):
    p = fresh_proxy(table(backend.port, [route("/", 0)], []))
    bad = table(backend.port, [route("/", 0, {"profile": 0})],
                [{"name": "t/bad", "verify": True, "ca_pem": "-----BEGIN CERTIFICATE-----\nAAAA\n"
                  "-----END CERTIFICATE-----\n"}])
    bad["generation"] = 2
    pu.write_table(p.routes_dir, bad)
    deadline = time.monotonic() + 10
    while "backend_tls[0].ca_pem: bad CA certificate (t/bad)" not in p.log_tail():
        assert time.monotonic() < deadline, p.log_tail()
        time.sleep(0.05)
    assert p.metric("weir_proxy_route_table_generation") == 1
    assert pu.get(p.http_port, "/x").status == 200


def test_through_the_controller(proxy_bin, pki, backend, mtls_backend, tmp_path):
    """proxy-ssl-* annotations and a Secret with ca.crt, tls.crt and tls.key, compiled by
    weir-controller --manifests --once and served by weir-proxy."""
    def svc(name, port):
        return [{"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": name, "namespace": "default"},
                 "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]}},
                {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                 "metadata": {"name": f"{name}-1", "namespace": "default",
                              "labels": {"kubernetes.io/service-name": name}},
                 "addressType": "IPv4", "ports": [{"name": "https", "port": port}],
                 "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]}]

    def ingress(name, path, service, annotations):
        ann = {"nginx.ingress.kubernetes.io/backend-protocol": "HTTPS", **annotations}
        return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": name, "namespace": "default",
                             "creationTimestamp": "2026-01-01T00:00:00Z", "annotations": ann},
                "spec": {"ingressClassName": "weir", "rules": [{"http": {"paths": [
                    {"path": path, "pathType": "Prefix",
                     "backend": {"service": {"name": service, "port": {"number": 443}}}}]}}]}}

    b64 = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
    n = "nginx.ingress.kubernetes.io/"
    secure = {n + "proxy-ssl-secret": "default/upstream", n + "proxy-ssl-verify": "on",
              n + "proxy-ssl-name": "backend.test", n + "proxy-ssl-server-name": "on"}
    objs = [{"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
             "metadata": {"name": "weir"}, "spec": {"controller": "weir.dev/ingress-controller"}}]
    objs += svc("plain-tls", backend.port) + svc("mtls", mtls_backend.port)
    objs.append({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                 "metadata": {"name": "upstream", "namespace": "default"},
                 "data": {"ca.crt": b64(pki["ca"]), "tls.crt": b64(pki["client"][0]),
                          "tls.key": b64(pki["client"][1])}})
    objs.append(ingress("mtls", "/mtls", "mtls", secure))
    objs.append(ingress("wrongname", "/wrongname", "plain-tls",
                        {**secure, n + "proxy-ssl-name": "elsewhere.test"}))
    objs.append(ingress("unverifiable", "/unverifiable", "plain-tls",
                        {n + "proxy-ssl-verify": "on"}))
    mdir, routes = tmp_path / "manifests", tmp_path / "routes"
    mdir.mkdir()
    routes.mkdir()
    with open(mdir / "objects.yaml", "w") as f:
        yaml.safe_dump_all(objs, f)
    proc = subprocess.run([os.path.join(pu.BUILD_DIR, "weir-controller"), "--manifests",
                           str(mdir), "--publish", str(routes), "--once", "--metrics-port", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "default/unverifiable" in proc.stderr and "proxy-ssl-verify" in proc.stderr, \
        proc.stderr
    p = pu.Proxy(str(routes), str(tmp_path / "proxy.log"), workers=1)
    try:
        p.wait_ready()
        resp = pu.get(p.http_port, "/mtls/x")
        assert resp.status == 200, resp
        assert resp.json()["sni"] == "backend.test"
        assert resp.json()["client_cn"] == "weir-proxy-client"
        assert pu.get(p.http_port, "/wrongname/x").status == 502
        # Dropped (fail closed): no route, not an unverified one.
        assert pu.get(p.http_port, "/unverifiable/x").status == 404
    finally:
        p.stop()
