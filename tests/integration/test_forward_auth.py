"""Forward authentication (auth-url) through a real weir-proxy and a real auth server
(tests/backends/auth_server.py): what the client gets, what the auth server and the
upstream see, and that a slow auth server does not hold up the worker."""

import base64
import hashlib
import json
import select
import socket
import ssl
import threading
import time
import urllib.request

import pytest
from websockets.sync.client import connect

import proxyutil as pu
from proxycerts import make_cert


@pytest.fixture(scope="module")
def auth_port(tmp_path_factory):
    port = pu.free_port()
    log = str(tmp_path_factory.mktemp("auth") / "auth.log")
    # Bound to every address of "localhost" (the host-name route below uses it).
    proc = pu.start_backend("auth_server.py", port, log, "--host", "localhost")
    try:
        yield port
    finally:
        pu.stop_process(proc)


@pytest.fixture(scope="module")
def tls_auth_port(tmp_path_factory):
    """The same auth server over HTTPS (self-signed: weir does not verify, as ingress-nginx)."""
    d = tmp_path_factory.mktemp("authtls")
    cert_pem, key_pem, _ = make_cert("auth.test", str(d))
    (d / "c.pem").write_text(cert_pem)
    (d / "k.pem").write_text(key_pem)
    port = pu.free_port()
    proc = pu.start_backend("auth_server.py", port, str(d / "auth.log"), "--host", "localhost",
                            "--cert", str(d / "c.pem"), "--key", str(d / "k.pem"))
    try:
        yield port
    finally:
        pu.stop_process(proc)


