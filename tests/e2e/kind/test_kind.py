"""User-level scenarios through the kind node's NodePorts: HTTP routing,
WebSocket echo that survives an Ingress update, TLS termination with SNI.
Run by tests/e2e/kind/run.sh, which sets up the cluster."""
import asyncio
import json
import os
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request

import websockets

HTTP = os.environ.get("WEIR_E2E_HTTP", "127.0.0.1:30080")
HTTPS = os.environ.get("WEIR_E2E_HTTPS", "127.0.0.1:30443")
KUBECTL = os.environ.get("KUBECTL", "kubectl")


def kubectl(*args, input=None):
    return subprocess.run([KUBECTL, *args], input=input, text=True, capture_output=True,
                          check=True).stdout


def ingress(name, host, path, annotations=None, tls_secret=None):
    spec = {"ingressClassName": "weir", "rules": [{"host": host, "http": {"paths": [
        {"path": path, "pathType": "Prefix",
         "backend": {"service": {"name": "echo", "port": {"name": "http"}}}}]}}]}
    if tls_secret:
        spec["tls"] = [{"hosts": [host], "secretName": tls_secret}]
    return json.dumps({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                       "metadata": {"name": name, "namespace": "default",
                                    "annotations": annotations or {}}, "spec": spec})


def get(path, host, timeout=60):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(f"http://{HTTP}{path}", headers={"Host": host})
            with urllib.request.urlopen(req, timeout=3) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            last = e.code
        except OSError as e:
            last = e
        time.sleep(0.5)
    raise AssertionError(f"GET {host}{path}: never 200 (last {last})")


def test_http_routing():
    kubectl("apply", "-f", "-", input=ingress("e2e-http", "http.e2e.test", "/"))
    status, body = get("/some/path?x=1", "http.e2e.test")
    assert status == 200
    assert body["path"] == "/some/path" and body["query"] == "x=1"
    assert body["host"] == "http.e2e.test"
    assert body["headers"].get("X-Forwarded-Proto") == "http"


def test_websocket_survives_ingress_update():
    kubectl("apply", "-f", "-", input=ingress("e2e-ws", "ws.e2e.test", "/"))
    get("/", "ws.e2e.test")

    async def run():
        # The URI names the virtual host (the Host header); the socket goes to the NodePort on
        # loopback. (additional_headers={"Host": ...} would send a second Host header, which
        # a conforming proxy answers with 400.)
        addr, port = HTTP.rsplit(":", 1)
        sock = socket.create_connection((addr, int(port)), timeout=5)
        async with websockets.connect(f"ws://ws.e2e.test:{port}/socket", sock=sock,
                                      open_timeout=10) as ws:
            hello = json.loads(await ws.recv())
            assert hello["hello"] == "kind-echo"
            for i in range(200):
                if i == 50:
                    kubectl("apply", "-f", "-", input=ingress(
                        "e2e-ws", "ws.e2e.test", "/",
                        {"weir.dev/websocket-idle-timeout": "600"}))
                msg = f"message {i} " + "x" * i
                await ws.send(msg)
                assert await ws.recv() == msg
                await asyncio.sleep(0.02)

    asyncio.run(run())


def test_tls_with_sni():
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=tls.e2e.test", "-addext", "subjectAltName=DNS:tls.e2e.test",
                        "-keyout", f"{d}/k.pem", "-out", f"{d}/c.pem"], check=True,
                       capture_output=True)
        manifest = kubectl("create", "secret", "tls", "e2e-tls", "--cert", f"{d}/c.pem",
                           "--key", f"{d}/k.pem", "--dry-run=client", "-o", "yaml")
        kubectl("apply", "-f", "-", input=manifest)
        kubectl("apply", "-f", "-", input=ingress("e2e-tls", "tls.e2e.test", "/",
                                                  tls_secret="e2e-tls"))
        ctx = ssl.create_default_context(cafile=f"{d}/c.pem")
        host, port = HTTPS.rsplit(":", 1)
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection((host, int(port)), timeout=3) as raw:
                    with ctx.wrap_socket(raw, server_hostname="tls.e2e.test") as s:
                        s.sendall(b"GET /secure HTTP/1.1\r\nHost: tls.e2e.test\r\n"
                                  b"Connection: close\r\n\r\n")
                        data = b""
                        while chunk := s.recv(65536):
                            data += chunk
                break
            except (OSError, ssl.SSLError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert json.loads(body)["headers"].get("X-Forwarded-Proto") == "https"
        # plain HTTP to a TLS host is redirected (ssl-redirect defaults to true)
        req = urllib.request.Request(f"http://{HTTP}/secure", headers={"Host": "tls.e2e.test"})
        opener = urllib.request.build_opener(NoRedirect)
        try:
            opener.open(req, timeout=5)
            raise AssertionError("expected a redirect")
        except urllib.error.HTTPError as e:
            assert e.code == 308
            assert e.headers["Location"] == "https://tls.e2e.test/secure"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
