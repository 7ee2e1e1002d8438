"""auth-proxy-set-headers end to end: Ingresses and a ConfigMap in a --manifests directory,
compiled by a running weir-controller, served by weir-proxy, checked against a real auth
server (tests/backends/auth_server.py, which answers by the X-Test-Auth header it receives and
logs every request). The auth server sees the ConfigMap's headers, a client header of the same
name is replaced (any case), the upstream still gets the client's own, routes without the key
are unaffected, and editing the ConfigMap file changes what the auth server receives."""

import json
import os
import time
import urllib.request

import pytest
import yaml

import proxyutil as pu

CONTROLLER_BIN = os.path.join(pu.BUILD_DIR, "weir-controller")
SET = "nginx.ingress.kubernetes.io/auth-proxy-set-headers"
URL = "nginx.ingress.kubernetes.io/auth-url"


@pytest.fixture(scope="module")
def auth_port(tmp_path_factory):
    port = pu.free_port()
    log = str(tmp_path_factory.mktemp("setauth") / "auth.log")
    proc = pu.start_backend("auth_server.py", port, log, "--host", "127.0.0.1")
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


def hv(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


def write_manifests(mdir, backends, auth_port, headers):
    """objects.yaml (class, Service, EndpointSlice, Ingresses) and configmap.yaml (the
    headers ConfigMap), each written to a temporary name and renamed into place."""
    auth = f"http://127.0.0.1:{auth_port}/check"
    echo = backends["echo"]

    def ingress(name, annotations, path):
        return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": name, "namespace": "default",
                             "creationTimestamp": "2026-01-01T00:00:00Z",
                             "annotations": annotations},
                "spec": {"ingressClassName": "weir", "rules": [{"http": {"paths": [
                    {"path": path, "pathType": "Prefix",
                     "backend": {"service": {"name": "echo", "port": {"number": 80}}}}]}}]}}

    objs = [
        {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
         "metadata": {"name": "weir"}, "spec": {"controller": "weir.dev/ingress-controller"}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "echo", "namespace": "default"},
         "spec": {"ports": [{"name": "http", "port": 80, "targetPort": echo}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "echo-1", "namespace": "default",
                      "labels": {"kubernetes.io/service-name": "echo"}},
         "addressType": "IPv4", "ports": [{"name": "http", "port": echo}],
         "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]},
        ingress("guarded", {URL: auth, SET: "auth-headers",
                            "nginx.ingress.kubernetes.io/auth-response-headers": "X-Auth-User"},
                "/app"),
        ingress("qualified", {URL: auth, "weir.dev/auth-proxy-set-headers": "default/auth-headers"},
                "/qualified"),
        ingress("plain", {URL: auth}, "/plain"),
        ingress("missing", {URL: auth, SET: "no-such-configmap"}, "/missing"),
        ingress("open", {}, "/open"),
    ]
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "auth-headers", "namespace": "default"}, "data": headers}
    for name, docs in (("objects.yaml", objs), ("configmap.yaml", [cm])):
        tmp = os.path.join(mdir, "." + name + ".tmp")
        with open(tmp, "w") as f:
            yaml.safe_dump_all(docs, f)
        os.replace(tmp, os.path.join(mdir, name))


def start(tmp_path, backends, auth_port, headers):
    mdir, routes = tmp_path / "manifests", tmp_path / "routes"
    mdir.mkdir()
    routes.mkdir()
    write_manifests(str(mdir), backends, auth_port, headers)
    ctl = pu.start_ready([CONTROLLER_BIN, "--manifests", str(mdir), "--publish", str(routes),
                          "--metrics-port", "0", "--log-format", "text"],
                         "published generation 1", str(tmp_path / "controller.log"))
    p = pu.Proxy(str(routes), str(tmp_path / "proxy.log"), workers=2)
    try:
        p.wait_ready()
    except BaseException:
        p.stop()
        pu.stop_process(ctl)
        raise
    return ctl, p, mdir


@pytest.fixture(scope="module")
def setup(backends, auth_port, tmp_path_factory):
    ctl, p, _ = start(tmp_path_factory.mktemp("set"), backends, auth_port,
                      {"X-Test-Auth": "ok", "X-Tenant": "team-a"})
    try:
        yield p
    finally:
        p.stop()
        pu.stop_process(ctl)


