"""The controller and the proxy together (manifests mode): --default-backend-service serves
unmatched requests and the custom-http-errors pages, from-to-www-redirect answers for the other
name in both directions (over HTTPS with the certificate that covers it), use-port-in-redirects
puts the port in the Location, temporal-redirect-code picks the redirect status."""

import base64
import json
import os
import socket
import ssl
import subprocess

import proxyutil as pu
from test_custom_errors import App, ErrorPages

CONTROLLER_BIN = os.path.join(pu.BUILD_DIR, "weir-controller")


def ingress(name, host, ts, annotations, tls=None):
    ann = "".join(f"\n    nginx.ingress.kubernetes.io/{k}: {json.dumps(v)}"
                  for k, v in annotations.items())
    return f"""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: default
  creationTimestamp: '2026-01-0{ts}T00:00:00Z'
  annotations:{ann or " {}"}
spec:
  ingressClassName: weir{tls_block(host, tls)}
  rules:
  - host: {host}
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: web
            port:
              number: 80
"""


def tls_block(host, secret):
    if not secret:
        return ""
    return f"""
  tls:
  - hosts:
    - {host}
    secretName: {secret}"""


def tls_secret(name, names, workdir):
    """A kubernetes.io/tls Secret whose self-signed certificate covers names; (yaml, DER)."""
    crt, key = os.path.join(workdir, f"{name}.crt"), os.path.join(workdir, f"{name}.key")
    san = ",".join(f"DNS:{n}" for n in names)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", crt,
                    "-days", "30", "-subj", f"/CN={names[0]}", "-addext",
                    f"subjectAltName={san}"], check=True, capture_output=True)
    der = subprocess.run(["openssl", "x509", "-in", crt, "-outform", "DER"], check=True,
                         capture_output=True).stdout

    def b64(path):
        with open(path, "rb") as f:
            return base64.b64encode(f.read()).decode()

    return f"""apiVersion: v1
kind: Secret
metadata:
  name: {name}
  namespace: default
type: kubernetes.io/tls
data:
  tls.crt: {b64(crt)}
  tls.key: {b64(key)}
""", der


def https(proxy, sni, path):
    """GET over TLS with SNI and Host sni: (response, the server certificate in DER)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", proxy.https_port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname=sni)
    try:
        der = s.getpeercert(binary_form=True)
        c = pu.RawConn(0, sock=s)
        c.send(f"GET {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n".encode())
        return c.read_response(), der
    finally:
        s.close()


def service(name, port):
    return f"""apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: default
spec:
  ports:
  - name: http
    port: 80
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-1
  namespace: default
  labels:
    kubernetes.io/service-name: {name}
addressType: IPv4
ports:
- name: http
  port: {port}
endpoints:
- addresses:
  - 127.0.0.1
  conditions:
    ready: true
"""


CLASS = """apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: weir
spec:
  controller: weir.dev/ingress-controller
