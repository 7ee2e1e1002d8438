"""Fixtures for the weir-proxy integration tests: loopback backends, certificates, a proxy.

The proxy binary is $WEIR_BUILD_DIR/weir-proxy (default: <repo>/build). When it is missing
every test that needs it fails with a message saying so (nothing is skipped)."""

import os
import shutil

import pytest

import proxyutil as pu
from proxycerts import make_cert  # noqa: F401 - fixtures below use it

# The hosts with their own certificate in the session table, plus the default one.
CERT_HOSTS = ("a.test", "b.test", "default.test")


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("weir-it"))


@pytest.fixture(scope="session")
def proxy_bin():
    if not os.path.exists(pu.PROXY_BIN):
        pytest.fail(f"weir-proxy binary missing at {pu.PROXY_BIN}; build it with "
                    f"`cmake --build {pu.BUILD_DIR} --target weir-proxy` or set WEIR_BUILD_DIR",
                    pytrace=False)
    return pu.PROXY_BIN


@pytest.fixture(scope="session")
def backends(workdir):
    """The loopback backends: ports by name, each process stopped at the end."""
    procs = []
    ports = {}
    try:
        for key, script, extra in (("echo", "echo_http.py", ["--name", "echo"]),
                                   ("echo_a", "echo_http.py", ["--name", "A"]),
                                   ("echo_b", "echo_http.py", ["--name", "B"]),
                                   ("echo_slow", "echo_http.py", ["--name", "S",
                                                                  "--delay-ms", "80"]),
                                   ("ws", "ws_echo.py", []),
                                   ("bad", "bad_handshake.py", [])):
            port = pu.free_port()
            procs.append(pu.start_backend(script, port, os.path.join(workdir, f"{key}.log"),
                                          *extra))
            ports[key] = port
        ports["dead"] = pu.free_port()  # nothing listens there
        yield ports
    finally:
        for p in procs:
            pu.stop_process(p)


@pytest.fixture(scope="session")
def certs(workdir):
    """host -> (cert_pem, key_pem, cert_der) for CERT_HOSTS."""
    return {h: make_cert(h, workdir) for h in CERT_HOSTS}


def session_table(backends, certs, generation=1):
    """The table of the shared proxy: one route per behaviour under test."""
    def ep(port):
        return [{"address": "127.0.0.1", "port": port}]

    def route(path, backend, **policy):
        return {"path": path, "match": "prefix", "backend": backend, "source": f"it{path}",
                "policy": policy}

    return {
        "version": 1,
        "generation": generation,
        # allow_backend_server_header: the backends' Server (aiohttp) passes, so tests
        # can tell weir's own answers from theirs
        "settings": {"trusted_proxies": ["127.0.0.2"], "max_header_bytes": 8192,
                     "header_timeout_ms": 2000, "allow_backend_server_header": True},
        "hosts": [
            {"name": "", "routes": [
                route("/limited", 0, body_limit=1024),
                route("/ws-idle", 1, ws_idle_timeout_ms=1000),
                route("/badws", 2),
                route("/noep", 3),
                route("/dead", 4, connect_timeout_ms=2000),
                route("/slow", 0, read_timeout_ms=700),
                route("/echo", 0),
                route("/big", 0, body_limit=0),
                route("/ws", 1),
            ]},
            {"name": "a.test", "cert": 0, "routes": [route("/ws", 1), route("/", 5)]},
            {"name": "b.test", "cert": 1, "routes": [route("/", 6)]},
        ],
        "backends": [
            {"name": "it/echo:80", "endpoints": ep(backends["echo"])},
            {"name": "it/ws:80", "endpoints": ep(backends["ws"])},
            {"name": "it/bad:80", "endpoints": ep(backends["bad"])},
            {"name": "it/empty:80", "endpoints": []},
            {"name": "it/dead:80", "endpoints": ep(backends["dead"])},
            {"name": "it/echo-a:80", "endpoints": ep(backends["echo_a"])},
            {"name": "it/echo-b:80", "endpoints": ep(backends["echo_b"])},
        ],
        "certs": [{"name": f"it/{h}", "cert_pem": certs[h][0], "key_pem": certs[h][1]}
                  for h in CERT_HOSTS],
        "default_cert": 2,
    }


@pytest.fixture(scope="session")
def proxy(proxy_bin, backends, certs, workdir):
    """The shared weir-proxy (2 workers) serving session_table."""
    routes = os.path.join(workdir, "routes")
    os.makedirs(routes, exist_ok=True)
    pu.write_table(routes, session_table(backends, certs))
    p = pu.Proxy(routes, os.path.join(workdir, "proxy.log"), workers=2)
    try:
        p.wait_ready()
        yield p
    finally:
        p.stop()
        shutil.copy(p.log_path, os.path.join(workdir, "proxy-final.log"))


@pytest.fixture
def fresh_proxy(proxy_bin, backends, tmp_path):
    """A factory for a private weir-proxy on its own routes dir (tests that rewrite tables)."""
    started = []

    def start(table, workers=2):
        routes = tmp_path / "routes"
        routes.mkdir(exist_ok=True)
        pu.write_table(str(routes), table)
        p = pu.Proxy(str(routes), str(tmp_path / f"proxy{len(started)}.log"), workers=workers)
        started.append(p)
        p.wait_ready()
        return p

    yield start
    for p in started:
        p.stop()
