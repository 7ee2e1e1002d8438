"""gRPC through weir-proxy: routes with backend_protocol GRPC (h2c with prior knowledge to the
endpoints) and GRPCS (h2 over TLS), reached by the real grpcio client over HTTP/2 (TLS with
ALPN h2 on the HTTPS port, h2c with prior knowledge on the HTTP port).

The backend is tests/backends/grpc_backend.py (service test.Echo, raw bytes). Each behaviour
has its own virtual host (the channel's authority picks it): unary, server and bidi
streaming, trailers, large messages, deadlines, the proxy's own gRPC statuses (UNAVAILABLE,
DEADLINE_EXCEEDED), GRPCS, concurrency, route policies per call (deny/allow, basic auth,
body_limit), the access log, client cancels, backends that restart or die mid-stream."""

import base64
import hashlib
import os
import queue
import signal
import time
from concurrent import futures

import grpc
import tempfile

import pytest

import proxyutil as pu
from proxycerts import make_cert

MIB = 1 << 20
USER, PASSWORD = "grpcuser", "grpc secret"
SHA_HASH = "{SHA}" + base64.b64encode(hashlib.sha1(PASSWORD.encode()).digest()).decode()

# host name -> (backend key, policy); one route "/" each
OK = "grpc.test"
SLOW = "slow.grpc.test"        # read_timeout_ms shorter than the backend's sleep
DEAD = "dead.grpc.test"        # an endpoint where nothing listens
NOEP = "noep.grpc.test"        # a backend without endpoints
TLSB = "tls.grpc.test"         # backend_protocol GRPCS
TLSV = "verify.grpc.test"      # GRPCS, proxy-ssl-verify with the backend's CA and name, SNI
TLSCA = "badca.grpc.test"      # GRPCS, proxy-ssl-verify with a CA that did not sign it
TLSNAME = "badname.grpc.test"  # GRPCS, proxy-ssl-verify, a name the certificate lacks
BACKEND_NAME = "backend.grpc.test"  # the GRPCS backend's certificate (self-signed)
DENY = "deny.grpc.test"        # deny 127.0.0.1
ALLOW = "allow.grpc.test"      # allow only 10.0.0.0/8
AUTH = "auth.grpc.test"        # basic auth
LIMIT = "limit.grpc.test"      # body_limit 4096
BUF = "buf.grpc.test"          # request_buffering and response_buffering on
HOSTS = {
    OK: ("grpc", {"backend_protocol": "GRPC", "body_limit": 0}),
    LIMIT: ("grpc", {"backend_protocol": "GRPC", "body_limit": 4096}),
    BUF: ("grpc", {"backend_protocol": "GRPC", "body_limit": 0, "request_buffering": True,
                   "response_buffering": True}),
    SLOW: ("grpc", {"backend_protocol": "GRPC", "read_timeout_ms": 500}),
    DEAD: ("dead", {"backend_protocol": "GRPC", "connect_timeout_ms": 2000}),
    NOEP: ("empty", {"backend_protocol": "GRPC"}),
    TLSB: ("grpcs", {"backend_protocol": "GRPCS"}),
    TLSV: ("grpcs", {"backend_protocol": "GRPCS",
                     "backend_tls": {"profile": 0, "name": BACKEND_NAME, "server_name": True}}),
    TLSCA: ("grpcs", {"backend_protocol": "GRPCS",
                      "backend_tls": {"profile": 1, "name": BACKEND_NAME}}),
    TLSNAME: ("grpcs", {"backend_protocol": "GRPCS",
                        "backend_tls": {"profile": 0, "name": "other.grpc.test"}}),
    DENY: ("grpc", {"backend_protocol": "GRPC", "deny": ["127.0.0.1"]}),
    ALLOW: ("grpc", {"backend_protocol": "GRPC", "allow": ["10.0.0.0/8"]}),
    AUTH: ("grpc", {"backend_protocol": "GRPC",
                    "auth": {"type": "basic", "realm": "grpc realm",
                             "users": [{"name": USER, "hash": SHA_HASH}]}}),
}
BACKEND_KEYS = ("grpc", "grpcs", "dead", "empty")

UNARY = "/test.Echo/Unary"
SSTREAM = "/test.Echo/ServerStream"
BIDI = "/test.Echo/Bidi"


# ------------------------------------------------------------------ backends, table, proxy

