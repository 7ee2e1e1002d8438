"""Client certificate authentication (auth-tls-*) end to end: certificates made by the
openssl command (a CA with `openssl ca`, clients it signs, one it has revoked, an expired
one, one signed by another CA), Secrets holding ca.crt (and ca.crl), compiled by
weir-controller --manifests --once and served by weir-proxy; requests over real TLS with
and without a client certificate, and the answers ingress-nginx gives: 400 without a
certificate or with a bad one, the auth-tls-error-page redirect instead, 403 when
auth-tls-match-cn does not match, optional modes let requests through, and the
ssl-client-* headers the upstream receives."""

import base64
import json
import os
import socket
import ssl
import subprocess
import urllib.parse

import pytest
import yaml

import proxyutil as pu
import routetable

CONTROLLER_BIN = os.path.join(pu.BUILD_DIR, "weir-controller")
NGINX = "nginx.ingress.kubernetes.io/"
ERROR_PAGE = "https://errors.example.com/client-cert"

CA_CNF = """[ ca ]
default_ca = ca1
[ ca1 ]
dir = .
database = index.txt
new_certs_dir = .
serial = serial
crlnumber = crlnumber
default_md = sha256
policy = any
default_crl_days = 30
unique_subject = no
[ any ]
commonName = supplied
organizationName = optional
[ client ]
basicConstraints = CA:FALSE
extendedKeyUsage = clientAuth
"""


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


class CA:
    """A CA run by `openssl ca` in its own directory."""

    def __init__(self, d, name):
        self.d = d
        os.makedirs(d)
        with open(os.path.join(d, "ca.cnf"), "w") as f:
            f.write(CA_CNF)
        open(os.path.join(d, "index.txt"), "w").close()
        for f in ("serial", "crlnumber"):
            with open(os.path.join(d, f), "w") as fh:
                fh.write("01\n")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "30", "-subj",
                f"/CN={name}", cwd=d)
        self.pem = self.read("ca.crt")

    def read(self, f):
        with open(os.path.join(self.d, f)) as fh:
            return fh.read()

    def client(self, name, cn, start=None, end=None):
        """A client certificate: (cert path, key path, PEM, RFC 2253 subject)."""
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/O=Weir Test/CN={cn}",
                cwd=self.d)
        dates = ["-startdate", start, "-enddate", end] if start else ["-days", "30"]
        openssl("ca", "-batch", "-config", "ca.cnf", "-cert", "ca.crt", "-keyfile", "ca.key",
                "-in", f"{name}.csr", "-out", f"{name}.crt", "-extensions", "client", "-notext",
                *dates, cwd=self.d)
        subject = subprocess.run(["openssl", "x509", "-in", f"{name}.crt", "-noout", "-subject",
                                  "-nameopt", "RFC2253"], cwd=self.d, check=True,
                                 capture_output=True, text=True).stdout.strip()
        assert subject.startswith("subject=")
        return (os.path.join(self.d, f"{name}.crt"), os.path.join(self.d, f"{name}.key"),
                self.read(f"{name}.crt"), subject[len("subject="):])

    def revoke(self, cert_path):
        openssl("ca", "-config", "ca.cnf", "-cert", "ca.crt", "-keyfile", "ca.key", "-revoke",
                cert_path, cwd=self.d)
        openssl("ca", "-config", "ca.cnf", "-cert", "ca.crt", "-keyfile", "ca.key", "-gencrl",
                "-out", "ca.crl", cwd=self.d)
        return self.read("ca.crl")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("pki"))
    ca, other = CA(os.path.join(d, "ca"), "Weir Test CA"), CA(os.path.join(d, "other"), "Other CA")
    p = {"ca": ca, "other": other,
         "alice": ca.client("alice", "alice"),
         "bob": ca.client("bob", "bob"),
         "revoked": ca.client("revoked", "revoked"),
         "expired": ca.client("expired", "alice", "20200101000000Z", "20200201000000Z"),
         "mallory": other.client("mallory", "alice")}
    p["crl"] = ca.revoke(p["revoked"][0])
    return p


def b64(s):
    return base64.b64encode(s.encode()).decode()