def auth_log(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_log", timeout=5) as r:
        return json.loads(r.read())


def clear_log(port):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/_log", method="DELETE")
    urllib.request.urlopen(req, timeout=5).read()


# {SHA} htpasswd hash of "secret" (basic authentication of the /both route).
PW_SHA = "{SHA}" + base64.b64encode(hashlib.sha1(b"secret").digest()).decode()


def r(path, backend=0, **policy):
    return {"path": path, "match": "prefix", "backend": backend, "policy": policy}


@pytest.fixture
def trap():
    """A listening socket used as a backend, to prove no connection ever reached it."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield s
    s.close()


def make_table(backends, auth_port, trap_port, tls_auth_port):
    url = f"http://127.0.0.1:{auth_port}/check?from=weir"
    dead = f"http://127.0.0.1:{backends['dead']}/check"
    ep = lambda port: [{"address": "127.0.0.1", "port": port}]  # noqa: E731
    return {
        "version": 1,
        "generation": 1,
        "hosts": [{"name": "", "routes": [
            r("/auth", ext_auth={"url": url,
                                 "response_headers": ["X-Auth-User", "X-Auth-Email"]}),
            r("/always", ext_auth={"url": url, "always_set_cookie": True}),
            r("/signin", ext_auth={"url": url, "signin": "https://login.test/start"}),
            r("/signin2", ext_auth={"url": url, "signin": "https://login.test/start?app=1",
                                    "signin_redirect_param": "return_to"}),
            r("/signin3", ext_auth={"url": url,
                                    "signin": "$scheme://$host/oauth2/start?rd=$escaped_request_uri"}),
            r("/redir", ext_auth={"url": url, "request_redirect": "https://app.test/home",
                                  "method": "POST"}),
            r("/refused", ext_auth={"url": dead}),
            r("/cached", ext_auth={"url": url, "cache_key": "$http_x_token",
                                   "cache_duration": "200 401 1s",
                                   "response_headers": ["X-Auth-User"]}),
            r("/tls", ext_auth={"url": f"https://127.0.0.1:{tls_auth_port}/check",
                                "response_headers": ["X-Auth-Email"]}),
            r("/tlsname", ext_auth={"url": f"https://localhost:{tls_auth_port}/check"}),
            r("/byname", ext_auth={"url": f"http://localhost:{auth_port}/check",
                                   "response_headers": ["X-Auth-User"]}),
            r("/timeout", read_timeout_ms=300, ext_auth={"url": url}),
            r("/wstrap", backend=2, ext_auth={"url": url}),
            r("/ws", backend=1, ext_auth={"url": url}),
            r("/both", ext_auth={"url": url, "response_headers": ["X-Auth-User"]},
              auth={"type": "basic", "realm": "staff", "users": [{"name": "alice", "hash": PW_SHA}]}),
            r("/open"),
        ]}],
        "backends": [
            {"name": "fa/echo:80", "endpoints": ep(backends["echo"])},
            {"name": "fa/ws:80", "endpoints": ep(backends["ws"])},
            {"name": "fa/trap:80", "endpoints": ep(trap_port)},
        ],
    }


@pytest.fixture
def aproxy(fresh_proxy, backends, auth_port, trap, tls_auth_port):
    clear_log(auth_port)
    # One worker: the slow-auth test needs the other request on the same event loop.
    return fresh_proxy(make_table(backends, auth_port, trap.getsockname()[1], tls_auth_port),
                       workers=1)


def hv(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


def test_allowed_request_gets_auth_response_headers(aproxy, auth_port):
    resp = pu.get(aproxy.http_port, "/auth/x?q=1", host="app.test",
                  extra="X-Test-Auth: ok\r\nX-Auth-User: mallory\r\nX-Not-Listed: mine\r\n")
    assert resp.status == 200, resp
    info = resp.json()
    # The listed headers come from the auth server; the client's own X-Auth-User is gone.
    assert hv(info["headers"], "X-Auth-User") == ["alice"], info["headers"]
    assert hv(info["headers"], "X-Auth-Email") == ["alice@example.test"], info["headers"]
    # Unlisted auth response headers do not reach the upstream; the client's pass.
    assert hv(info["headers"], "X-Not-Listed") == ["mine"], info["headers"]
    # On success the auth server's cookies reach the client.
    assert resp.get_all("Set-Cookie") == ["sess=s1; Path=/", "seen=1"], resp.headers


def test_subrequest_carries_the_request_head_without_body(aproxy, auth_port):
    body = b"x" * 300
    resp = pu.request(aproxy.http_port,
                      b"POST /auth/form?q=a%20b HTTP/1.1\r\nHost: app.test\r\n"
                      b"X-Test-Auth: ok\r\nX-Custom: kept\r\nContent-Length: 300\r\n"
                      b"Content-Type: text/plain\r\n\r\n" + body)
    assert resp.status == 200, resp
    assert resp.json()["body_len"] == 300  # the body still reaches the upstream
    entry = auth_log(auth_port)[-1]
    h = entry["headers"]
    assert entry["method"] == "GET" and entry["target"] == "/check?from=weir", entry
    assert entry["body_len"] == 0 and hv(h, "Content-Length") in ([], ["0"]), entry
    assert hv(h, "Host") == [f"127.0.0.1:{auth_port}"], h
    assert hv(h, "X-Original-URL") == ["http://app.test/auth/form?q=a%20b"], h
    assert hv(h, "X-Original-Method") == ["POST"], h
    assert hv(h, "X-Sent-From") == ["nginx-ingress-controller"], h
    assert hv(h, "X-Real-IP") == ["127.0.0.1"], h
    assert hv(h, "X-Forwarded-For") == ["127.0.0.1"], h
    assert hv(h, "X-Forwarded-Proto") == ["http"], h
    assert hv(h, "X-Forwarded-Host") == ["app.test"], h
    assert hv(h, "X-Auth-Request-Redirect") == ["/auth/form?q=a%20b"], h
    assert hv(h, "X-Custom") == ["kept"] and hv(h, "Content-Type") == ["text/plain"], h
    assert hv(h, "X-Original-URI") == [] and hv(h, "X-Scheme") == [], h  # no auth-method
    assert len(hv(h, "X-Request-ID")) == 1, h


@pytest.mark.parametrize("full", [False, True])
def test_subrequest_uses_the_real_client_address(fresh_proxy, backends, auth_port, trap,
                                                 tls_auth_port, full):
    """With use-forwarded-headers from a trusted hop, X-Real-IP and X-Forwarded-For of
    the auth request name the real client, as the upstream's do (not the socket peer)."""
    clear_log(auth_port)
    table = make_table(backends, auth_port, trap.getsockname()[1], tls_auth_port)
    table["settings"] = {"use_forwarded_headers": True, "proxy_real_ip_cidr": ["127.0.0.1/32"],
                         "compute_full_forwarded_for": full}
    proxy = fresh_proxy(table, workers=1)
    resp = pu.get(proxy.http_port, "/auth/x", host="app.test",
                  extra="X-Test-Auth: ok\r\nX-Forwarded-For: 198.51.100.4, 203.0.113.7\r\n")
    assert resp.status == 200, resp
    want_xff = ["198.51.100.4, 203.0.113.7, 127.0.0.1"] if full else ["203.0.113.7"]
    h = auth_log(auth_port)[-1]["headers"]
    assert hv(h, "X-Real-IP") == ["203.0.113.7"], h
    assert hv(h, "X-Forwarded-For") == want_xff, h
    up = resp.json()["headers"]
    assert hv(up, "X-Real-IP") == ["203.0.113.7"], up
    assert hv(up, "X-Forwarded-For") == want_xff, up


def test_basic_auth_comes_before_forward_auth(aproxy, auth_port):
    """A route with both: basic authentication answers first, and the auth server is
    only asked for requests with valid credentials."""
    before = len(auth_log(auth_port))
    resp = pu.get(aproxy.http_port, "/both/x", extra="X-Test-Auth: ok\r\n")
    assert resp.status == 401, resp
    assert resp.get("WWW-Authenticate") == 'Basic realm="staff"', resp.headers
    bad = "Authorization: Basic " + base64.b64encode(b"alice:wrong").decode() + "\r\n"
    resp = pu.get(aproxy.http_port, "/both/x", extra="X-Test-Auth: ok\r\n" + bad)
    assert resp.status == 401, resp
    assert len(auth_log(auth_port)) == before  # never asked
    good = "Authorization: Basic " + base64.b64encode(b"alice:secret").decode() + "\r\n"
    resp = pu.get(aproxy.http_port, "/both/x", extra="X-Test-Auth: no\r\n" + good)
    assert resp.status == 401, resp  # the auth server's refusal
    assert len(auth_log(auth_port)) == before + 1
    resp = pu.get(aproxy.http_port, "/both/x", extra="X-Test-Auth: ok\r\n" + good)
    assert resp.status == 200, resp
    assert len(auth_log(auth_port)) == before + 2
    up = resp.json()["headers"]
    assert hv(up, "X-Auth-User") == ["alice"], up
    assert hv(up, "Authorization") == [], up  # basic credentials stay at the proxy


def test_auth_method_and_request_redirect(aproxy, auth_port):
    resp = pu.get(aproxy.http_port, "/redir/x", extra="X-Test-Auth: ok\r\n")
    assert resp.status == 200, resp
    entry = auth_log(auth_port)[-1]
    assert entry["method"] == "POST", entry
    assert hv(entry["headers"], "X-Auth-Request-Redirect") == ["https://app.test/home"], entry
    assert hv(entry["headers"], "X-Original-URI") == ["/redir/x"], entry
    assert hv(entry["headers"], "X-Scheme") == ["http"], entry


def test_401_passes_www_authenticate_without_cookies(aproxy):
    resp = pu.get(aproxy.http_port, "/auth/x")
    assert resp.status == 401, resp
    assert resp.get("WWW-Authenticate") == 'Bearer realm="t"', resp.headers
    assert resp.get_all("Set-Cookie") == [], resp.headers


def test_always_set_cookie_on_401_and_403(aproxy):
    resp = pu.get(aproxy.http_port, "/always/x")
    assert resp.status == 401, resp
    assert resp.get_all("Set-Cookie") == ["tried=1"], resp.headers
    resp = pu.get(aproxy.http_port, "/always/x", extra="X-Test-Auth: deny\r\n")
    assert resp.status == 403, resp
    assert resp.get_all("Set-Cookie") == ["denied=1"], resp.headers


def test_401_with_signin_redirects_with_rd(aproxy):
    resp = pu.get(aproxy.http_port, "/signin/a?b=1&c=2", host="app.test")
    assert resp.status == 302, resp
    assert resp.get("Location") == ("https://login.test/start?rd=http://app.test"
                                    "%2Fsignin%2Fa%3Fb%3D1%26c%3D2"), resp.headers
    # The auth server's cookies ride on the redirect, as in ingress-nginx.
    assert resp.get_all("Set-Cookie") == ["tried=1"], resp.headers
    resp = pu.get(aproxy.http_port, "/signin2/p", host="app.test")
    assert resp.status == 302, resp
    assert resp.get("Location") == ("https://login.test/start?app=1&return_to="
                                    "http://app.test%2Fsignin2%2Fp"), resp.headers
    # The oauth2-proxy recipe: nginx variables in auth-signin.
    resp = pu.get(aproxy.http_port, "/signin3/p?x=1", host="App.Test:8080")
    assert resp.status == 302, resp
    assert resp.get("Location") == ("http://app.test/oauth2/start?rd=%2Fsignin3%2Fp%3Fx%3D1"), \
        resp.headers


def test_403_and_500(aproxy):
    assert pu.get(aproxy.http_port, "/auth/x", extra="X-Test-Auth: deny\r\n").status == 403
    resp = pu.get(aproxy.http_port, "/auth/x", extra="X-Test-Auth: err\r\n")
    assert resp.status == 500, resp
    assert resp.get_all("Set-Cookie") == [], resp.headers


def test_auth_server_by_host_name(aproxy, auth_port):
    """A host name is looked up without blocking the worker (and cached): twice allowed."""
    for _ in range(2):
        resp = pu.get(aproxy.http_port, "/byname/x", extra="X-Test-Auth: ok\r\n")
        assert resp.status == 200, resp
        assert hv(resp.json()["headers"], "X-Auth-User") == ["alice"], resp
        entry = auth_log(auth_port)[-1]
        assert hv(entry["headers"], "Host") == [f"localhost:{auth_port}"], entry
    assert pu.get(aproxy.http_port, "/byname/x").status == 401


def tls_log(port):
    """The HTTPS auth server's /_log (self-signed: not verified, loopback only)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/_log", timeout=5,
                                context=ctx) as r:
        return json.loads(r.read())


def test_auth_server_over_https(aproxy, tls_auth_port):
    resp = pu.get(aproxy.http_port, "/tls/x", extra="X-Test-Auth: ok\r\n")
    assert resp.status == 200, resp
    assert hv(resp.json()["headers"], "X-Auth-Email") == ["alice@example.test"], resp
    assert tls_log(tls_auth_port)[-1]["sni"] is None  # an IP literal: no SNI
    # A host name is sent as SNI (ingress-nginx: proxy_ssl_server_name on).
    assert pu.get(aproxy.http_port, "/tlsname/x", extra="X-Test-Auth: ok\r\n").status == 200
    assert tls_log(tls_auth_port)[-1]["sni"] == "localhost"
    assert pu.get(aproxy.http_port, "/tls/x", extra="X-Test-Auth: deny\r\n").status == 403
    assert pu.get(aproxy.http_port, "/tls/x").status == 401


def test_auth_cache(aproxy, auth_port):
    """auth-cache-key: one auth call per key and duration; answers with cookies not kept."""
    def get(token, what, who="plain"):
        return pu.get(aproxy.http_port, "/cached/x", extra=f"X-Token: {token}\r\n"
                      f"X-Test-Auth: {what}\r\nX-Test-Who: {who}\r\n")

    def calls():
        return len([e for e in auth_log(auth_port) if e["target"] == "/check?from=weir"])

    clear_log(auth_port)
    first = get("a", "okplain", "ann")
    assert first.status == 200 and hv(first.json()["headers"], "X-Auth-User") == ["ann"]
    # Same key: decided from the cache (the auth server would now say 401), same headers.
    again = get("a", "noplain")
    assert again.status == 200, again
    assert hv(again.json()["headers"], "X-Auth-User") == ["ann"], again
    assert calls() == 1
    # Another key asks the auth server; its 401 is kept too.
    assert get("b", "noplain").status == 401
    assert get("b", "okplain").status == 401
    assert calls() == 2
    # An answer with Set-Cookie is not kept.
    assert get("c", "ok").status == 200
    assert get("c", "noplain").status == 401
    assert calls() == 4
    # After the duration (1 s) the key is asked again.
    time.sleep(1.2)
    assert get("a", "noplain").status == 401
    assert calls() == 5


def test_refused_auth_server_500(aproxy):
    resp = pu.get(aproxy.http_port, "/refused/x", extra="X-Test-Auth: ok\r\n")
    assert resp.status == 500, resp


def test_auth_timeout_500(aproxy):
    t0 = time.monotonic()
    resp = pu.get(aproxy.http_port, "/timeout/x",
                  extra="X-Test-Auth: slow\r\nX-Test-Delay: 3000\r\n")
    took = time.monotonic() - t0
    assert resp.status == 500, resp
    assert 0.25 < took < 2.0, took


def upgrade(path, extra=b""):
    return (b"GET " + path + b" HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" + extra + b"\r\n")


def test_websocket_upgrade_refused_before_backend(aproxy, trap):
    c = pu.RawConn(aproxy.http_port)
    try:
        c.send(upgrade(b"/wstrap/x"))
        resp = c.read_head()
        assert resp.status == 401, resp
    finally:
        c.close()
    readable, _, _ = select.select([trap], [], [], 0.3)
    assert not readable, "the unauthorised upgrade reached the backend"
    # Authorised, the same route does reach it.
    c = pu.RawConn(aproxy.http_port)
    try:
        c.send(upgrade(b"/wstrap/x", b"X-Test-Auth: ok\r\n"))
        readable, _, _ = select.select([trap], [], [], 3)
        assert readable, "the authorised upgrade did not reach the backend"
        trap.accept()[0].close()
    finally:
        c.close()


def test_websocket_upgrade_allowed_with_auth(aproxy):
    with connect(f"ws://127.0.0.1:{aproxy.http_port}/ws/chat",
                 additional_headers={"X-Test-Auth": "ok"}, open_timeout=5, proxy=None) as ws:
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"


def test_slow_auth_does_not_block_the_worker(aproxy):
    """One worker: while its auth call waits 1.5 s, another request is served at once."""
    out = {}

    def slow():
        t0 = time.monotonic()
        out["resp"] = pu.get(aproxy.http_port, "/auth/slow",
                             extra="X-Test-Auth: slow\r\nX-Test-Delay: 1500\r\n")
        out["took"] = time.monotonic() - t0

    th = threading.Thread(target=slow)
    th.start()
    time.sleep(0.2)  # the slow request is now waiting on the auth server
    t0 = time.monotonic()
    resp = pu.get(aproxy.http_port, "/open/x")
    quick = time.monotonic() - t0
    th.join(10)
    assert resp.status == 200, resp
    assert quick < 0.5, quick
    assert out["resp"].status == 200, out
    assert out["took"] >= 1.4, out