@pytest.fixture(scope="module")
def gdir(tmp_path_factory):
    return tmp_path_factory.mktemp("grpc")


@pytest.fixture(scope="module")
def gbackends(gdir):
    """A gRPC backend in cleartext (h2c) and one over TLS; ports by key."""
    procs = []
    ports = {}
    try:
        cert_pem, key_pem, _ = make_cert(BACKEND_NAME, str(gdir))
        crt, key = gdir / "backend.crt", gdir / "backend.key"
        crt.write_text(cert_pem)
        key.write_text(key_pem)
        for name, extra in (("grpc", []), ("grpcs", ["--tls", str(crt), str(key)])):
            port = pu.free_port()
            procs.append(pu.start_backend("grpc_backend.py", port,
                                          str(gdir / f"{name}.log"), *extra))
            ports[name] = port
        ports["dead"] = pu.free_port()  # nothing listens there
        ports["backend_cert"] = cert_pem  # the CA that verifies the GRPCS backend
        yield ports
    finally:
        for p in procs:
            pu.stop_process(p)


@pytest.fixture(scope="module")
def gcerts(gdir):
    """host -> (cert_pem, key_pem, cert_der) for every virtual host of the table."""
    return {h: make_cert(h, str(gdir)) for h in HOSTS}


def grpc_table(gbackends, gcerts, hosts=HOSTS, **settings):
    base = {"allow_backend_server_header": True, "http2_cleartext": True}
    base.update(settings)
    names = list(hosts)
    index = {k: i for i, k in enumerate(BACKEND_KEYS)}

    def ep(key):
        return [] if key == "empty" else [{"address": "127.0.0.1", "port": gbackends[key]}]

    profiles = {}
    if any("backend_tls" in hosts[h][1] for h in hosts):
        # profile 0 trusts the GRPCS backend's certificate, profile 1 another one
        other_ca = make_cert("other-ca.grpc.test", tempfile.mkdtemp())[0]
        profiles["backend_tls"] = [
            {"name": "grpc/backend-ca", "verify": True, "ca_pem": gbackends["backend_cert"]},
            {"name": "grpc/other-ca", "verify": True, "ca_pem": other_ca}]
    return {
        "version": 1,
        "generation": 1,
        "settings": base,
        **profiles,
        "hosts": [{"name": h, "cert": i,
                   "routes": [{"path": "/", "match": "prefix", "backend": index[hosts[h][0]],
                               "source": f"grpc/{h}", "policy": dict(hosts[h][1])}]}
                  for i, h in enumerate(names)],
        "backends": [{"name": f"grpc/{k}:50051", "endpoints": ep(k)} for k in BACKEND_KEYS],
        "certs": [{"name": f"grpc/{h}", "cert_pem": gcerts[h][0], "key_pem": gcerts[h][1]}
                  for h in names],
        "default_cert": 0,
    }


@pytest.fixture(scope="module")
def gp(proxy_bin, gbackends, gcerts, gdir):
    """The module's proxy: HTTP/2 via ALPN (default) and h2c on the HTTP port."""
    routes = gdir / "routes"
    routes.mkdir()
    pu.write_table(str(routes), grpc_table(gbackends, gcerts))
    p = pu.Proxy(str(routes), str(gdir / "proxy.log"), workers=2)
    try:
        p.wait_ready()
        yield p
    finally:
        p.stop()


# ------------------------------------------------------------------ the client

CHANNEL_OPTS = [("grpc.enable_http_proxy", 0),  # never an http_proxy from the environment
                ("grpc.enable_retries", 0),
                ("grpc.max_receive_message_length", 64 << 20),
                ("grpc.max_send_message_length", 64 << 20)]


def channel(p, host, tls, gcerts):
    """A channel to weir whose authority is host: TLS (ALPN h2, the host's certificate as
    root, SNI host) on the HTTPS port, or h2c on the HTTP port."""
    if tls:
        creds = grpc.ssl_channel_credentials(root_certificates=gcerts[host][0].encode())
        return grpc.secure_channel(f"127.0.0.1:{p.https_port}", creds,
                                   options=CHANNEL_OPTS +
                                   [("grpc.ssl_target_name_override", host)])
    return grpc.insecure_channel(f"127.0.0.1:{p.http_port}",
                                 options=CHANNEL_OPTS + [("grpc.default_authority", host)])


def ident(b):
    return b


