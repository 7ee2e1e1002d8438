"""Accepting within limits: a proxy out of file descriptors or at max-connections stops
accepting instead of spinning on its listener (little CPU, a line or two of log), the kernel
backlog holds the waiting clients, and the proxy serves again once connections close."""

import os
import resource
import time

import proxyutil as pu

GET = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n"


def table(backends, **settings):
    return {"version": 1, "generation": 1, "settings": settings,
            "hosts": [{"name": "", "routes": [{"path": "/", "match": "prefix", "backend": 0}]}],
            "backends": [{"name": "a/echo:80", "endpoints": [
                {"address": "127.0.0.1", "port": backends["echo"]}]}]}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def accept_lines(proxy) -> list:
    with open(proxy.log_path, errors="replace") as f:
        return [ln for ln in f if "accept" in ln]


def test_out_of_files_pauses_accept(fresh_proxy, backends):
    proxy = fresh_proxy(table(backends), workers=1)
    assert pu.get(proxy.http_port, "/x").status == 200  # the upstream pool has its socket
    limit = len(os.listdir(f"/proc/{proxy.pid}/fd")) + 6
    resource.prlimit(proxy.pid, resource.RLIMIT_NOFILE, (limit, limit))
    clients = [pu.RawConn(proxy.http_port) for _ in range(40)]
    try:
        time.sleep(0.5)  # it accepts what fits, then meets EMFILE
        before = cpu_seconds(proxy.pid)
        time.sleep(1.0)
        used = cpu_seconds(proxy.pid) - before
        lines = accept_lines(proxy)
        assert any("Too many open files" in ln for ln in lines), proxy.log_tail()
        assert len(lines) <= 2, lines  # one report per worker per 10 s
        assert used < 0.25, f"{used:.2f} s of CPU in 1 s while out of files"
    finally:
        for c in clients:
            c.close()
    # closes free descriptors: the backlog drains and new clients are served
    deadline = time.monotonic() + 10
    status = None
    while time.monotonic() < deadline and status != 200:
        try:
            status = pu.get(proxy.http_port, "/x").status
        except (OSError, TimeoutError, ConnectionError):
            time.sleep(0.1)
    assert status == 200, proxy.log_tail()


def test_max_connections_holds_the_rest_in_backlog(fresh_proxy, backends):
    proxy = fresh_proxy(table(backends, max_connections=3), workers=1)
    held = [pu.RawConn(proxy.http_port, timeout=5) for _ in range(3)]
    waiting = None
    try:
        for c in held:
            c.send(GET)
            assert c.read_response().status == 200
        waiting = pu.RawConn(proxy.http_port, timeout=1.2)  # connects in the kernel backlog
        waiting.send(GET)
        before = cpu_seconds(proxy.pid)
        try:
            waiting.read_head()
            answered = True
        except TimeoutError:
            answered = False
        used = cpu_seconds(proxy.pid) - before
        assert not answered, "a fourth connection was served with max_connections 3"
        assert used < 0.25, f"{used:.2f} s of CPU in 1.2 s at max-connections"
        lines = accept_lines(proxy)
        assert len(lines) == 1 and "max-connections (3)" in lines[0], lines
        # one closes: the waiting client is accepted and answered
        held.pop(0).close()
        waiting.sock.settimeout(5)
        resp = waiting.read_response()
        assert resp.status == 200
        assert resp.json()["path"] == "/x"
    finally:
        for c in held:
            c.close()
        if waiting:
            waiting.close()
