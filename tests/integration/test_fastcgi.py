"""FastCGI upstreams (ingress-nginx backend-protocol FCGI, fastcgi-index,
fastcgi-params-configmap) through a real weir-proxy: the params the responder gets (nginx's
fastcgi_params set, the request headers as HTTP_*, the route's own params), request bodies as
STDIN, CGI response heads turned into HTTP answers (Status, Location, no Status), bodies of any
record layout, and the broken responders a proxy must answer 502 (or 504) for.

The responder is tests/backends/fcgi_backend.py running in this process, so the tests can also
read what it received. A small FastCGI client at the end checks the responder itself, without
the proxy."""

import concurrent.futures
import hashlib
import json
import os
import re
import socket
import ssl
import struct
import time

import pytest

import proxyutil as pu
import fcgi_backend as fb  # tests/backends is on sys.path through proxyutil
import pattern

HOST = "FCGI.Test"
PARAMS = [{"name": "SCRIPT_FILENAME", "value": "/srv/app$fastcgi_script_name"},
          {"name": "APP_ENV", "value": "test"}]


def fcgi_policy(**extra):
    return {"backend_protocol": "FCGI", "fastcgi": {"index": "index.php", "params": PARAMS},
            **extra}


def table(fcgi_port, dead_port, cert=None):
    def r(path, backend=0, **extra):
        return {"path": path, "match": "prefix", "backend": backend, "source": f"fcgi{path}",
                "policy": fcgi_policy(**extra)}

    t = {
        "version": 1,
        "generation": 1,
        "hosts": [{"name": "", "routes": [
            r("/slow", read_timeout_ms=300),
            r("/deadfcgi", backend=1, connect_timeout_ms=2000),
            r("/echo-retry", backend=2, connect_timeout_ms=2000),
            r("/", body_limit=0),
        ]}],
        "backends": [
            {"name": "fcgi/app:9000", "endpoints": [{"address": "127.0.0.1", "port": fcgi_port}]},
            {"name": "fcgi/dead:9000", "endpoints": [{"address": "127.0.0.1", "port": dead_port}]},
            {"name": "fcgi/half:9000", "endpoints": [{"address": "127.0.0.1", "port": dead_port},
                                                     {"address": "127.0.0.1", "port": fcgi_port}]},
        ],
    }
    if cert:
        t["certs"] = [{"name": "fcgi/default.test", "cert_pem": cert[0], "key_pem": cert[1]}]
        t["default_cert"] = 0
    return t


@pytest.fixture(scope="module")
def fcgi():
    srv = fb.FcgiServer()
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def fproxy(proxy_bin, fcgi, certs, tmp_path_factory):
    d = tmp_path_factory.mktemp("fcgi")
    routes = d / "routes"
    routes.mkdir()
    pu.write_table(str(routes), table(fcgi.port, pu.free_port(), certs["default.test"]))
    p = pu.Proxy(str(routes), str(d / "proxy.log"), workers=2)
    try:
        p.wait_ready()
        yield p
    finally:
        p.stop()


def get(p, path, extra="", host=HOST):
    return pu.get(p.http_port, path, host=host, extra=extra)


def echo(p, path, extra="", host=HOST):
    r = get(p, path, extra, host)
    assert r.status == 200, r
    assert r.get("Content-Type") == "application/json", r
    return r.json()


def absent_or_empty(params, name):
    return params.get(name, "") == ""


# ------------------------------------------------------------------ params

