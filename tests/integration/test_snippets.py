"""Snippets end to end: Ingresses with configuration-snippet, server-snippet and
auth-snippet in a --manifests directory, compiled by a running weir-controller, served by
weir-proxy, checked on what a small loopback backend receives and what the client gets.

The backend here (a thread in this module) answers GET /code/NNN with status NNN, a
Server header, X-Backend-Secret and X-Dup, and the request headers it got as JSON; it counts
the requests it sees, so a test can prove that weir answered without contacting it."""

import http.server
import json
import os
import re
import threading
import urllib.request

import pytest
import yaml

import proxyutil as pu

CONTROLLER_BIN = os.path.join(pu.BUILD_DIR, "weir-controller")
N = "nginx.ingress.kubernetes.io/"


class Backend(http.server.BaseHTTPRequestHandler):
    hits = []
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 - http.server's name
        Backend.hits.append(self.path)
        m = re.match(r".*/code/(\d{3})", self.path)
        code = int(m.group(1)) if m else 200
        body = json.dumps({"path": self.path,
                           "headers": [[k, v] for k, v in self.headers.items()]}).encode()
        self.send_response(code)
        self.send_header("Server", "tiny-backend")
        self.send_header("X-Backend-Secret", "s3cret")
        self.send_header("X-Dup", "from-backend")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def backend_port():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture(scope="module")
def auth_port(tmp_path_factory):
    port = pu.free_port()
    log = str(tmp_path_factory.mktemp("snipauth") / "auth.log")
    proc = pu.start_backend("auth_server.py", port, log, "--host", "127.0.0.1")
    try:
        yield port
    finally:
        pu.stop_process(proc)


