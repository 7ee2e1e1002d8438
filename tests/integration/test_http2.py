"""HTTP/2 from clients through weir-proxy (proxy/h2.c): ALPN on the HTTPS port (use_http2),
h2c with prior knowledge on the HTTP port (http2_cleartext), requests and bodies per stream,
many streams on one connection, route policies per stream, WebSocket over HTTP/2 (RFC 8441
extended CONNECT), refusals (431, 405), client resets, and the protections against rapid
reset, CONTINUATION floods and PING floods.

The clients are hyper-h2 (h2 4.x) on a Python socket, curl --http2 / --http2-prior-knowledge,
and, for the floods, frames written byte by byte here."""

import base64
import hashlib
import json
import os
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2 import events as ev
from h2.settings import SettingCodes

import pattern
import proxyutil as pu

HOST = "h2.test"
MIB = 1 << 20
USER, PASSWORD = "h2user", "h2 secret"
SHA_HASH = "{SHA}" + base64.b64encode(hashlib.sha1(PASSWORD.encode()).digest()).decode()
GAUGE = "weir_proxy_open_connections"


# ------------------------------------------------------------------ the table

def h2_table(backends, certs, **settings):
    def ep(key):
        return [{"address": "127.0.0.1", "port": backends[key]}]

    def route(path, backend, **policy):
        return {"path": path, "match": "prefix", "backend": backend, "source": f"h2{path}",
                "policy": policy}

    base = {"allow_backend_server_header": True}
    base.update(settings)
    return {
        "version": 1,
        "generation": 1,
        "settings": base,
        "hosts": [{"name": "", "routes": [
            route("/echo", 0, body_limit=0),
            route("/ws", 1),
            route("/deny", 0, deny=["127.0.0.1"]),
            route("/allow", 0, allow=["10.0.0.0/8"]),
            route("/auth", 0, auth={"type": "basic", "realm": "h2 realm",
                                    "users": [{"name": USER, "hash": SHA_HASH}]}),
            {"path": "/old", "match": "prefix", "backend": -1, "source": "h2/old",
             "policy": {"redirect_code": 301, "redirect_url": "https://new.example/"}},
            route("/", 0, body_limit=0),
        ]}],
        "backends": [
            {"name": "h2/echo:80", "endpoints": ep("echo")},
            {"name": "h2/ws:80", "endpoints": ep("ws")},
        ],
        "certs": [{"name": "h2/default.test", "cert_pem": certs["default.test"][0],
                   "key_pem": certs["default.test"][1]}],
        "default_cert": 0,
    }


@pytest.fixture(scope="module")
def hp(proxy_bin, backends, certs, tmp_path_factory):
    """The module's proxy: HTTP/2 on (default), h2c on, max_header_bytes 8192."""
    d = tmp_path_factory.mktemp("h2")
    routes = d / "routes"
    routes.mkdir()
    pu.write_table(str(routes), h2_table(backends, certs, http2_cleartext=True,
                                         max_header_bytes=8192))
    p = pu.Proxy(str(routes), str(d / "proxy.log"), workers=2)
    try:
        p.wait_ready()
        yield p
    finally:
        p.stop()


def wait_gauge(p, want, timeout=10.0):
    """The connections gauge reaches want (connections closed by a client are seen a little
    later by the proxy)."""
    deadline = time.monotonic() + timeout
    while True:
        got = p.metric(GAUGE)
        if got == want:
            return
        assert time.monotonic() < deadline, f"{GAUGE} is {got}, not {want}, after {timeout}s"
        time.sleep(0.05)


def fresh(fresh_proxy, backends, certs, **settings):
    return fresh_proxy(h2_table(backends, certs, **settings))


# ------------------------------------------------------------------ an HTTP/2 client

def tls_socket(port, alpn=("h2", "http/1.1"), timeout=15.0):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(list(alpn))
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname=HOST)


class Stream:
    def __init__(self, sid):
        self.sid = sid
        self.headers = None
        self.data = bytearray()
        self.ended = False
        self.reset = None

    @property
    def status(self):
        return int(self.hget(":status")) if self.headers else None

    def hget(self, name):
        for k, v in self.headers or []:
            if k == name:
                return v
        return None

    def hall(self, name):
        return [v for k, v in self.headers or [] if k == name]

    def json(self):
        return json.loads(bytes(self.data))

    def __repr__(self):
        return (f"<Stream {self.sid} headers={self.headers} ended={self.ended} "
                f"reset={self.reset} data={bytes(self.data[:300])!r}>")


