"""A real browser through weir over HTTP/2: Debian's Chromium (headless), driven over the
DevTools protocol, loads a page over TLS, fetches several resources at once and opens a
WebSocket on the same origin. Chromium sends the WebSocket as an extended CONNECT stream
(RFC 8441) on the connection it already has, so the proxy sees one TLS connection for the
page, its fetches and the socket.

The page and its answers come from tests/backends/h2_page.py. Chromium is installed by
scripts/install-deps.sh; without it the test fails (nothing is skipped)."""

import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest
from websockets.sync.client import connect

import proxyutil as pu

HOST = "weir.test"


class DevTools:
    """A headless Chromium and one page target, over the DevTools protocol."""

    def __init__(self, https_port):
        binary = shutil.which("chromium")
        if not binary:
            pytest.fail("chromium is not installed (scripts/install-deps.sh installs it)",
                        pytrace=False)
        self.profile = tempfile.mkdtemp(prefix="weir-chromium.")
        self.proc = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--no-first-run", "--no-default-browser-check", "--ignore-certificate-errors",
             f"--host-resolver-rules=MAP {HOST} 127.0.0.1", "--remote-debugging-port=0",
             f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + 30
        while not (os.path.exists(port_file) and len(open(port_file).read().split()) >= 2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                pytest.fail("chromium did not open its DevTools port", pytrace=False)
            time.sleep(0.05)
        port, path = open(port_file).read().split()[:2]
        self.cm = connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=10)
        self.ws = self.cm.__enter__()
        self.next_id = 0
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]

    def call(self, method, session=None, **params):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv(timeout=30))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def evaluate(self, expression):
        r = self.call("Runtime.evaluate", session=self.session, expression=expression,
                      returnByValue=True)
        return r.get("result", {}).get("value")

    def navigate(self, url):
        self.call("Page.navigate", session=self.session, url=url)

    def close(self):
        ws = getattr(self, "ws", None)
        if ws is not None:
            try:
                self.cm.__exit__(None, None, None)
            except Exception:
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture
def page_backend(tmp_path):
    port = pu.free_port()
    proc = pu.start_backend("h2_page.py", port, str(tmp_path / "h2_page.log"))
    yield port
    pu.stop_process(proc)


def table(backend_port, certs):
    cert, key, _ = certs["default.test"]
    return {
        "version": 1, "generation": 1,
        "settings": {"access_log_format": 'PORT $remote_port "$request" $status'},
        "certs": [{"name": "t/tls", "cert_pem": cert, "key_pem": key}], "default_cert": 0,
        "hosts": [{"name": "", "routes": [
            {"path": "/", "match": "prefix", "backend": 0, "source": "t/page", "policy": {}}]}],
        "backends": [{"name": "t/page:80",
                      "endpoints": [{"address": "127.0.0.1", "port": backend_port}]}],
    }


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_chromium_page_fetches_and_websocket_share_one_tls_connection(fresh_proxy, page_backend,
                                                                        certs):
    p = fresh_proxy(table(page_backend, certs))
    browser = DevTools(p.https_port)
    try:
        browser.navigate(f"https://{HOST}:{p.https_port}/page")
        result = wait_for(lambda: browser.evaluate("window.result"), 30, "the page's script")
        assert result == "ok 7", f"page script: {result}; proxy log:\n{p.log_tail()}"
        # The socket is still open. Every request (page, favicon, 7 fetches, the WebSocket)
        # came over HTTP/2 from one client port: one TLS connection carried them all, and it
        # is the only HTTP/2 connection open. (Chromium may also hold a speculative socket
        # it never used; weir_proxy_open_connections would count it.)
        assert p.metric("weir_proxy_open_http2_connections") == 1, p.metrics()

        def lines():
            with open(p.log_path, encoding="utf-8", errors="replace") as f:
                return [ln for ln in f.read().splitlines() if ln.startswith("PORT ")]
        # access log lines are written by each worker's writer a moment later
        wait_for(lambda: any('"GET /ws HTTP/2.0" 101' in ln for ln in lines()) and
                 sum('"GET /data/' in ln for ln in lines()) == 7, 10,
                 "the WebSocket's and the 7 fetches' access log lines")
        got = lines()
        assert all(" HTTP/2.0\" " in ln for ln in got), got
        ports = {ln.split()[1] for ln in got}
        assert len(ports) == 1, f"requests came from {len(ports)} connections: {got}"
        browser.evaluate("window.closeSocket()")
    finally:
        browser.close()
