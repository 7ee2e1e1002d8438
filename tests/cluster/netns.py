"""Test backends in network namespaces of our own.

Each namespace weir-bN is joined to the root namespace by a veth pair: root side 10.213.N.1/24,
namespace side 10.213.N.2 .. 10.213.N.(1+addrs). These addresses exist only on this machine; the
tests send traffic to nothing else (besides 127.0.0.1). Needs root (CAP_NET_ADMIN).
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
NET_PREFIX = "10.213"
BACKEND_PORT = 8080


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class Netns:
    def __init__(self, index: int, naddrs: int = 3):
        self.index = index
        self.name = f"weir-b{index}"
        self.host_if = f"wb{index}h"
        self.ns_if = f"wb{index}n"
        self.gw = f"{NET_PREFIX}.{index}.1"
        self.addrs = [f"{NET_PREFIX}.{index}.{2 + i}" for i in range(naddrs)]
        self.proc: subprocess.Popen | None = None

    def create(self) -> None:
        self.delete()
        _ip("netns", "add", self.name)
        _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        _ip("link", "set", self.ns_if, "netns", self.name)
        _ip("addr", "add", f"{self.gw}/24", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")
        ex = ["netns", "exec", self.name, "ip"]
        _ip(*ex, "link", "set", "lo", "up")
        for a in self.addrs:
            _ip(*ex, "addr", "add", f"{a}/24", "dev", self.ns_if)
        _ip(*ex, "link", "set", self.ns_if, "up")
        _ip(*ex, "route", "add", "default", "via", self.gw)

    def delete(self) -> None:
        self.stop_backend()
        _ip("netns", "del", self.name, check=False)  # also removes the veth pair
        _ip("link", "del", self.host_if, check=False)

    def start_backend(self, logdir: Path) -> None:
        logdir.mkdir(parents=True, exist_ok=True)
        argv = ["ip", "netns", "exec", self.name, sys.executable, str(HERE / "echo_backend.py"),
                "--name", self.name]
        for a in self.addrs:
            argv += ["--listen", f"{a}:{BACKEND_PORT}"]
        with open(logdir / f"{self.name}.log", "ab") as f:
            self.proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20
        for a in self.addrs:
            while True:
                try:
                    with urllib.request.urlopen(f"http://{a}:{BACKEND_PORT}/ping", timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline or self.proc.poll() is not None:
                        raise RuntimeError(f"backend {self.name} {a} not reachable")
                    time.sleep(0.1)

    def stop_backend(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