def manifests(dirpath, backends, pki):
    objs = [{"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
             "metadata": {"name": "weir"}, "spec": {"controller": "weir.dev/ingress-controller"}},
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": "echo", "namespace": "default"},
             "spec": {"ports": [{"name": "http", "port": 80, "targetPort": backends["echo"]}]}},
            {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
             "metadata": {"name": "echo-1", "namespace": "default",
                          "labels": {"kubernetes.io/service-name": "echo"}},
             "addressType": "IPv4", "ports": [{"name": "http", "port": backends["echo"]}],
             "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]},
            # Opaque with ca.crt, as ingress-nginx's docs create it
            {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
             "metadata": {"name": "ca", "namespace": "default"},
             "data": {"ca.crt": b64(pki["ca"].pem)}},
            {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
             "metadata": {"name": "ca-crl", "namespace": "default"},
             "data": {"ca.crt": b64(pki["ca"].pem), "ca.crl": b64(pki["crl"])}}]

    def ingress(name, host, annotations):
        return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": name, "namespace": "default",
                             "creationTimestamp": "2026-01-01T00:00:00Z",
                             "annotations": {NGINX + k: v for k, v in annotations.items()}},
                "spec": {"ingressClassName": "weir", "rules": [{"host": host, "http": {"paths": [
                    {"path": "/", "pathType": "Prefix",
                     "backend": {"service": {"name": "echo", "port": {"number": 80}}}}]}}]}}

    objs += [
        ingress("on", "on.test", {"auth-tls-secret": "default/ca",
                                  "auth-tls-pass-certificate-to-upstream": "true",
                                  "ssl-redirect": "false"}),
        ingress("optional", "optional.test", {"auth-tls-secret": "ca",
                                              "auth-tls-verify-client": "optional"}),
        ingress("noca", "noca.test", {"auth-tls-secret": "ca",
                                      "auth-tls-verify-client": "optional_no_ca",
                                      "auth-tls-pass-certificate-to-upstream": "true"}),
        ingress("cn", "cn.test", {"auth-tls-secret": "ca", "auth-tls-match-cn": "CN=alice$"}),
        ingress("errpage", "errpage.test", {"auth-tls-secret": "ca",
                                            "auth-tls-error-page": ERROR_PAGE}),
        ingress("crl", "crl.test", {"auth-tls-secret": "ca-crl"}),
        ingress("plain", "plain.test", {}),
    ]
    with open(os.path.join(dirpath, "objects.yaml"), "w") as f:
        yaml.safe_dump_all(objs, f)


