"""Forward auth against a real oauth2-proxy (built from its Go module at a pinned version
by scripts/install-oauth2-proxy.sh, cached under $WEIR_CACHE/bin), in front of the echo
app, as the ingress-nginx recipe sets it up: auth-url to /oauth2/auth, auth-signin to
$host/oauth2/start?rd=$escaped_request_uri, auth-response-headers X-Auth-Request-User/-Email.
oauth2-proxy signs users in from an htpasswd file, so no identity provider is needed: the
cookie flow is sign-in form -> session cookie -> the app."""

import base64
import hashlib
import os
import subprocess
import time
import urllib.parse

import pytest

import proxyutil as pu

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def oauth2_proxy(tmp_path_factory):
    out = subprocess.run([os.path.join(REPO, "scripts", "install-oauth2-proxy.sh")],
                         check=True, capture_output=True, text=True, timeout=1800)
    binary = out.stdout.strip().splitlines()[-1]
    d = tmp_path_factory.mktemp("oauth2")
    sha = base64.b64encode(hashlib.sha1(b"wonderland").digest()).decode()
    (d / "htpasswd").write_text(f"alice:{{SHA}}{sha}\n")
    port = pu.free_port()
    cmd = [binary, f"--http-address=127.0.0.1:{port}", "--provider=google",
           "--client-id=weir-test", "--client-secret=weir-test-secret",
           "--cookie-secret=0123456789abcdef0123456789abcdef", "--cookie-secure=false",
           "--email-domain=*", f"--htpasswd-file={d / 'htpasswd'}", "--upstream=static://202",
           "--reverse-proxy", "--trusted-proxy-ip=127.0.0.1/32", "--set-xauthrequest",
           "--whitelist-domain=app.test", "--redirect-url=http://app.test/oauth2/callback"]
    with open(d / "oauth2-proxy.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if pu.http_get(port, "/ping", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("oauth2-proxy did not answer /ping; log:\n" +
                                   (d / "oauth2-proxy.log").read_text()[-2000:])
            time.sleep(0.1)
        yield port
    finally:
        pu.stop_process(proc)


@pytest.fixture
def oproxy(fresh_proxy, backends, oauth2_proxy):
    ep = lambda port: [{"address": "127.0.0.1", "port": port}]  # noqa: E731
    table = {
        "version": 1,
        "generation": 1,
        "hosts": [{"name": "app.test", "routes": [
            {"path": "/oauth2", "match": "prefix", "backend": 1},
            {"path": "/", "match": "prefix", "backend": 0, "policy": {"ext_auth": {
                "url": f"http://127.0.0.1:{oauth2_proxy}/oauth2/auth",
                "signin": "http://$host/oauth2/start?rd=$escaped_request_uri",
                "response_headers": ["X-Auth-Request-User", "X-Auth-Request-Email"]}}},
        ]}],
        "backends": [
            {"name": "o/echo:80", "endpoints": ep(backends["echo"])},
            {"name": "o/oauth2-proxy:4180", "endpoints": ep(oauth2_proxy)},
        ],
    }
    return fresh_proxy(table)


def session_cookie(resp):
    for v in resp.get_all("Set-Cookie"):
        name, _, rest = v.partition("=")
        if name == "_oauth2_proxy" and rest.split(";")[0]:
            return f"_oauth2_proxy={rest.split(';')[0]}"
    return None


def sign_in(port, user, password, rd):
    body = urllib.parse.urlencode({"username": user, "password": password, "rd": rd}).encode()
    return pu.request(port, b"POST /oauth2/sign_in HTTP/1.1\r\nHost: app.test\r\n"
                      b"Content-Type: application/x-www-form-urlencoded\r\n"
                      b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def test_cookie_flow_through_oauth2_proxy(oproxy):
    # 1. No session: weir sends the browser to oauth2-proxy's start page with rd.
    resp = pu.get(oproxy.http_port, "/app/page?x=1", host="app.test")
    assert resp.status == 302, resp
    assert resp.get("Location") == "http://app.test/oauth2/start?rd=%2Fapp%2Fpage%3Fx%3D1", resp
    # 2. A wrong password gets no session.
    bad = sign_in(oproxy.http_port, "alice", "queen", "/app/page?x=1")
    assert session_cookie(bad) is None, bad
    # 3. The right one: a session cookie and a redirect back to rd.
    good = sign_in(oproxy.http_port, "alice", "wonderland", "/app/page?x=1")
    cookie = session_cookie(good)
    assert good.status == 302 and cookie, good
    assert good.get("Location") == "/app/page?x=1", good
    # 4. With the cookie the app is reached, with the user oauth2-proxy vouches for.
    resp = pu.get(oproxy.http_port, "/app/page?x=1", host="app.test",
                  extra=f"Cookie: {cookie}\r\nX-Auth-Request-User: mallory\r\n")
    assert resp.status == 200, resp
    info = resp.json()
    assert info["path"] == "/app/page" and info["query"] == "x=1", info
    users = [v for k, v in info["headers"] if k.lower() == "x-auth-request-user"]
    assert users == ["alice"], info["headers"]
    # 5. A forged cookie is refused like none.
    resp = pu.get(oproxy.http_port, "/app/page", host="app.test",
                  extra="Cookie: _oauth2_proxy=forged\r\n")
    assert resp.status == 302, resp