def unary(ch):
    return ch.unary_unary(UNARY, request_serializer=ident, response_deserializer=ident)


def sstream(ch):
    return ch.unary_stream(SSTREAM, request_serializer=ident, response_deserializer=ident)


def bidi(ch):
    return ch.stream_stream(BIDI, request_serializer=ident, response_deserializer=ident)


def rpc_error(fn):
    """Run fn, which must fail with an RpcError; return that error."""
    try:
        got = fn()
    except grpc.RpcError as e:
        return e
    raise AssertionError(f"the call succeeded: {got!r}"[:500])


def describe(e):
    return f"{e.code()} {e.details()!r} trailers={e.trailing_metadata()}"


MODES = pytest.mark.parametrize("tls", [True, False], ids=["tls-alpn-h2", "h2c"])


# ------------------------------------------------------------------ 1. unary

@MODES
def test_unary_echo_and_trailers(gp, gcerts, tls):
    with channel(gp, OK, tls, gcerts) as ch:
        for body in (b"hello", b"", bytes(range(256)) * 40):
            resp, call = unary(ch).with_call(body, timeout=20)
            assert resp == body
            assert call.code() == grpc.StatusCode.OK
            trailers = dict(call.trailing_metadata())
            assert trailers.get("x-trailer") == "done", call.trailing_metadata()
            initial = dict(call.initial_metadata())
            assert initial.get("x-seen-authority") == OK, call.initial_metadata()


@MODES
def test_unary_abort_status_and_details(gp, gcerts, tls):
    with channel(gp, OK, tls, gcerts) as ch:
        e = rpc_error(lambda: unary(ch)(b"fail:bad thing", timeout=20))
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, describe(e)
        assert e.details() == "bad thing", describe(e)
        # grpc-message is percent-encoded on the wire: the encoding passes as it is
        e = rpc_error(lambda: unary(ch)("fail:50% off, naïve\tok".encode(), timeout=20))
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, describe(e)
        assert e.details() == "50% off, naïve\tok", describe(e)
        # the channel still works after failed calls
        assert unary(ch)(b"after", timeout=20) == b"after"


@MODES
def test_metadata_and_deadline_reach_backend(gp, gcerts, tls):
    """Request metadata (text and -bin) reaches the backend as sent, and so does the client's
    deadline (grpc-timeout): the backend sees about the time the client gave."""
    blob = bytes(range(256)) + b"\x00\xff"
    with channel(gp, OK, tls, gcerts) as ch:
        _, call = unary(ch).with_call(b"md", timeout=7, metadata=(
            ("x-echo-text", "some value; with=odd,chars"), ("x-echo-data-bin", blob)))
        initial = list(call.initial_metadata())
    got = dict(initial)
    assert got.get("x-echo-text") == "some value; with=odd,chars", initial
    assert got.get("x-echo-data-bin") == blob, initial
    assert "x-deadline-left-ms" in got, f"the backend saw no deadline: {initial}"
    # (grpc-timeout is sent rounded up, so a little over 7000 is fine)
    assert 3000 < int(got["x-deadline-left-ms"]) <= 7200, initial


# ------------------------------------------------------------------ 2. server streaming, large

@MODES
def test_server_stream_50_of_100k(gp, gcerts, tls):
    with channel(gp, OK, tls, gcerts) as ch:
        call = sstream(ch)(b"50:102400", timeout=60)
        got = list(call)
        assert call.code() == grpc.StatusCode.OK
        assert len(got) == 50, len(got)
        for i, m in enumerate(got):
            assert m == bytes([i % 256]) * 102400, (i, len(m), m[:4])


@MODES
def test_large_unary_8mib(gp, gcerts, tls):
    body = os.urandom(8 * MIB)
    with channel(gp, OK, tls, gcerts) as ch:
        resp, call = unary(ch).with_call(body, timeout=60)
        assert len(resp) == len(body)
        assert hashlib.sha256(resp).digest() == hashlib.sha256(body).digest()
        assert dict(call.trailing_metadata()).get("x-trailer") == "done"
        # and a large streamed answer: 4 messages of 4 MiB
        got = list(sstream(ch)(b"4:4194304", timeout=60))
        assert [len(m) for m in got] == [4 * MIB] * 4
        assert all(m == bytes([i]) * (4 * MIB) for i, m in enumerate(got))


# ------------------------------------------------------------------ 3. bidi

