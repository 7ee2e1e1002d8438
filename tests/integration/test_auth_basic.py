"""HTTP basic authentication (auth-type: basic) end to end: an htpasswd file made by Apache's
htpasswd (apache2-utils) in each format it writes (-B bcrypt, -m apr1, -s {SHA}, -d crypt),
put in a Secret, compiled by weir-controller --manifests --once, served by weir-proxy, and
checked with real HTTP and WebSocket clients: 401 with the realm, 200 with the right password,
WebSocket upgrades refused then accepted, the Authorization header not sent upstream (as
ingress-nginx), and the per-worker cache of bcrypt checks."""

import base64
import os
import shutil
import statistics
import subprocess
import time

import pytest
import yaml
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

import proxyutil as pu
import routetable

CONTROLLER_BIN = os.path.join(pu.BUILD_DIR, "weir-controller")
REALM = "Authentication Required - weir"

# user -> (htpasswd flag, password); DES crypt only reads 8 characters
USERS = {
    "bcrypt-user": ("-B", "b-cr:ypt pass"),
    "apr1-user": ("-m", "apr1 p\u00e4ss word"),
    "sha-user": ("-s", "sha1-pass"),
    "des-user": ("-d", "des!pw12"),
}
SLOW_USER, SLOW_PW = "slow-user", "bcrypt cost 12"


def basic(user, password):
    raw = f"{user}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def htpasswd_file(path):
    """The file as `htpasswd` writes it, one user per format, plus a costly bcrypt entry."""
    if not shutil.which("htpasswd"):
        pytest.fail("htpasswd (Debian apache2-utils) is missing: run scripts/install-deps.sh",
                    pytrace=False)
    first = True
    for user, (flag, password) in list(USERS.items()) + [(SLOW_USER, ("-B", SLOW_PW))]:
        cmd = ["htpasswd", "-b", flag]
        if user == SLOW_USER:
            cmd += ["-C", "12"]
        if first:
            cmd.append("-c")
            first = False
        subprocess.run(cmd + [path, user, password], check=True, capture_output=True)
    with open(path) as f:
        text = f.read()
    # the formats really are the four htpasswd writes
    assert "bcrypt-user:$2y$" in text and "apr1-user:$apr1$" in text, text
    assert "sha-user:{SHA}" in text and "slow-user:$2y$12$" in text, text
    des = [ln for ln in text.splitlines() if ln.startswith("des-user:")][0]
    assert len(des.split(":", 1)[1]) == 13, des
    return text


def manifests(dirpath, backends, htpasswd_text):
    def svc(name, port):
        return [{"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": name, "namespace": "default"},
                 "spec": {"ports": [{"name": "http", "port": 80, "targetPort": port}]}},
                {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                 "metadata": {"name": f"{name}-1", "namespace": "default",
                              "labels": {"kubernetes.io/service-name": name}},
                 "addressType": "IPv4", "ports": [{"name": "http", "port": port}],
                 "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]}]

    def ingress(name, annotations, paths):
        return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": name, "namespace": "default",
                             "creationTimestamp": "2026-01-01T00:00:00Z",
                             "annotations": annotations},
                "spec": {"ingressClassName": "weir", "rules": [{"http": {"paths": [
                    {"path": p, "pathType": "Prefix",
                     "backend": {"service": {"name": s, "port": {"number": 80}}}}
                    for p, s in paths]}}]}}

    objs = [{"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
             "metadata": {"name": "weir"}, "spec": {"controller": "weir.dev/ingress-controller"}}]
    objs += svc("echo", backends["echo"]) + svc("ws", backends["ws"])
    objs.append({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                 "metadata": {"name": "basic-auth", "namespace": "default"},
                 "data": {"auth": base64.b64encode(htpasswd_text.encode()).decode()}})
    objs.append(ingress("guarded", {
        "nginx.ingress.kubernetes.io/auth-type": "basic",
        "nginx.ingress.kubernetes.io/auth-secret": "basic-auth",
        "nginx.ingress.kubernetes.io/auth-realm": REALM,
    }, [("/app", "echo"), ("/ws", "ws")]))
    objs.append(ingress("corsauth", {
        "nginx.ingress.kubernetes.io/auth-type": "basic",
        "nginx.ingress.kubernetes.io/auth-secret": "default/basic-auth",
        "nginx.ingress.kubernetes.io/auth-realm": REALM,
        "nginx.ingress.kubernetes.io/enable-cors": "true",
    }, [("/cors", "echo")]))
    objs.append(ingress("open", {}, [("/open", "echo")]))
    with open(os.path.join(dirpath, "objects.yaml"), "w") as f:
        yaml.safe_dump_all(objs, f)


