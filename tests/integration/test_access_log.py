"""The access log through a real weir-proxy: ingress-nginx's default line on standard output
for proxied requests and the proxy's own answers, a JSON log-format-upstream with JSON
escaping, skip-access-log-urls, enable-access-log false on a route, disable-access-log."""

import json
import re
import time

import proxyutil as pu
from proxyutil import RawConn

DEFAULT_LINE = re.compile(
    r'^(?P<addr>\S+) - (?P<user>\S+) \[(?P<time>\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000)\] '
    r'"(?P<request>[^"]*)" (?P<status>\d+) (?P<body>\d+) "(?P<referer>[^"]*)" "(?P<ua>[^"]*)" '
    r'(?P<reqlen>\d+) (?P<reqtime>\d+\.\d{3}) \[(?P<up>[^\]]*)\] \[(?P<alt>[^\]]*)\] '
    r'(?P<upaddr>\S+) (?P<uplen>\S+) (?P<uptime>\S+) (?P<upstatus>\S+) (?P<reqid>\S+)$')


def table(backends, settings=None, quiet_access_log=True):
    return {
        "version": 1,
        "settings": settings or {},
        "hosts": [{"name": "", "routes": [
            {"path": "/quiet", "match": "prefix", "backend": 0, "source": "shop/quiet",
             "policy": {"access_log": not quiet_access_log}},
            {"path": "/", "match": "prefix", "backend": 0, "source": "shop/front"},
        ]}],
        "backends": [{"name": "shop/web:80",
                      "endpoints": [{"address": "127.0.0.1", "port": backends["echo"]}]}],
    }


def lines(proxy, want, timeout=5.0):
    """Access log lines (those matching want) once at least one is there."""
    deadline = time.monotonic() + timeout
    while True:
        with open(proxy.log_path, encoding="utf-8", errors="replace") as f:
            got = [l.rstrip("\n") for l in f if want(l.rstrip("\n"))]
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def send(port, path, extra=""):
    c = RawConn(port)
    try:
        c.send(f"GET {path} HTTP/1.1\r\nHost: shop.test\r\n{extra}\r\n".encode())
        return c.read_response()
    finally:
        c.close()


def test_default_line(fresh_proxy, backends):
    p = fresh_proxy(table(backends))
    r = send(p.http_port, "/cart?item=1", 'User-Agent: tester "1"\r\nReferer: https://ref.test/\r\n'
             "Authorization: Basic YWxpY2U6c2VjcmV0\r\n")
    assert r.status == 200, r
    got = lines(p, lambda l: "/cart?item=1" in l)
    assert len(got) == 1, got
    m = DEFAULT_LINE.match(got[0])
    assert m, got[0]
    assert m["addr"] == "127.0.0.1" and m["user"] == "alice"
    assert m["request"] == "GET /cart?item=1 HTTP/1.1" and m["status"] == "200"
    assert int(m["body"]) == len(r.body)
    assert m["referer"] == "https://ref.test/" and m["ua"] == "tester \\x221\\x22"
    assert m["up"] == "shop-web-80" and m["alt"] == "-"
    assert m["upaddr"] == f"127.0.0.1:{backends['echo']}" and m["upstatus"] == "200"
    assert m["uplen"] == m["body"] and m["uptime"] != "-"
    assert re.fullmatch(r"[0-9a-f]{32}", m["reqid"]), m["reqid"]
    # the proxy's own answer (no route: 404 is not possible here, so a 413 body refusal)
    c = RawConn(p.http_port)
    try:
        c.send(b"POST /up HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 99999999\r\n\r\n")
        assert c.read_response().status == 413
    finally:
        c.close()
    got = lines(p, lambda l: '"POST /up HTTP/1.1" 413' in l)
    assert len(got) == 1, got
    m = DEFAULT_LINE.match(got[0])
    assert m and m["upaddr"] == "-" and m["upstatus"] == "-" and m["up"] == "-", got[0]
    # enable-access-log false on a route: not logged
    assert send(p.http_port, "/quiet/x").status == 200
    send(p.http_port, "/after-quiet")
    assert lines(p, lambda l: "/after-quiet" in l)
    assert not lines(p, lambda l: "/quiet/x" in l, timeout=0)


def test_json_format_and_skips(fresh_proxy, backends):
    fmt = ('{"ip": "$remote_addr", "req": "$request", "status": $status, "ua": '
           '"$http_user_agent", "ns": "$namespace", "ing": "$ingress_name", '
           '"svc": "$service_name", "port": "$service_port", "id": "$req_id"}')
    p = fresh_proxy(table(backends, {"access_log_format": fmt, "access_log_escape": "json",
                                     "access_log_skip": ["/healthz"]}))
    assert send(p.http_port, "/healthz").status == 200
    assert send(p.http_port, "/json", 'User-Agent: a "quoted" \\ agent\r\n').status == 200
    got = lines(p, lambda l: l.startswith("{") and '"ip"' in l)
    assert len(got) == 1, got  # /healthz skipped
    d = json.loads(got[0])
    assert d["req"] == "GET /json HTTP/1.1" and d["status"] == 200
    assert d["ua"] == 'a "quoted" \\ agent'
    assert (d["ns"], d["ing"], d["svc"], d["port"]) == ("shop", "front", "web", "80")


def test_disable_access_log(fresh_proxy, backends):
    p = fresh_proxy(table(backends, {"access_log": False}))
    assert send(p.http_port, "/nolog").status == 200
    time.sleep(0.3)
    assert not lines(p, lambda l: "/nolog" in l, timeout=0)


def test_bad_format_refuses_table(fresh_proxy, backends):
    p = fresh_proxy(table(backends))
    t = table(backends, {"access_log_format": "$remote_addr $request_body"})
    t["generation"] = 5
    pu.write_table(p.routes_dir, t)
    deadline = time.monotonic() + 10
    while "unknown variable $request_body" not in p.log_tail() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "settings.access_log_format: unknown variable $request_body" in p.log_tail()