class H2:
    """hyper-h2 on a socket (TLS with ALPN, or plain h2c with prior knowledge)."""

    def __init__(self, port, tls=True, timeout=15.0, check_alpn=True, validate=True):
        if tls:
            self.sock = tls_socket(port, timeout=timeout)
            self.alpn = self.sock.selected_alpn_protocol()
            if check_alpn:
                assert self.alpn == "h2", f"ALPN chose {self.alpn!r}"
        else:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            self.alpn = None
        self.scheme = "https" if tls else "http"
        self.conn = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8",
                                                 validate_outbound_headers=validate))
        self.conn.initiate_connection()
        self.conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
        self.conn.increment_flow_control_window(16 * MIB)
        self.streams = {}
        self.goaway = None
        self.eof = False
        self.settings_seen = False
        self.flush()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def _handle(self, e):
        st = self.streams.get(getattr(e, "stream_id", None))
        if isinstance(e, ev.ResponseReceived):
            st.headers = e.headers
        elif isinstance(e, ev.DataReceived):
            st.data += e.data
            if e.flow_controlled_length:
                try:
                    self.conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                except Exception:  # the stream may be closed already
                    pass
        elif isinstance(e, ev.StreamEnded):
            st.ended = True
        elif isinstance(e, ev.StreamReset):
            if st is not None:
                st.reset = e.error_code
        elif isinstance(e, ev.ConnectionTerminated):
            self.goaway = e
        elif isinstance(e, ev.RemoteSettingsChanged):
            self.settings_seen = True

    def pump_once(self, timeout):
        """Read what arrives within timeout (at most one recv). False on EOF."""
        if self.eof:
            return False
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(1 << 20)
        except (socket.timeout, ssl.SSLWantReadError):
            return True
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            self.eof = True
            return False
        if not data:
            self.eof = True
            return False
        for e in self.conn.receive_data(data):
            self._handle(e)
        self.flush()
        return True

    def pump(self, cond, timeout=15.0, what="condition"):
        deadline = time.monotonic() + timeout
        while not cond():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{what} not met after {timeout}s; streams "
                                   f"{list(self.streams.values())[:3]} goaway={self.goaway}")
            if not self.pump_once(left):
                if cond():
                    return
                raise ConnectionError(f"connection closed before {what} (goaway="
                                      f"{self.goaway})")

    def wait_settings(self, timeout=10.0):
        self.pump(lambda: self.settings_seen, timeout, "server SETTINGS")
        return self.conn.remote_settings

    def open(self, method, path, headers=(), end=True, authority=HOST, scheme=None,
             extra_pseudo=()):
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method)]
        hdrs += list(extra_pseudo)
        if method != "CONNECT" or extra_pseudo:
            hdrs += [(":scheme", scheme or self.scheme), (":path", path)]
        hdrs += [(":authority", authority)]
        hdrs += list(headers)
        self.streams[sid] = Stream(sid)
        self.conn.send_headers(sid, hdrs, end_stream=end)
        self.flush()
        return sid

    def send_body(self, sid, data, end=True, timeout=60.0):
        off = 0
        deadline = time.monotonic() + timeout
        while off < len(data):
            window = min(self.conn.local_flow_control_window(sid),
                         self.conn.max_outbound_frame_size)
            if window <= 0:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"stream {sid}: window stayed shut at {off} of "
                                       f"{len(data)} bytes")
                if not self.pump_once(1.0):
                    raise ConnectionError(f"closed while sending ({off} of {len(data)})")
                st = self.streams[sid]
                if st.reset is not None:
                    raise ConnectionError(f"stream reset ({st.reset}) at {off}: {st}")
                continue
            n = min(window, len(data) - off)
            self.conn.send_data(sid, data[off:off + n])
            off += n
            self.flush()
        if end:
            self.conn.end_stream(sid)
            self.flush()

    def request(self, method, path, headers=(), body=None, timeout=30.0):
        sid = self.open(method, path, headers, end=body is None)
        if body is not None:
            self.send_body(sid, body)
        return self.wait(sid, timeout)

    def get(self, path, headers=(), timeout=30.0):
        return self.request("GET", path, headers, timeout=timeout)

    def wait(self, sid, timeout=30.0):
        st = self.streams[sid]
        self.pump(lambda: st.ended or st.reset is not None, timeout, f"end of stream {sid}")
        return st

    def reset(self, sid, code=ErrorCodes.CANCEL):
        self.conn.reset_stream(sid, code)
        self.flush()

    def close(self):
        try:
            self.conn.close_connection()
            self.flush()
        except Exception:
            pass
        self.sock.close()


def hv(info, name):
    return [v for k, v in info["headers"] if k.lower() == name.lower()]


def h1(port, path, extra=""):
    return pu.get(port, path, host=HOST, extra=extra)