def test_auth_server_gets_configmap_headers_replacing_the_clients(setup, auth_port):
    clear_log(auth_port)
    # The client asks to be denied and claims another tenant, twice and in other cases.
    resp = pu.get(setup.http_port, "/app/x", host="app.test",
                  extra="X-Test-Auth: deny\r\nx-tenant: mallory\r\nX-TENANT: eve\r\n"
                        "X-Client-Own: kept\r\n")
    assert resp.status == 200, resp
    seen = auth_log(auth_port)
    assert len(seen) == 1, seen
    h = seen[0]["headers"]
    assert hv(h, "X-Test-Auth") == ["ok"], h
    assert hv(h, "X-Tenant") == ["team-a"], h
    assert hv(h, "X-Client-Own") == ["kept"], h  # other client headers still pass
    # The headers are the auth request's only: the upstream gets the client's own, and the
    # auth response header it was given.
    up = resp.json()["headers"]
    assert hv(up, "X-Test-Auth") == ["deny"], up
    assert hv(up, "x-tenant") == ["mallory", "eve"], up
    assert hv(up, "X-Auth-User") == ["alice"], up


def test_namespace_qualified_reference(setup, auth_port):
    clear_log(auth_port)
    resp = pu.get(setup.http_port, "/qualified", host="app.test", extra="X-Test-Auth: deny\r\n")
    assert resp.status == 200, resp
    assert hv(auth_log(auth_port)[0]["headers"], "X-Tenant") == ["team-a"]


def test_route_without_the_key_is_unaffected(setup, auth_port):
    clear_log(auth_port)
    resp = pu.get(setup.http_port, "/plain", host="app.test",
                  extra="X-Test-Auth: deny\r\nX-Tenant: mallory\r\n")
    assert resp.status == 403, resp
    h = auth_log(auth_port)[0]["headers"]
    assert hv(h, "X-Test-Auth") == ["deny"] and hv(h, "X-Tenant") == ["mallory"], h


def test_missing_configmap_is_not_served(setup, auth_port):
    clear_log(auth_port)
    assert pu.get(setup.http_port, "/missing", host="app.test",
                  extra="X-Test-Auth: ok\r\n").status == 404
    assert auth_log(auth_port) == []
    assert pu.get(setup.http_port, "/open", host="app.test").status == 200


def test_configmap_change_reaches_the_auth_server(backends, auth_port, tmp_path):
    ctl, p, mdir = start(tmp_path, backends, auth_port,
                         {"X-Test-Auth": "okplain", "X-Test-Who": "first"})
    try:
        conn = pu.RawConn(p.http_port)
        req = (b"GET /app/1 HTTP/1.1\r\nHost: app.test\r\nX-Test-Who: client\r\n\r\n")
        conn.send(req)
        resp = conn.read_response()
        assert resp.status == 200, resp
        assert hv(resp.json()["headers"], "X-Auth-User") == ["first"]

        # A new value: the next request on the same connection carries it.
        write_manifests(str(mdir), backends, auth_port,
                        {"X-Test-Auth": "okplain", "X-Test-Who": "second"})
        p.wait_generation(2)
        conn.send(req)
        resp = conn.read_response()
        assert resp.status == 200, resp
        assert hv(resp.json()["headers"], "X-Auth-User") == ["second"]

        # The key removed from the ConfigMap: the client's own header goes through again.
        clear_log(auth_port)
        write_manifests(str(mdir), backends, auth_port, {"X-Test-Auth": "okplain"})
        p.wait_generation(3)
        conn.send(req)
        resp = conn.read_response()
        assert resp.status == 200, resp
        assert hv(resp.json()["headers"], "X-Auth-User") == ["client"]
        assert hv(auth_log(auth_port)[-1]["headers"], "X-Test-Who") == ["client"]

        # A value weir refuses ('$'): the Ingress is no longer served (fail closed).
        write_manifests(str(mdir), backends, auth_port,
                        {"X-Test-Auth": "okplain", "X-Test-Who": "$remote_user"})
        p.wait_generation(4)
        conn.send(req)
        resp = conn.read_response()
        assert resp.status == 404, resp
        conn.close()
        # The controller logs diagnostics right after the publish the proxy just loaded.
        deadline = time.monotonic() + 5
        while True:
            with open(tmp_path / "controller.log") as f:
                log = f.read()
            if "nginx variables are not expanded" in log or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert "nginx variables are not expanded" in log, log[-2000:]
    finally:
        p.stop()
        pu.stop_process(ctl)
