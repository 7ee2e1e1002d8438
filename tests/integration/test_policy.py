"""Route policies as a user sees them through weir-proxy: redirects, rewrite, upstream vhost,
header edits, source ranges, request base, CORS preflight, app root, cookie affinity,
Kubernetes Prefix matching."""

import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

import proxyutil as pu


def r(path, backend=0, match="prefix", **policy):
    return {"path": path, "match": match, "backend": backend, "policy": policy}


@pytest.fixture
def pproxy(fresh_proxy, backends):
    ep = lambda key: {"address": "127.0.0.1", "port": backends[key]}  # noqa: E731
    table = {
        "version": 1,
        "generation": 1,
        "hosts": [{"name": "", "routes": [
            r("/secure", ssl_redirect=True),
            r("/old", backend=-1, redirect_code=301, redirect_url="https://new.example/"),
            r("/api(/|$)(.*)", match="regex", rewrite_target="/$2"),
            r("/vhost", upstream_vhost="internal.svc"),
            r("/hdrs", request_headers=[{"name": "X-Added", "value": "yes"}],
              response_headers=[{"name": "X-Resp-Added", "value": "1"}],
              hide_headers=["X-Unknown-Resp"]),
            r("/deny", deny=["127.0.0.1"]),
            r("/allow", allow=["10.0.0.0/8"]),
            r("/sticky", backend=1, affinity="cookie"),
            r("/convos", request_base=True),
            r("/cors", cors={"enabled": True}),
            r("/corslist", cors={"enabled": True,
                                 "allow_origin": "https://a.test, https://b.test"}),
            r("/aaa/bbb"),
            {"path": "/canary", "match": "prefix", "backend": 0,
             "canary": {"backend": 2, "by_header": "X-Canary"}},
            r("/rl", limit_rps=2),
            r("/rpm", limit_rpm=2, limit_burst=2),
            r("/wslife", backend=3, ws_max_lifetime_ms=1500),
            r("/wslimit", backend=3, limit_connections=2),
            r("/", match="exact", app_root="/app"),
        ]}],
        "backends": [
            {"name": "p/echo:80", "endpoints": [ep("echo")]},
            {"name": "p/ab:80", "endpoints": sorted([ep("echo_a"), ep("echo_b")],
                                                   key=lambda e: e["port"])},
            {"name": "p/a:80", "endpoints": [ep("echo_a")]},
            {"name": "p/ws:80", "endpoints": [ep("ws")]},
        ],
    }
    return fresh_proxy(table)


def upstream(resp):
    assert resp.status == 200, resp
    return resp.json()


def hv(info, name):
    return [v for k, v in info["headers"] if k.lower() == name.lower()]


def test_ssl_redirect_308(pproxy):
    resp = pu.get(pproxy.http_port, "/secure/x?q=1", host="pol.test")
    assert resp.status == 308, resp
    assert resp.get("Location") == "https://pol.test/secure/x?q=1"


def test_permanent_redirect_301(pproxy):
    resp = pu.get(pproxy.http_port, "/old/page", host="pol.test")
    assert resp.status == 301, resp
    assert resp.get("Location") == "https://new.example/"


def test_regex_rewrite_target(pproxy):
    info = upstream(pu.get(pproxy.http_port, "/API/users/7?x=1"))
    assert info["path"] == "/users/7" and info["query"] == "x=1", info


def test_upstream_vhost(pproxy):
    info = upstream(pu.get(pproxy.http_port, "/vhost/a", host="public.test"))
    assert hv(info, "Host") == ["internal.svc"], info["headers"]


def test_request_and_response_header_edits(pproxy):
    resp = pu.get(pproxy.http_port, "/hdrs?do=cookies")
    info = upstream(resp)
    assert hv(info, "X-Added") == ["yes"], info["headers"]
    assert resp.get_all("X-Resp-Added") == ["1"], resp.headers
    assert resp.get_all("X-Unknown-Resp") == [], resp.headers
    assert len(resp.get_all("Set-Cookie")) == 3


def test_deny_and_allow_ranges_403(pproxy):
    assert pu.get(pproxy.http_port, "/deny/x").status == 403
    assert pu.get(pproxy.http_port, "/allow/x").status == 403