def h1_tls(port, path, extra=""):
    """An HTTP/1.1 GET over TLS (ALPN http/1.1)."""
    s = tls_socket(port, alpn=("http/1.1",))
    assert s.selected_alpn_protocol() == "http/1.1"
    c = pu.RawConn(port, sock=s)
    try:
        c.send(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n{extra}\r\n".encode())
        return c.read_response()
    finally:
        c.close()


# ------------------------------------------------------------------ 1. ALPN

def test_alpn_h2_chosen(hp):
    c = H2(hp.https_port, check_alpn=False)
    try:
        assert c.alpn == "h2"
        settings = c.wait_settings()
        assert settings.get(SettingCodes.MAX_CONCURRENT_STREAMS) == 128, dict(settings)
        assert settings.get(SettingCodes.ENABLE_CONNECT_PROTOCOL) == 1, dict(settings)
        st = c.get("/echo/alpn")
        assert st.status == 200, st
        assert st.json()["path"] == "/echo/alpn"
    finally:
        c.close()


def test_alpn_http11_when_use_http2_false(fresh_proxy, backends, certs):
    p = fresh(fresh_proxy, backends, certs, use_http2=False)
    s = tls_socket(p.https_port, alpn=("h2", "http/1.1"))
    assert s.selected_alpn_protocol() == "http/1.1"
    c = pu.RawConn(p.https_port, sock=s)
    try:
        c.send(f"GET /echo/h11 HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        r = c.read_response()
        assert r.status == 200, r
        assert r.json()["path"] == "/echo/h11"
    finally:
        c.close()


def test_max_concurrent_streams_setting(fresh_proxy, backends, certs):
    p = fresh(fresh_proxy, backends, certs, http2_max_concurrent_streams=7)
    c = H2(p.https_port)
    try:
        assert c.wait_settings().get(SettingCodes.MAX_CONCURRENT_STREAMS) == 7
    finally:
        c.close()


def test_curl_http2(hp, tmp_path):
    out = tmp_path / "body"
    r = subprocess.run(["curl", "-sS", "-k", "--http2", "--noproxy", "*", "-o", str(out),
                        "-w", "%{http_version} %{http_code}", "--resolve",
                        f"{HOST}:{hp.https_port}:127.0.0.1",
                        f"https://{HOST}:{hp.https_port}/echo/curl?x=1"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "2 200", r.stdout
    info = json.loads(out.read_bytes())
    assert info["path"] == "/echo/curl" and info["query"] == "x=1", info
    assert info["method"] == "GET"
    assert hv(info, "Host") == [f"{HOST}:{hp.https_port}"], info["headers"]


# ------------------------------------------------------------------ 2. requests and bodies

def test_get_request_headers(hp):
    c = H2(hp.https_port)
    try:
        st = c.get("/echo/hdrs?q=2", headers=[("cookie", "a=1"), ("cookie", "b=2"),
                                               ("x-custom", "v1"), ("user-agent", "h2-test")])
        assert st.status == 200, st
        info = st.json()
        assert info["method"] == "GET" and info["path"] == "/echo/hdrs" and info["query"] == "q=2"
        assert hv(info, "Host") == [HOST], info["headers"]
        assert hv(info, "Cookie") == ["a=1; b=2"], info["headers"]
        assert hv(info, "X-Custom") == ["v1"], info["headers"]
        assert hv(info, "User-Agent") == ["h2-test"], info["headers"]
        assert hv(info, "X-Forwarded-Proto") == ["https"], info["headers"]
        # no HTTP/1.1 hop-by-hop or pseudo headers in the answer
        names = [k for k, _ in st.headers]
        assert "connection" not in names and "transfer-encoding" not in names, st.headers
        assert names[0] == ":status" and names.count(":status") == 1
    finally:
        c.close()


def test_head_has_no_body(hp):
    c = H2(hp.https_port)
    try:
        st = c.request("HEAD", "/echo/head?do=fixed&n=1000")
        assert st.status == 200, st
        assert st.ended and bytes(st.data) == b"", st
        assert st.hget("content-length") in (None, "1000"), st.headers
    finally:
        c.close()


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_statuses(hp, code):
    c = H2(hp.https_port)
    try:
        st = c.get(f"/echo/nb?do=status&code={code}")
        assert st.status == code, st
        assert st.ended and st.reset is None and bytes(st.data) == b"", st
        # the connection is still good for the next request
        assert c.get("/echo/after").status == 200
    finally:
        c.close()


@pytest.mark.parametrize("size", [0, 5, 70000, 5 * MIB + 3])
@pytest.mark.parametrize("with_length", [True, False], ids=["content-length", "no-length"])
def test_post_bodies(hp, size, with_length):
    body = os.urandom(size)
    headers = [("content-type", "application/octet-stream")]
    if with_length:
        headers.append(("content-length", str(size)))
    c = H2(hp.https_port)
    try:
        st = c.request("POST", f"/echo/post/{size}", headers, body=body, timeout=60)
        assert st.status == 200, st
        info = st.json()
        assert info["method"] == "POST"
        assert info["body_len"] == size, (info["body_len"], hv(info, "Transfer-Encoding"),
                                          hv(info, "Content-Length"))
        assert info["body_sha256"] == hashlib.sha256(body).hexdigest()
        if with_length:
            assert hv(info, "Content-Length") == [str(size)], info["headers"]
    finally:
        c.close()


@pytest.mark.parametrize("mode", ["fixed", "stream"])
def test_large_response_bodies(hp, mode):
    n = 6 * MIB + 7
    c = H2(hp.https_port)
    try:
        st = c.get(f"/echo/big?do={mode}&n={n}", timeout=60)
        assert st.status == 200, st
        assert st.ended and st.reset is None, repr(st)[:300]
        assert len(st.data) == n
        assert hashlib.sha256(st.data).hexdigest() == pattern.sha256(n)
    finally:
        c.close()


def test_two_large_responses_interleaved(hp):
    """Two big answers on one connection at once: both whole (per-stream buffers)."""
    n1, n2 = 4 * MIB + 1, 3 * MIB + 11
    c = H2(hp.https_port)
    try:
        a = c.open("GET", f"/echo/i1?do=fixed&n={n1}")
        b = c.open("GET", f"/echo/i2?do=stream&n={n2}")
        sa, sb = c.wait(a, 60), c.wait(b, 60)
        assert sa.status == 200 and sb.status == 200, (sa, sb)
        assert hashlib.sha256(sa.data).hexdigest() == pattern.sha256(n1)
        assert hashlib.sha256(sb.data).hexdigest() == pattern.sha256(n2)
    finally:
        c.close()


def test_request_trailers_end_the_body(hp):
    """A body without content-length ended by a trailers HEADERS frame (END_STREAM there):
    the body arrives whole and the stream is answered."""
    body = os.urandom(100000)
    c = H2(hp.https_port)
    try:
        sid = c.open("POST", "/echo/trailers", headers=[("te", "trailers")], end=False)
        c.send_body(sid, body, end=False)
        c.conn.send_headers(sid, [("x-checksum", "abc")], end_stream=True)
        c.flush()
        st = c.wait(sid)
        assert st.status == 200, st
        info = st.json()
        assert info["body_len"] == len(body)
        assert info["body_sha256"] == hashlib.sha256(body).hexdigest()
    finally:
        c.close()


def test_authority_wins_over_host_header(hp):
    """:authority and a different host header: the backend gets one Host, the :authority
    (or the request is refused as malformed, RFC 9113 8.3.1); never other.test or two."""
    c = H2(hp.https_port, validate=False)
    try:
        st = c.get("/echo/authority", headers=[("host", "other.test")])
        if st.reset is None and st.status == 200:
            assert hv(st.json(), "Host") == [HOST], st.json()["headers"]
        else:
            assert st.reset is not None or st.status == 400, st
        assert c.get("/echo/after-authority").status == 200
    finally:
        c.close()


# ------------------------------------------------------------------ 3. many streams

def test_100_concurrent_streams_one_connection(fresh_proxy, backends, certs):
    p = fresh(fresh_proxy, backends, certs)
    wait_gauge(p, 0)  # the port checks' connections leave first
    c = H2(p.https_port)
    try:
        sids = [c.open("GET", f"/echo/c{i}?do=sleep&ms=1500") for i in range(100)]
        c.pump_once(0.2)
        during = p.metric(GAUGE)
        results = [c.wait(s, 30) for s in sids]
        after_all = p.metric(GAUGE)
        bad = [(i, st) for i, st in enumerate(results)
               if st.status != 200 or st.json()["path"] != f"/echo/c{i}"]
        assert bad == [], bad[:3]
        assert during == 1, f"{GAUGE} was {during} with 100 streams open on one connection"
        assert after_all == 1, f"{GAUGE} was {after_all} after the streams ended"
    finally:
        c.close()
    wait_gauge(p, 0)  # the session gives its count back once


# ------------------------------------------------------------------ 4. route policies

@pytest.mark.parametrize("path,status", [("/deny/x", 403), ("/allow/x", 403),
                                         ("/auth/x", 401), ("/echo/ok", 200)])
def test_policies_same_status_as_http11(hp, path, status):
    r1 = h1(hp.http_port, path)
    r1s = h1_tls(hp.https_port, path)
    c = H2(hp.https_port)
    try:
        st = c.get(path)
    finally:
        c.close()
    assert (r1.status, r1s.status, st.status) == (status, status, status), (r1, r1s, st)
    if status == 401:
        assert st.hall("www-authenticate") == r1.get_all("WWW-Authenticate") == \
            ['Basic realm="h2 realm"'], (st.headers, r1.headers)


def test_basic_auth_accepted_over_h2(hp):
    auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    c = H2(hp.https_port)
    try:
        st = c.get("/auth/in", headers=[("authorization", auth)])
        assert st.status == 200, st
        assert st.json()["path"] == "/auth/in"
        bad = c.get("/auth/in", headers=[("authorization", "Basic " +
                                          base64.b64encode(b"h2user:wrong").decode())])
        assert bad.status == 401, bad
    finally:
        c.close()


def test_redirect_same_location(hp):
    r1 = h1(hp.http_port, "/old/page")
    c = H2(hp.https_port)
    try:
        st = c.get("/old/page")
    finally:
        c.close()
    assert r1.status == 301 and st.status == 301, (r1, st)
    assert st.hget("location") == r1.get("Location") == "https://new.example/", st.headers


# ------------------------------------------------------------------ 5. WebSocket over h2

def ws_frame(opcode, payload, fin=True):
    """A client frame: masked."""
    mask = os.urandom(4)
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = bytes([b0, 0x80 | n])
    elif n < 65536:
        head = bytes([b0, 0x80 | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, 0x80 | 127]) + struct.pack("!Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def ws_parse(buf):
    """Server frames (unmasked) from buf: ([(fin, opcode, payload)], rest)."""
    out = []
    while len(buf) >= 2:
        b0, b1 = buf[0], buf[1]
        assert not (b1 & 0x80), f"server frame masked: {bytes(buf[:16])!r}"
        n, at = b1 & 0x7F, 2
        if n == 126:
            if len(buf) < 4:
                break
            n, at = struct.unpack("!H", buf[2:4])[0], 4
        elif n == 127:
            if len(buf) < 10:
                break
            n, at = struct.unpack("!Q", buf[2:10])[0], 10
        if len(buf) < at + n:
            break
        out.append((bool(b0 & 0x80), b0 & 0x0F, bytes(buf[at:at + n])))
        buf = buf[at + n:]
    return out, buf


class WsOverH2:
    def __init__(self, c, path):
        self.c = c
        self.sid = c.open("CONNECT", path, end=False,
                          extra_pseudo=[(":protocol", "websocket")],
                          headers=[("sec-websocket-version", "13"),
                                   ("origin", f"https://{HOST}")])
        self.st = c.streams[self.sid]
        c.pump(lambda: self.st.headers is not None or self.st.reset is not None
               or self.st.ended, 15, "CONNECT answer")
        self.read_at = 0
        self.frames = []

    def send(self, opcode, payload):
        self.c.send_body(self.sid, ws_frame(opcode, payload), end=False)

    def recv(self, timeout=15.0):
        def have():
            if self.frames:
                return True
            frames, rest = ws_parse(bytes(self.st.data[self.read_at:]))
            self.read_at = len(self.st.data) - len(rest)
            self.frames.extend(frames)
            return bool(self.frames) or self.st.ended or self.st.reset is not None
        self.c.pump(have, timeout, f"a WebSocket frame on stream {self.sid}")
        assert self.frames, f"stream ended without a frame: {self.st}"
        return self.frames.pop(0)


def test_websocket_over_h2_echo_and_close(hp):
    c = H2(hp.https_port)
    try:
        assert c.wait_settings().get(SettingCodes.ENABLE_CONNECT_PROTOCOL) == 1
        ws = WsOverH2(c, "/ws/h2")
        assert ws.st.status == 200, ws.st
        assert ws.st.hget("sec-websocket-accept") is None, ws.st.headers
        assert not ws.st.ended and ws.st.reset is None
        ws.send(0x1, "héllo over h2".encode())
        assert ws.recv() == (True, 0x1, "héllo over h2".encode())
        for n in (1, 125, 126, 65535, 65536, 200000):
            data = os.urandom(n)
            ws.send(0x2, data)
            fin, op, got = ws.recv()
            assert (fin, op) == (True, 0x2) and got == data, (n, len(got))
        ws.send(0x8, struct.pack("!H", 1000) + b"bye")
        fin, op, payload = ws.recv()
        assert op == 0x8 and struct.unpack("!H", payload[:2])[0] == 1000, (op, payload)
        c.conn.end_stream(ws.sid)
        c.flush()
        c.pump(lambda: ws.st.ended or ws.st.reset is not None, 10, "end of the tunnel stream")
        assert ws.st.ended and ws.st.reset is None, ws.st
        # the connection carries on
        assert c.get("/echo/after-ws").status == 200
    finally:
        c.close()


def test_several_websockets_and_gets_on_one_connection(hp):
    c = H2(hp.https_port)
    try:
        c.wait_settings()
        socks = [WsOverH2(c, f"/ws/multi{i}") for i in range(4)]
        for ws in socks:
            assert ws.st.status == 200, ws.st
        gets = [c.open("GET", f"/echo/between{i}") for i in range(5)]
        for rnd in range(5):
            for i, ws in enumerate(socks):
                ws.send(0x1, f"ws{i} round {rnd}".encode())
            for i, ws in enumerate(socks):
                assert ws.recv() == (True, 0x1, f"ws{i} round {rnd}".encode())
        for i, sid in enumerate(gets):
            st = c.wait(sid)
            assert st.status == 200 and st.json()["path"] == f"/echo/between{i}", st
        big = c.open("GET", f"/echo/bigmid?do=fixed&n={2 * MIB}")
        for i, ws in enumerate(socks):
            ws.send(0x2, bytes([i]) * 70000)
        for i, ws in enumerate(socks):
            assert ws.recv() == (True, 0x2, bytes([i]) * 70000)
        st = c.wait(big, 60)
        assert hashlib.sha256(st.data).hexdigest() == pattern.sha256(2 * MIB)
        for ws in socks:
            ws.send(0x8, struct.pack("!H", 1000))
            assert ws.recv()[1] == 0x8
    finally:
        c.close()


def test_extended_connect_refusals(hp):
    """Policies apply to the extended CONNECT stream too (deny: 403, as the WebSocket upgrade
    over HTTP/1.1 gets), and an unknown :protocol is refused (501); the connection goes on."""
    k = base64.b64encode(os.urandom(16)).decode()
    r1 = pu.request(hp.http_port, (f"GET /deny/ws HTTP/1.1\r\nHost: {HOST}\r\n"
                                   f"Connection: Upgrade\r\nUpgrade: websocket\r\n"
                                   f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {k}\r\n"
                                   f"\r\n").encode())
    c = H2(hp.https_port)
    try:
        c.wait_settings()
        ws = WsOverH2(c, "/deny/ws")
        assert r1.status == 403 and ws.st.status == 403, (r1, ws.st)
        other = c.open("CONNECT", "/ws/x", end=False, extra_pseudo=[(":protocol", "foo")],
                       headers=[("sec-websocket-version", "13")])
        st = c.wait(other)
        assert st.status == 501, st
        assert c.get("/echo/after-refusals").status == 200
    finally:
        c.close()


# ------------------------------------------------------------------ 6. h2c

def test_h2c_prior_knowledge(hp):
    c = H2(hp.http_port, tls=False)
    try:
        st = c.get("/echo/h2c", headers=[("cookie", "x=1"), ("cookie", "y=2")])
        assert st.status == 200, st
        info = st.json()
        assert info["path"] == "/echo/h2c"
        assert hv(info, "X-Forwarded-Proto") == ["http"], info["headers"]
        assert hv(info, "Cookie") == ["x=1; y=2"], info["headers"]
        body = os.urandom(300000)
        st = c.request("POST", "/echo/h2c-post", body=body)
        assert st.json()["body_sha256"] == hashlib.sha256(body).hexdigest()
    finally:
        c.close()
    r = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--noproxy", "*",
                        "-w", "\n%{http_version} %{http_code}",
                        f"http://127.0.0.1:{hp.http_port}/echo/curl-h2c"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    body, _, tail = r.stdout.rpartition("\n")
    assert tail == "2 200", r.stdout
    assert json.loads(body)["path"] == "/echo/curl-h2c"


def test_h2c_refused_by_default(fresh_proxy, backends, certs):
    p = fresh(fresh_proxy, backends, certs)  # http2_cleartext not set
    c = H2Connection(H2Configuration(client_side=True))
    c.initiate_connection()
    s = socket.create_connection(("127.0.0.1", p.http_port), timeout=10)
    try:
        s.sendall(c.data_to_send())
        got = b""
        deadline = time.monotonic() + 10
        while b"\r\n" not in got and time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    finally:
        s.close()
    assert got.startswith(b"HTTP/1.1 4"), f"answer to the h2c preface: {got[:200]!r}"
    # no HTTP/2 SETTINGS frame (type 4 at byte 3) in place of an HTTP/1.1 answer
    assert not (len(got) >= 9 and got[3] == 4)


# ------------------------------------------------------------------ 7. refusals, resets

def test_431_oversized_header_list(hp):
    c = H2(hp.https_port)
    try:
        st = c.get("/echo/big-head", headers=[("x-big", "v" * 9000)])
        assert st.status == 431, st
        st2 = c.get("/echo/split-head", headers=[(f"x-h{i}", "w" * 500) for i in range(20)])
        assert st2.status == 431, st2
        # the connection still serves
        ok = c.get("/echo/after-431", headers=[("x-small", "v" * 1000)])
        assert ok.status == 200, ok
    finally:
        c.close()


def test_http2_header_caps_of_their_own(fresh_proxy, backends, certs):
    """http2_max_header_size (ConfigMap http2-max-header-size) is the header list cap of
    HTTP/2 streams, above max_header_bytes here, which HTTP/1.1 keeps; http2_max_field_size
    caps one decoded name or value: a longer one gets 431 for its stream only."""
    p = fresh(fresh_proxy, backends, certs, max_header_bytes=8192,
              http2_max_header_size=65536, http2_max_field_size=8000)
    c = H2(p.https_port)
    try:
        assert c.wait_settings()[SettingCodes.MAX_HEADER_LIST_SIZE] == 65536
        # 47 KB in all (the echo backend, aiohttp, takes lines up to 8190 bytes)
        big = [(f"x-h{i}", chr(ord("a") + i) * 7900) for i in range(6)]
        st = c.get("/echo/h2-big-list", headers=big)
        assert st.status == 200, st
        info = st.json()
        for name, value in big:
            assert hv(info, name) == [value], name
        st = c.get("/echo/h2-long-field", headers=[("x-long", "v" * 8001)])
        assert st.status == 431, st
        st = c.get("/echo/h2-list-over", headers=[(f"x-o{i}", "o" * 9000) for i in range(8)])
        assert st.status == 431, st
        ok = c.get("/echo/after-field-431", headers=[("x-fits", "v" * 8000)])
        assert ok.status == 200, ok
        assert hv(ok.json(), "x-fits") == ["v" * 8000]
    finally:
        c.close()
    extra = "".join(f"x-h{i}: {'w' * 3000}\r\n" for i in range(4))
    assert h1(p.http_port, "/echo/h1-big", extra=extra).status == 431


def test_http2_field_cap_follows_header_line_cap(fresh_proxy, backends, certs):
    """Without http2_max_field_size, the line cap of large-client-header-buffers
    (max_header_line) caps each HTTP/2 field, as nginx applies its buffer size to HTTP/2
    fields: 431 for the stream, where an HTTP/1.1 header line that long gets 400."""
    p = fresh(fresh_proxy, backends, certs, max_header_line=2048)
    c = H2(p.https_port)
    try:
        assert c.get("/echo/h2-line", headers=[("x-long", "v" * 3000)]).status == 431
        ok = c.get("/echo/h2-line-ok", headers=[("x-ok", "v" * 2000)])
        assert ok.status == 200, ok
    finally:
        c.close()
    assert h1(p.http_port, "/echo/h1-line", extra=f"x-long: {'v' * 3000}\r\n").status == 400


def test_405_plain_connect(hp):
    c = H2(hp.https_port)
    try:
        # RFC 9113 8.5: a plain CONNECT has :method and :authority (host:port) only
        sid = c.open("CONNECT", None, authority="example.com:443")
        st = c.wait(sid, 15)
        assert st.status == 405, st
        assert c.get("/echo/after-405").status == 200
    finally:
        c.close()


def test_client_reset_does_not_disturb_other_streams(hp):
    c = H2(hp.https_port)
    try:
        slow = c.open("GET", "/echo/reset-me?do=sleep&ms=2000")
        others = [c.open("GET", f"/echo/keep{i}?do=sleep&ms=300") for i in range(3)]
        big = c.open("GET", f"/echo/keepbig?do=fixed&n={MIB}")
        c.pump_once(0.2)
        c.reset(slow)
        more = [c.open("GET", f"/echo/later{i}") for i in range(3)]
        for i, sid in enumerate(others):
            st = c.wait(sid)
            assert st.status == 200 and st.json()["path"] == f"/echo/keep{i}", st
        for i, sid in enumerate(more):
            st = c.wait(sid)
            assert st.status == 200 and st.json()["path"] == f"/echo/later{i}", st
        st = c.wait(big, 30)
        assert hashlib.sha256(st.data).hexdigest() == pattern.sha256(MIB)
        assert c.goaway is None, c.goaway
        # a POST reset half way through its body
        p = c.open("POST", "/echo/reset-post", headers=[("content-length", "1000000")],
                   end=False)
        c.send_body(p, os.urandom(30000), end=False)
        c.reset(p)
        assert c.get("/echo/after-post-reset").status == 200
        assert c.goaway is None, c.goaway
    finally:
        c.close()


def test_body_longer_than_content_length_resets_stream_only(hp):
    """DATA beyond the content-length the client announced: that stream is refused (reset or
    4xx), the connection and its other streams go on."""
    c = H2(hp.https_port)
    try:
        keep = c.open("GET", "/echo/cl-keep?do=sleep&ms=300")
        sid = c.open("POST", "/echo/cl-bad", headers=[("content-length", "10")], end=False)
        # h2 checks nothing on the way out: write the DATA frame past the length by hand
        c.sock.sendall(frame(T_DATA, F_END_STREAM, sid, b"x" * 20))
        st = c.streams[sid]
        c.pump(lambda: st.reset is not None or st.ended, 15, "the bad stream's end")
        assert st.reset is not None or (st.status or 0) >= 400, st
        ok = c.wait(keep)
        assert ok.status == 200 and ok.json()["path"] == "/echo/cl-keep", ok
        assert c.goaway is None, c.goaway
    finally:
        c.sock.close()


# ------------------------------------------------------------------ 8. protections (raw frames)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
T_DATA, T_HEADERS, T_RST, T_SETTINGS, T_PING, T_GOAWAY, T_CONT = 0, 1, 3, 4, 6, 7, 9
F_END_STREAM, F_END_HEADERS, F_ACK = 0x1, 0x4, 0x1


def frame(ftype, flags, sid, payload=b""):
    return struct.pack("!I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack("!I", sid & 0x7FFFFFFF) + payload


def hpack_get(path, authority=HOST):
    """A stateless header block: GET, https, then :path and :authority as literals without
    indexing (indexed names 4 and 1)."""
    def lit(idx, value):
        v = value.encode()
        assert len(v) < 127
        return bytes([idx, len(v)]) + v
    return b"\x82\x87" + lit(4, path) + lit(1, authority)


def parse_frames(buf):
    out = []
    while len(buf) >= 9:
        n = int.from_bytes(buf[:3], "big")
        if len(buf) < 9 + n:
            break
        out.append((buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF,
                    bytes(buf[9:9 + n])))
        buf = buf[9 + n:]
    return out, buf


class RawH2:
    """Frames written by hand over TLS with ALPN h2; reads are explicit."""

    def __init__(self, port, rcvbuf=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        raw = socket.socket()
        if rcvbuf:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        raw.settimeout(10)
        raw.connect(("127.0.0.1", port))
        self.sock = ctx.wrap_socket(raw, server_hostname=HOST)
        assert self.sock.selected_alpn_protocol() == "h2"
        self.buf = b""
        self.frames = []
        self.eof = False
        self.sock.sendall(PREFACE + frame(T_SETTINGS, 0, 0))

    def read_some(self, timeout):
        if self.eof:
            return False
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(1 << 20)
        except (socket.timeout, ssl.SSLWantReadError):
            return True
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
            self.eof = True
            return False
        if not data:
            self.eof = True
            return False
        self.buf += data
        got, self.buf = parse_frames(self.buf)
        self.frames.extend(got)
        return True

    def goaway(self):
        for t, _, _, payload in self.frames:
            if t == T_GOAWAY:
                return struct.unpack("!II", payload[:8])
        return None

    def wait_closed(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.read_some(deadline - time.monotonic()):
                return True
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def bystander_ok(p, tag):
    """Another client's requests, HTTP/2 and HTTP/1.1: all answered."""
    r = h1(p.http_port, f"/echo/by-{tag}")
    assert r.status == 200, r
    c = H2(p.https_port)
    try:
        for i in range(3):
            st = c.get(f"/echo/by-{tag}-{i}", timeout=15)
            assert st.status == 200 and st.json()["path"] == f"/echo/by-{tag}-{i}", st
    finally:
        c.close()


def reset_flood(n, first=1):
    """n streams, each opened (HEADERS, END_STREAM) and reset (RST_STREAM CANCEL) at once."""
    return b"".join(
        frame(T_HEADERS, F_END_HEADERS | F_END_STREAM, s, hpack_get("/echo/rr?do=sleep&ms=200")) +
        frame(T_RST, 0, s, struct.pack("!I", ErrorCodes.CANCEL))
        for s in range(first, first + 2 * n, 2))


def test_rapid_reset_is_read_at_the_reset_rate(fresh_proxy, backends, certs):
    """Past a burst of 1000 resets the proxy reads a client's frames only as fast as its
    reset bucket refills (33 a second): 1066 resets and then a PING get the PING's ACK
    only once the 66 over the burst were paid for, and no GOAWAY."""
    p = fresh(fresh_proxy, backends, certs)
    a = RawH2(p.https_port)
    try:
        a.sock.sendall(reset_flood(1066) + frame(T_PING, 0, 0, b"rr-probe"))
        t0 = time.monotonic()
        acked = None
        while time.monotonic() - t0 < 20 and acked is None:
            if not a.read_some(0.05):
                break
            if any(t == T_PING and f & F_ACK and pl == b"rr-probe" for t, f, _, pl in a.frames):
                acked = time.monotonic() - t0
        print(f"1066 resets then a PING: ACK after {acked} s; goaway={a.goaway()}")
        assert acked is not None, f"no PING ACK in 20 s (eof={a.eof}, goaway={a.goaway()})"
        # the 66 over the burst, less what the read that ran the bucket dry took
        assert acked >= 1.0, f"PING answered after {acked:.2f} s: the resets were not paced"
        assert a.goaway() is None and not a.eof, a.goaway()
    finally:
        a.close()


def test_rapid_reset_flood_paced_then_goaway(fresh_proxy, backends, certs):
    """20,000 streams opened and reset: the proxy paces them instead of closing at once
    (a close is a reconnect and a fresh burst), others are served meanwhile, memory stays
    flat, and a client still at it after 30 s gets GOAWAY ENHANCE_YOUR_CALM."""
    p = fresh(fresh_proxy, backends, certs)
    bystander_ok(p, "warm")
    rss0 = p.rss_kb()
    attacker = RawH2(p.https_port)
    stop = threading.Event()
    sent = {"n": 0, "err": None}

    def flood():
        sid = 1
        try:
            while not stop.is_set() and sid < 2 * 20000:
                attacker.sock.sendall(reset_flood(100, sid))
                sid += 200
                sent["n"] = sid // 2
        except (OSError, ssl.SSLError) as e:
            sent["err"] = repr(e)

    t0 = time.monotonic()
    t = threading.Thread(target=flood, daemon=True)
    t.start()
    try:
        bystander_ok(p, "during")
        early = attacker.wait_closed(3)
        assert not early and attacker.goaway() is None, \
            f"closed within seconds (goaway={attacker.goaway()}): not paced"
        closed = attacker.wait_closed(45)
        took = time.monotonic() - t0
        stop.set()
        t.join(30)
        rss1 = p.rss_kb()
        ga = attacker.goaway()
        print(f"rapid reset: {sent['n']} streams written; goaway={ga} after {took:.1f} s "
              f"closed={closed} writer error={sent['err']}; RSS {rss0} kB -> {rss1} kB")
        assert ga is not None and ga[1] == ErrorCodes.ENHANCE_YOUR_CALM, ga
        assert took >= 25, f"GOAWAY after {took:.1f} s, before the 30 s of patience"
        assert rss1 - rss0 < 64 * 1024, f"RSS grew from {rss0} kB to {rss1} kB"
        bystander_ok(p, "after")
    finally:
        stop.set()
        attacker.close()
    wait_gauge(p, 0)


CONT_PIECE = (b"\x00\x05x-pad" + bytes([100]) + b"p" * 100) * 10  # 10 literal headers


def test_continuation_over_limit_gets_goaway(fresh_proxy, backends, certs):
    """HEADERS without END_HEADERS and 20 CONTINUATION frames (the proxy allows 8), then the
    client stops writing and reads: a GOAWAY, then the close (RFC 9113 5.4.1: a connection
    error is announced with GOAWAY). The GOAWAY waits a second (the penalty), so a client
    that reconnects on it cannot make the proxy do a TLS handshake every round trip."""
    p = fresh(fresh_proxy, backends, certs)
    a = RawH2(p.https_port)
    try:
        a.sock.sendall(frame(T_HEADERS, F_END_STREAM, 1, hpack_get("/echo/cont")) +
                       b"".join(frame(T_CONT, 0, 1, CONT_PIECE) for _ in range(20)))
        t0 = time.monotonic()
        while a.goaway() is None and time.monotonic() - t0 < 15 and a.read_some(0.05):
            pass
        took = time.monotonic() - t0
        closed = a.wait_closed(15)
        kinds = [f[0] for f in a.frames]
        assert closed, f"still open after 20 CONTINUATION frames; frames {kinds}"
        assert a.goaway() is not None, \
            f"closed without a GOAWAY; frame types received: {kinds}"
        assert a.goaway()[1] == ErrorCodes.ENHANCE_YOUR_CALM, a.goaway()
        assert 0.8 <= took < 10, f"GOAWAY after {took:.2f} s; the penalty is 1 s"
    finally:
        a.close()
    bystander_ok(p, "after-cont20")


def test_continuation_flood_closed(fresh_proxy, backends, certs):
    p = fresh(fresh_proxy, backends, certs)
    rss0 = p.rss_kb()
    a = RawH2(p.https_port)
    sent, err = 0, None
    try:
        a.sock.sendall(frame(T_HEADERS, F_END_STREAM, 1, hpack_get("/echo/cont")))
        try:
            for i in range(20000):
                a.sock.sendall(frame(T_CONT, 0, 1, CONT_PIECE))
                sent += 1
                if i % 50 == 0 and not a.read_some(0.001):
                    break
        except (OSError, ssl.SSLError) as e:
            err = repr(e)
        closed = a.wait_closed(15)
        ga = a.goaway()
        rss1 = p.rss_kb()
        print(f"CONTINUATION flood: {sent} frames sent (writer error {err}); goaway={ga} "
              f"closed={closed}; RSS {rss0} kB -> {rss1} kB")
        assert closed, f"{sent} CONTINUATION frames: connection still open, goaway={ga}"
        assert sent < 20000, "all 20000 CONTINUATION frames were taken"
        assert rss1 - rss0 < 64 * 1024
    finally:
        a.close()
    bystander_ok(p, "after-cont")
    wait_gauge(p, 0)


def test_ping_flood_without_reading(fresh_proxy, backends, certs):
    p = fresh(fresh_proxy, backends, certs)
    bystander_ok(p, "warm")
    rss0 = p.rss_kb()
    a = RawH2(p.https_port, rcvbuf=4096)
    sent = 0
    err = None
    per_write = 4096
    ping = frame(T_PING, 0, 0, b"12345678") * per_write  # 68 kB per write
    end = time.monotonic() + 10
    peak = rss0
    stalls = 0
    try:
        a.sock.settimeout(1.0)
        while time.monotonic() < end and sent < 4_000_000:  # 68 MB of PINGs at most
            try:
                a.sock.sendall(ping)
                sent += per_write
            except socket.timeout:
                # the proxy stopped reading: its memory now is what a flood can take
                stalls += 1
                peak = max(peak, p.rss_kb())
                continue
            except (OSError, ssl.SSLError) as e:
                err = repr(e)
                break
            if sent % (per_write * 16) == 0:
                peak = max(peak, p.rss_kb())
        peak = max(peak, p.rss_kb())
        print(f"PING flood: ~{sent} PINGs written without reading ({stalls} writes blocked "
              f"1 s, stopped by {err}); RSS {rss0} kB, peak {peak} kB")
        assert peak - rss0 < 64 * 1024, f"RSS grew from {rss0} kB to {peak} kB"
        bystander_ok(p, "during-ping")
    finally:
        a.close()
    bystander_ok(p, "after-ping")
    wait_gauge(p, 0)


def test_graceful_stop_goaway_and_inflight_stream_finishes(fresh_proxy, backends, certs):
    """SIGTERM: the session gets GOAWAY (NO_ERROR, last stream id covering the stream in
    flight) and that stream is still answered in full. (Raw frames: hyper-h2 refuses frames
    after a GOAWAY.)"""
    import hpack
    p = fresh(fresh_proxy, backends, certs)
    a = RawH2(p.https_port)
    try:
        a.sock.sendall(frame(T_HEADERS, F_END_HEADERS | F_END_STREAM, 1,
                             hpack_get("/echo/inflight?do=sleep&ms=800")))
        a.read_some(0.3)
        os.kill(p.pid, 15)
        ended = lambda: any(f[0] in (T_DATA, T_HEADERS) and f[2] == 1 and f[1] & F_END_STREAM
                            for f in a.frames)
        deadline = time.monotonic() + 20
        while not (ended() and a.goaway()) and time.monotonic() < deadline:
            if not a.read_some(deadline - time.monotonic()):
                break
        kinds = [(f[0], f[1], f[2]) for f in a.frames]
        ga = a.goaway()
        assert ga is not None, f"no GOAWAY; frames {kinds}"
        assert ga[0] >= 1 and ga[1] == 0, f"GOAWAY last stream {ga[0]}, error {ga[1]}"
        heads = [f for f in a.frames if f[0] == T_HEADERS and f[2] == 1]
        assert heads, f"stream 1 not answered; frames {kinds}"
        status = dict(hpack.Decoder().decode(heads[0][3]))[":status"]
        body = b"".join(f[3] for f in a.frames if f[0] == T_DATA and f[2] == 1)
        assert status == "200" and ended(), (status, kinds)
        assert json.loads(body)["path"] == "/echo/inflight"
    finally:
        a.close()
    assert p.proc.wait(30) == 0, p.log_tail()


# ------------------------------------------------------------------ 9. access log

def test_access_log_says_http2(hp):
    c = H2(hp.https_port)
    try:
        assert c.get("/echo/logme-h2?a=1").status == 200
    finally:
        c.close()
    assert h1(hp.http_port, "/echo/logme-h11").status == 200
    deadline = time.monotonic() + 5
    while True:
        with open(hp.log_path, encoding="utf-8", errors="replace") as f:
            log = f.read()
        h2_lines = [ln for ln in log.splitlines() if "/echo/logme-h2" in ln]
        h11_lines = [ln for ln in log.splitlines() if "/echo/logme-h11" in ln]
        if (h2_lines and h11_lines) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(h2_lines) == 1, h2_lines
    assert '"GET /echo/logme-h2?a=1 HTTP/2.0" 200' in h2_lines[0], h2_lines[0]
    assert '"GET /echo/logme-h11 HTTP/1.1" 200' in h11_lines[0], h11_lines


def test_access_log_for_streams_the_session_refuses(hp):
    """Streams answered by the HTTP/2 session itself (an oversized header list: 431, a plain
    CONNECT: 405, an unknown :protocol: 501) never reach the data path, yet each gets its
    access-log line, as nginx logs the requests it refuses."""
    start = os.path.getsize(hp.log_path)
    c = H2(hp.https_port)
    try:
        assert c.get("/echo/refused-431", headers=[("x-big", "v" * 9000)]).status == 431
        assert c.wait(c.open("CONNECT", None, authority="example.com:443"), 15).status == 405
        st = c.wait(c.open("CONNECT", "/ws/refused-501", end=False,
                           extra_pseudo=[(":protocol", "foo")],
                           headers=[("sec-websocket-version", "13")]))
        assert st.status == 501, st
    finally:
        c.close()
    want = ['"GET /echo/refused-431 HTTP/2.0" 431', '"CONNECT - HTTP/2.0" 405',
            '"CONNECT /ws/refused-501 HTTP/2.0" 501']
    deadline = time.monotonic() + 5
    while True:
        with open(hp.log_path, encoding="utf-8", errors="replace") as f:
            f.seek(start)
            log = f.read()
        if all(w in log for w in want) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for w in want:
        assert sum(w in ln for ln in log.splitlines()) == 1, (w, log[-3000:])


def test_metrics_by_protocol(fresh_proxy, backends, certs):
    """weir_proxy_requests_by_protocol_total counts each HTTP/2 stream as an HTTP/2.0 request
    and each HTTP/1.1 request as HTTP/1.1, and so does the protocol label of the per-route
    weir_proxy_requests_total, where a stream the session refuses itself counts too (no
    route); weir_proxy_open_http2_connections follows the HTTP/2 connections."""
    p = fresh(fresh_proxy, backends, certs)

    def count(proto):
        return p.metric("weir_proxy_requests_by_protocol_total", f'protocol="{proto}"')

    def route(path, code, proto):
        return max(p.metric("weir_proxy_requests_total",
                            f'host="",path="{path}",code="{code}",protocol="{proto}"'), 0)

    h2_before, h11_before = count("HTTP/2.0"), count("HTTP/1.1")
    r2, r11 = route("/echo", 200, "HTTP/2.0"), route("/echo", 200, "HTTP/1.1")
    refused = route("-", 405, "HTTP/2.0")
    c = H2(p.https_port)
    try:
        for i in range(3):
            assert c.get(f"/echo/proto{i}").status == 200
        assert c.wait(c.open("CONNECT", None, authority="example.com:443"), 15).status == 405
        assert p.metric("weir_proxy_open_http2_connections") == 1
    finally:
        c.close()
    assert h1(p.http_port, "/echo/proto-h11").status == 200
    assert count("HTTP/2.0") == h2_before + 4
    assert count("HTTP/1.1") == h11_before + 1
    assert route("/echo", 200, "HTTP/2.0") == r2 + 3
    assert route("/echo", 200, "HTTP/1.1") == r11 + 1
    assert route("-", 405, "HTTP/2.0") == refused + 1
    deadline = time.monotonic() + 5
    while p.metric("weir_proxy_open_http2_connections") != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert p.metric("weir_proxy_open_http2_connections") == 0


def test_settings_flood_without_reading(fresh_proxy, backends, certs):
    """SETTINGS frames (each wanting an ACK) from a client that never reads: the proxy
    stops reading it or closes it (nghttp2 keeps at most 1000 ACKs queued); its memory
    stays bounded and other clients are served."""
    p = fresh(fresh_proxy, backends, certs)
    bystander_ok(p, "warm-settings")
    rss0 = p.rss_kb()
    a = RawH2(p.https_port, rcvbuf=4096)
    # SETTINGS_MAX_CONCURRENT_STREAMS 100, each frame 15 bytes
    settings = frame(T_SETTINGS, 0, 0, struct.pack("!HI", 3, 100)) * 4096
    peak, outcome = rss0, "stalled"
    end = time.monotonic() + 8
    try:
        a.sock.settimeout(1.0)
        while time.monotonic() < end:
            try:
                a.sock.sendall(settings)
            except socket.timeout:
                peak = max(peak, p.rss_kb())
                continue
            except (OSError, ssl.SSLError):
                outcome = "closed"
                break
            peak = max(peak, p.rss_kb())
        peak = max(peak, p.rss_kb())
        print(f"SETTINGS flood: {outcome}; RSS {rss0} kB, peak {peak} kB")
        assert peak - rss0 < 64 * 1024, f"RSS grew from {rss0} kB to {peak} kB"
        bystander_ok(p, "during-settings")
    finally:
        a.close()
    wait_gauge(p, 0)


def test_hpack_bomb_refused(fresh_proxy, backends, certs):
    """An HPACK bomb: one 4000-byte header put in the dynamic table, then a header block
    that names it 4000 times (4 bytes on the wire, 16 MB decoded). The decoded list is
    counted as it grows: the stream gets 431 (max_header_bytes) without the proxy holding
    the decoded headers, and the connection goes on."""
    p = fresh(fresh_proxy, backends, certs)
    rss0 = p.rss_kb()
    a = RawH2(p.https_port)
    try:
        big = b"x" * 4000
        # literal with incremental indexing, new name "x-bomb" (RFC 7541 6.2.1)
        name = b"x-bomb"
        value_len = bytes([0x7F, (4000 - 127) & 0x7F | 0x80, (4000 - 127) >> 7])
        insert = b"\x40" + bytes([len(name)]) + name + value_len + big
        block = hpack_get("/echo/bomb") + insert + b"\xbe" * 4000  # index 62: the new entry
        # in 16 kB frames: HEADERS then CONTINUATION (fewer than the 8 allowed)
        chunks = [block[i:i + 16384] for i in range(0, len(block), 16384)]
        out = frame(T_HEADERS, F_END_STREAM | (0x4 if len(chunks) == 1 else 0), 1, chunks[0])
        for i, ch in enumerate(chunks[1:], 1):
            out += frame(T_CONT, 0x4 if i == len(chunks) - 1 else 0, 1, ch)
        a.sock.sendall(out)
        deadline = time.monotonic() + 10
        status = None
        while status is None and time.monotonic() < deadline and a.read_some(1.0):
            for t, flags, sid, payload in a.frames:
                if t == T_HEADERS and sid == 1:
                    import hpack
                    status = dict(hpack.Decoder().decode(payload)).get(":status")
                if t in (T_RST, T_GOAWAY) and sid in (0, 1):
                    status = status or f"frame {t}"
        assert status == "431", f"answer to the bomb: {status}; frames {[f[0] for f in a.frames]}"
        assert p.rss_kb() - rss0 < 32 * 1024
    finally:
        a.close()
    bystander_ok(p, "after-bomb")
