"""custom-http-errors as a client and the error backend see it: an upstream answer (or the
proxy's own 502/503/504) whose code is listed is replaced by the error backend's answer to a
request for "/" carrying X-Code and its companions (ingress-nginx's custom error pages);
codes not listed pass through."""

import http.server
import json
import socket
import threading

import pytest

import proxyutil as pu


class App:
    """Answers /s/NNN with status NNN and body "app NNN"; anything else 200 "app"."""

    def __init__(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                parts = self.path.split("?")[0].split("/")
                status = int(parts[-1]) if len(parts) > 2 and parts[-2] == "s" else 200
                out = f"app {status}".encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_HEAD = _answer

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class ErrorPages:
    """Like ingress-nginx's custom-error-pages image: answers with the status named by
    X-Code (200 without one) and a JSON body of the method, path and headers it got."""

    def __init__(self):
        owner = self
        self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                got = {"method": self.command, "path": self.path,
                       "headers": {k: v for k, v in self.headers.items()}}
                owner.seen.append(got)
                status = int(self.headers.get("X-Code") or 200)
                out = json.dumps(got).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Error-Page", "yes")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(out)

            do_GET = do_POST = do_HEAD = _answer

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def app():
    a = App()
    yield a
    a.server.shutdown()


@pytest.fixture(scope="module")
def pages():
    p = ErrorPages()
    yield p
    p.server.shutdown()


def table(app, pages, dead):
    def ep(port):
        return [{"address": "127.0.0.1", "port": port}]

    def route(path, backend, **policy):
        return {"path": path, "match": "prefix", "backend": backend, "source": "shop/web",
                "policy": policy}

    return {"version": 1, "generation": 1,
            "hosts": [{"name": "", "routes": [
                route("/nopage", 0, custom_errors=[503]),
                route("/down", 3, custom_errors=[502, 504]),
                route("/noep", 4, custom_errors=[503], error_backend=2),
                route("/plain", 0),
                route("/", 0, custom_errors=[404, 503], error_backend=2),
            ]}],
            "backends": [{"name": "shop/web:8080", "endpoints": ep(app.port)},
                         {"name": "shop/unused:80", "endpoints": ep(app.port)},
                         {"name": "shop/errors:80", "endpoints": ep(pages.port)},
                         {"name": "shop/gone:80", "endpoints": ep(dead)},
                         {"name": "shop/empty:80", "endpoints": []}]}


@pytest.fixture(scope="module")
def proxy(proxy_bin, app, pages, tmp_path_factory):
    d = tmp_path_factory.mktemp("custom-errors")
    routes = d / "routes"
    routes.mkdir()
    t = table(app, pages, closed_port())
    t["hosts"][0]["routes"][1]["policy"]["error_backend"] = 2
    pu.write_table(str(routes), t)
    p = pu.Proxy(str(routes), str(d / "proxy.log"))
    p.wait_ready()
    yield p
    p.stop()


def send(proxy, path, extra=""):
    head = (f"GET {path} HTTP/1.1\r\nHost: shop.example\r\nAccept: application/json\r\n"
            f"{extra}Connection: close\r\n\r\n")
    return pu.request(proxy.http_port, head.encode())


def test_listed_upstream_code_gets_the_error_backend_answer(proxy, pages):
    pages.seen.clear()
    r = send(proxy, "/s/503?x=1")
    assert r.status == 503, r
    assert r.get("X-Error-Page") == "yes", r
    got = r.json()
    assert got["method"] == "GET" and got["path"] == "/"
    h = got["headers"]
    assert h["X-Code"] == "503"
    assert h["X-Format"] == "application/json"
    assert h["X-Original-URI"] == "/s/503?x=1"
    assert h["X-Namespace"] == "shop" and h["X-Ingress-Name"] == "web"
    assert h["X-Service-Name"] == "web" and h["X-Service-Port"] == "8080"
    assert len(h["X-Request-ID"]) == 32
    assert h["Host"] == "shop.example"
    assert h["X-Forwarded-For"] == "127.0.0.1"
    assert len(pages.seen) == 1


def test_another_listed_code_404(proxy):
    r = send(proxy, "/s/404")
    assert r.status == 404 and r.json()["headers"]["X-Code"] == "404", r


def test_codes_not_listed_pass_through(proxy, pages):
    pages.seen.clear()
    for code, path in ((500, "/s/500"), (200, "/ok"), (503, "/plain/s/503")):
        r = send(proxy, path)
        assert r.status == code and r.body == f"app {code}".encode(), r
    assert pages.seen == []


def test_client_x_code_header_is_replaced(proxy):
    r = send(proxy, "/s/503", "X-Code: 999\r\nX-Custom: kept\r\n")
    h = r.json()["headers"]
    assert h["X-Code"] == "503" and h["X-Custom"] == "kept", r


def test_post_body_is_not_sent_to_the_error_backend(proxy):
    r = pu.request(proxy.http_port,
                   b"POST /s/503 HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 5\r\n"
                   b"Connection: close\r\n\r\nhello", "POST")
    got = r.json()
    assert r.status == 503 and got["method"] == "POST", r
    assert got["headers"]["Content-Length"] == "0"


def test_keep_alive_continues_after_an_error_page(proxy):
    c = pu.RawConn(proxy.http_port)
    try:
        for path, code in (("/s/503", 503), ("/ok", 200), ("/s/404", 404)):
            c.send(f"GET {path} HTTP/1.1\r\nHost: shop.example\r\n\r\n".encode())
            r = c.read_response()
            assert r.status == code, r
    finally:
        c.close()


def test_upstream_down_502_goes_to_the_error_backend(proxy):
    r = send(proxy, "/down/x")
    assert r.status == 502 and r.get("X-Error-Page") == "yes", r
    h = r.json()["headers"]
    assert h["X-Code"] == "502" and h["X-Service-Name"] == "gone", h


def test_no_endpoints_503_goes_to_the_error_backend(proxy):
    r = send(proxy, "/noep/x")
    assert r.status == 503 and r.json()["headers"]["X-Service-Name"] == "empty", r


def test_without_error_backend_a_listed_code_becomes_404(proxy):
    # no default backend to ask: ingress-nginx's built-in one answers 404
    r = send(proxy, "/nopage/s/503")
    assert r.status == 404 and b"default backend - 404" in r.body, r


def test_error_backend_down_answers_502_itself(fresh_proxy, app):
    dead = closed_port()
    t = table(app, app, dead)
    t["backends"][2]["endpoints"] = [{"address": "127.0.0.1", "port": dead}]
    p = fresh_proxy(t)
    r = send(p, "/s/503")
    assert r.status == 502 and r.get("X-Error-Page") is None, r
