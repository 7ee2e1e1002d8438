"""Response compression (ConfigMap use-gzip and enable-brotli), the upstream response head cap
(proxy-buffer-size) and the request head line cap (large-client-header-buffers) through a
real weir-proxy, with real clients: curl --compressed,
urllib + gzip, and raw sockets. Compressed bodies are decompressed and compared byte for
byte with what the backend sent (tests/backends/pattern.py)."""

import ctypes
import ctypes.util
import gzip
import subprocess
import time
import urllib.request
import zlib

import pattern
import pytest

import proxyutil as pu
from proxyutil import RawConn, request

TEXT = "type=text/plain;%20charset=utf-8"


def route(path, **policy):
    return {"path": path, "match": "prefix", "backend": 0, "source": f"gz{path}",
            "policy": policy}


def table(backends, **settings):
    return {
        "version": 1,
        "settings": settings,
        "hosts": [{"name": "", "routes": [
            route("/bigheads", upstream_head_max=16384),
            route("/"),
        ]}],
        "backends": [{"name": "gz/echo:80",
                      "endpoints": [{"address": "127.0.0.1", "port": backends["echo"]}]}],
    }


@pytest.fixture(scope="module")
def gz_proxy(proxy_bin, backends, tmp_path_factory):
    """A weir-proxy with use-gzip on and the other gzip settings at their defaults."""
    d = tmp_path_factory.mktemp("gzip")
    routes = d / "routes"
    routes.mkdir()
    pu.write_table(str(routes), table(backends, use_gzip=True))
    p = pu.Proxy(str(routes), str(d / "proxy.log"), workers=2)
    try:
        p.wait_ready()
        yield p
    finally:
        p.stop()


def expected(n):
    return b"".join(pattern.chunks(n, 1 << 20))


def get(port, path, extra="", method="GET", version="1.1"):
    return request(port, f"{method} {path} HTTP/{version}\r\nHost: t\r\n{extra}\r\n".encode(),
                   method=method)


AE = "Accept-Encoding: gzip, deflate, br\r\n"