def test_request_base(pproxy):
    info = upstream(pu.get(pproxy.http_port, "/convos/events", host="chat.test"))
    assert hv(info, "X-Request-Base") == ["http://chat.test/convos"], info["headers"]


def test_cors_preflight_204(pproxy):
    resp = pu.request(pproxy.http_port, b"OPTIONS /cors/x HTTP/1.1\r\nHost: t\r\n"
                      b"Origin: https://app.test\r\nAccess-Control-Request-Method: PUT\r\n\r\n")
    assert resp.status == 204, resp
    assert resp.get("Access-Control-Allow-Origin") in ("*", "https://app.test"), resp.headers
    assert "PUT" in (resp.get("Access-Control-Allow-Methods") or ""), resp.headers


def test_cors_origin_list_on_normal_responses(pproxy):
    """With a list of allowed origins the matching Origin is echoed (with Vary: Origin); an
    unlisted one gets no CORS headers at all."""
    def get(origin):
        return pu.request(pproxy.http_port, b"GET /corslist/x HTTP/1.1\r\nHost: t\r\n"
                          b"Origin: " + origin + b"\r\n\r\n")
    resp = get(b"https://b.test")
    assert resp.status == 200, resp
    assert resp.get("Access-Control-Allow-Origin") == "https://b.test", resp.headers
    assert "Origin" in (resp.get("Vary") or ""), resp.headers
    resp = get(b"https://evil.test")
    assert resp.status == 200, resp
    assert resp.get("Access-Control-Allow-Origin") is None, resp.headers
    resp = pu.request(pproxy.http_port, b"GET /cors/x HTTP/1.1\r\nHost: t\r\n\r\n")
    assert resp.get("Access-Control-Allow-Origin") == "*", resp.headers


def test_app_root_302(pproxy):
    resp = pu.get(pproxy.http_port, "/", host="pol.test")
    assert resp.status == 302, resp
    assert (resp.get("Location") or "").endswith("/app"), resp.headers


def test_prefix_matches_by_element(pproxy):
    assert upstream(pu.get(pproxy.http_port, "/aaa/bbb/ccc"))["path"] == "/aaa/bbb/ccc"
    assert upstream(pu.get(pproxy.http_port, "/aaa/bbb/"))["path"] == "/aaa/bbb/"
    assert pu.get(pproxy.http_port, "/aaa/bbbxyz").status == 404


def test_cookie_affinity_sticks(pproxy):
    first = pu.get(pproxy.http_port, "/sticky/x")
    name = upstream(first)["name"]
    cookies = [c for c in first.get_all("Set-Cookie") if c.startswith("INGRESSCOOKIE=")]
    assert len(cookies) == 1, first.headers
    value = cookies[0].split(";")[0]
    for _ in range(10):
        info = upstream(pu.get(pproxy.http_port, "/sticky/x", extra=f"Cookie: {value}\r\n"))
        assert info["name"] == name
    names = {upstream(pu.get(pproxy.http_port, "/sticky/x"))["name"] for _ in range(10)}
    assert names == {"A", "B"}, "without the cookie both endpoints serve"


def test_canary_by_header(pproxy):
    assert upstream(pu.get(pproxy.http_port, "/canary/x"))["name"] == "echo"
    info = upstream(pu.get(pproxy.http_port, "/canary/x", extra="X-Canary: always\r\n"))
    assert info["name"] == "A"
    info = upstream(pu.get(pproxy.http_port, "/canary/x", extra="X-Canary: never\r\n"))
    assert info["name"] == "echo"


def test_limit_rps_503(pproxy):
    codes = [pu.get(pproxy.http_port, "/rl/x").status for _ in range(40)]
    assert codes[0] == 200, codes
    assert 503 in codes, f"40 requests at once under limit_rps 2: {codes}"
    assert set(codes) <= {200, 503}, codes


def test_limit_rpm_refuses_after_the_burst(pproxy):
    # 2 per minute x burst 2: exactly 4 at once, then 503 for the minute
    codes = [pu.get(pproxy.http_port, "/rpm/x").status for _ in range(8)]
    assert codes == [200] * 4 + [503] * 4, codes