@MODES
def test_bidi_many_messages(gp, gcerts, tls):
    msgs = [os.urandom(1 + (i * 7919) % 70000) for i in range(300)]
    with channel(gp, OK, tls, gcerts) as ch:
        call = bidi(ch)(iter(msgs), timeout=60)
        got = list(call)
        assert call.code() == grpc.StatusCode.OK
        assert len(got) == len(msgs)
        assert all(a == b for a, b in zip(got, msgs))


class Feeder:
    """A request iterator fed from a queue; None ends the stream."""

    def __init__(self):
        self.q = queue.Queue()

    def __iter__(self):
        return self

    def __next__(self):
        item = self.q.get()
        if item is None:
            raise StopIteration
        return item


@MODES
@pytest.mark.parametrize("host", [OK, BUF], ids=["default", "buffering-on"])
def test_bidi_ping_pong(gp, gcerts, tls, host):
    """The next message goes only after the answer to the previous one came back: only works
    when nothing between client and backend waits for the whole request body (nor holds
    back the answer), also on a route with request_buffering and response_buffering on."""
    feed = Feeder()
    with channel(gp, host, tls, gcerts) as ch:
        call = bidi(ch)(feed, timeout=30)
        try:
            for i in range(20):
                msg = f"ping {i} ".encode() * (i + 1)
                t0 = time.monotonic()
                feed.q.put(msg)
                got = next(call)
                assert got == msg, (i, got[:40])
                assert time.monotonic() - t0 < 10, f"round {i} took {time.monotonic() - t0}s"
        finally:
            feed.q.put(None)
        assert list(call) == []
        assert call.code() == grpc.StatusCode.OK


# ------------------------------------------------------------------ 4. deadlines

@MODES
def test_client_deadline_exceeded(gp, gcerts, tls):
    with channel(gp, OK, tls, gcerts) as ch:
        t0 = time.monotonic()
        e = rpc_error(lambda: unary(ch)(b"sleepy", timeout=0.5,
                                        metadata=(("x-sleep-ms", "3000"),)))
        took = time.monotonic() - t0
        assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, describe(e)
        assert took < 2.5, took
        # the proxy and the channel carry on
        assert unary(ch)(b"next", timeout=20) == b"next"


@MODES
def test_route_read_timeout_gives_deadline_exceeded(gp, gcerts, tls):
    """read_timeout_ms 500 on the route, the backend sleeps 3 s, the client waits 20 s: the
    proxy answers its 504 as grpc-status 4 DEADLINE_EXCEEDED."""
    with channel(gp, SLOW, tls, gcerts) as ch:
        t0 = time.monotonic()
        e = rpc_error(lambda: unary(ch)(b"slow", timeout=20,
                                        metadata=(("x-sleep-ms", "3000"),)))
        took = time.monotonic() - t0
        assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, describe(e)
        assert 0.4 < took < 2.9, took
        # a quick call on the same route works
        assert unary(ch)(b"quick", timeout=20) == b"quick"


# ------------------------------------------------------------------ 5. proxy errors

@MODES
@pytest.mark.parametrize("host", [DEAD, NOEP], ids=["nothing-listens", "no-endpoints"])
def test_unavailable(gp, gcerts, tls, host):
    with channel(gp, host, tls, gcerts) as ch:
        e = rpc_error(lambda: unary(ch)(b"x", timeout=20))
        assert e.code() == grpc.StatusCode.UNAVAILABLE, describe(e)
        # a Trailers-Only answer: its fields are the trailing metadata, and
        # content-length (the HTTP/1.1 head's) is not carried into it
        assert "content-length" not in dict(e.trailing_metadata()), describe(e)
        e = rpc_error(lambda: list(sstream(ch)(b"3:10", timeout=20)))
        assert e.code() == grpc.StatusCode.UNAVAILABLE, describe(e)


# ------------------------------------------------------------------ 6. GRPCS

@MODES
def test_grpcs_backend(gp, gcerts, tls):
    with channel(gp, TLSB, tls, gcerts) as ch:
        resp, call = unary(ch).with_call(b"over tls", timeout=20)
        assert resp == b"over tls"
        assert dict(call.trailing_metadata()).get("x-trailer") == "done"
        e = rpc_error(lambda: unary(ch)(b"fail:tls abort", timeout=20))
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, describe(e)
        assert e.details() == "tls abort"
        got = list(sstream(ch)(b"20:65536", timeout=60))
        assert [len(m) for m in got] == [65536] * 20
        assert all(m == bytes([i]) * 65536 for i, m in enumerate(got))
        msgs = [os.urandom(5000 + i) for i in range(50)]
        assert list(bidi(ch)(iter(msgs), timeout=60)) == msgs


