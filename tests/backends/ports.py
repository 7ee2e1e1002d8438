"""Loopback TCP ports for the servers the tests start.

A port from bind(("127.0.0.1", 0)) is released before the server that is
meant to take it binds it, and the kernel hands out the same ephemeral range
again: to the next bind(0) (two ports of one proxy can come back equal) and
to every outgoing connection's local port. So ports here come from below the
ephemeral range, are never handed out twice in one process, and are free
(a bind succeeds) at the moment they are handed out."""

import random
import socket
import threading

_lock = threading.Lock()
_given: set[int] = set()
_rand = random.Random()


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now and that this
    process has not handed out before."""
    low, high = 10000, _ephemeral_low()
    with _lock:
        if high - low >= 1000:
            for _ in range(2000):
                port = _rand.randrange(low, high)
                if port not in _given and _bindable(port):
                    _given.add(port)
                    return port
        # an unusual ip_local_port_range: let the kernel choose, still never twice
        while True:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            if port not in _given:
                _given.add(port)
                return port