def test_get_params(fproxy):
    extra = ("User-Agent: weir-test/1\r\nX-Custom-Thing: v\r\nProxy: evil\r\nX_Under: 1\r\n"
             "Accept: */*\r\n")
    host = f"{HOST}:{fproxy.http_port}"
    got = echo(fproxy, "/echo/x?a=1", extra, host=host)
    p = got["params"]
    want = {
        "REQUEST_METHOD": "GET",
        "QUERY_STRING": "a=1",
        "REQUEST_URI": "/echo/x?a=1",
        "SCRIPT_NAME": "/echo/x",
        "DOCUMENT_URI": "/echo/x",
        "SCRIPT_FILENAME": "/srv/app/echo/x",
        "APP_ENV": "test",
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REQUEST_SCHEME": "http",
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_PORT": str(fproxy.http_port),
        "SERVER_NAME": "fcgi.test",
        "HTTP_HOST": host,
        "HTTP_USER_AGENT": "weir-test/1",
        "HTTP_X_CUSTOM_THING": "v",
        "HTTP_ACCEPT": "*/*",
    }
    assert {k: p.get(k) for k in want} == want, p
    assert re.fullmatch(r"[0-9]+", p.get("REMOTE_PORT", "")), p
    assert 0 < int(p["REMOTE_PORT"]) < 65536, p
    assert "HTTP_PROXY" not in p, p  # httpoxy
    assert not [k for k in p if "UNDER" in k], p  # a header name with '_' is dropped
    assert absent_or_empty(p, "CONTENT_LENGTH") and absent_or_empty(p, "CONTENT_TYPE"), p
    assert absent_or_empty(p, "HTTPS"), p
    assert got["flags"] == 0 and got["role"] == fb.RESPONDER, got  # no FCGI_KEEP_CONN
    assert got["stdin_len"] == 0, got


def test_https_params(fproxy):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", fproxy.https_port), timeout=10)
    c = pu.RawConn(0, sock=ctx.wrap_socket(raw, server_hostname="default.test"))
    try:
        c.send(b"GET /echo/tls?t=1 HTTP/1.1\r\nHost: default.test\r\n\r\n")
        r = c.read_response()
    finally:
        c.close()
    assert r.status == 200, r
    p = r.json()["params"]
    assert p["HTTPS"] == "on" and p["REQUEST_SCHEME"] == "https", p
    assert p["SERVER_PORT"] == str(fproxy.https_port) and p["SERVER_NAME"] == "default.test", p


def test_http10_without_host(fproxy):
    """No Host header from the client: no HTTP_HOST param (nginx passes the client's headers
    only), in particular not the upstream's own address."""
    r = pu.request(fproxy.http_port, b"GET /echo/h10 HTTP/1.0\r\n\r\n")
    assert r.status == 200, r
    p = r.json()["params"]
    assert p["SERVER_PROTOCOL"] == "HTTP/1.0", p
    assert "HTTP_HOST" not in p, p


def test_large_params_stream(fproxy):
    """Request headers of more than one PARAMS record (65535 bytes) all arrive."""
    extra = "".join(f"X-H{i}: " + chr(ord("a") + i) * 2500 + "\r\n" for i in range(12))
    p = echo(fproxy, "/echo/bigparams", extra)["params"]
    for i in range(12):
        assert p[f"HTTP_X_H{i}"] == chr(ord("a") + i) * 2500, i


def test_index_appended_to_directory_paths(fproxy):
    p = echo(fproxy, "/echo/dir/")["params"]
    assert p["SCRIPT_NAME"] == "/echo/dir/index.php", p
    assert p["SCRIPT_FILENAME"] == "/srv/app/echo/dir/index.php", p
    assert p["DOCUMENT_URI"] == "/echo/dir/" and p["REQUEST_URI"] == "/echo/dir/", p
    assert absent_or_empty(p, "QUERY_STRING"), p


def test_encoded_path_and_query(fproxy):
    """REQUEST_URI and QUERY_STRING as sent; DOCUMENT_URI and SCRIPT_NAME decoded (nginx's
    $request_uri, $args, $document_uri, $fastcgi_script_name)."""
    p = echo(fproxy, "/echo/a%20b?q=%20x&r=1")["params"]
    assert p["REQUEST_URI"] == "/echo/a%20b?q=%20x&r=1", p
    assert p["QUERY_STRING"] == "q=%20x&r=1", p
    assert p["DOCUMENT_URI"] == "/echo/a b" and p["SCRIPT_NAME"] == "/echo/a b", p


def test_repeated_headers_and_cookies(fproxy):
    p = echo(fproxy, "/echo/h", "Cookie: a=1\r\nCookie: b=2\r\nX-Multi: one\r\n"
                                "X-Multi: two\r\n")["params"]
    # nginx joins repeated headers of one name: cookies with "; ", others with ", "
    assert p["HTTP_COOKIE"] in ("a=1; b=2", "a=1;b=2"), p
    assert p["HTTP_X_MULTI"] in ("one, two", "one,two"), p


# ------------------------------------------------------------------ request bodies

