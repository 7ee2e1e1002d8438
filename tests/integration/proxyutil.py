"""Helpers for the weir-proxy integration tests: processes, route tables, raw HTTP.

Everything talks to loopback only. Every wait is bounded by a deadline."""

import hashlib
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BACKENDS = os.path.join(REPO, "tests", "backends")
sys.path.insert(0, BACKENDS)

from ports import free_port  # noqa: E402  (re-exported for the tests)

BUILD_DIR = os.environ.get("WEIR_BUILD_DIR", os.path.join(REPO, "build"))
PROXY_BIN = os.path.join(BUILD_DIR, "weir-proxy")


def start_ready(cmd, ready: str, log_path: str, timeout: float = 15.0) -> subprocess.Popen:
    """Start cmd with stdout+stderr to log_path and wait until ready appears in the log."""
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(log_path, "rb") as f:
            if ready.encode() in f.read():
                return proc
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    stop_process(proc)
    with open(log_path, "rb") as f:
        tail = f.read()[-2000:].decode(errors="replace")
    raise RuntimeError(f"{cmd[0:3]} did not get ready ({ready!r}); log:\n{tail}")


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def start_backend(script: str, port: int, log_path: str, *extra) -> subprocess.Popen:
    name = script.split(".")[0]
    cmd = [sys.executable, os.path.join(BACKENDS, script), "--host", "127.0.0.1",
           "--port", str(port), *extra]
    return start_ready(cmd, f"{name} ready on", log_path)


def write_table(routes_dir: str, table: dict) -> None:
    """Publish a table the way the controller does: temp file in the same dir, then rename."""
    write_raw_table(routes_dir, json.dumps(table, indent=1).encode())


