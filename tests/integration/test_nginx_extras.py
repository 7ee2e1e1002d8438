"""ingress-nginx annotations compiled by weir-controller --manifests --once and served by
weir-proxy, seen from a client: proxy-redirect-from/-to (Location and Refresh),
proxy-cookie-domain/-path (Set-Cookie), canary-by-header-pattern, canary-weight-total,
upstream-hash-by-subset, custom-headers, session-cookie-domain with
-conditional-samesite-none, and session-cookie-change-on-failure.

The upstreams are small HTTP servers started here, each on its own loopback address
(127.0.0.11...) and one shared port, so that one EndpointSlice can list several of them."""

import http.server
import json
import os
import socket
import socketserver
import subprocess
import threading

import pytest
import yaml

import proxyutil as pu

CONTROLLER_BIN = os.path.join(pu.BUILD_DIR, "weir-controller")
UPSTREAMS = [f"127.0.0.{11 + i}" for i in range(8)]  # s0..s7
DEAD = "127.0.0.40"  # nothing listens there

MODERN_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Chrome/120.0.0.0 Safari/537.36")
CHROME_51 = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Chrome/51.0.2704.103 Safari/537.36")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        # head and body go out in two writes: without this, Nagle and delayed ACKs
        # cost 40 ms per keep-alive request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        headers = []
        status = 200
        if path == "/redirect":
            status = 302
            headers = [("Location", "http://backend.internal:8080/login?next=/x"),
                       ("Refresh", "3; url=http://backend.internal:8080/r")]
        elif path == "/redirect-other":
            status = 302
            headers = [("Location", "https://elsewhere.test/backend.internal:8080/")]
        elif path == "/cookies":
            headers = [("Set-Cookie", "a=1; Domain=backend.internal; Path=/internal/x"),
                       ("Set-Cookie", "b=2; Path=/other; Domain=.Backend.Internal; HttpOnly"),
                       ("Set-Cookie", "c=3; Domain=other.internal; Path=/internal/")]
        elif path == "/framing":
            headers = [("X-Frame-Options", "SAMEORIGIN")]
        body = json.dumps({"name": self.server.name, "path": self.path}).encode()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def fnv1a64(text: str) -> str:
    h = 0xcbf29ce484222325
    for b in text.encode():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def manifests(port):
    def svc(name, addresses):
        return [{"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": name, "namespace": "default"},
                 "spec": {"ports": [{"name": "http", "port": 80, "targetPort": port}]}},
                {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                 "metadata": {"name": f"{name}-1", "namespace": "default",
                              "labels": {"kubernetes.io/service-name": name}},
                 "addressType": "IPv4", "ports": [{"name": "http", "port": port}],
                 "endpoints": [{"addresses": [a], "conditions": {"ready": True}}
                               for a in addresses]}]

    def ingress(name, host, service, annotations, created="2026-01-01T00:00:00Z"):
        return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": name, "namespace": "default",
                             "creationTimestamp": created,
                             "annotations": {f"nginx.ingress.kubernetes.io/{k}": v
                                             for k, v in annotations.items()}},
                "spec": {"ingressClassName": "weir", "rules": [{"host": host, "http": {
                    "paths": [{"path": "/", "pathType": "Prefix", "backend": {
                        "service": {"name": service, "port": {"number": 80}}}}]}}]}}

    def canary(name, host, annotations):
        return ingress(name, host, "canary", {"canary": "true", **annotations},
                       created="2026-01-02T00:00:00Z")

    objs = [{"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
             "metadata": {"name": "weir"}, "spec": {"controller": "weir.dev/ingress-controller"}},
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "weir", "namespace": "weir-system"},
             "data": {"global-allowed-response-headers": "X-Frame-Options,X-Served-By"}},
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "resp-hdrs", "namespace": "default"},
             "data": {"X-Frame-Options": "DENY", "X-Served-By": "weir"}}]
    objs += svc("main", [UPSTREAMS[0]]) + svc("canary", [UPSTREAMS[1]])
    objs += svc("six", UPSTREAMS[2:8]) + svc("half-dead", [UPSTREAMS[0], DEAD])
    objs += [
        ingress("rw", "rw.test", "main", {
            "proxy-redirect-from": "http://backend.internal:8080/",
            "proxy-redirect-to": "https://rw.test/app/",
            "proxy-cookie-domain": "backend.internal rw.test",
            "proxy-cookie-path": "/internal/ /app/"}),
        ingress("plain", "plain.test", "main", {}),
        ingress("pat-main", "pattern.test", "main", {}),
        canary("pat-canary", "pattern.test", {"canary-by-header": "X-Canary",
                                              "canary-by-header-pattern": "^(beta|v2)$"}),
        ingress("wt-main", "weight.test", "main", {}),
        canary("wt-canary", "weight.test", {"canary-weight": "250",
                                            "canary-weight-total": "1000"}),
        ingress("subset", "subset.test", "six", {"upstream-hash-by": "$arg_k",
                                                 "upstream-hash-by-subset": "true"}),
        ingress("hashed", "hashed.test", "six", {"upstream-hash-by": "$arg_k"}),
        ingress("custom", "custom.test", "main", {"custom-headers": "resp-hdrs"}),
        ingress("aff", "aff.test", "main", {
            "affinity": "cookie", "session-cookie-name": "S",
            "session-cookie-domain": ".aff.test", "session-cookie-samesite": "None",
            "session-cookie-secure": "true",
            "session-cookie-conditional-samesite-none": "true"}),
        ingress("cof", "cof.test", "half-dead", {
            "affinity": "cookie", "session-cookie-name": "S",
            "session-cookie-change-on-failure": "true"}),
        ingress("nocof", "nocof.test", "half-dead", {
            "affinity": "cookie", "session-cookie-name": "S"}),
    ]
    return objs


