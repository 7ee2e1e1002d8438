"""weir under test: object builders for the API, the weir-controller and weir-proxy processes,
and client helpers that only ever talk to 127.0.0.1 (the proxy) or the netns backends."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

from kcluster import Cluster, free_port, log

REPO = Path(__file__).resolve().parent.parent.parent
BUILD = Path(os.environ.get("WEIR_BUILD_DIR", str(REPO / "build")))
NS = "weir-test"
SYSTEM_NS = "weir-system"
INGRESS_CLASS = "weir"
CONTROLLER_NAME = "weir.dev/ingress-controller"
PUBLISH_SERVICE = "weir-publish"
PUBLISH_IP = "192.0.2.10"  # TEST-NET-1 documentation address: only written into status, never used

REPORT: list[str] = []  # measurements, printed in pytest's terminal summary


def report(msg: str) -> None:
    """Print a measurement now and again in the session summary (so CI logs show it)."""
    print(msg, flush=True)
    REPORT.append(msg.strip())


# kind -> (API prefix, plural, namespaced)
KINDS = {
    "Namespace": ("/api/v1", "namespaces", False),
    "Service": ("/api/v1", "services", True),
    "Secret": ("/api/v1", "secrets", True),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "Event": ("/api/v1", "events", True),
    "EndpointSlice": ("/apis/discovery.k8s.io/v1", "endpointslices", True),
    "Ingress": ("/apis/networking.k8s.io/v1", "ingresses", True),
    "IngressClass": ("/apis/networking.k8s.io/v1", "ingressclasses", False),
    "Lease": ("/apis/coordination.k8s.io/v1", "leases", True),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
}
API_VERSIONS = {
    "Namespace": "v1", "Service": "v1", "Secret": "v1", "ConfigMap": "v1", "Event": "v1",
    "EndpointSlice": "discovery.k8s.io/v1", "Ingress": "networking.k8s.io/v1",
    "IngressClass": "networking.k8s.io/v1", "Lease": "coordination.k8s.io/v1",
    "ServiceAccount": "v1",
}


def obj_path(kind: str, name: str | None = None, ns: str | None = None) -> str:
    prefix, plural, namespaced = KINDS[kind]
    p = prefix
    if namespaced and ns:
        p += f"/namespaces/{ns}"
    p += f"/{plural}"
    if name:
        p += f"/{name}"
    return p


class Api:
    """Thin object-level helpers over Cluster.api (admin credentials)."""

    def __init__(self, cluster: Cluster, server: str | None = None):
        self.c = cluster
        self.server = server

    def apply(self, obj: dict) -> dict:
        """Server-side apply (idempotent create-or-update)."""
        kind = obj["kind"]
        obj.setdefault("apiVersion", API_VERSIONS[kind])
        md = obj["metadata"]
        path = obj_path(kind, md["name"], md.get("namespace"))
        _, doc = self.c.api("PATCH", path + "?fieldManager=weir-tests&force=true", obj,
                            content_type="application/apply-patch+yaml", server=self.server)
        return doc

    def create(self, obj: dict) -> dict:
        kind = obj["kind"]
        obj.setdefault("apiVersion", API_VERSIONS[kind])
        _, doc = self.c.api("POST", obj_path(kind, None, obj["metadata"].get("namespace")), obj,
                            server=self.server)
        return doc

    def get(self, kind: str, name: str, ns: str | None = None) -> dict | None:
        st, doc = self.c.api("GET", obj_path(kind, name, ns), ok=(200, 404), server=self.server)
        return doc if st == 200 else None

    def list(self, kind: str, ns: str | None = None, query: str = "") -> dict:
        _, doc = self.c.api("GET", obj_path(kind, None, ns) + query, server=self.server)
        return doc

    def delete(self, kind: str, name: str, ns: str | None = None) -> None:
        self.c.api("DELETE", obj_path(kind, name, ns), ok=(200, 202, 404), server=self.server)

    def patch_status(self, kind: str, name: str, ns: str | None, patch: dict) -> dict:
        _, doc = self.c.api("PATCH", obj_path(kind, name, ns) + "/status", patch,
                            content_type="application/merge-patch+json", server=self.server)
        return doc


# ---------- object builders ----------
def service(name: str, ns: str = NS, port: int = 80, target: int = 8080) -> dict:
    """A Service without selector: its endpoints come from the EndpointSlices the test writes."""
    return {"kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"name": "http", "port": port, "targetPort": target,
                                "protocol": "TCP"}]}}


def endpointslice(svc: str, addrs: list[str], ns: str = NS, port: int = 8080,
                  name: str | None = None, not_ready: tuple[str, ...] = ()) -> dict:
    return {"kind": "EndpointSlice",
            "metadata": {"name": name or f"{svc}-1", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": svc,
                                    "endpointslice.kubernetes.io/managed-by": "weir-tests"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [a],
                           "conditions": {"ready": a not in not_ready,
                                          "serving": a not in not_ready,
                                          "terminating": False}} for a in addrs],
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}]}


def ingress(name: str, host: str | None, paths: list[tuple], ns: str = NS,
            cls: str | None = INGRESS_CLASS, annotations: dict | None = None,
            tls: list[tuple[list[str], str]] | None = None) -> dict:
    """paths: (path, pathType, service, port)."""
    rule: dict = {"http": {"paths": [
        {"path": p, "pathType": pt,
         "backend": {"service": {"name": svc, "port": {"number": port}}}}
        for (p, pt, svc, port) in paths]}}
    if host:
        rule["host"] = host
    spec: dict = {"rules": [rule]}
    if cls:
        spec["ingressClassName"] = cls
    if tls:
        spec["tls"] = [{"hosts": h, "secretName": s} for (h, s) in tls]
    md: dict = {"name": name, "namespace": ns}
    if annotations:
        md["annotations"] = annotations
    return {"kind": "Ingress", "metadata": md, "spec": spec}


def tls_secret(name: str, cert_pem: str, key_pem: str, ns: str = NS) -> dict:
    import base64
    return {"kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": ns},
            "data": {"tls.crt": base64.b64encode(cert_pem.encode()).decode(),
                     "tls.key": base64.b64encode(key_pem.encode()).decode()}}


def self_signed(host: str, workdir: Path, tag: str) -> tuple[str, str, str]:
    """(cert PEM, key PEM, sha256 of the DER certificate) for host."""
    workdir.mkdir(parents=True, exist_ok=True)
    k, c = workdir / f"{tag}.key", workdir / f"{tag}.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(k), "-out", str(c),
                    "-days", "2", "-subj", f"/CN={host}/O={tag}",
                    "-addext", f"subjectAltName=DNS:{host}"], check=True, capture_output=True)
    der = subprocess.run(["openssl", "x509", "-in", str(c), "-outform", "DER"], check=True,
                         capture_output=True).stdout
    return c.read_text(), k.read_text(), hashlib.sha256(der).hexdigest()


# ---------- clients (loopback only) ----------
def http_get(port: int, host: str, path: str = "/", timeout: float = 3.0,
             headers: dict | None = None) -> tuple[int, dict | str, dict]:
    """GET http://127.0.0.1:port/path with Host: host. Returns (status, JSON or text, headers)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        h = {"Host": host}
        if headers:
            h.update(headers)
        conn.request("GET", path, headers=h)
        r = conn.getresponse()
        raw = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        try:
            body: dict | str = json.loads(raw)
        except ValueError:
            body = raw.decode("latin-1")
        return r.status, body, hdrs
    finally:
        conn.close()


