"""WebSocket through weir-proxy: byte-exact echo, handshake checks, idle timeout."""

import base64
import hashlib
import os
import queue
import random
import re
import socket
import threading
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from proxyutil import RawConn


def ws_connect(proxy, path):
    return connect(f"ws://127.0.0.1:{proxy.http_port}{path}", proxy=None, compression=None,
                   max_size=None, ping_interval=None, open_timeout=10, close_timeout=5)


def sizes(rng, n):
    out = [1, 256 * 1024, 125, 126, 127, 65535, 65536, 65537]
    while len(out) < n:
        k = rng.random()
        if k < 0.70:
            out.append(rng.randint(1, 1024))
        elif k < 0.95:
            out.append(rng.randint(1025, 64 * 1024))
        else:
            out.append(rng.randint(64 * 1024 + 1, 256 * 1024))
    return out


@pytest.mark.slow
def test_echo_10000_mixed_messages(proxy):
    rng = random.Random(1234)
    msgs = []
    for i, n in enumerate(sizes(rng, 10000)):
        if i % 2:
            msgs.append(os.urandom(n))
        else:
            msgs.append("".join(rng.choice("abcxyz0123é€😀 ") for _ in range(n // 2 + 1))[:n])
    window = 16
    with ws_connect(proxy, "/ws/echo") as ws:
        sent = 0
        recv = 0
        while recv < len(msgs):
            while sent < len(msgs) and sent - recv < window:
                ws.send(msgs[sent])
                sent += 1
            got = ws.recv(timeout=30)
            want = msgs[recv]
            assert type(got) is type(want), f"message {recv}: type changed"
            assert got == want, f"message {recv} altered ({len(want)} -> {len(got)})"
            recv += 1
    assert recv == 10000


def upgrade_head(path, key=True):
    k = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\n"
            f"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n" +
            (f"Sec-WebSocket-Key: {k}\r\n" if key else "") + "\r\n").encode()


def test_missing_key_400(proxy):
    c = RawConn(proxy.http_port)
    try:
        c.send(upgrade_head("/ws/nokey", key=False))
        r = c.read_response()
        assert r.status == 400, r
        assert "aiohttp" not in (r.get("Server") or ""), r
    finally:
        c.close()


def test_wrong_accept_from_upstream_502(proxy):
    c = RawConn(proxy.http_port)
    try:
        c.send(upgrade_head("/badws/x"))
        r = c.read_response()
        assert r.status == 502, r
    finally:
        c.close()


def test_handshake_accept_correct(proxy):
    c = RawConn(proxy.http_port)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        c.send((f"GET /ws/h HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\n"
                f"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                f"Sec-WebSocket-Key: {key}\r\n\r\n").encode())
        r = c.read_response()
        assert r.status == 101, r
        want = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        assert r.get("Sec-WebSocket-Accept") == want
        assert (r.get("Upgrade") or "").lower() == "websocket"
        assert "upgrade" in (r.get("Connection") or "").lower()
    finally:
        c.close()


def test_idle_timeout_closes(proxy):
    with ws_connect(proxy, "/ws-idle/x") as ws:
        ws.send("ping me")
        assert ws.recv(timeout=5) == "ping me"
        t0 = time.monotonic()
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        took = time.monotonic() - t0
    assert 0.8 <= took <= 3.0, f"closed after {took:.2f}s idle, ws_idle_timeout_ms is 1000"


def test_activity_keeps_connection_open(proxy):
    with ws_connect(proxy, "/ws-idle/y") as ws:
        t_end = time.monotonic() + 2.5
        n = 0
        while time.monotonic() < t_end:
            ws.send(b"tick %d" % n)
            assert ws.recv(timeout=5) == b"tick %d" % n
            n += 1
            time.sleep(0.3)
        assert n >= 5


def frame(payload, mask=None):
    """One final binary frame; masked (as a client sends) when mask is 4 bytes."""
    head = bytes([0x82, (0x80 if mask else 0) | len(payload)])
    if not mask:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_until_eof(sock, timeout):
    """Everything sock receives until the peer closes; None when it stays open past timeout."""
    sock.settimeout(0.2)
    got, end = b"", time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            continue
        if not chunk:
            return got
        got += chunk
    return None


class LastWordBackend:
    """A WebSocket upstream on loopback, one connection after another: it answers the upgrade,
    then (mode "send-close") waits for one frame, sends one frame and closes at once, or (mode
    "listen") records everything that follows until the proxy closes and puts it on .heard
    (None: still open after 5 s)."""

    def __init__(self, mode):
        self.mode, self.heard = mode, queue.Queue()
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.port = self.lsock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            s, _ = self.lsock.accept()
            with s:
                head = b""
                while b"\r\n\r\n" not in head:
                    head += s.recv(4096)
                key = re.search(rb"(?i)sec-websocket-key: *(\S+)", head).group(1)
                accept = base64.b64encode(hashlib.sha1(
                    key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
                s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept +
                          b"\r\n\r\n")
                if self.mode == "send-close":
                    s.recv(4096)
                    s.sendall(frame(b"last word"))
                    continue  # closed here: the frame and the FIN leave back to back
                self.heard.put(read_until_eof(s, 5))


def hangup_table(port):
    return {"version": 1, "generation": 1,
            "hosts": [{"name": "", "routes": [{"path": "/", "match": "prefix", "backend": 0}]}],
            "backends": [{"name": "it/lastword:80",
                          "endpoints": [{"address": "127.0.0.1", "port": port}]}]}


def open_tunnel(proxy):
    c = socket.create_connection(("127.0.0.1", proxy.http_port), timeout=5)
    c.sendall(upgrade_head("/lastword"))
    head = b""
    while b"\r\n\r\n" not in head:
        head += c.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return c


HANGUP_ROUNDS = 10


def test_frame_then_close_from_upstream_reaches_client_and_closes(fresh_proxy):
    """An upstream frame followed at once by the upstream's FIN: the client gets the frame and
    then the close, not a tunnel left open until the idle timeout (1 h here)."""
    b = LastWordBackend("send-close")
    proxy = fresh_proxy(hangup_table(b.port), workers=1)
    for i in range(HANGUP_ROUNDS):
        with open_tunnel(proxy) as c:
            c.sendall(frame(b"hi", os.urandom(4)))
            got = read_until_eof(c, 3)
        assert got == frame(b"last word"), f"round {i}: {got}"


def test_frame_then_close_from_client_reaches_upstream_and_closes(fresh_proxy):
    """The same the other way: a client frame and the client's FIN right behind it reach the
    upstream, and the upstream connection is then closed."""
    b = LastWordBackend("listen")
    proxy = fresh_proxy(hangup_table(b.port), workers=1)
    for i in range(HANGUP_ROUNDS):
        with open_tunnel(proxy) as c:
            last = frame(b"goodbye", os.urandom(4))
            c.sendall(last)
            c.shutdown(socket.SHUT_WR)
            heard = b.heard.get(timeout=10)
        assert heard == last, f"round {i}: {heard}"