"""


def send(proxy, host, path):
    return pu.request(proxy.http_port, (f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
                                        "Connection: close\r\n\r\n").encode())


def test_default_backend_service_error_pages_and_redirects(proxy_bin, tmp_path):
    assert os.path.exists(CONTROLLER_BIN), f"weir-controller missing at {CONTROLLER_BIN}"
    app, pages = App(), ErrorPages()
    p = None
    try:
        man = tmp_path / "manifests"
        man.mkdir()
        both, both_der = tls_secret("secure-tls", ["secure.test", "www.secure.test"],
                                    str(tmp_path))
        one, one_der = tls_secret("narrow-tls", ["narrow.test"], str(tmp_path))
        (man / "objects.yaml").write_text("---\n".join(
            [CLASS, service("web", app.port), service("pages", pages.port), both, one]))
        (man / "ingresses.yaml").write_text("---\n".join([
            ingress("shop", "shop.test", 1, {"custom-http-errors": "503",
                                             "from-to-www-redirect": "true"}),
            ingress("blog", "www.blog.test", 2, {"from-to-www-redirect": "true"}),
            ingress("moved", "moved.test", 3, {"temporal-redirect": "https://new.test/",
                                               "temporal-redirect-code": "307"}),
            ingress("secure", "secure.test", 4, {"from-to-www-redirect": "true"}, "secure-tls"),
            ingress("narrow", "narrow.test", 5, {"from-to-www-redirect": "true"}, "narrow-tls"),
            ingress("ported", "ported.test", 6, {"from-to-www-redirect": "true",
                                                 "use-port-in-redirects": "true"}, "narrow-tls"),
        ]))
        pub = tmp_path / "pub"
        pub.mkdir()
        proc = subprocess.run([CONTROLLER_BIN, "--manifests", str(man), "--publish", str(pub),
                               "--once", "--log-format", "text",
                               "--default-backend-service", "default/pages"],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        # the proxy reads what the controller published (index and shards)
        p = pu.Proxy(str(pub), str(tmp_path / "proxy.log"))
        p.wait_ready()

        # no rule matches: the default backend service answers, without X-Code
        r = send(p, "nobody.test", "/anything")
        assert r.status == 200 and r.get("X-Error-Page") == "yes", r
        assert "X-Code" not in r.json()["headers"]

        # a listed code from the app: the default backend's page, with X-Code & co
        pages.seen.clear()
        r = send(p, "shop.test", "/s/503")
        assert r.status == 503 and r.get("X-Error-Page") == "yes", r
        h = r.json()["headers"]
        assert (h["X-Code"], h["X-Namespace"], h["X-Ingress-Name"], h["X-Service-Name"],
                h["X-Service-Port"], h["X-Original-URI"]) == (
            "503", "default", "shop", "web", "80", "/s/503"), h
        # a code not listed passes through
        r = send(p, "shop.test", "/s/404")
        assert r.status == 404 and r.body == b"app 404", r

        # from-to-www-redirect, both directions, query and client port kept
        r = send(p, "www.shop.test", "/a/b?c=1")
        assert r.status == 308 and r.get("Location") == "http://shop.test/a/b?c=1", r
        r = send(p, "www.shop.test:8080", "/x")
        assert r.status == 308 and r.get("Location") == "http://shop.test:8080/x", r
        r = send(p, "blog.test", "/post/1")
        assert r.status == 308 and r.get("Location") == "http://www.blog.test/post/1", r
        r = send(p, "www.blog.test", "/post/1")
        assert r.status == 200 and r.body == b"app 200", r

        # over HTTPS the twin is served with the host's certificate when it covers the twin
        r, der = https(p, "www.secure.test", "/p?q=1")
        assert der == both_der
        assert r.status == 308 and r.get("Location") == "https://secure.test/p?q=1", r
        r, der = https(p, "secure.test", "/p")
        assert der == both_der and r.status == 200 and r.body == b"app 200", r
        # plain HTTP to the twin goes straight to the other name (no https hop first)
        r = send(p, "www.secure.test", "/p")
        assert r.status == 308 and r.get("Location") == "http://secure.test/p", r
        # a certificate that does not cover the twin: the default one is presented there
        r, der = https(p, "www.narrow.test", "/p")
        assert der != one_der
        assert r.status == 308 and r.get("Location") == "https://narrow.test/p", r
        assert "does not cover www.narrow.test" in proc.stdout + proc.stderr

        # use-port-in-redirects: the HTTPS listen port in the ssl-redirect, the port the
        # request came in on in the www one
        r = send(p, "ported.test", "/p")
        assert r.status == 308, r
        assert r.get("Location") == f"https://ported.test:{p.https_port}/p", r
        r = send(p, "www.ported.test:9999", "/p")
        assert r.status == 308, r
        assert r.get("Location") == f"http://ported.test:{p.http_port}/p", r

        # temporal-redirect-code
        r = send(p, "moved.test", "/x")
        assert r.status == 307 and r.get("Location") == "https://new.test/", r
    finally:
        if p:
            p.stop()
        app.server.shutdown()
        pages.server.shutdown()