@pytest.fixture(scope="module")
def xproxy(proxy_bin, tmp_path_factory):
    d = tmp_path_factory.mktemp("extras")
    port = pu.free_port()
    servers = []
    try:
        for i, addr in enumerate(UPSTREAMS):
            s = Server((addr, port), Handler)
            s.name = f"s{i}"
            threading.Thread(target=s.serve_forever, daemon=True).start()
            servers.append(s)
        mdir, routes = d / "manifests", d / "routes"
        mdir.mkdir()
        routes.mkdir()
        with open(mdir / "objects.yaml", "w") as f:
            yaml.safe_dump_all(manifests(port), f)
        proc = subprocess.run([CONTROLLER_BIN, "--manifests", str(mdir), "--publish",
                               str(routes), "--once", "--metrics-port", "0"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert "Warning" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
        p = pu.Proxy(str(routes), str(d / "proxy.log"), workers=2)
        try:
            p.wait_ready()
            p.upstream_port = port
            yield p
        finally:
            p.stop()
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()


def get(p, host, path, extra=""):
    return pu.get(p.http_port, path, host=host, extra=extra)


def name_of(resp):
    assert resp.status == 200, resp
    return resp.json()["name"]


def test_location_and_refresh_rewritten(xproxy):
    r = get(xproxy, "rw.test", "/redirect")
    assert r.status == 302, r
    assert r.get("Location") == "https://rw.test/app/login?next=/x"
    assert r.get("Refresh") == "3; url=https://rw.test/app/r"
    # only a value that starts with the -from text changes
    r = get(xproxy, "rw.test", "/redirect-other")
    assert r.get("Location") == "https://elsewhere.test/backend.internal:8080/"
    # without the annotations the upstream's Location passes as it is
    r = get(xproxy, "plain.test", "/redirect")
    assert r.get("Location") == "http://backend.internal:8080/login?next=/x"
    assert r.get("Refresh") == "3; url=http://backend.internal:8080/r"


def test_set_cookie_domain_and_path_rewritten(xproxy):
    r = get(xproxy, "rw.test", "/cookies")
    assert r.status == 200, r
    assert r.get_all("Set-Cookie") == [
        "a=1; Domain=rw.test; Path=/app/x",
        "b=2; Path=/other; Domain=.rw.test; HttpOnly",
        "c=3; Domain=other.internal; Path=/app/",
    ]
    r = get(xproxy, "plain.test", "/cookies")
    assert r.get_all("Set-Cookie")[0] == "a=1; Domain=backend.internal; Path=/internal/x"


def test_canary_by_header_pattern(xproxy):
    for value, want in (("beta", "s1"), ("v2", "s1"), ("v2x", "s0"), ("Beta", "s0"),
                        ("always", "s0"), (None, "s0")):
        extra = f"X-Canary: {value}\r\n" if value is not None else ""
        for _ in range(5):
            assert name_of(get(xproxy, "pattern.test", "/", extra)) == want, value


def test_canary_weight_total_share(xproxy):
    # 250 of 1000: a quarter. 1200 requests give 300 expected, standard deviation 15;
    # the bounds are 5 deviations out, so the test does not flake.
    n, canary = 1200, 0
    conn = pu.RawConn(xproxy.http_port, 10)
    try:
        for _ in range(n):
            conn.send(b"GET / HTTP/1.1\r\nHost: weight.test\r\n\r\n")
            canary += name_of(conn.read_response("GET")) == "s1"
    finally:
        conn.close()
    assert 225 <= canary <= 375, canary


def test_hash_by_subset_spreads_within_a_subset(xproxy):
    seen_all = set()
    subsets = set()
    for k in range(24):
        names = {name_of(get(xproxy, "subset.test", f"/?k=key{k}")) for _ in range(45)}
        # one key: the 3 endpoints of its subset, each drawn at random (a member left
        # out of 45 draws: about 3 * (2/3)^45, 4e-8)
        assert len(names) == 3, (k, names)
        subsets.add(frozenset(names))
        seen_all |= names
        # plain upstream-hash-by: one endpoint per key
        assert len({name_of(get(xproxy, "hashed.test", f"/?k=key{k}")) for _ in range(5)}) == 1
    # six endpoints in subsets of 3: both subsets get keys
    assert seen_all == {f"s{i}" for i in range(2, 8)}, seen_all
    assert len(subsets) == 2, subsets


def test_custom_headers_on_responses(xproxy):
    r = get(xproxy, "custom.test", "/framing")
    assert r.status == 200, r
    # replaces the upstream's header of that name, adds the others
    assert r.get_all("X-Frame-Options") == ["DENY"]
    assert r.get_all("X-Served-By") == ["weir"]
    r = get(xproxy, "plain.test", "/framing")
    assert r.get_all("X-Frame-Options") == ["SAMEORIGIN"]
    assert r.get("X-Served-By") is None


def test_session_cookie_domain_and_conditional_samesite(xproxy):
    ident = fnv1a64(f"{UPSTREAMS[0]}:{xproxy.upstream_port}")
    r = get(xproxy, "aff.test", "/", f"User-Agent: {MODERN_UA}\r\n")
    assert r.get("Set-Cookie") == f"S={ident}; Path=/; Domain=.aff.test; Secure; SameSite=None; HttpOnly"
    r = get(xproxy, "aff.test", "/", f"User-Agent: {CHROME_51}\r\n")
    assert r.get("Set-Cookie") == f"S={ident}; Path=/; Domain=.aff.test; Secure; HttpOnly"


def test_session_cookie_change_on_failure(xproxy):
    dead = fnv1a64(f"{DEAD}:{xproxy.upstream_port}")
    live = fnv1a64(f"{UPSTREAMS[0]}:{xproxy.upstream_port}")
    # the cookie names the endpoint nothing listens on: the retry goes to the other
    # one, and with change-on-failure the cookie follows it
    r = get(xproxy, "cof.test", "/", f"Cookie: S={dead}\r\n")
    assert name_of(r) == "s0"
    assert r.get("Set-Cookie") == f"S={live}; Path=/; HttpOnly"
    # without it the client keeps its cookie (no Set-Cookie)
    r = get(xproxy, "nocof.test", "/", f"Cookie: S={dead}\r\n")
    assert name_of(r) == "s0"
    assert r.get("Set-Cookie") is None
