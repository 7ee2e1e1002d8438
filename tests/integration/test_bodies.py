"""Request and response bodies through weir-proxy: byte-exact, and streamed (1 GB each way
with the proxy's resident memory sampled while the bytes flow)."""

import hashlib
import os
import threading
import time

import pattern
import pytest
from proxyutil import RawConn, request

GB = 1 << 30
RSS_LIMIT_KB = 16 * 1024


class RssSampler:
    """Samples the proxy's RSS every 50 ms in a thread; growth() is max - baseline."""

    def __init__(self, proxy):
        self.proxy = proxy
        self.baseline = proxy.rss_kb()
        self.peak = self.baseline
        self.samples = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.proxy.rss_kb())
            self.samples += 1

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(5)

    def growth(self):
        return self.peak - self.baseline


def test_content_length_upload_exact(proxy):
    body = os.urandom(3 * 1024 * 1024 + 7)
    r = request(proxy.http_port, b"PUT /big/cl HTTP/1.1\r\nHost: t\r\nContent-Length: " +
                str(len(body)).encode() + b"\r\n\r\n" + body, timeout=30)
    assert r.status == 200, r
    info = r.json()
    assert info["method"] == "PUT"
    assert info["body_len"] == len(body)
    assert info["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_chunked_upload_exact(proxy):
    body = os.urandom(2 * 1024 * 1024 + 13)
    c = RawConn(proxy.http_port, timeout=30)
    try:
        c.send(b"POST /big/ch HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        off = 0
        for n in (1, 10, 4096, 65536, 1000000):
            c.send(b"%x\r\n" % n + body[off:off + n] + b"\r\n")
            off += n
        rest = body[off:]
        c.send(b"%x;ext=1\r\n" % len(rest) + rest + b"\r\n0\r\n\r\n")
        r = c.read_response()
    finally:
        c.close()
    assert r.status == 200, r
    assert r.json()["body_len"] == len(body)
    assert r.json()["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_content_length_download_exact(proxy):
    n = 5_000_011
    c = RawConn(proxy.http_port, timeout=30)
    try:
        c.send(f"GET /big/f?do=fixed&n={n} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        r = c.read_response()
    finally:
        c.close()
    assert r.status == 200, r
    assert r.get("Content-Length") == str(n), r.headers
    assert hashlib.sha256(r.body).hexdigest() == pattern.sha256(n)


def test_chunked_download_exact(proxy):
    n = 3_000_017
    c = RawConn(proxy.http_port, timeout=30)
    try:
        c.send(f"GET /big/s?do=stream&n={n} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        r = c.read_response()
    finally:
        c.close()
    assert r.status == 200, r
    assert len(r.body) == n
    assert hashlib.sha256(r.body).hexdigest() == pattern.sha256(n)


def _warm_up(proxy):
    # Let the proxy allocate its steady-state buffers before the baseline is taken.
    c = RawConn(proxy.http_port, timeout=30)
    try:
        c.send(b"GET /big/w?do=stream&n=16777216 HTTP/1.1\r\nHost: t\r\n\r\n")
        r = c.read_head()
        for _ in c.iter_body(r):
            pass
    except (TimeoutError, ConnectionError):
        pass  # a stall here shows up again, measured, in the test itself
    finally:
        c.close()


@pytest.mark.slow
def test_chunked_upload_1gb_streamed(proxy):
    _warm_up(proxy)
    expect = hashlib.sha256()
    c = RawConn(proxy.http_port, timeout=30)
    sent = 0
    t0 = time.monotonic()
    try:
        with RssSampler(proxy) as rss:
            c.send(b"POST /big/up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
            for piece in pattern.chunks(GB, 1 << 20):
                expect.update(piece)
                try:
                    c.send(b"%x\r\n" % len(piece) + piece + b"\r\n")
                except TimeoutError:
                    raise AssertionError(f"upload stalled after {sent} of {GB} bytes") from None
                sent += len(piece)
            c.send(b"0\r\n\r\n")
            r = c.read_response()
    finally:
        c.close()
    took = time.monotonic() - t0
    print(f"1 GB chunked upload: {took:.1f}s, proxy RSS {rss.baseline} kB -> peak {rss.peak} kB "
          f"({rss.samples} samples)")
    assert r.status == 200, r
    assert r.json()["body_len"] == GB
    assert r.json()["body_sha256"] == expect.hexdigest()
    assert rss.samples >= 5
    assert rss.growth() < RSS_LIMIT_KB, f"proxy RSS grew {rss.growth()} kB during the upload"


@pytest.mark.slow
def test_chunked_download_1gb_streamed(proxy):
    _warm_up(proxy)
    expect = pattern.sha256(GB)
    got = hashlib.sha256()
    total = 0
    c = RawConn(proxy.http_port, timeout=30)
    t0 = time.monotonic()
    try:
        with RssSampler(proxy) as rss:
            c.send(f"GET /big/down?do=stream&n={GB} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            r = c.read_head()
            assert r.status == 200, r
            try:
                for piece in c.iter_body(r):
                    got.update(piece)
                    total += len(piece)
            except (TimeoutError, ConnectionError) as e:
                raise AssertionError(f"download broke after {total} of {GB} bytes: {e}") from None
    finally:
        c.close()
    took = time.monotonic() - t0
    print(f"1 GB chunked download: {took:.1f}s, proxy RSS {rss.baseline} kB -> peak {rss.peak} kB "
          f"({rss.samples} samples)")
    assert total == GB
    assert got.hexdigest() == expect
    assert rss.samples >= 5
    assert rss.growth() < RSS_LIMIT_KB, f"proxy RSS grew {rss.growth()} kB during the download"


def test_repeated_downloads_complete(proxy):
    # Many mid-sized responses, both framings, each on a fresh connection and then several on
    # one keep-alive connection: every one must arrive whole (no stall before the last byte).
    failures = []
    for i in range(30):
        n = 3_000_000 + 7 * i
        do = "fixed" if i % 2 else "stream"
        c = RawConn(proxy.http_port, timeout=10)
        try:
            c.send(f"GET /big/r{i}?do={do}&n={n} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            r = c.read_response()
            if len(r.body) != n or hashlib.sha256(r.body).hexdigest() != pattern.sha256(n):
                failures.append((i, do, n, "altered"))
        except (TimeoutError, ConnectionError) as e:
            failures.append((i, do, n, str(e)))
        finally:
            c.close()
    c = RawConn(proxy.http_port, timeout=10)
    try:
        for i in range(10):
            n = 1_000_003 + i
            do = "fixed" if i % 2 else "stream"
            c.send(f"GET /big/k{i}?do={do}&n={n} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            try:
                r = c.read_response()
            except (TimeoutError, ConnectionError) as e:
                failures.append(("keep-alive", i, do, n, str(e)))
                break
            if hashlib.sha256(r.body).hexdigest() != pattern.sha256(n):
                failures.append(("keep-alive", i, do, n, "altered"))
    finally:
        c.close()
    assert failures == [], f"{len(failures)} incomplete downloads: {failures[:5]}"


def test_slow_client_download_backpressure(proxy):
    # The client reads 1 MiB of a 1 GB response and then stops reading for 3 s: the proxy must
    # stop reading from the backend instead of buffering the rest.
    _warm_up(proxy)
    c = RawConn(proxy.http_port, timeout=30)
    try:
        with RssSampler(proxy) as rss:
            c.send(f"GET /big/slow-reader?do=stream&n={GB} HTTP/1.1\r\nHost: t\r\n\r\n"
                   .encode())
            r = c.read_head()
            assert r.status == 200, r
            got = 0
            for piece in c.iter_body(r):
                got += len(piece)
                if got >= 1 << 20:
                    break
            time.sleep(3)
    finally:
        c.close()
    print(f"slow reader: proxy RSS {rss.baseline} kB -> peak {rss.peak} kB")
    assert rss.growth() < RSS_LIMIT_KB, f"proxy RSS grew {rss.growth()} kB for a stalled reader"


def test_slow_backend_upload_backpressure(proxy):
    # The backend sleeps 3 s before reading a 256 MiB upload: the proxy must stop reading
    # from the client meanwhile, then deliver every byte.
    total = 256 << 20
    c = RawConn(proxy.http_port, timeout=30)
    expect = hashlib.sha256()
    err = []

    def sender():
        try:
            c.send(b"POST /big/slow-backend?do=sleep&ms=3000 HTTP/1.1\r\nHost: t\r\n"
                   b"Content-Length: " + str(total).encode() + b"\r\n\r\n")
            for piece in pattern.chunks(total, 1 << 20):
                expect.update(piece)
                c.send(piece)
        except OSError as e:
            err.append(e)

    try:
        with RssSampler(proxy) as rss:
            t = threading.Thread(target=sender, daemon=True)
            t.start()
            t.join(60)
            r = c.read_response()
    finally:
        c.close()
    print(f"slow backend: proxy RSS {rss.baseline} kB -> peak {rss.peak} kB")
    assert not err, err
    assert r.status == 200, r
    assert r.json()["body_len"] == total
    assert r.json()["body_sha256"] == expect.hexdigest()
    assert rss.growth() < RSS_LIMIT_KB, f"proxy RSS grew {rss.growth()} kB for a slow backend"