def write_raw_table(routes_dir: str, data: bytes) -> None:
    tmp = os.path.join(routes_dir, ".routes.json.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, os.path.join(routes_dir, "routes.json"))


def http_get(port: int, path: str, timeout: float = 5.0):
    """A plain GET with urllib (no proxy env); returns (status, body bytes)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Proxy:
    """One weir-proxy process on free loopback ports, serving routes_dir."""

    def __init__(self, routes_dir: str, log_path: str, workers: int = 2):
        if not os.path.exists(PROXY_BIN):
            raise FileNotFoundError(
                f"weir-proxy binary not found at {PROXY_BIN}: build it (cmake --build "
                f"$WEIR_BUILD_DIR --target weir-proxy) or set WEIR_BUILD_DIR")
        self.routes_dir = routes_dir
        self.log_path = log_path
        self.http_port = free_port()
        self.https_port = free_port()
        self.admin_port = free_port()
        cmd = [PROXY_BIN, "--routes", routes_dir, "--http-port", str(self.http_port),
               "--https-port", str(self.https_port), "--admin-port", str(self.admin_port),
               "--workers", str(workers), "--listen-address", "127.0.0.1",
               "--log-format", "text"]
        log = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        self.pid = self.proc.pid

    def log_tail(self, n: int = 3000) -> str:
        with open(self.log_path, "rb") as f:
            return f.read()[-n:].decode(errors="replace")

    def wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weir-proxy exited with {self.proc.returncode}; log:\n"
                                   f"{self.log_tail()}")
            try:
                status, _ = http_get(self.admin_port, "/readyz", timeout=1)
                if status == 200:
                    return
                last = status
            except OSError as e:
                last = e
            time.sleep(0.05)
        raise RuntimeError(f"weir-proxy not ready after {timeout}s (last: {last}); log:\n"
                           f"{self.log_tail()}")

    def metrics(self) -> str:
        status, body = http_get(self.admin_port, "/metrics")
        assert status == 200, f"/metrics answered {status}"
        return body.decode()

    def metric(self, name: str, labels: str = "") -> float:
        """Value of one series (labels: the exact text between braces), or -1 if absent."""
        want = f"{name}{{{labels}}}" if labels else name
        for line in self.metrics().splitlines():
            if line.startswith("#"):
                continue
            parts = line.rsplit(" ", 1)
            if len(parts) == 2 and parts[0] == want:
                return float(parts[1])
        return -1

    def wait_generation(self, gen: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.metric("weir_proxy_route_table_generation") == gen:
                return
            time.sleep(0.02)
        raise AssertionError(f"generation {gen} not in use after {timeout}s")

    def rss_kb(self) -> int:
        return rss_tree_kb(self.pid)

    def stop(self) -> None:
        stop_process(self.proc)


def rss_tree_kb(pid: int) -> int:
    """VmRSS of pid plus its child processes (workers may be threads or processes)."""
    total = 0
    todo = [pid]
    seen = set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


# ---------------------------------------------------------------- raw HTTP/1.1

class Response:
    def __init__(self, status: int, reason: str, headers, body: bytes, head: bytes):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value) as received
        self.body = body
        self.head = head

    def get(self, name: str):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def get_all(self, name: str):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.headers} {self.body[:200]!r}>"


class RawConn:
    """A client socket that sends exact bytes and parses responses one at a time."""

    def __init__(self, port: int, timeout: float = 10.0, source: str = None, sock=None):
        if sock is None:
            sock = socket.socket()
            if source:
                sock.bind((source, 0))
            sock.settimeout(timeout)
            sock.connect(("127.0.0.1", port))
        self.sock = sock
        self.sock.settimeout(timeout)
        self.buf = b""
        self.received = 0

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            raise TimeoutError(f"timed out after receiving {self.received} bytes") from None
        if not data:
            return False
        self.received += len(data)
        self.buf += data
        return True

    def read_head(self, method: str = "GET") -> Response:
        """Read one response head; the body is then read with iter_body()."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError(f"closed before a full response head; got {self.buf!r}")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        m = re.match(rb"HTTP/1\.[01] (\d{3}) ?(.*)", lines[0])
        assert m, f"bad status line {lines[0]!r}"
        status = int(m.group(1))
        headers = []
        for ln in lines[1:]:
            k, _, v = ln.partition(b":")
            headers.append((k.decode("latin-1"), v.strip().decode("latin-1")))
        resp = Response(status, m.group(2).decode("latin-1"), headers, b"", head)
        resp.method = method
        return resp

    def iter_body(self, resp: Response):
        """Yield the body of resp in pieces as they arrive (any size, nothing kept)."""
        te = (resp.get("Transfer-Encoding") or "").lower()
        cl = resp.get("Content-Length")
        status = resp.status
        if resp.method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return
        if "chunked" in te:
            while True:
                while b"\r\n" not in self.buf:
                    if not self._fill():
                        raise ConnectionError("closed inside chunked body")
                size_line, self.buf = self.buf.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    break
                left = size
                while left:
                    if not self.buf and not self._fill():
                        raise ConnectionError(f"closed inside a chunk ({self.received} bytes "
                                              f"received)")
                    piece, self.buf = self.buf[:left], self.buf[left:]
                    left -= len(piece)
                    yield piece
                while len(self.buf) < 2:
                    if not self._fill():
                        raise ConnectionError("closed after a chunk")
                assert self.buf[:2] == b"\r\n", f"bad chunk end {self.buf[:10]!r}"
                self.buf = self.buf[2:]
            # trailers up to the empty line
            while True:
                while b"\r\n" not in self.buf:
                    if not self._fill():
                        raise ConnectionError("closed inside trailers")
                line, self.buf = self.buf.split(b"\r\n", 1)
                if not line:
                    break
        elif cl is not None:
            left = int(cl)
            while left:
                if not self.buf and not self._fill():
                    raise ConnectionError(f"closed with {left} of {cl} body bytes missing")
                piece, self.buf = self.buf[:left], self.buf[left:]
                left -= len(piece)
                yield piece
        else:
            while True:
                if self.buf:
                    piece, self.buf = self.buf, b""
                    yield piece
                if not self._fill():
                    break

    def read_response(self, method: str = "GET") -> Response:
        resp = self.read_head(method)
        resp.body = b"".join(self.iter_body(resp))
        return resp

    def closed_by_peer(self, timeout: float = 3.0) -> bool:
        """True when the peer closes (EOF or reset) within timeout, ignoring extra bytes."""
        deadline = time.monotonic() + timeout
        self.extra = self.buf
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.sock], [], [], max(0.0, deadline - time.monotonic()))
            if not r:
                return False
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not data:
                return True
            self.extra += data
        return False

    def close(self) -> None:
        self.sock.close()


def request(port: int, data: bytes, method: str = "GET", timeout: float = 10.0) -> Response:
    c = RawConn(port, timeout)
    try:
        c.send(data)
        return c.read_response(method)
    finally:
        c.close()


def get(port: int, path: str, host: str = "test.local", extra: str = "") -> Response:
    return request(port, f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode())


def get_digest(port: int, target: str, host: str, timeout: float = 30.0):
    """GET target and read the body as it streams without keeping it: returns the response
    head, the body's length and its sha256 hex digest."""
    c = RawConn(port, timeout=timeout)
    try:
        c.send(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        r = c.read_head()
        h = hashlib.sha256()
        total = 0
        if r.status == 200:
            for piece in c.iter_body(r):
                h.update(piece)
                total += len(piece)
    finally:
        c.close()
    return r, total, h.hexdigest()