@MODES
def test_grpcs_backend_verified(gp, gcerts, tls):
    """proxy-ssl-verify on a GRPCS route: the backend's certificate is checked against the
    profile's CA and the route's name (sent as SNI too), the call goes through."""
    with channel(gp, TLSV, tls, gcerts) as ch:
        resp, call = unary(ch).with_call(b"verified", timeout=20)
        assert resp == b"verified"
        assert dict(call.trailing_metadata()).get("x-trailer") == "done"
        got = list(sstream(ch)(b"5:1000", timeout=60))
        assert [len(m) for m in got] == [1000] * 5


@MODES
@pytest.mark.parametrize("host,why", [(TLSCA, "certificate verify failed: self-signed certificate"),
                                      (TLSNAME, "certificate verify failed: hostname mismatch")],
                         ids=["wrong-ca", "wrong-name"])
def test_grpcs_backend_refused_when_not_verified(gp, gcerts, tls, host, why):
    """A GRPCS backend whose certificate the profile does not trust (another CA, or a name it
    does not carry) gets no request: the client gets UNAVAILABLE, the log says why, and a
    route without verification to the same endpoint is not handed that connection."""
    start = os.path.getsize(gp.log_path)
    with channel(gp, host, tls, gcerts) as ch:
        e = rpc_error(lambda: unary(ch)(b"must not pass", timeout=20))
        assert e.code() == grpc.StatusCode.UNAVAILABLE, describe(e)
    with open(gp.log_path, errors="replace") as f:
        f.seek(start)
        log = f.read()
    assert "proxy.h2up" in log and why in log, log[-2000:]
    # the same endpoint without verification still works (no shared connection mixes them)
    with channel(gp, TLSB, tls, gcerts) as ch:
        assert unary(ch)(b"plain", timeout=20) == b"plain"
    with channel(gp, TLSV, tls, gcerts) as ch:
        assert unary(ch)(b"verified", timeout=20) == b"verified"


# ------------------------------------------------------------------ 7. concurrency

@MODES
def test_50_concurrent_unary_calls_one_channel(gp, gcerts, tls):
    with channel(gp, OK, tls, gcerts) as ch:
        stub = unary(ch)

        def one(i):
            body = f"call {i} ".encode() * (1 + i * 50)
            return stub(body, timeout=30, metadata=(("x-sleep-ms", "100"),)) == body

        with futures.ThreadPoolExecutor(50) as ex:
            results = list(ex.map(one, range(50)))
    assert all(results), results.count(False)


# ------------------------------------------------------------------ 8. route policies

@MODES
@pytest.mark.parametrize("host,code", [(DENY, grpc.StatusCode.PERMISSION_DENIED),
                                       (ALLOW, grpc.StatusCode.PERMISSION_DENIED),
                                       (AUTH, grpc.StatusCode.UNAUTHENTICATED)])
def test_policy_refuses_call(gp, gcerts, tls, host, code):
    """weir answers 403 (deny/allow) and 401 (basic auth); gRPC clients map an HTTP status
    without grpc-status: 403 -> PERMISSION_DENIED, 401 -> UNAUTHENTICATED."""
    with channel(gp, host, tls, gcerts) as ch:
        e = rpc_error(lambda: unary(ch)(b"x", timeout=20))
        assert e.code() == code, describe(e)
    with channel(gp, OK, tls, gcerts) as ch:
        assert unary(ch)(b"open", timeout=20) == b"open"


@MODES
def test_basic_auth_per_call(gp, gcerts, tls):
    good = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    bad = "Basic " + base64.b64encode(f"{USER}:wrong".encode()).decode()
    with channel(gp, AUTH, tls, gcerts) as ch:
        resp, call = unary(ch).with_call(b"authed", timeout=20,
                                         metadata=(("authorization", good),))
        assert resp == b"authed"
        assert dict(call.trailing_metadata()).get("x-trailer") == "done"
        e = rpc_error(lambda: unary(ch)(b"x", timeout=20, metadata=(("authorization", bad),)))
        assert e.code() == grpc.StatusCode.UNAUTHENTICATED, describe(e)
        # the same channel, again with the right password
        assert unary(ch)(b"again", timeout=20, metadata=(("authorization", good),)) == b"again"


