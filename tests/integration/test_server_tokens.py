"""The Server response header: ConfigMap server-tokens and allow-backend-server-header
(table settings server_tokens, allow_backend_server_header), as ingress-nginx sends it.

ingress-nginx (server-tokens "false" by default) sends no Server header at all: nginx
hides the upstream's (proxy_hide_header's default list) and more_clear_headers clears its
own. With "true" every answer carries nginx's, the upstream's still hidden; weir sends
"weir/<version>" instead. allow-backend-server-header passes the upstream's."""

import socket
import subprocess
import time

import pytest

import proxyutil as pu


def table(backends, **settings):
    def route(path, backend, **policy):
        return {"path": path, "match": "prefix", "backend": backend, "source": f"st{path}",
                "policy": policy}

    return {
        "version": 1,
        "generation": 1,
        "settings": settings,
        "hosts": [{"name": "", "routes": [
            route("/echo", 0),
            route("/hidden", 0, hide_headers=["Server"]),
            route("/dead", 1, connect_timeout_ms=2000),
        ]}],
        "backends": [
            {"name": "st/echo:80", "endpoints": [{"address": "127.0.0.1",
                                                  "port": backends["echo"]}]},
            {"name": "st/dead:80", "endpoints": [{"address": "127.0.0.1",
                                                  "port": backends["dead"]}]},
        ],
    }


def start(fresh_proxy, tbl):
    """fresh_proxy, then wait for the HTTP port: /readyz answers before the
    workers listen (proxy/main.c starts the admin port first)."""
    p = fresh_proxy(tbl)
    deadline = time.monotonic() + 5
    while True:
        try:
            socket.create_connection(("127.0.0.1", p.http_port), timeout=1).close()
            return p
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def servers(p, path):
    r = pu.get(p.http_port, path)
    return r.status, r.get_all("Server")


@pytest.fixture(scope="module")
def version():
    out = subprocess.run([pu.PROXY_BIN, "--version"], capture_output=True, text=True)
    return out.stdout.split()[-1]


def test_default_no_server_header(fresh_proxy, backends):
    p = start(fresh_proxy, table(backends))
    assert servers(p, "/echo/x") == (200, [])       # the upstream's (aiohttp) is dropped
    assert servers(p, "/no-route") == (404, [])     # weir's own answers carry none
    assert servers(p, "/dead/x") == (502, [])


def test_server_tokens(fresh_proxy, backends, version):
    p = start(fresh_proxy, table(backends, server_tokens=True))
    ours = [f"weir/{version}"]
    assert servers(p, "/echo/x") == (200, ours)     # replaces the upstream's
    assert servers(p, "/no-route") == (404, ours)
    assert servers(p, "/dead/x") == (502, ours)
    assert servers(p, "/hidden/x") == (200, [])     # more_clear_headers Server / hide-headers


def test_allow_backend_server_header(fresh_proxy, backends, version):
    p = start(fresh_proxy, table(backends, allow_backend_server_header=True))
    status, got = servers(p, "/echo/x")
    assert status == 200 and len(got) == 1 and "aiohttp" in got[0], got
    assert servers(p, "/hidden/x") == (200, [])
    assert servers(p, "/no-route") == (404, [])
    p2 = start(fresh_proxy, table(backends, allow_backend_server_header=True, server_tokens=True))
    status, got = servers(p2, "/echo/x")
    assert status == 200 and len(got) == 1 and "aiohttp" in got[0], got
    assert servers(p2, "/no-route") == (404, [f"weir/{version}"])