def test_post_body_with_length(fproxy):
    body = pattern.chunk(5, 1 << 20)
    r = pu.request(fproxy.http_port,
                   f"POST /echo/post HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/x-test"
                   f"\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body, timeout=30)
    assert r.status == 200, r
    got = r.json()
    assert got["stdin_len"] == len(body), got
    assert got["stdin_sha256"] == hashlib.sha256(body).hexdigest(), got
    p = got["params"]
    assert p["CONTENT_LENGTH"] == "1048576" and p["CONTENT_TYPE"] == "application/x-test", p
    assert p["REQUEST_METHOD"] == "POST", p


def test_post_chunked_body(fproxy):
    parts = [b"hello ", b"fastcgi ", b"x" * 70000]
    wire = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in parts) + b"0\r\n\r\n"
    r = pu.request(fproxy.http_port, f"PUT /echo/chunked HTTP/1.1\r\nHost: {HOST}\r\n"
                   f"Transfer-Encoding: chunked\r\n\r\n".encode() + wire)
    assert r.status == 200, r
    got = r.json()
    body = b"".join(parts)
    assert got["stdin_len"] == len(body), got
    assert got["stdin_sha256"] == hashlib.sha256(body).hexdigest(), got
    # nginx reads the whole body first and sends its length (PHP reads CONTENT_LENGTH bytes
    # of STDIN and nothing without it)
    assert got["params"].get("CONTENT_LENGTH") == str(len(body)), got["params"]


def test_expect_100_continue(fproxy):
    body = b"b" * 10000
    c = pu.RawConn(fproxy.http_port)
    try:
        c.send(f"POST /echo/expect HTTP/1.1\r\nHost: {HOST}\r\nExpect: 100-continue\r\n"
               f"Content-Length: {len(body)}\r\n\r\n".encode())
        interim = c.read_head()
        assert interim.status == 100, interim
        c.send(body)
        r = c.read_response()
    finally:
        c.close()
    assert r.status == 200, r
    got = r.json()
    assert got["stdin_len"] == len(body), got
    assert got["stdin_sha256"] == hashlib.sha256(body).hexdigest(), got


# ------------------------------------------------------------------ response heads and bodies

def test_status_header(fproxy):
    r = get(fproxy, "/status/404")
    assert r.status == 404 and r.body == b"status 404\n", r
    r = get(fproxy, "/status/503")
    assert r.status == 503 and r.body == b"status 503\n", r
    r = get(fproxy, "/status/201")
    assert r.status == 201 and r.body == b"status 201\n", r


def test_status_without_reason(fproxy):
    r = get(fproxy, "/status/202?reason=0")
    assert r.status == 202 and r.body == b"status 202\n", r