# ------------------------------------------------------------------ 9. access log

@MODES
def test_access_log_says_http2(fresh_proxy, gbackends, gcerts, tls):
    p = fresh_proxy(grpc_table(gbackends, gcerts, hosts={OK: HOSTS[OK]}))
    with channel(p, OK, tls, gcerts) as ch:
        assert unary(ch)(b"log me", timeout=20) == b"log me"
    deadline = time.monotonic() + 5
    while True:
        with open(p.log_path, encoding="utf-8", errors="replace") as f:
            got = [ln for ln in f.read().splitlines() if UNARY in ln]
        if got or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(got) == 1, got
    assert f'"POST {UNARY} HTTP/2.0" 200' in got[0], got[0]


# ------------------------------------------------------------------ 10. body_limit, cancels

@MODES
def test_body_limit_unary_refused(gp, gcerts, tls):
    """A unary request larger than the route's body_limit (4096) gets weir's 413, which is
    not one of the statuses turned into a gRPC status: grpcio maps an HTTP 413 without
    grpc-status to UNKNOWN. A small request on the same route works."""
    with channel(gp, LIMIT, tls, gcerts) as ch:
        assert unary(ch)(b"small", timeout=20) == b"small"
        e = rpc_error(lambda: unary(ch)(b"x" * 20000, timeout=20))
        assert e.code() != grpc.StatusCode.OK
        assert e.code() == grpc.StatusCode.UNKNOWN, describe(e)
        assert "413" in e.details(), describe(e)


def log_lines(p, want, timeout=5.0, count=1):
    deadline = time.monotonic() + timeout
    while True:
        with open(p.log_path, encoding="utf-8", errors="replace") as f:
            got = [ln for ln in f.read().splitlines() if want in ln and '"' in ln]
        if len(got) >= count or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


@MODES
def test_body_limit_bidi_stream_ends_and_is_logged(fresh_proxy, gbackends, gcerts, tls):
    """A bidi stream whose request bytes pass body_limit (4096) after the answer started:
    the call must end with a non-OK status (not hang), the access log must have a line for
    it, and the proxy serves the next call."""
    p = fresh_proxy(grpc_table(gbackends, gcerts,
                                          hosts={LIMIT: HOSTS[LIMIT], OK: HOSTS[OK]}))
    feed = Feeder()
    with channel(p, LIMIT, tls, gcerts) as ch:
        call = bidi(ch)(feed, timeout=20)
        err = None
        try:
            for i in range(10):  # 10 x 1000 bytes: passes 4096 at the 5th message
                msg = bytes([i]) * 1000
                feed.q.put(msg)
                assert next(call) == msg
        except grpc.RpcError as e:
            err = e
        finally:
            feed.q.put(None)
        assert err is not None, "10 KB went through a 4096-byte body_limit"
        assert i >= 3, f"stopped at message {i}: {describe(err)}"
        assert err.code() != grpc.StatusCode.DEADLINE_EXCEEDED, describe(err)
        first = describe(err)
    with channel(p, OK, tls, gcerts) as ch:
        assert unary(ch)(b"after", timeout=20) == b"after"
    got = log_lines(p, BIDI)
    assert len(got) == 1, f"access log lines for the Bidi call: {got}; the call: {first}"


@MODES
def test_client_cancels_server_stream(gp, gcerts, tls):
    """A client cancelling a long server stream midway: the channel and the proxy carry on."""
    with channel(gp, OK, tls, gcerts) as ch:
        call = sstream(ch)(b"2000:65536", timeout=60)
        for i in range(10):
            assert next(call) == bytes([i]) * 65536
        call.cancel()
        assert call.code() == grpc.StatusCode.CANCELLED
        for i in range(5):
            assert unary(ch)(b"after cancel %d" % i, timeout=20) == b"after cancel %d" % i
        assert len(list(sstream(ch)(b"10:1000", timeout=20))) == 10


# ------------------------------------------------------------------ 11. long calls, restarts

