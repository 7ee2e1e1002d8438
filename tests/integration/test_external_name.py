"""Services of type ExternalName (issue 11): weir-controller (--manifests mode, where
loopback names are allowed) writes the name and port into the table, and weir-proxy
resolves it asynchronously and serves through it. The name is "localhost" (from
/etc/hosts, no network); a name under .invalid (RFC 6761, never resolves) answers 502,
as ingress-nginx does for an ExternalName it cannot resolve. The Host sent upstream
stays the request's (or upstream-vhost's), as ingress-nginx sends it."""

import json
import os
import socket
import subprocess
import time

from websockets.sync.client import connect

import proxyutil as pu
import routetable

CONTROLLER_BIN = os.path.join(pu.BUILD_DIR, "weir-controller")
MISSING = "weir-it-missing.invalid"


def ingress(name, host, service, annotations=None):
    ann = "".join(f"\n    {k}: {json.dumps(v)}" for k, v in (annotations or {}).items())
    return f"""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: default
  creationTimestamp: '2026-01-01T00:00:00Z'
  annotations:{ann or " {}"}
spec:
  ingressClassName: weir
  rules:
  - host: {host}
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: {service}
            port:
              number: 80
"""


def external_service(name, external_name, target_port):
    return f"""apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: default
spec:
  type: ExternalName
  externalName: {external_name}
  ports:
  - port: 80
    targetPort: {target_port}
"""


def header(r, name):
    return [v for k, v in r.json()["headers"] if k.lower() == name.lower()]


def test_external_name_resolves_and_serves(proxy_bin, tmp_path):
    assert os.path.exists(CONTROLLER_BIN), f"weir-controller missing at {CONTROLLER_BIN}"
    echo_port, ws_port = pu.free_port(), pu.free_port()
    # The backends listen on every address of localhost (127.0.0.1, and ::1 where
    # /etc/hosts lists it): the proxy takes the addresses in turn.
    procs = [pu.start_backend("echo_http.py", echo_port, str(tmp_path / "echo.log"),
                              "--name", "ext", "--host", "localhost"),
             pu.start_backend("ws_echo.py", ws_port, str(tmp_path / "ws.log"),
                              "--host", "localhost")]
    try:
        man = tmp_path / "manifests"
        man.mkdir()
        (man / "objects.yaml").write_text("---\n".join([
            """apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: weir
spec:
  controller: weir.dev/ingress-controller
""",
            external_service("local", "localhost", echo_port),
            external_service("localws", "localhost", ws_port),
            external_service("missing", MISSING, echo_port),
        ]))
        (man / "ingresses.yaml").write_text("---\n".join([
            ingress("ext", "ext.test", "local"),
            ingress("vhost", "vhost.test", "local",
                    {"nginx.ingress.kubernetes.io/upstream-vhost": "internal.example"}),
            ingress("ws", "ws.test", "localws"),
            ingress("missing", "missing.test", "missing",
                    {"nginx.ingress.kubernetes.io/proxy-connect-timeout": "3"}),
        ]))
        pub = tmp_path / "pub"
        pub.mkdir()
        proc = subprocess.run([CONTROLLER_BIN, "--manifests", str(man), "--publish", str(pub),
                               "--once", "--log-format", "text"],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        table = routetable.load(pub)
        backends = {b["name"]: b for b in table["backends"]}
        assert backends["default/local:80"] == {
            "name": "default/local:80", "endpoints": [], "external_name": "localhost",
            "external_port": echo_port}, backends
        assert backends["default/missing:80"]["external_name"] == MISSING

        routes = tmp_path / "routes"
        routes.mkdir()
        pu.write_raw_table(str(routes), routetable.v1_bytes(pub))
        p = pu.Proxy(str(routes), str(tmp_path / "proxy.log"), workers=2)
        procs.append(p.proc)
        p.wait_ready()

        # The first request waits for the lookup; the later ones (both workers, new
        # connections each time) are served from each worker's answer.
        for i in range(6):
            r = pu.get(p.http_port, f"/hello/{i}?q=1", host="ext.test")
            assert r.status == 200, (r, p.log_tail())
            assert r.json()["name"] == "ext" and r.json()["path"] == f"/hello/{i}", r
            assert header(r, "Host") == ["ext.test"], r.json()["headers"]

        r = pu.get(p.http_port, "/", host="vhost.test")
        assert r.status == 200, (r, p.log_tail())
        assert header(r, "Host") == ["internal.example"], r.json()["headers"]

        # A WebSocket through an ExternalName.
        sock = socket.create_connection(("127.0.0.1", p.http_port), timeout=5)
        with connect(f"ws://ws.test:{p.http_port}/chat", sock=sock, proxy=None) as ws:
            ws.send("over the external name")
            assert ws.recv(timeout=5) == "over the external name"

        # Never resolved: 502, the first time (after the lookup) and at once after.
        t0 = time.monotonic()
        r = pu.get(p.http_port, "/", host="missing.test")
        assert r.status == 502, (r, p.log_tail())
        r = pu.get(p.http_port, "/", host="missing.test")
        assert r.status == 502, (r, p.log_tail())
        assert time.monotonic() - t0 < 10
        assert f"ExternalName {MISSING} did not resolve" in p.log_tail()
        # The other hosts are unaffected.
        r = pu.get(p.http_port, "/again", host="ext.test")
        assert r.status == 200 and r.json()["path"] == "/again", r
    finally:
        for proc in reversed(procs):
            pu.stop_process(proc)
