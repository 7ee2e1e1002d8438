"""One bad value never costs the other hosts their routes (issue 7): weir-controller
compiles a manifests directory holding Ingresses with values the proxy's table reader
refuses (a server-alias with an empty label, a session-cookie-path with ';', a path with a
line feed) next to good ones; a weir-proxy started fresh on that table serves the good
hosts. As a control, the same table with the bad alias put back in as a host is refused
whole by a fresh proxy (503 for every host), which is what happened before compile ran
the proxy's rules itself."""

import json
import os
import subprocess
import time

import proxyutil as pu
import routetable

CONTROLLER_BIN = os.path.join(pu.BUILD_DIR, "weir-controller")


def ingress(name, host, ts, path="/", annotations=None):
    """One Ingress routing host + path (a Prefix) to service web:80."""
    ann = "".join(f"\n    {k}: {json.dumps(v)}" for k, v in (annotations or {}).items())
    return f"""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: default
  creationTimestamp: '2026-01-0{ts}T00:00:00Z'
  annotations:{ann or " {}"}
spec:
  ingressClassName: weir
  rules:
  - host: {host}
    http:
      paths:
      - path: {json.dumps(path)}
        pathType: Prefix
        backend:
          service:
            name: web
            port:
              number: 80
"""


def objects(port):
    return f"""apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: weir
spec:
  controller: weir.dev/ingress-controller
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
spec:
  ports:
  - name: http
    port: 80
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: default
  labels:
    kubernetes.io/service-name: web
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


def get_status(port, host, path="/"):
    r = pu.get(port, path, host=host)
    return r.status, r


def test_bad_ingresses_never_cost_the_good_hosts(proxy_bin, tmp_path):
    assert os.path.exists(CONTROLLER_BIN), f"weir-controller missing at {CONTROLLER_BIN}"
    port = pu.free_port()
    backend = pu.start_backend("echo_http.py", port, str(tmp_path / "echo.log"),
                               "--name", "web")
    procs = [backend]
    try:
        man = tmp_path / "manifests"
        man.mkdir()
        (man / "objects.yaml").write_text(objects(port))
        (man / "ingresses.yaml").write_text("---\n".join([
            ingress("typo", "typo.test", 1,
                    annotations={"nginx.ingress.kubernetes.io/server-alias":
                                 "typo..example.com"}),
            ingress("sticky", "sticky.test", 2,
                    annotations={"nginx.ingress.kubernetes.io/affinity": "cookie",
                                 "nginx.ingress.kubernetes.io/session-cookie-path":
                                 "/app;HttpOnly"}),
            ingress("newline", "newline.test", 3, path="/a\nb"),
            ingress("good", "good.test", 4,
                    annotations={"nginx.ingress.kubernetes.io/server-alias": "alias.test",
                                 "nginx.ingress.kubernetes.io/affinity": "cookie",
                                 "nginx.ingress.kubernetes.io/session-cookie-path": "/"}),
            ingress("other", "other.test", 5),
        ]))
        pub = tmp_path / "pub"
        pub.mkdir()
        proc = subprocess.run([CONTROLLER_BIN, "--manifests", str(man), "--publish", str(pub),
                               "--once", "--log-format", "text"],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        log = proc.stdout + proc.stderr
        # Each bad Ingress is named in the log with the key or field and the reason.
        assert "server-alias" in log and "empty label" in log, log
        assert "session-cookie-path" in log and "contains ';'" in log, log
        assert "spec.rules[0].http.paths[0]" in log and "contains CR or LF" in log, log

        table = json.loads(routetable.v1_bytes(pub))  # modified below, as version 1
        names = sorted(h["name"] for h in table["hosts"])
        assert names == ["alias.test", "good.test", "other.test"], names

        routes = tmp_path / "routes"
        routes.mkdir()
        pu.write_raw_table(str(routes), routetable.v1_bytes(pub))
        p = pu.Proxy(str(routes), str(tmp_path / "proxy.log"))
        procs.append(p.proc)
        p.wait_ready()
        for host in ("good.test", "alias.test", "other.test"):
            status, r = get_status(p.http_port, host, "/hello")
            assert status == 200, (host, r, p.log_tail())
            assert r.json()["name"] == "web" and r.json()["path"] == "/hello", r
        # good.test keeps its affinity cookie with the path it asked for.
        status, r = get_status(p.http_port, "good.test")
        cookies = r.get_all("Set-Cookie")
        assert any(c.startswith("INGRESSCOOKIE=") and "Path=/" in c for c in cookies), cookies
        # The dropped Ingresses' hosts have no routes: 404, not 503.
        for host in ("typo.test", "sticky.test", "newline.test"):
            status, r = get_status(p.http_port, host, "/a")
            assert status == 404, (host, r)

        # Control: the bad alias back in as a host makes a fresh proxy refuse the table
        # whole, so it has no table and answers 503 for the good hosts too.
        table["hosts"].append({"name": "typo..example.com", "routes": []})
        bad_routes = tmp_path / "bad-routes"
        bad_routes.mkdir()
        pu.write_raw_table(str(bad_routes), json.dumps(table).encode())
        q = pu.Proxy(str(bad_routes), str(tmp_path / "proxy-bad.log"))
        procs.append(q.proc)
        deadline = time.monotonic() + 15
        status = None
        while time.monotonic() < deadline:
            try:
                status, r = get_status(q.http_port, "good.test", "/hello")
                break
            except OSError:
                time.sleep(0.05)
        assert status == 503, (status, q.log_tail())
        assert "empty label" in q.log_tail(), q.log_tail()
    finally:
        for proc in reversed(procs):
            pu.stop_process(proc)