@MODES
def test_read_timeout_is_between_reads(gp, gcerts, tls):
    """On the route with read_timeout_ms 500, a bidi call of 12 rounds 300 ms apart (3.6 s in
    all) works: the timeout is for each wait on the backend, not for the whole call."""
    feed = Feeder()
    with channel(gp, SLOW, tls, gcerts) as ch:
        call = bidi(ch)(feed, timeout=30)
        try:
            for i in range(12):
                msg = b"tick %d" % i
                feed.q.put(msg)
                assert next(call) == msg
                time.sleep(0.3)
        finally:
            feed.q.put(None)
        assert list(call) == []
        assert call.code() == grpc.StatusCode.OK


@MODES
def test_backend_restart(fresh_proxy, gcerts, gdir, tls):
    """The proxy's HTTP/2 connection to an endpoint ends when the backend stops: calls then
    get UNAVAILABLE, and once the backend is back the very next call works."""
    port = pu.free_port()
    log = str(gdir / f"restart-{port}.log")
    proc = pu.start_backend("grpc_backend.py", port, log)
    try:
        ports = {"grpc": port, "grpcs": port, "dead": port}
        p = fresh_proxy(grpc_table(ports, gcerts, hosts={OK: HOSTS[OK]}))
        with channel(p, OK, tls, gcerts) as ch:
            for i in range(3):
                assert unary(ch)(b"before %d" % i, timeout=20) == b"before %d" % i
            pu.stop_process(proc)
            time.sleep(0.3)
            e = rpc_error(lambda: unary(ch)(b"down", timeout=20))
            assert e.code() == grpc.StatusCode.UNAVAILABLE, describe(e)
            proc = pu.start_backend("grpc_backend.py", port, log + ".2")
            assert unary(ch)(b"back", timeout=20) == b"back"
            got = list(sstream(ch)(b"5:1000", timeout=20))
            assert len(got) == 5
    finally:
        pu.stop_process(proc)


@MODES
@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM"])
def test_backend_dies_mid_stream(fresh_proxy, gcerts, gdir, tls, sig):
    """The backend goes away in the middle of a server stream: the client must see the call
    fail (not a clean end of a shortened stream), and the next calls get UNAVAILABLE."""
    port = pu.free_port()
    proc = pu.start_backend("grpc_backend.py", port, str(gdir / f"die-{port}.log"))
    try:
        ports = {"grpc": port, "grpcs": port, "dead": port}
        p = fresh_proxy(grpc_table(ports, gcerts, hosts={OK: HOSTS[OK]}))
        with channel(p, OK, tls, gcerts) as ch:
            call = sstream(ch)(b"100000:65536", timeout=60)
            n = 0
            for i in range(20):
                assert next(call) == bytes([i % 256]) * 65536
                n += 1
            os.killpg(proc.pid, getattr(signal, sig))
            proc.wait(10)
            err = None
            try:
                for _ in call:
                    n += 1
            except grpc.RpcError as e:
                err = e
            assert n < 100000
            assert err is not None, f"the stream ended cleanly after {n} messages: " \
                                    f"{call.code()} {call.details()!r}"
            assert err.code() != grpc.StatusCode.OK
            e = rpc_error(lambda: unary(ch)(b"gone", timeout=20))
            assert e.code() == grpc.StatusCode.UNAVAILABLE, describe(e)
    finally:
        pu.stop_process(proc)


@MODES
@pytest.mark.parametrize("how", ["client-cancel", "backend-killed"])
def test_access_log_line_for_cut_calls(fresh_proxy, gcerts, gdir, tls, how):
    """A server stream cut in the middle (the client cancels it, or the backend is killed)
    still gets its access log line, as nginx logs every request (499 for a client that went
    away)."""
    port = pu.free_port()
    proc = pu.start_backend("grpc_backend.py", port, str(gdir / f"cut-{port}.log"))
    try:
        ports = {"grpc": port, "grpcs": port, "dead": port}
        p = fresh_proxy(grpc_table(ports, gcerts, hosts={OK: HOSTS[OK]}))
        with channel(p, OK, tls, gcerts) as ch:
            call = sstream(ch)(b"100000:65536", timeout=60)
            for i in range(10):
                assert next(call) == bytes([i % 256]) * 65536
            if how == "client-cancel":
                call.cancel()
            else:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            try:
                for _ in call:
                    pass
            except grpc.RpcError:
                pass
            assert call.code() != grpc.StatusCode.OK
        got = log_lines(p, SSTREAM, timeout=3)
        assert len(got) == 1, f"access log lines for the cut ServerStream call: {got}"
    finally:
        pu.stop_process(proc)