def served_by(port: int, host: str, path: str = "/") -> str | None:
    """The backend netns name answering host+path through the proxy, or None."""
    try:
        st, body, _ = http_get(port, host, path, timeout=2)
    except OSError:
        return None
    if st == 200 and isinstance(body, dict):
        return body.get("name")
    return None


def served_addr(port: int, host: str, path: str = "/") -> str | None:
    try:
        st, body, _ = http_get(port, host, path, timeout=2)
    except OSError:
        return None
    if st == 200 and isinstance(body, dict):
        return body.get("server")
    return None


def tls_cert_sha256(port: int, sni: str, timeout: float = 3.0) -> str | None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            with ctx.wrap_socket(s, server_hostname=sni) as t:
                der = t.getpeercert(binary_form=True)
    except OSError:
        return None
    return hashlib.sha256(der).hexdigest() if der else None


def https_get_sni(port: int, host: str, path: str = "/", timeout: float = 3.0):
    """GET over TLS with SNI = host (raw socket; small responses only)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        with ctx.wrap_socket(s, server_hostname=host) as t:
            t.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            chunks = []
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                b = t.recv(65536)
                if not b:
                    break
                chunks.append(b)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    if b"transfer-encoding: chunked" in head.lower():
        out, rest = b"", body
        for _ in range(100000):
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            out, rest = out + rest[:size], rest[size + 2:]
        body = out
    return status, head.decode("latin-1"), body


def wait_for(pred, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


class Traffic:
    """Background GETs to one host through the proxy, counting failures (bounded by time)."""

    def __init__(self, port: int, host: str, path: str, expect_names: set[str],
                 interval: float = 0.02, max_seconds: float = 300):
        self.port, self.host, self.path = port, host, path
        self.expect = expect_names
        self.interval, self.max_seconds = interval, max_seconds
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        end = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < end:
            try:
                st, body, _ = http_get(self.port, self.host, self.path, timeout=5)
                name = body.get("name") if isinstance(body, dict) else None
                if st == 200 and name in self.expect:
                    self.ok += 1
                else:
                    self.failures.append(f"{time.strftime('%H:%M:%S')} {st} {str(body)[:80]}")
            except OSError as e:
                self.failures.append(f"{time.strftime('%H:%M:%S')} {e!r}")
            self._stop.wait(self.interval)

    def __enter__(self) -> "Traffic":
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join(15)


# ---------- the weir processes ----------
class Weir:
    def __init__(self, cluster: Cluster, kubeconfig: Path, workdir: Path):
        self.c = cluster
        self.kubeconfig = kubeconfig
        self.work = workdir
        self.publish = workdir / "publish"
        self.publish.mkdir(parents=True, exist_ok=True)
        self.http_port = free_port()
        self.https_port = free_port()
        self.admin_port = free_port()
        self.metrics_port = free_port()
        self.controller: subprocess.Popen | None = None
        self.proxy: subprocess.Popen | None = None

    @staticmethod
    def binary(name: str) -> Path:
        p = BUILD / name
        if not p.exists():
            raise FileNotFoundError(f"{p} is not built (cmake --build {BUILD})")
        return p

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        logs = self.c.logs
        logs.mkdir(parents=True, exist_ok=True)
        f = open(logs / f"{name}.log", "ab")
        f.write(f"\n==== {time.strftime('%H:%M:%S')} {' '.join(argv)}\n".encode())
        f.flush()
        env = dict(os.environ, POD_NAMESPACE=SYSTEM_NS, POD_NAME=f"{name}-test")
        env.pop("KUBERNETES_SERVICE_HOST", None)
        p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, env=env)
        f.close()
        return p

    def start_proxy(self) -> None:
        self.proxy = self._spawn("weir-proxy", [
            str(self.binary("weir-proxy")), "--routes", str(self.publish),
            "--http-port", str(self.http_port), "--https-port", str(self.https_port),
            "--admin-port", str(self.admin_port), "--listen-address", "127.0.0.1",
            "--workers", "1", "--log-format", "text"])

        def up() -> bool:
            if self.proxy.poll() is not None:
                raise RuntimeError(f"weir-proxy exited {self.proxy.returncode}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=1)
                conn.request("GET", "/healthz")
                return conn.getresponse().status == 200
            except OSError:
                return False

        wait_for(up, 20, "weir-proxy /healthz")

    def start_controller(self, extra_args: list[str] | None = None) -> None:
        self.controller = self._spawn("weir-controller", [
            str(self.binary("weir-controller")), "--kubeconfig", str(self.kubeconfig),
            "--publish", str(self.publish), "--ingress-class", INGRESS_CLASS,
            "--publish-service", f"{SYSTEM_NS}/{PUBLISH_SERVICE}", "--leader-elect",
            "--metrics-port", str(self.metrics_port), "--log-format", "text",
            *(extra_args or [])])

    def controller_alive(self) -> bool:
        return self.controller is not None and self.controller.poll() is None

    def proxy_alive(self) -> bool:
        return self.proxy is not None and self.proxy.poll() is None

    def stop_controller(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        return self._stop(self.controller, sig, timeout)

    def stop_proxy(self, timeout: float = 40) -> int | None:
        return self._stop(self.proxy, signal.SIGTERM, timeout)

    @staticmethod
    def _stop(p: subprocess.Popen | None, sig: int, timeout: float) -> int | None:
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"pid {p.pid} ignored signal {sig}: SIGKILL")
                p.kill()
                p.wait(5)
        return p.returncode

    def controller_metrics(self) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=2)
        conn.request("GET", "/metrics")
        return conn.getresponse().read().decode("utf-8", "replace")

    def rss_kib(self, which: str = "controller") -> tuple[int, int]:
        """(VmRSS, VmHWM) of the controller or proxy in KiB."""
        p = self.controller if which == "controller" else self.proxy
        vals = {}
        for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                vals[k] = int(v.split()[0])
        return vals.get("VmRSS", 0), vals.get("VmHWM", 0)

    def routes_generation(self) -> int:
        try:
            return int(json.loads((self.publish / "routes.json").read_text()).get("generation", 0))
        except (OSError, ValueError):
            return 0

    def log_tail(self, name: str, n: int = 40) -> str:
        p = self.c.logs / f"{name}.log"
        if not p.exists():
            return ""
        return "\n".join(p.read_text(errors="replace").splitlines()[-n:])