def test_limit_connections_counts_websocket_tunnels(pproxy):
    """limit-connections 2: two open tunnels take both places (a third
    upgrade gets 503); closing one gives its place back."""
    from websockets.exceptions import InvalidStatus
    url = f"ws://127.0.0.1:{pproxy.http_port}/wslimit/x"
    with connect(url, proxy=None, ping_interval=None) as a, \
            connect(url, proxy=None, ping_interval=None) as b:
        for ws in (a, b):
            ws.send("hi")
            assert ws.recv(timeout=5) == "hi"
        with pytest.raises(InvalidStatus) as e:
            connect(url, proxy=None, ping_interval=None, open_timeout=5)
        assert e.value.response.status_code == 503
        a.close()
        deadline = time.monotonic() + 5
        while True:
            try:
                with connect(url, proxy=None, ping_interval=None, open_timeout=5) as c:
                    c.send("again")
                    assert c.recv(timeout=5) == "again"
                break
            except InvalidStatus:
                assert time.monotonic() < deadline, "the closed tunnel's place never came back"
                time.sleep(0.05)


def test_ws_max_lifetime(pproxy):
    with connect(f"ws://127.0.0.1:{pproxy.http_port}/wslife/x", proxy=None,
                 ping_interval=None) as ws:
        t0 = time.monotonic()
        n = 0
        try:
            while time.monotonic() - t0 < 6:
                ws.send(f"m{n}")
                assert ws.recv(timeout=5) == f"m{n}"
                n += 1
                time.sleep(0.1)
        except ConnectionClosed:
            pass
        took = time.monotonic() - t0
    assert 1.2 < took < 4.0, f"busy connection closed after {took:.2f}s, max lifetime 1.5 s"


def test_ewma_prefers_the_fast_endpoint_and_avoids_a_dead_one(fresh_proxy, backends):
    """load-balance ewma: with one endpoint 80 ms slower than the other, nearly every request
    goes to the fast one (round robin would send half); a refused endpoint costs at most
    one failed request per worker before the draw avoids it."""
    ep = lambda key: {"address": "127.0.0.1", "port": backends[key]}  # noqa: E731
    table = {"version": 1, "generation": 1,
             "hosts": [{"name": "", "routes": [
                 r("/fastslow", backend=0, balance="ewma"),
                 r("/withdead", backend=1, balance="ewma", connect_timeout_ms=2000),
             ]}],
             "backends": [{"name": "p/fs:80", "endpoints": [ep("echo_a"), ep("echo_slow")]},
                          {"name": "p/wd:80", "endpoints": [ep("echo_b"), ep("dead")]}]}
    p = fresh_proxy(table, workers=2)
    names = [upstream(pu.get(p.http_port, "/fastslow/x"))["name"] for _ in range(100)]
    assert names.count("S") <= 4, names
    assert names.count("A") >= 96, names
    codes = [pu.get(p.http_port, "/withdead/x").status for _ in range(60)]
    assert codes.count(502) <= 2, codes
    assert codes.count(200) >= 58, codes


def test_limit_status_codes_from_the_settings(fresh_proxy, backends):
    """limit-req-status-code and limit-conn-status-code: the rate limit answers 429, the
    connection limit 507 (ingress-nginx's ConfigMap keys; both 503 by default)."""
    ep = {"address": "127.0.0.1", "port": backends["echo"]}
    p = fresh_proxy({
        "version": 1,
        "settings": {"limit_req_status": 429, "limit_conn_status": 507},
        "hosts": [{"name": "", "routes": [r("/rl", limit_rps=1, limit_burst=1),
                                          r("/ws", backend=1, limit_connections=1)]}],
        "backends": [{"name": "p/echo:80", "endpoints": [ep]},
                     {"name": "p/ws:80", "endpoints": [
                         {"address": "127.0.0.1", "port": backends["ws"]}]}],
    })
    codes = [pu.get(p.http_port, "/rl/x").status for _ in range(10)]
    assert codes[0] == 200 and 429 in codes and set(codes) <= {200, 429}, codes
    with connect(f"ws://127.0.0.1:{p.http_port}/ws") as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "hi"
        assert pu.get(p.http_port, "/ws").status == 507