def test_curl_compressed(gz_proxy):
    n = 200_000
    proc = subprocess.run(
        ["curl", "-sS", "--compressed", "-D", "-", "-o", "-", "--max-time", "20",
         f"http://127.0.0.1:{gz_proxy.http_port}/c?do=fixed&n={n}&{TEXT}"],
        capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    head, _, body = proc.stdout.partition(b"\r\n\r\n")
    lines = head.decode().lower().split("\r\n")
    assert "content-encoding: gzip" in lines, lines
    assert "vary: accept-encoding" in lines, lines
    assert "transfer-encoding: chunked" in lines, lines
    assert not any(x.startswith("content-length:") for x in lines), lines
    assert body == expected(n)


def test_urllib_gzip_large_chunked_upstream(gz_proxy):
    """A chunked upstream body far larger than the proxy's buffers, compressed as it
    streams: the decompressed bytes are exactly the backend's."""
    n = 8 * 1024 * 1024 + 13
    req = urllib.request.Request(
        f"http://127.0.0.1:{gz_proxy.http_port}/u?do=stream&n={n}&type=application/json",
        headers={"Accept-Encoding": "gzip"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=60) as r:
        assert r.headers["Content-Encoding"] == "gzip"
        assert r.headers["Content-Length"] is None
        raw = r.read()
    assert len(raw) < n // 4  # the pattern compresses well: it was compressed
    assert gzip.decompress(raw) == expected(n)


def test_raw_chunked_framing_and_etag(gz_proxy):
    r = get(gz_proxy.http_port, f"/e?do=fixed&n=5000&{TEXT}&etag=%22v1%22", AE)
    assert r.status == 200, r
    assert r.get("Content-Encoding") == "gzip"
    assert r.get("Transfer-Encoding") == "chunked"
    assert r.get("Content-Length") is None
    assert r.get("ETag") == 'W/"v1"'
    assert r.get_all("Vary") == ["Accept-Encoding"]
    assert gzip.decompress(r.body) == expected(5000)
    # a weak one stays as it is
    r = get(gz_proxy.http_port, f"/e?do=fixed&n=5000&{TEXT}&etag=W/%22v2%22", AE)
    assert r.get("ETag") == 'W/"v2"'


def test_not_accepted_gets_vary_only(gz_proxy):
    for extra in ("", "Accept-Encoding: gzip;q=0\r\n", "Accept-Encoding: br, deflate\r\n",
                  "Accept-Encoding: *\r\n"):
        r = get(gz_proxy.http_port, f"/q?do=fixed&n=5000&{TEXT}&etag=%22v1%22", extra)
        assert r.status == 200, r
        assert r.get("Content-Encoding") is None, (extra, r.headers)
        assert r.get("Content-Length") == "5000"
        assert r.get("ETag") == '"v1"'
        assert r.get_all("Vary") == ["Accept-Encoding"], extra
        assert r.body == expected(5000)


def test_http10_client_not_compressed(gz_proxy):
    """ingress-nginx writes gzip_http_version 1.1: an HTTP/1.0 request gets the body as is."""
    r = get(gz_proxy.http_port, f"/h?do=stream&n=5000&{TEXT}", AE, version="1.0")
    assert r.status == 200, r
    assert r.get("Content-Encoding") is None
    assert r.body == expected(5000)


def test_head_and_304_and_204_untouched(gz_proxy):
    r = get(gz_proxy.http_port, f"/h?do=fixed&n=5000&{TEXT}", AE, method="HEAD")
    assert r.status == 200, r
    assert r.get("Content-Encoding") is None
    assert r.get("Content-Length") == "5000"
    assert r.body == b""
    for code in (304, 204):
        r = get(gz_proxy.http_port, f"/s?do=status&code={code}&{TEXT}&etag=%22v1%22", AE)
        assert r.status == code, r
        assert r.get("Content-Encoding") is None
        assert r.get("ETag") == '"v1"'
        assert r.body == b""


def test_already_encoded_untouched(gz_proxy):
    r = get(gz_proxy.http_port, f"/a?do=fixed&n=5000&{TEXT}&ce=br", AE)
    assert r.status == 200, r
    assert r.get_all("Content-Encoding") == ["br"]
    assert r.get("Content-Length") == "5000"
    assert r.body == expected(5000)


def test_type_and_length_rules(gz_proxy):
    # not in gzip-types
    r = get(gz_proxy.http_port, "/t?do=fixed&n=5000&type=image/png", AE)
    assert r.get("Content-Encoding") is None and r.get("Vary") is None, r.headers
    assert r.body == expected(5000)
    # text/html always
    r = get(gz_proxy.http_port, "/t?do=fixed&n=5000&type=text/html", AE)
    assert r.get("Content-Encoding") == "gzip"
    assert gzip.decompress(r.body) == expected(5000)
    # below gzip-min-length (256 by default) by Content-Length: as is, no Vary
    r = get(gz_proxy.http_port, f"/t?do=fixed&n=255&{TEXT}", AE)
    assert r.get("Content-Encoding") is None and r.get("Vary") is None
    assert r.get("Content-Length") == "255"
    # without a Content-Length the length is unknown: compressed
    r = get(gz_proxy.http_port, f"/t?do=stream&n=100&{TEXT}", AE)
    assert r.get("Content-Encoding") == "gzip"
    assert gzip.decompress(r.body) == expected(100)


def test_error_statuses(gz_proxy):
    """nginx compresses 200, 403 and 404, nothing else."""
    pad = "X-Pad: " + "p" * 400 + "\r\n"  # the echo body then passes gzip-min-length
    r = get(gz_proxy.http_port, "/s?do=status&code=404&type=application/json", AE + pad)
    assert r.status == 404 and r.get("Content-Encoding") == "gzip", r.headers
    assert b'"X-Pad"' in gzip.decompress(r.body)
    r = get(gz_proxy.http_port, "/s?do=status&code=500&type=application/json", AE + pad)
    assert r.status == 500 and r.get("Content-Encoding") is None, r.headers


def test_keepalive_reuse_after_gzip(gz_proxy):
    c = RawConn(gz_proxy.http_port)
    try:
        for i in range(3):
            c.send(f"GET /k?do=stream&n={70000 + i}&{TEXT} HTTP/1.1\r\nHost: t\r\n{AE}\r\n"
                   .encode())
            r = c.read_response()
            assert r.status == 200 and r.get("Content-Encoding") == "gzip", r
            assert gzip.decompress(r.body) == expected(70000 + i)
            c.send(b"GET /k?x=1 HTTP/1.1\r\nHost: t\r\n\r\n")
            r = c.read_response()
            assert r.status == 200 and r.json()["query"] == "x=1", r
    finally:
        c.close()


def test_streamed_events_not_held_back(gz_proxy):
    """Each event leaves the proxy decodable when the upstream pauses: the client
    decompresses event 0 long before the last one is sent."""
    c = RawConn(gz_proxy.http_port, timeout=10)
    try:
        t0 = time.monotonic()
        c.send(f"GET /sse?do=drip&n=4&ms=600&type=text/plain HTTP/1.1\r\nHost: t\r\n{AE}\r\n"
               .encode())
        r = c.read_head()
        assert r.get("Content-Encoding") == "gzip", r.headers
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        text = b""
        seen = {}
        for piece in c.iter_body(r):
            text += d.decompress(piece)
            for i in range(4):
                if f"data: {i}\n\n".encode() in text and i not in seen:
                    seen[i] = time.monotonic() - t0
        text += d.flush()
        assert text == b"".join(f"data: {i}\n\n".encode() for i in range(4))
        assert d.eof
        assert seen[0] < 1.0, seen
        assert seen[3] >= 1.6, seen
        assert seen[1] < seen[3] - 0.4, seen
    finally:
        c.close()


def test_client_gone_midway_then_next_request(gz_proxy):
    """A client that leaves during a compressed response: the proxy stays up and serves
    the next one (the compressor's memory is freed with the exchange; the sanitized suite
    checks for leaks)."""
    for _ in range(5):
        c = RawConn(gz_proxy.http_port)
        c.send(f"GET /g?do=stream&n=5000000&{TEXT} HTTP/1.1\r\nHost: t\r\n{AE}\r\n".encode())
        c.read_head()
        c.close()
    r = get(gz_proxy.http_port, f"/g?do=fixed&n=3000&{TEXT}", AE)
    assert gzip.decompress(r.body) == expected(3000)


def test_memory_bounded_while_compressing(gz_proxy):
    """Ten compressed 20 MB responses read slowly at once: the proxy's RSS grows by
    less than 16 MB (per response: 3 buffers of 16 KiB and zlib's state of about
    256 KiB, no whole-body buffering)."""
    base = gz_proxy.rss_kb()
    conns = []
    for _ in range(10):
        c = RawConn(gz_proxy.http_port, timeout=30)
        c.send(f"GET /m?do=stream&n={20 << 20}&{TEXT} HTTP/1.1\r\nHost: t\r\n{AE}\r\n".encode())
        conns.append((c, c.read_head()))
    peak = base
    its = [(c, c.iter_body(r), zlib.decompressobj(16 + zlib.MAX_WBITS)) for c, r in conns]
    total = [0] * len(its)
    done = [False] * len(its)
    while not all(done):
        for i, (c, it, d) in enumerate(its):
            if done[i]:
                continue
            try:
                total[i] += len(d.decompress(next(it)))
            except StopIteration:
                total[i] += len(d.flush())
                done[i] = True
        peak = max(peak, gz_proxy.rss_kb())
    for c, _ in conns:
        c.close()
    print(f"gzip: 10 compressed 20 MB responses at once: RSS {base} kB -> peak {peak} kB")
    assert total == [20 << 20] * 10
    assert peak - base < 16 * 1024, (base, peak)


def test_gzip_off_by_default(proxy):
    """The session proxy's table does not set use_gzip: nothing compressed, no Vary."""
    r = get(proxy.http_port, f"/echo/?do=fixed&n=5000&{TEXT}", AE)
    assert r.status == 200, r
    assert r.get("Content-Encoding") is None and r.get("Vary") is None
    assert r.body == expected(5000)


def test_upstream_head_over_proxy_buffer_size_is_502(gz_proxy):
    """proxy-buffer-size: 4k by default (ingress-nginx's); a larger head is answered 502
    as nginx's "upstream sent too big header"; a route with 16k takes larger ones."""
    ok = get(gz_proxy.http_port, "/x?do=bighead&n=3000")
    assert ok.status == 200 and len(ok.get("X-Big")) == 3000, ok
    r = get(gz_proxy.http_port, "/x?do=bighead&n=5000")
    assert r.status == 502, r
    assert b"too big header" in r.body
    r = get(gz_proxy.http_port, "/bigheads?do=bighead&n=12000")
    assert r.status == 200 and len(r.get("X-Big")) == 12000, r
    r = get(gz_proxy.http_port, "/bigheads?do=bighead&n=20000")
    assert r.status == 502, r
    # the proxy is fine afterwards, on the same route
    r = get(gz_proxy.http_port, "/x?x=2")
    assert r.status == 200 and r.json()["query"] == "x=2"


def test_default_backend_head_cap(proxy_bin, backends, tmp_path):
    """Requests no route matches (the default backend) take the ConfigMap's
    proxy-buffer-size (settings.upstream_head_max), 4k when unset."""
    routes = tmp_path / "routes"
    routes.mkdir()

    def with_default(**settings):
        t = table(backends, **settings)
        t["hosts"] = [{"name": "routed.test", "routes": [route("/")]}]
        t["default_backend"] = 0
        return t

    pu.write_table(str(routes), with_default())
    p = pu.Proxy(str(routes), str(tmp_path / "proxy.log"), workers=1)
    try:
        p.wait_ready()
        assert get(p.http_port, "/d?do=bighead&n=3000").status == 200
        assert get(p.http_port, "/d?do=bighead&n=6000").status == 502
        pu.write_table(str(routes), dict(with_default(upstream_head_max=8192), generation=2))
        p.wait_generation(2)
        r = get(p.http_port, "/d?do=bighead&n=6000")
        assert r.status == 200 and len(r.get("X-Big")) == 6000, r
    finally:
        p.stop()


def test_gzip_settings_applied(proxy_bin, backends, tmp_path):
    """gzip_types, gzip_min_length and gzip_level from the table."""
    routes = tmp_path / "routes"
    routes.mkdir()
    pu.write_table(str(routes), table(backends, use_gzip=True, gzip_types="text/event-stream",
                                      gzip_min_length=10000, gzip_level=9))
    p = pu.Proxy(str(routes), str(tmp_path / "proxy.log"), workers=1)
    try:
        p.wait_ready()
        r = get(p.http_port, "/s?do=drip&n=2&ms=10", AE)
        assert r.get("Content-Encoding") == "gzip", r.headers
        assert gzip.decompress(r.body) == b"data: 0\n\ndata: 1\n\n"
        r = get(p.http_port, f"/s?do=fixed&n=20000&{TEXT}", AE)  # text/plain not listed now
        assert r.get("Content-Encoding") is None
        r = get(p.http_port, "/s?do=fixed&n=9999&type=text/html", AE)  # below 10000
        assert r.get("Content-Encoding") is None and r.get("Content-Length") == "9999"
        r = get(p.http_port, "/s?do=fixed&n=200000&type=text/html", AE)
        assert r.get("Content-Encoding") == "gzip"
        assert gzip.decompress(r.body) == expected(200000)
    finally:
        p.stop()


def test_header_line_cap(proxy_bin, backends, tmp_path):
    """large-client-header-buffers "8 1k" (max_header_bytes 8192, max_header_line 1024):
    a request line longer than 1k gets 414, a header line 400, a head of short lines
    up to 8k passes, a longer one 431."""
    routes = tmp_path / "routes"
    routes.mkdir()
    pu.write_table(str(routes), table(backends, max_header_bytes=8192,
                                      max_header_line=1024))
    p = pu.Proxy(str(routes), str(tmp_path / "proxy.log"), workers=1)
    try:
        p.wait_ready()
        r = get(p.http_port, "/" + "a" * 1100)
        assert r.status == 414, r
        r = get(p.http_port, "/x", "Cookie: " + "c" * 1100 + "\r\n")
        assert r.status == 400, r
        assert b"too large" in r.body
        many = "".join(f"X-H{i}: {'v' * 900}\r\n" for i in range(7))
        r = get(p.http_port, "/x?ok=1", many)
        assert r.status == 200 and r.json()["query"] == "ok=1", r
        r = get(p.http_port, "/x", many + many)
        assert r.status == 431, r
    finally:
        p.stop()


# ---------------------------------------------------------------- brotli (enable-brotli)

class BrotliStream:
    """Incremental brotli decoding with the system's libbrotlidec (ctypes; no Python
    package needed)."""

    def __init__(self):
        path = ctypes.util.find_library("brotlidec")
        assert path, "libbrotlidec not found"
        self.lib = ctypes.CDLL(path)
        self.lib.BrotliDecoderCreateInstance.restype = ctypes.c_void_p
        self.lib.BrotliDecoderCreateInstance.argtypes = [ctypes.c_void_p] * 3
        self.lib.BrotliDecoderDecompressStream.restype = ctypes.c_int
        self.lib.BrotliDecoderDecompressStream.argtypes = [
            ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t),
            ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t),
            ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p]
        self.lib.BrotliDecoderDestroyInstance.argtypes = [ctypes.c_void_p]
        self.state = self.lib.BrotliDecoderCreateInstance(None, None, None)
        self.eof = False

    def decompress(self, data: bytes) -> bytes:
        src = ctypes.create_string_buffer(data, len(data))
        avail_in = ctypes.c_size_t(len(data))
        next_in = ctypes.c_void_p(ctypes.addressof(src))
        out = b""
        while True:
            buf = ctypes.create_string_buffer(1 << 16)
            avail_out = ctypes.c_size_t(len(buf))
            next_out = ctypes.c_void_p(ctypes.addressof(buf))
            r = self.lib.BrotliDecoderDecompressStream(
                self.state, ctypes.byref(avail_in), ctypes.byref(next_in),
                ctypes.byref(avail_out), ctypes.byref(next_out), None)
            out += buf.raw[:len(buf) - avail_out.value]
            assert r != 0, "brotli: corrupt stream"
            if r == 1:  # success: the stream ended
                assert avail_in.value == 0, "bytes after the brotli stream"
                self.eof = True
                return out
            if r == 2:  # needs more input
                return out
            # r == 3: needs more output: go on

    def close(self):
        self.lib.BrotliDecoderDestroyInstance(self.state)