@pytest.fixture(scope="module")
def aproxy(proxy_bin, backends, tmp_path_factory):
    d = tmp_path_factory.mktemp("auth")
    mdir, routes = d / "manifests", d / "routes"
    mdir.mkdir()
    routes.mkdir()
    manifests(str(mdir), backends, htpasswd_file(str(d / "auth")))
    proc = subprocess.run([CONTROLLER_BIN, "--manifests", str(mdir), "--publish", str(routes),
                           "--once", "--metrics-port", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    table = routetable.load(routes)
    assert any(r.get("policy", {}).get("auth", {}).get("type") == "basic"
               for h in table["hosts"] for r in h["routes"]), table
    p = pu.Proxy(str(routes), str(d / "proxy.log"), workers=2)
    try:
        p.wait_ready()
        yield p
    finally:
        p.stop()


def get(proxy, path, auth=None):
    return pu.get(proxy.http_port, path, host="auth.test",
                  extra=f"Authorization: {auth}\r\n" if auth else "")


def assert_401(resp):
    assert resp.status == 401, resp
    assert resp.get_all("WWW-Authenticate") == [f'Basic realm="{REALM}"'], resp
    assert b'"headers"' not in resp.body  # nothing came from the backend


def test_no_credentials_401_with_realm(aproxy):
    assert_401(get(aproxy, "/app/x"))


def test_401_carries_cors_headers(aproxy):
    """As ingress-nginx (its e2e test "401 and cors headers"): a browser app can read it."""
    resp = get(aproxy, "/cors/x")
    assert_401(resp)
    assert resp.get("Access-Control-Allow-Origin") == "*", resp
    assert resp.get("Access-Control-Allow-Credentials") == "true", resp
    assert get(aproxy, "/app/x").get("Access-Control-Allow-Origin") is None
    ok = get(aproxy, "/cors/x", basic("sha-user", "sha1-pass"))
    assert ok.status == 200 and ok.get("Access-Control-Allow-Origin") == "*", ok


def test_other_ingress_unaffected(aproxy):
    resp = get(aproxy, "/open/x")
    assert resp.status == 200 and resp.json()["path"] == "/open/x", resp


@pytest.mark.parametrize("user", sorted(USERS))
def test_each_htpasswd_format(aproxy, user):
    password = USERS[user][1]
    assert_401(get(aproxy, "/app/x", basic(user, password[:-1] + chr(ord(password[-1]) ^ 1))))
    assert_401(get(aproxy, "/app/x", basic(user, password[:-1])))
    # traditional DES crypt reads 8 characters (as with Apache and nginx); others read all
    longer = get(aproxy, "/app/x", basic(user, password + "x"))
    if user == "des-user":
        assert longer.status == 200, longer
    else:
        assert_401(longer)
    assert_401(get(aproxy, "/app/x", basic(user.upper(), password)))
    resp = get(aproxy, "/app/x?q=1", basic(user, password))
    assert resp.status == 200, resp
    info = resp.json()
    assert info["path"] == "/app/x" and info["query"] == "q=1", info
    # ingress-nginx sets `proxy_set_header Authorization ""` on basic-auth locations
    assert not [v for k, v in info["headers"] if k.lower() == "authorization"], info


def test_malformed_authorization(aproxy):
    for value in ("Bearer abc", "Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(),
                  basic("nobody", "x")):
        assert_401(get(aproxy, "/app/x", value))
    # the scheme is case-insensitive
    resp = get(aproxy, "/app/x", "bAsIc " + basic("sha-user", "sha1-pass")[6:])
    assert resp.status == 200, resp
    # two Authorization headers: 400 (nginx refuses the duplicate)
    resp = pu.get(aproxy.http_port, "/app/x", host="auth.test",
                  extra=f"Authorization: {basic('sha-user', 'sha1-pass')}\r\n" * 2)
    assert resp.status == 400, resp


def upgrade(path, auth=None):
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: auth.test\r\nConnection: Upgrade\r\n"
            f"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
            + (f"Authorization: {auth}\r\n" if auth else "") + "\r\n").encode()


def test_websocket_refused_without_credentials(aproxy):
    assert_401(pu.request(aproxy.http_port, upgrade("/ws/chat")))
    assert_401(pu.request(aproxy.http_port, upgrade("/ws/chat", basic("apr1-user", "nope"))))
    with pytest.raises(InvalidStatus) as e:
        with connect(f"ws://127.0.0.1:{aproxy.http_port}/ws/chat", proxy=None, open_timeout=5):
            pass
    assert e.value.response.status_code == 401


def test_websocket_accepted_with_credentials(aproxy):
    resp = pu.request(aproxy.http_port, upgrade("/ws/chat", basic("des-user", "des!pw12")))
    assert resp.status == 101, resp
    with connect(f"ws://127.0.0.1:{aproxy.http_port}/ws/chat", proxy=None, open_timeout=5,
                 additional_headers={"Authorization": basic("apr1-user",
                                                            "apr1 p\u00e4ss word")}) as ws:
        ws.send("hello through auth")
        assert ws.recv(timeout=5) == "hello through auth"


def timed(conn, auth):
    t0 = time.monotonic()
    conn.send(f"GET /app/t HTTP/1.1\r\nHost: auth.test\r\nAuthorization: {auth}\r\n\r\n"
              .encode())
    resp = conn.read_response()
    return resp.status, time.monotonic() - t0


def basic_auth_counts(proxy):
    return {r: proxy.metric("weir_proxy_basic_auth_checks_total", f'result="{r}"')
            for r in ("cached", "verified", "refused")}


def test_bcrypt_checked_once_per_worker(aproxy):
    """On one keep-alive connection (one worker) only the first request with a cost-12
    bcrypt password runs the hash; the next ones are answered from the worker's cache, as
    the proxy's counters show. A wrong password is never taken from the cache."""
    conn = pu.RawConn(aproxy.http_port)
    try:
        before = basic_auth_counts(aproxy)
        status, first = timed(conn, basic(SLOW_USER, SLOW_PW))
        assert status == 200
        again = []
        for _ in range(5):
            status, t = timed(conn, basic(SLOW_USER, SLOW_PW))
            assert status == 200
            again.append(t)
        for _ in range(2):
            status, wrong = timed(conn, basic(SLOW_USER, SLOW_PW + "!"))
            assert status == 401
        after = basic_auth_counts(aproxy)
        print(f"bcrypt cost 12: first {first * 1000:.1f} ms, cached median "
              f"{statistics.median(again) * 1000:.2f} ms, wrong password {wrong * 1000:.1f} ms")
        delta = {k: after[k] - before[k] for k in after}
        assert delta == {"cached": 5, "verified": 1, "refused": 2}, (before, after)
    finally:
        conn.close()


def test_password_change_applies_at_once(proxy_bin, backends, tmp_path):
    """The controller follows the Secret: after a password change the old one is refused on
    a keep-alive connection whose worker had it cached, and the new one works."""
    mdir, routes = tmp_path / "manifests", tmp_path / "routes"
    mdir.mkdir()
    routes.mkdir()
    auth = str(tmp_path / "auth")
    subprocess.run(["htpasswd", "-c", "-b", "-B", "-C", "5", auth, "rot", "old-pw"], check=True,
                   capture_output=True)
    with open(auth) as f:
        manifests(str(mdir), backends, f.read())
    ctl = pu.start_ready([CONTROLLER_BIN, "--manifests", str(mdir), "--publish", str(routes),
                          "--metrics-port", "0", "--log-format", "text"],
                         "published generation 1", str(tmp_path / "controller.log"))
    p = None
    conn = None
    try:
        p = pu.Proxy(str(routes), str(tmp_path / "proxy.log"), workers=2)
        p.wait_ready()
        conn = pu.RawConn(p.http_port)
        assert timed(conn, basic("rot", "old-pw"))[0] == 200
        assert timed(conn, basic("rot", "old-pw"))[0] == 200  # from the cache
        assert timed(conn, basic("rot", "new-pw"))[0] == 401
        subprocess.run(["htpasswd", "-b", "-B", "-C", "5", auth, "rot", "new-pw"], check=True,
                       capture_output=True)
        stage = tmp_path / "stage"
        stage.mkdir()
        with open(auth) as f:
            manifests(str(stage), backends, f.read())
        os.replace(stage / "objects.yaml", mdir / "objects.yaml")
        p.wait_generation(2)
        assert timed(conn, basic("rot", "old-pw"))[0] == 401
        assert timed(conn, basic("rot", "new-pw"))[0] == 200
    finally:
        if conn:
            conn.close()
        if p:
            p.stop()
        pu.stop_process(ctl)