@pytest.fixture(scope="module")
def cproxy(proxy_bin, backends, pki, tmp_path_factory):
    d = tmp_path_factory.mktemp("mtls")
    mdir, routes = d / "manifests", d / "routes"
    mdir.mkdir()
    routes.mkdir()
    manifests(str(mdir), backends, pki)
    proc = subprocess.run([CONTROLLER_BIN, "--manifests", str(mdir), "--publish", str(routes),
                           "--once", "--metrics-port", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    table = routetable.load(routes)
    # one CA entry per distinct content: "ca" for five hosts, "ca-crl" for one
    assert [c["name"] for c in table["cas"]] == ["default/ca", "default/ca-crl"], table["cas"]
    p = pu.Proxy(str(routes), str(d / "proxy.log"), workers=2)
    try:
        p.wait_ready()
        yield p
    finally:
        p.stop()


def https(proxy, sni, host=None, cert=None, path="/x", extra=""):
    """One HTTPS request; (status, headers dict lowercased, body, upstream headers or None)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert[0], cert[1])
    raw = socket.create_connection(("127.0.0.1", proxy.https_port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname=sni)
    try:
        c = pu.RawConn(0, sock=s)
        c.send(f"GET {path} HTTP/1.1\r\nHost: {host or sni}\r\n{extra}\r\n".encode())
        r = c.read_response()
    finally:
        s.close()
    up = None
    if r.status == 200:
        info = json.loads(r.body)
        up = {}
        for k, v in info["headers"]:
            up.setdefault(k.lower(), []).append(v)
    return r, up


def one(up, name):
    vals = up.get(name, [])
    assert len(vals) == 1, (name, up)
    return vals[0]


def test_verified_client_reaches_upstream_with_its_certificate(cproxy, pki):
    _, _, pem, subject = pki["alice"]
    r, up = https(cproxy, "on.test", cert=pki["alice"],
                  extra="ssl-client-verify: FORGED\r\nssl-client-subject-dn: CN=root\r\n")
    assert r.status == 200, r
    assert one(up, "ssl-client-verify") == "SUCCESS"
    assert one(up, "ssl-client-subject-dn") == subject == "O=Weir Test,CN=alice"
    assert one(up, "ssl-client-issuer-dn") == "CN=Weir Test CA"
    sent = one(up, "ssl-client-cert")
    # nginx's $ssl_client_escaped_cert: all but ALPHA, DIGIT and -._~ percent-encoded
    assert sent == urllib.parse.quote(pem, safe="-._~"), sent
    assert urllib.parse.unquote(sent) == pem


def test_no_certificate_is_400(cproxy):
    r, _ = https(cproxy, "on.test")
    assert r.status == 400, r
    assert b"No required SSL certificate was sent" in r.body, r
    # a WebSocket upgrade is refused the same way, before any upstream
    r, _ = https(cproxy, "on.test", path="/ws",
                 extra="Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13"
                       "\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
    assert r.status == 400, r


@pytest.mark.parametrize("who", ["mallory", "expired"])
def test_bad_certificate_is_400(cproxy, pki, who):
    r, _ = https(cproxy, "on.test", cert=pki[who])
    assert r.status == 400, r
    assert b"The SSL certificate error" in r.body, r


def test_revoked_certificate_refused_by_crl(cproxy, pki):
    assert https(cproxy, "crl.test", cert=pki["revoked"])[0].status == 400
    r, up = https(cproxy, "crl.test", cert=pki["alice"])
    assert r.status == 200 and one(up, "ssl-client-verify") == "SUCCESS", r
    # the same certificate on a host whose Secret holds no CRL is still good
    assert https(cproxy, "on.test", cert=pki["revoked"])[0].status == 200


def test_optional(cproxy, pki):
    r, up = https(cproxy, "optional.test")
    assert r.status == 200, r
    assert one(up, "ssl-client-verify") == "NONE"
    assert "ssl-client-subject-dn" not in up and "ssl-client-cert" not in up, up
    r, up = https(cproxy, "optional.test", cert=pki["bob"])
    assert r.status == 200 and one(up, "ssl-client-verify") == "SUCCESS", r
    assert one(up, "ssl-client-subject-dn") == "O=Weir Test,CN=bob"
    # no certificate-to-upstream on this host
    assert "ssl-client-cert" not in up, up
    # a certificate that fails verification is still refused
    assert https(cproxy, "optional.test", cert=pki["mallory"])[0].status == 400


def test_optional_no_ca(cproxy, pki):
    r, up = https(cproxy, "noca.test", cert=pki["mallory"])
    assert r.status == 200, r
    assert one(up, "ssl-client-verify").startswith("FAILED:"), up
    assert one(up, "ssl-client-issuer-dn") == "CN=Other CA"
    assert urllib.parse.unquote(one(up, "ssl-client-cert")) == pki["mallory"][2]
    r, up = https(cproxy, "noca.test")
    assert r.status == 200 and one(up, "ssl-client-verify") == "NONE", r
    # an expired certificate is not an "unknown CA" fault: refused (nginx)
    assert https(cproxy, "noca.test", cert=pki["expired"])[0].status == 400


def test_match_cn(cproxy, pki):
    r, up = https(cproxy, "cn.test", cert=pki["alice"])
    assert r.status == 200, r
    r, _ = https(cproxy, "cn.test", cert=pki["bob"])
    assert r.status == 403, r
    assert b"client certificate unauthorized" in r.body, r


def test_error_page_redirect(cproxy, pki):
    for cert in (None, pki["mallory"]):
        r, _ = https(cproxy, "errpage.test", cert=cert)
        assert r.status == 302, r
        assert r.get("Location") == ERROR_PAGE, r
    assert https(cproxy, "errpage.test", cert=pki["alice"])[0].status == 200


def test_host_without_auth_tls_served_without_certificate(cproxy, pki):
    r, up = https(cproxy, "plain.test")
    assert r.status == 200, r
    # a host without auth-tls sets none of the ssl-client-* headers
    assert not [k for k in up if k.startswith("ssl-client-")], up
    assert https(cproxy, "plain.test", cert=pki["mallory"])[0].status == 200
    assert pu.get(cproxy.http_port, "/x", host="plain.test").status == 200


def test_certificate_request_names_the_ca(cproxy):
    """As nginx with ssl_client_certificate: the CertificateRequest lists the CA's subject,
    which clients use to pick a certificate; a host without auth-tls asks for none."""
    def s_client(name):
        return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{cproxy.https_port}",
                               "-servername", name], input="", capture_output=True, text=True,
                              timeout=20).stdout
    out = s_client("on.test")
    assert "Acceptable client certificate CA names\nCN = Weir Test CA\n" in out, out
    out = s_client("plain.test")
    assert "No client certificate CA names sent" in out, out


def test_host_header_other_than_sni(cproxy, pki):
    """nginx answers 421 when the Host names a server that verifies client certificates
    but the handshake was made for another name."""
    r, _ = https(cproxy, "plain.test", host="on.test", cert=pki["alice"])
    assert r.status == 421, r
    r, _ = https(cproxy, "cn.test", host="on.test", cert=pki["alice"])
    assert r.status == 421, r


def test_plain_http_to_verified_host_refused(cproxy):
    r = pu.get(cproxy.http_port, "/x", host="on.test")
    assert r.status == 400, r


def test_session_resumed_only_under_the_same_settings(cproxy, pki):
    """A TLS session made with a certificate the CA verified for on.test must not be resumed
    for plain.test and then carried to another CA's host."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # session ids/tickets known after handshake
    ctx.load_cert_chain(pki["alice"][0], pki["alice"][1])
    raw = socket.create_connection(("127.0.0.1", cproxy.https_port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname="on.test")
    c = pu.RawConn(0, sock=s)
    c.send(b"GET /x HTTP/1.1\r\nHost: on.test\r\n\r\n")
    assert c.read_response().status == 200
    sess = s.session
    s.close()
    # resumed on the same host: still verified
    raw = socket.create_connection(("127.0.0.1", cproxy.https_port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname="on.test", session=sess)
    assert s.session_reused
    c = pu.RawConn(0, sock=s)
    c.send(b"GET /x HTTP/1.1\r\nHost: on.test\r\n\r\n")
    assert c.read_response().status == 200
    s.close()
    # offered to the CRL host (other settings): not resumed
    raw = socket.create_connection(("127.0.0.1", cproxy.https_port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname="crl.test", session=sess)
    assert not s.session_reused
    s.close()


def test_ca_change_applies(proxy_bin, backends, pki, tmp_path):
    """The controller follows the CA Secret: once ca.crt names the other CA, a connection made
    under the old CA gets 421 (it must reconnect) and new connections verify against the new
    one."""
    mdir, routes = tmp_path / "manifests", tmp_path / "routes"
    mdir.mkdir()
    routes.mkdir()
    manifests(str(mdir), backends, pki)
    ctl = pu.start_ready([CONTROLLER_BIN, "--manifests", str(mdir), "--publish", str(routes),
                          "--metrics-port", "0", "--log-format", "text"],
                         "published generation 1", str(tmp_path / "controller.log"))
    p = None
    s = None
    try:
        p = pu.Proxy(str(routes), str(tmp_path / "proxy.log"), workers=1)
        p.wait_ready()
        assert https(p, "on.test", cert=pki["alice"])[0].status == 200
        assert https(p, "on.test", cert=pki["mallory"])[0].status == 400
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.load_cert_chain(pki["alice"][0], pki["alice"][1])
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", p.https_port), timeout=10),
                            server_hostname="on.test")
        conn = pu.RawConn(0, sock=s)
        conn.send(b"GET /x HTTP/1.1\r\nHost: on.test\r\n\r\n")
        assert conn.read_response().status == 200
        rotated = dict(pki, ca=pki["other"])
        stage = tmp_path / "stage"
        stage.mkdir()
        manifests(str(stage), backends, rotated)
        os.replace(stage / "objects.yaml", mdir / "objects.yaml")
        p.wait_generation(2)
        conn.send(b"GET /x HTTP/1.1\r\nHost: on.test\r\n\r\n")
        assert conn.read_response().status == 421
        assert https(p, "on.test", cert=pki["alice"])[0].status == 400
        r, up = https(p, "on.test", cert=pki["mallory"])
        assert r.status == 200 and one(up, "ssl-client-issuer-dn") == "CN=Other CA", r
    finally:
        if s:
            s.close()
        if p:
            p.stop()
        pu.stop_process(ctl)


def h2_get(proxy, sni, cert=None, path="/x"):
    """One request over HTTP/2 (curl): (status, upstream headers or None)."""
    cmd = ["curl", "-sk", "--http2", "-o", "-", "-w", "\n%{http_code} %{http_version}",
           "--resolve", f"{sni}:{proxy.https_port}:127.0.0.1",
           f"https://{sni}:{proxy.https_port}{path}"]
    if cert:
        cmd[1:1] = ["--cert", cert[0], "--key", cert[1]]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    body, _, tail = out.rpartition("\n")
    status, version = tail.split()
    assert version == "2", f"curl did not speak HTTP/2: {tail}"
    up = None
    if status == "200":
        up = {}
        for k, v in json.loads(body)["headers"]:
            up.setdefault(k.lower(), []).append(v)
    return int(status), up


def test_client_certificate_over_http2(cproxy, pki):
    """The same checks on HTTP/2 streams: they read the certificate of the TLS connection
    the stream arrived on."""
    status, up = h2_get(cproxy, "on.test", cert=pki["alice"])
    assert status == 200
    assert one(up, "ssl-client-verify") == "SUCCESS"
    assert one(up, "ssl-client-subject-dn") == "O=Weir Test,CN=alice"
    assert h2_get(cproxy, "on.test")[0] == 400
    assert h2_get(cproxy, "on.test", cert=pki["mallory"])[0] == 400