def unbrotli(data: bytes) -> bytes:
    d = BrotliStream()
    try:
        out = d.decompress(data)
        assert d.eof, "brotli stream not complete"
        return out
    finally:
        d.close()


@pytest.fixture(scope="module")
def br_proxy(proxy_bin, backends, tmp_path_factory):
    """A weir-proxy with use-gzip and enable-brotli on, other settings at their defaults."""
    d = tmp_path_factory.mktemp("brotli")
    routes = d / "routes"
    routes.mkdir()
    pu.write_table(str(routes), table(backends, use_gzip=True, enable_brotli=True))
    p = pu.Proxy(str(routes), str(d / "proxy.log"), workers=2)
    try:
        p.wait_ready()
        yield p
    finally:
        p.stop()


def test_brotli_preferred_large_chunked(br_proxy):
    n = 3 * 1024 * 1024 + 5
    r = get(br_proxy.http_port, f"/b?do=stream&n={n}&{TEXT}&etag=%22v%22",
            "Accept-Encoding: gzip, deflate, br\r\n")
    assert r.status == 200, r
    assert r.get("Content-Encoding") == "br"
    assert r.get_all("Vary") == ["Accept-Encoding"]
    assert r.get("ETag") == 'W/"v"'
    assert r.get("Content-Length") is None
    assert len(r.body) < n // 4
    assert unbrotli(r.body) == expected(n)