def ingress(name, path, annotations, host="snip.test"):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": "default",
                         "creationTimestamp": "2026-01-01T00:00:00Z",
                         "annotations": annotations},
            "spec": {"ingressClassName": "weir", "rules": [{"host": host, "http": {"paths": [
                {"path": path, "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}


INGRESSES = [
    ingress("reqh", "/reqh", {
        N + "configuration-snippet":
            "proxy_set_header X-Env from-snippet;\n"
            "more_set_input_headers 'X-In: $http_x_client_in' 'X-Where: $scheme://$host$request_uri';\n"
            "proxy_set_header X-Who \"$remote_addr\";\n",
        "weir.dev/request-headers": "X-Env: from-annotation\nX-Literal: $host"}),
    ingress("resph", "/resph", {
        N + "configuration-snippet":
            "add_header X-Plain plain;\n"
            "add_header X-Always always-there always;\n"
            "more_set_headers 'X-Dup: from-snippet' 'X-Req: $req_id';\n"
            "more_clear_headers Server;\n"
            "proxy_hide_header X-Backend-Secret;\n"}),
    ingress("deny", "/deny", {
        N + "configuration-snippet":
            "return 403 \"go away\";\nadd_header X-Denied yes always;\nadd_header X-Not-On-403 no;"}),
    ingress("moved", "/moved", {N + "configuration-snippet":
                                "return 301 https://new.example.test/landing;"}),
    ingress("srv", "/srv", {N + "server-snippet": "add_header X-Server-Level yes always;"}),
    ingress("other", "/other", {}),
    ingress("refused", "/refused", {N + "configuration-snippet": "lua_need_request_body on;"}),
    # rewrites: tried in order, the first that matches decides
    ingress("rw", "/rw", {N + "configuration-snippet":
                          "rewrite ^/rw/v1/(.*)$ /api/$1 break;\n"
                          "rewrite ^/rw/old/(.*)$ /rw/new/$1 permanent;\n"
                          "rewrite ^/rw/tmp$ /rw/later?from=tmp redirect;\n"
                          "rewrite ^/rw/noargs$ /rw/clean? redirect;\n"
                          "rewrite ^/rw/q$ /api/q?added=1 break;\n"
                          "rewrite ^/rw/secure(.*)$ https://$host/s$1;"}),
    ingress("rwt", "/rwt(/|$)(.*)", {N + "configuration-snippet": "rewrite ^/rwt/special$ /special break;",
                            N + "rewrite-target": "/target/$2",
                            N + "use-regex": "true"}, host="rwt.test"),
]


def write_manifests(mdir, backend_port, auth_port):
    auth = f"http://127.0.0.1:{auth_port}/check"
    objs = [
        {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
         "metadata": {"name": "weir"}, "spec": {"controller": "weir.dev/ingress-controller"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
         "spec": {"ports": [{"name": "http", "port": 80, "targetPort": backend_port}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "web-1", "namespace": "default",
                      "labels": {"kubernetes.io/service-name": "web"}},
         "addressType": "IPv4", "ports": [{"name": "http", "port": backend_port}],
         "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]},
        # the backend's Server header passes (ingress-nginx hides it by
        # default), so that more_clear_headers has one to remove
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "weir", "namespace": "default"},
         "data": {"allow-backend-server-header": "true"}},
        *INGRESSES,
        ingress("authsnip", "/authsnip", {N + "auth-url": auth,
                                          N + "auth-response-headers": "X-Auth-User",
                                          N + "auth-snippet": "proxy_set_header X-Test-Auth okplain;\n"
                                                              "proxy_set_header X-Test-Who snippet;"}),
    ]
    with open(os.path.join(mdir, "objects.yaml"), "w") as f:
        yaml.safe_dump_all(objs, f)


@pytest.fixture(scope="module")
def proxy(backend_port, auth_port, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("snippets")
    mdir, routes = tmp / "manifests", tmp / "routes"
    mdir.mkdir()
    routes.mkdir()
    write_manifests(str(mdir), backend_port, auth_port)
    ctl = pu.start_ready([CONTROLLER_BIN, "--manifests", str(mdir), "--publish", str(routes),
                          "--metrics-port", "0", "--log-format", "text"],
                         "published generation 1", str(tmp / "controller.log"))
    p = pu.Proxy(str(routes), str(tmp / "proxy.log"), workers=2)
    try:
        p.wait_ready()
        yield p
    finally:
        p.stop()
        pu.stop_process(ctl)


def hv(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


def test_request_headers_reach_the_backend(proxy):
    r = pu.get(proxy.http_port, "/reqh/x?q=1", host="Snip.TEST:8080",
               extra="X-Env: from-client\r\nX-Client-In: hello\r\n")
    assert r.status == 200, r
    h = r.json()["headers"]
    # the snippet replaces the client's header and the annotation's same-named one
    assert hv(h, "X-Env") == ["from-snippet"], h
    assert hv(h, "X-In") == ["hello"], h
    assert hv(h, "X-Where") == ["http://snip.test/reqh/x?q=1"], h
    assert hv(h, "X-Who") == ["127.0.0.1"], h
    # an annotation value stays literal
    assert hv(h, "X-Literal") == ["$host"], h


@pytest.mark.parametrize("code", [200, 404, 500])
def test_add_header_vs_always(proxy, code):
    r = pu.get(proxy.http_port, f"/resph/code/{code}", host="snip.test")
    assert r.status == code, r
    assert r.get_all("X-Always") == ["always-there"], r
    # nginx add_header without always: only on 200, 201, 204, 206, 301, 302, 303, 304, 307, 308
    assert r.get_all("X-Plain") == (["plain"] if code == 200 else []), r


@pytest.mark.parametrize("code", [200, 500])
def test_more_set_and_clear_headers(proxy, code):
    r = pu.get(proxy.http_port, f"/resph/code/{code}", host="snip.test")
    assert r.status == code, r
    assert r.get_all("X-Dup") == ["from-snippet"], r  # replaced on every status
    assert r.get("Server") is None, r                 # more_clear_headers
    assert r.get("X-Backend-Secret") is None, r       # proxy_hide_header
    # $req_id: the X-Request-ID the backend received
    sent = hv(r.json()["headers"], "X-Request-ID")
    assert len(sent) == 1 and re.fullmatch(r"[0-9a-f]{32}", sent[0]), r
    assert r.get_all("X-Req") == sent, r
    r = pu.get(proxy.http_port, "/other", host="snip.test")
    assert "tiny-backend" in r.get_all("Server"), r   # without the snippet it passes


def test_return_answers_without_the_backend(proxy):
    before = len(Backend.hits)
    r = pu.get(proxy.http_port, "/deny/anything", host="snip.test")
    assert r.status == 403, r
    assert r.body == b"go away", r
    assert r.get("Content-Type") == "text/plain; charset=utf-8", r
    assert r.get("Content-Length") == "7", r
    assert r.get_all("X-Denied") == ["yes"], r
    assert r.get("X-Not-On-403") is None, r
    assert len(Backend.hits) == before, Backend.hits


def test_return_to_head_has_no_body(proxy):
    c = pu.RawConn(proxy.http_port)
    try:
        c.send(b"HEAD /deny HTTP/1.1\r\nHost: snip.test\r\n\r\n")
        r = c.read_response("HEAD")
        assert r.status == 403 and r.get("Content-Length") == "7" and r.body == b"", r
        # the connection stays in step: the next answer is the next request's
        c.send(b"GET /deny HTTP/1.1\r\nHost: snip.test\r\n\r\n")
        r = c.read_response()
        assert r.status == 403 and r.body == b"go away", r
    finally:
        c.close()


def test_return_redirect(proxy):
    before = len(Backend.hits)
    r = pu.get(proxy.http_port, "/moved/old", host="snip.test")
    assert r.status == 301, r
    assert r.get("Location") == "https://new.example.test/landing", r
    assert len(Backend.hits) == before, Backend.hits


def test_server_snippet_applies_to_its_own_ingress_only(proxy):
    r = pu.get(proxy.http_port, "/srv/code/404", host="snip.test")
    assert r.status == 404 and r.get_all("X-Server-Level") == ["yes"], r
    r = pu.get(proxy.http_port, "/other", host="snip.test")
    assert r.status == 200 and r.get("X-Server-Level") is None, r


def test_refused_snippet_is_not_served(proxy):
    before = len(Backend.hits)
    r = pu.get(proxy.http_port, "/refused", host="snip.test")
    assert r.status == 404, r
    assert len(Backend.hits) == before


def test_auth_snippet_sets_auth_request_headers(proxy, auth_port):
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{auth_port}/_log",
                                                  method="DELETE"), timeout=5).read()
    # the client asks to be denied; the auth-snippet header replaces its own
    r = pu.get(proxy.http_port, "/authsnip/x", host="snip.test",
               extra="X-Test-Auth: deny\r\nX-Test-Who: mallory\r\n")
    assert r.status == 200, r
    assert hv(r.json()["headers"], "X-Auth-User") == ["snippet"], r
    with urllib.request.urlopen(f"http://127.0.0.1:{auth_port}/_log", timeout=5) as f:
        seen = json.loads(f.read())
    assert len(seen) == 1 and hv(seen[0]["headers"], "X-Test-Auth") == ["okplain"], seen


def test_local_answer_route_header_cap(fresh_proxy):
    """More than 4 KiB of a route's own headers: a redirect goes out without them, a fixed
    return answer becomes 500 rather than go out without them."""
    big = [{"name": f"X-Big-{i}", "value": "v" * 100} for i in range(50)]
    small = [{"name": "X-Small", "value": "s"}]

    def route(path, headers, **policy):
        return {"path": path, "match": "prefix", "backend": -1, "source": "it/cap",
                "policy": {"response_headers": headers, **policy}}

    p = fresh_proxy({"version": 1, "hosts": [{"name": "", "routes": [
        route("/redir-big", big, redirect_code=302, redirect_url="/x"),
        route("/redir-small", small, redirect_code=302, redirect_url="/x"),
        route("/ret-big", big, return_code=200, return_body="ok"),
        route("/ret-small", small, return_code=200, return_body="ok"),
    ]}]})
    r = pu.get(p.http_port, "/redir-big")
    assert r.status == 302 and r.get("Location") == "/x" and r.get("X-Big-0") is None, r
    r = pu.get(p.http_port, "/redir-small")
    assert r.status == 302 and r.get("X-Small") == "s", r
    r = pu.get(p.http_port, "/ret-big")
    assert r.status == 500, r
    r = pu.get(p.http_port, "/ret-small")
    assert r.status == 200 and r.body == b"ok" and r.get("X-Small") == "s", r


def test_rewrite_break_changes_the_target_sent(proxy):
    r = pu.get(proxy.http_port, "/rw/v1/users/7?x=1", host="snip.test")
    assert r.status == 200, r
    assert r.json()["path"] == "/api/users/7?x=1", r
    # a replacement with a query: the client's query follows after '&'
    r = pu.get(proxy.http_port, "/rw/q?b=2", host="snip.test")
    assert r.json()["path"] == "/api/q?added=1&b=2", r
    # no rewrite matches: the path goes as sent
    r = pu.get(proxy.http_port, "/rw/other", host="snip.test")
    assert r.json()["path"] == "/rw/other", r


def test_rewrite_redirects(proxy):
    before = len(Backend.hits)
    r = pu.get(proxy.http_port, "/rw/old/a/b?k=v", host="snip.test")
    assert r.status == 301 and r.get("Location") == "/rw/new/a/b?k=v", r
    r = pu.get(proxy.http_port, "/rw/tmp?k=v", host="snip.test")
    assert r.status == 302 and r.get("Location") == "/rw/later?from=tmp&k=v", r
    r = pu.get(proxy.http_port, "/rw/noargs?k=v", host="snip.test")
    assert r.status == 302 and r.get("Location") == "/rw/clean", r
    # a URL replacement is a redirect (302) without a flag
    r = pu.get(proxy.http_port, "/rw/secure/x", host="Snip.Test:8080")
    assert r.status == 302 and r.get("Location") == "https://snip.test/s/x", r
    assert len(Backend.hits) == before, Backend.hits


def test_rewrite_before_rewrite_target(proxy):
    r = pu.get(proxy.http_port, "/rwt/special", host="rwt.test")
    assert r.json()["path"] == "/special", r
    r = pu.get(proxy.http_port, "/rwt/other/x", host="rwt.test")
    assert r.json()["path"] == "/target/other/x", r