def test_no_body_status_on_keepalive(fproxy):
    """A 204 or 304 the responder sends a body with: the client gets none, and the next
    answer on the connection is intact."""
    c = pu.RawConn(fproxy.http_port)
    try:
        for code in (204, 304):
            c.send(f"GET /status/{code} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            r = c.read_response()
            assert r.status == code and r.body == b"", r
            assert r.get("Content-Length") in (None, "0") and r.get("Transfer-Encoding") is None, r
        c.send(f"GET /echo/after HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        r = c.read_response()
        assert r.status == 200 and r.json()["params"]["DOCUMENT_URI"] == "/echo/after", r
    finally:
        c.close()


def test_unknown_path_is_backend_404(fproxy):
    r = get(fproxy, "/nothing/here")
    assert r.status == 404 and r.body == b"fcgi_backend: no such path\n", r


def test_location_without_status_is_302(fproxy):
    r = get(fproxy, "/redirect")
    assert r.status == 302, r
    loc = r.get("Location")
    assert loc is not None and (loc == "/elsewhere" or loc.endswith("://" + HOST.lower()
                                                                     + "/elsewhere")
                                or loc.endswith(f":{fproxy.http_port}/elsewhere")), r


def test_head_without_status_is_200(fproxy):
    r = get(fproxy, "/noheaders")
    assert r.status == 200, r
    assert r.get("Content-Type") == "text/plain" and r.body == b"no status line here\n", r
    assert r.get("Status") is None, r  # the CGI Status header is not passed on


def test_big_body_in_odd_records(fproxy):
    n = 3000000
    r, total, digest = pu.get_digest(fproxy.http_port, f"/big?n={n}", HOST)
    assert r.status == 200, r
    assert total == n
    assert digest == pattern.sha256(n)


def test_content_length_passed_through(fproxy):
    r = get(fproxy, "/length")
    assert r.status == 200 and r.body == b"hello world", r
    assert r.get("Content-Length") == "11", r
    assert r.get("Transfer-Encoding") is None, r


def test_body_longer_than_content_length_is_cut(fproxy):
    c = pu.RawConn(fproxy.http_port)
    try:
        c.send(f"GET /shortlength HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        r = c.read_response()
        assert r.status == 200 and r.body == b"hello", r
        # the 6 bytes beyond it do not read as the start of the next answer
        c.send(f"GET /echo/next HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        r = c.read_response()
        assert r.status == 200 and r.json()["params"]["DOCUMENT_URI"] == "/echo/next", r
    finally:
        c.close()


def test_body_shorter_than_content_length_is_incomplete(fproxy):
    c = pu.RawConn(fproxy.http_port, timeout=5)
    try:
        c.send(f"GET /longlength HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        r = c.read_head()
        assert r.status == 200 and r.get("Content-Length") == "100", r
        with pytest.raises(ConnectionError):
            b"".join(c.iter_body(r))
    finally:
        c.close()


def test_head_split_over_records_with_lf_line_ends(fproxy):
    r = get(fproxy, "/splithead")
    assert r.status == 200, r
    assert r.get("X-Split") == "one" and r.get("X-Split-Two") == "two", r
    assert r.get("Content-Type") == "text/plain", r
    assert r.body == b"split body\n", r


def test_end_request_without_empty_stdout(fproxy):
    """php-fpm ends STDOUT with END_REQUEST alone, without the empty STDOUT record."""
    r = get(fproxy, "/noempty")
    assert r.status == 200 and r.body == b"no empty stdout\n", r


def test_records_with_any_padding(fproxy):
    r = get(fproxy, "/padded")
    assert r.status == 200, r
    assert r.body == b"".join(b"%04d," % i for i in range(2000)), r


def test_answer_ends_at_end_request_not_at_close(fproxy):
    """The responder keeps the connection open after END_REQUEST (FCGI_KEEP_CONN is not set,
    but nothing forces it to close first): the client has the whole answer at once."""
    c = pu.RawConn(fproxy.http_port, timeout=3)
    try:
        t0 = time.monotonic()
        c.send(f"GET /lingering?ms=4000 HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        r = c.read_response()
        took = time.monotonic() - t0
        assert r.status == 200 and r.body == b"done\n", r
        assert took < 2, f"answer complete after {took:.2f}s"
        c.send(f"GET /echo/next HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        assert c.read_response().status == 200
    finally:
        c.close()


def test_stderr_is_logged(fproxy):
    r = get(fproxy, "/stderr")
    assert r.status == 200 and r.body == b"body after stderr\n", r
    deadline = time.monotonic() + 3
    while "php warning: something" not in fproxy.log_tail(200000):
        assert time.monotonic() < deadline, ("the responder's STDERR is not in the proxy log:\n"
                                             + fproxy.log_tail())
        time.sleep(0.05)


def test_truncated_answer_is_an_incomplete_response(fproxy):
    c = pu.RawConn(fproxy.http_port)
    try:
        c.send(f"GET /truncate HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        r = c.read_head()
        assert r.status == 200, r
        got = b""
        with pytest.raises(ConnectionError):
            for piece in c.iter_body(r):
                got += piece
        assert got == b"x" * len(got) and len(got) <= 5000, got[:100]
    finally:
        c.close()


@pytest.mark.parametrize("path", ["/nohead", "/garbage", "/status101", "/badstatus",
                                  "/badheader"])
def test_broken_responder_is_502(fproxy, fcgi, path):
    r = get(fproxy, path)
    assert r.status == 502, r
    assert fcgi.requests_for(path), f"the responder never got {path}"
    # the proxy is fine afterwards
    assert echo(fproxy, "/echo/after")["params"]["DOCUMENT_URI"] == "/echo/after"


def test_head_over_proxy_buffer_size_is_502(fproxy):
    r = get(fproxy, "/bighead?n=1000")
    assert r.status == 200 and len(r.get("X-Big")) == 1000, r
    assert r.body == b"bighead body\n", r
    r = get(fproxy, "/bighead?n=8000")
    assert r.status == 502, r


def test_read_timeout_is_504(fproxy):
    t0 = time.monotonic()
    r = get(fproxy, "/slow?ms=3000")
    took = time.monotonic() - t0
    assert r.status == 504, r
    assert took < 2.5, f"504 after {took:.2f}s, read_timeout_ms is 300"
    r = get(fproxy, "/slow?ms=10")
    assert r.status == 200, r


def test_client_gone_mid_body(fproxy):
    """A client that leaves in the middle of a large answer: the proxy carries on."""
    for _ in range(3):
        c = pu.RawConn(fproxy.http_port)
        c.send(f"GET /big?n=20000000 HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        assert c.read_head().status == 200
        c.close()
    assert echo(fproxy, "/echo/alive")["params"]["DOCUMENT_URI"] == "/echo/alive"


def test_backend_not_listening_is_502(fproxy):
    r = get(fproxy, "/deadfcgi/x")
    assert r.status == 502, r


def test_next_endpoint_after_connect_failure(fproxy):
    """Two endpoints, one not listening: every request is answered by the other one (the
    FastCGI request is built again for the second attempt), bodies included."""
    retries = 'condition="error"'
    before = fproxy.metric("weir_proxy_upstream_retries_total", retries)
    for i in range(4):
        got = echo(fproxy, f"/echo-retry/g{i}?i={i}")
        assert got["params"]["DOCUMENT_URI"] == f"/echo-retry/g{i}", got
        assert got["params"]["QUERY_STRING"] == f"i={i}", got
        assert got["params"]["APP_ENV"] == "test", got
    for i in range(4):
        body = f"retry body {i}".encode()
        r = pu.request(fproxy.http_port, f"POST /echo-retry/p{i} HTTP/1.1\r\nHost: {HOST}\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        assert r.status == 200, r
        got = r.json()
        assert got["params"]["DOCUMENT_URI"] == f"/echo-retry/p{i}", got
        assert got["stdin_sha256"] == hashlib.sha256(body).hexdigest(), got
    assert fproxy.metric("weir_proxy_upstream_retries_total", retries) > before


def test_head_request_has_no_body(fproxy):
    c = pu.RawConn(fproxy.http_port)
    try:
        c.send(f"HEAD /echo/x HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        r = c.read_response("HEAD")
        assert r.status == 200 and r.body == b"", r
        # nothing of the responder's body leaks into the next answer on the connection
        c.send(f"GET /echo/next HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        r2 = c.read_response()
        assert r2.status == 200, r2
        assert r2.json()["params"]["REQUEST_METHOD"] == "GET"
        assert r2.json()["params"]["DOCUMENT_URI"] == "/echo/next"
    finally:
        c.close()


# ------------------------------------------------------------------ connections

def test_client_keepalive_new_fastcgi_connection_per_request(fproxy, fcgi):
    before = fcgi.connections
    c = pu.RawConn(fproxy.http_port)
    ports = set()
    try:
        for i in range(5):
            c.send(f"GET /echo/ka?i={i} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            r = c.read_response()
            assert r.status == 200, r
            got = r.json()
            assert got["params"]["QUERY_STRING"] == f"i={i}", got
            assert got["flags"] == 0, got
            ports.add(got["params"]["REMOTE_PORT"])
        # a non-echo answer in between does not break the connection either
        c.send(f"GET /status/404 HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        assert c.read_response().status == 404
        c.send(f"GET /echo/ka?last HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        assert c.read_response().status == 200
    finally:
        c.close()
    assert len(ports) == 1, ports  # one client connection
    assert fcgi.connections - before >= 7, (before, fcgi.connections)


def test_concurrent_requests(fproxy):
    def one(i):
        body = f"body {i} ".encode() * (i + 1)
        r = pu.request(fproxy.http_port,
                       f"POST /echo/c{i}?i={i} HTTP/1.1\r\nHost: {HOST}\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n".encode() + body, timeout=20)
        assert r.status == 200, r
        got = r.json()
        assert got["params"]["DOCUMENT_URI"] == f"/echo/c{i}", got
        assert got["params"]["QUERY_STRING"] == f"i={i}", got
        assert got["stdin_sha256"] == hashlib.sha256(body).hexdigest(), got
        return i

    with concurrent.futures.ThreadPoolExecutor(50) as ex:
        done = sorted(ex.map(one, range(50)))
    assert done == list(range(50))


# ------------------------------------------------------------------ the responder itself

def fcgi_call(port, params, stdin=b"", flags=0, sock=None):
    """One request to a FastCGI responder: {"stdout", "stderr", "end"} (end: the END_REQUEST
    body, None when the connection closed first)."""
    s = sock or socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        out = fb.record(fb.BEGIN_REQUEST, 1, struct.pack("!HB5x", fb.RESPONDER, flags))
        out += fb.stream(fb.PARAMS, 1, fb.encode_pairs(params.items())) + fb.record(fb.PARAMS, 1)
        out += fb.stream(fb.STDIN, 1, stdin) + fb.record(fb.STDIN, 1)
        s.sendall(out)
        rd = fb.Reader(s)
        got = {"stdout": b"", "stderr": b"", "end": None}
        while True:
            rec = rd.read()
            if rec is None:
                return got
            rtype, _, content = rec
            if rtype == fb.STDOUT:
                got["stdout"] += content
            elif rtype == fb.STDERR:
                got["stderr"] += content
            elif rtype == fb.END_REQUEST:
                got["end"] = content
                return got
    finally:
        if sock is None:
            s.close()


def test_responder_self_check(fcgi):
    long_value = "v" * 300  # a 4-byte value length
    got = fcgi_call(fcgi.port, {"DOCUMENT_URI": "/echo/self", "QUERY_STRING": "a=1",
                                "LONG": long_value}, b"abc" * 1000)
    assert got["end"] == b"\0" * 8
    head, body = got["stdout"].split(b"\r\n\r\n", 1)
    info = json.loads(body)
    assert info["params"]["LONG"] == long_value and info["stdin_len"] == 3000, info
    got = fcgi_call(fcgi.port, {"DOCUMENT_URI": "/big", "QUERY_STRING": "n=200000"})
    body = got["stdout"].split(b"\r\n\r\n", 1)[1]
    assert hashlib.sha256(body).hexdigest() == pattern.sha256(200000)
    assert fcgi_call(fcgi.port, {"DOCUMENT_URI": "/truncate"})["end"] is None
    assert fcgi_call(fcgi.port, {"DOCUMENT_URI": "/nohead"}) == {"stdout": b"", "stderr": b"",
                                                                 "end": None}
    with pytest.raises(fb.ProtocolError):
        fcgi_call(fcgi.port, {"DOCUMENT_URI": "/garbage"})
    got = fcgi_call(fcgi.port, {"DOCUMENT_URI": "/stderr"})
    assert got["stderr"] == b"php warning: somethingphp notice: second", got
    # FCGI_KEEP_CONN: three requests on one connection
    s = socket.create_connection(("127.0.0.1", fcgi.port), timeout=10)
    try:
        for i in range(3):
            got = fcgi_call(fcgi.port, {"DOCUMENT_URI": "/echo/k"}, b"x" * i, fb.KEEP_CONN, s)
            assert json.loads(got["stdout"].split(b"\r\n\r\n", 1)[1])["stdin_len"] == i
    finally:
        s.close()


def test_responder_runs_standalone(tmp_path):
    port = pu.free_port()
    proc = pu.start_backend("fcgi_backend.py", port, str(tmp_path / "fcgi.log"))
    try:
        got = fcgi_call(port, {"DOCUMENT_URI": "/length"})
        assert got["stdout"].endswith(b"\r\n\r\nhello world") and got["end"] == b"\0" * 8
    finally:
        pu.stop_process(proc)
    assert os.path.exists(tmp_path / "fcgi.log")


def test_route_header_settings_apply(fproxy):
    """The headers go as weir sends them to an HTTP backend: a client's own
    X-Forwarded-For is not believed (the proxy trusts no peer here), and
    X-Request-ID and X-Real-IP are weir's."""
    p = echo(fproxy, "/echo/xff", "X-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n")["params"]
    assert p["HTTP_X_FORWARDED_FOR"] == "127.0.0.1", p
    assert p["HTTP_X_REAL_IP"] == "127.0.0.1", p
    assert len(p["HTTP_X_REQUEST_ID"]) == 32, p