def test_brotli_or_gzip_by_accept_encoding(br_proxy):
    for ae, want in (("gzip", "gzip"), ("br;q=0, gzip", "gzip"), ("br", "br"),
                     ("identity", None)):
        r = get(br_proxy.http_port, f"/b?do=fixed&n=5000&{TEXT}", f"Accept-Encoding: {ae}\r\n")
        assert r.get("Content-Encoding") == want, (ae, r.headers)
        body = {"gzip": gzip.decompress, "br": unbrotli, None: bytes}[want](r.body)
        assert body == expected(5000), ae
    # brotli-min-length is 20, gzip-min-length 256: 100 bytes go out as br only
    r = get(br_proxy.http_port, f"/b?do=fixed&n=100&{TEXT}", "Accept-Encoding: br, gzip\r\n")
    assert r.get("Content-Encoding") == "br"
    assert unbrotli(r.body) == expected(100)
    r = get(br_proxy.http_port, f"/b?do=fixed&n=100&{TEXT}", "Accept-Encoding: gzip\r\n")
    assert r.get("Content-Encoding") is None and r.get("Content-Length") == "100"
    assert r.get_all("Vary") == ["Accept-Encoding"]


def test_brotli_streamed_events_not_held_back(br_proxy):
    c = RawConn(br_proxy.http_port, timeout=10)
    d = BrotliStream()
    try:
        t0 = time.monotonic()
        c.send(b"GET /sse?do=drip&n=3&ms=600&type=text/plain HTTP/1.1\r\nHost: t\r\n"
               b"Accept-Encoding: br\r\n\r\n")
        r = c.read_head()
        assert r.get("Content-Encoding") == "br", r.headers
        text = b""
        first = None
        for piece in c.iter_body(r):
            text += d.decompress(piece)
            if first is None and b"data: 0\n\n" in text:
                first = time.monotonic() - t0
        assert d.eof
        assert text == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
        assert first is not None and first < 1.0, first
        assert time.monotonic() - t0 >= 1.1
    finally:
        d.close()
        c.close()


def test_keepalive_after_brotli(br_proxy):
    c = RawConn(br_proxy.http_port)
    try:
        for i in range(3):
            c.send(f"GET /k?do=fixed&n={30000 + i}&{TEXT} HTTP/1.1\r\nHost: t\r\n"
                   f"Accept-Encoding: br\r\n\r\n".encode())
            r = c.read_response()
            assert r.get("Content-Encoding") == "br"
            assert unbrotli(r.body) == expected(30000 + i)
    finally:
        c.close()


def test_brotli_memory_bounded(br_proxy):
    """Ten brotli responses of 20 MB read slowly at once: the proxy's RSS grows by less
    than 32 MB (the encoder's window of 512 KiB and its tables, per response)."""
    base = br_proxy.rss_kb()
    streams = []
    for _ in range(10):
        c = RawConn(br_proxy.http_port, timeout=30)
        c.send(f"GET /m?do=stream&n={20 << 20}&{TEXT} HTTP/1.1\r\nHost: t\r\n"
               f"Accept-Encoding: br\r\n\r\n".encode())
        r = c.read_head()
        assert r.get("Content-Encoding") == "br"
        streams.append((c, c.iter_body(r), BrotliStream()))
    total = [0] * len(streams)
    done = [False] * len(streams)
    peak = base
    while not all(done):
        for i, (c, it, d) in enumerate(streams):
            if done[i]:
                continue
            try:
                total[i] += len(d.decompress(next(it)))
            except StopIteration:
                done[i] = True
        peak = max(peak, br_proxy.rss_kb())
    for c, _, d in streams:
        assert d.eof
        d.close()
        c.close()
    print(f"brotli: 10 compressed 20 MB responses at once: RSS {base} kB -> peak {peak} kB")
    assert total == [20 << 20] * 10
    assert peak - base < 32 * 1024, (base, peak)
