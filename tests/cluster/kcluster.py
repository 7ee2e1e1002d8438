"""A real, single-machine Kubernetes control plane for weir's cluster tests.

etcd + kube-apiserver + kube-controller-manager, all on 127.0.0.1, with a throwaway PKI made by
openssl, an admin kubeconfig, and helpers to talk to the API. Nothing here sends traffic anywhere
but loopback. Used by conftest.py (session fixture) and by cluster.sh (start|stop|env) by hand.

State lives in one directory (WEIR_CLUSTER_DIR, default /tmp/weir-cluster): pki/, etcd data,
logs/*.log, pids/*.pid, admin.kubeconfig, env (shell variables).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = Path(os.environ.get("WEIR_CACHE", "/var/cache/weir"))
STATE = Path(os.environ.get("WEIR_CLUSTER_DIR", "/tmp/weir-cluster"))

sys.path.insert(0, str(REPO / "tests" / "backends"))
from ports import free_port  # noqa: E402  (re-exported for kweir and the tests)

SERVICE_CIDR = "10.96.0.0/16"  # allocation range only: nothing is ever sent there


def log(msg: str) -> None:
    print(f"[kcluster {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ensure_binaries() -> tuple[Path, Path]:
    """Build (first time only, may take long) and return (k8s bin dir, etcd bin dir)."""
    out = subprocess.run(
        ["bash", str(HERE / "build-k8s.sh"), "paths"], check=True, capture_output=True, text=True
    ).stdout
    paths = dict(line.split("=", 1) for line in out.split() if "=" in line)
    kbin, ebin = Path(paths["K8S_BIN"]), Path(paths["ETCD_BIN"])
    need = [kbin / "kube-apiserver", kbin / "kube-controller-manager", kbin / "kubectl",
            ebin / "etcd", ebin / "etcdctl"]
    if not all(p.exists() for p in need):
        log("control-plane binaries missing: building them (long on 2 cores)")
        t = time.monotonic()
        subprocess.run(["bash", str(HERE / "build-k8s.sh"), "all"], check=True)
        log(f"build took {time.monotonic() - t:.0f} s")
    return kbin, ebin


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], check=True, cwd=cwd, capture_output=True)


def make_pki(d: Path) -> None:
    """CA, apiserver serving cert, SA signing key pair, admin + controller-manager client certs."""
    d.mkdir(parents=True, exist_ok=True)
    if (d / "admin.crt").exists():
        return
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key", cwd=d)
    _openssl("req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", "3650",
             "-subj", "/CN=weir-test-ca", "-out", "ca.crt", cwd=d)

    def leaf(name: str, subj: str, ext: str) -> None:
        (d / f"{name}.ext").write_text(ext)
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out",
                 f"{name}.key", cwd=d)
        _openssl("req", "-new", "-key", f"{name}.key", "-subj", subj, "-out", f"{name}.csr",
                 cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "3650", "-sha256", "-extfile", f"{name}.ext",
                 "-out", f"{name}.crt", cwd=d)

    leaf("apiserver", "/CN=kube-apiserver",
         "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
         "extendedKeyUsage=serverAuth\n"
         "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,"
         "DNS:kubernetes.default,DNS:kubernetes.default.svc,"
         "DNS:kubernetes.default.svc.cluster.local\n")
    client = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n"
    leaf("admin", "/O=system:masters/CN=weir-admin", client)
    leaf("kcm", "/O=system:masters/CN=system:kube-controller-manager", client)
    # Service-account token signing pair (RSA: what every client expects).
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
             "-out", "sa.key", cwd=d)
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)


def kubeconfig_text(server: str, ca: Path, *, cert: Path | None = None, key: Path | None = None,
                    token: str | None = None, user: str = "user",
                    namespace: str = "default") -> str:
    u: dict = {}
    if cert is not None:
        u["client-certificate"] = str(cert)
        u["client-key"] = str(key)
    if token is not None:
        u["token"] = token
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "weir-test",
                      "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": u}],
        "contexts": [{"name": "weir-test",
                      "context": {"cluster": "weir-test", "user": user,
                                  "namespace": namespace}}],
        "current-context": "weir-test",
    }
    return json.dumps(cfg, indent=1)  # JSON is YAML


class Cluster:
    """The control plane. start() is idempotent per state dir; stop() kills what start() ran."""

    def __init__(self, state: Path = STATE, *, watch_cache: bool = False):
        """watch_cache: run kube-apiserver with its watch cache on, as a cluster's API server
        runs by default (lists and watches served from memory). The tests keep it off (see
        start_apiserver); the benchmarks turn it on."""
        self.state = state
        self.watch_cache = watch_cache
        self.pki = state / "pki"
        self.logs = state / "logs"
        self.pids = state / "pids"
        self.kbin: Path | None = None
        self.ebin: Path | None = None
        self.procs: dict[str, subprocess.Popen] = {}
        self.ports: dict[str, int] = {}
        self._load_ports()

    # ---------- process bookkeeping ----------
    def _load_ports(self) -> None:
        f = self.state / "ports.json"
        if f.exists():
            self.ports = json.loads(f.read_text())

    def _save_ports(self) -> None:
        (self.state / "ports.json").write_text(json.dumps(self.ports))

    def _spawn(self, name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.pids.mkdir(parents=True, exist_ok=True)
        logf = open(self.logs / f"{name}.log", "ab")
        logf.write(f"\n==== {time.strftime('%H:%M:%S')} {' '.join(argv)}\n".encode())
        logf.flush()
        p = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, env=env)
        logf.close()
        self.procs[name] = p
        (self.pids / f"{name}.pid").write_text(str(p.pid))
        return p

    def kill(self, name: str, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Stop one component (only a process this module started: its pid file)."""
        p = self.procs.pop(name, None)
        pidf = self.pids / f"{name}.pid"
        pid = p.pid if p else (int(pidf.read_text()) if pidf.exists() else None)
        if pid is None:
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if p is not None:
                if p.poll() is not None:
                    break
            else:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
            time.sleep(0.05)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if p is not None:
                p.wait(5)
        if p is not None and p.poll() is None:
            p.wait(5)
        pidf.unlink(missing_ok=True)

    def alive(self, name: str) -> bool:
        p = self.procs.get(name)
        return p is not None and p.poll() is None

    # ---------- components ----------
    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    @property
    def server_b(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver_b']}"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.state / "admin.kubeconfig"

    def etcd_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['etcd']}"

    def start_etcd(self) -> None:
        data = self.state / "etcd-data"
        data.mkdir(parents=True, exist_ok=True)
        os.chmod(data, 0o700)
        ep, peer = self.etcd_endpoint(), f"http://127.0.0.1:{self.ports['etcd_peer']}"
        self._spawn("etcd", [
            str(self.ebin / "etcd"), "--name", "weir", "--data-dir", str(data),
            "--listen-client-urls", ep, "--advertise-client-urls", ep,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"weir={peer}", "--initial-cluster-state", "new",
            "--log-level", "warn", "--quota-backend-bytes", str(4 << 30),
            "--unsafe-no-fsync",  # test data only; saves the shared disk
        ])
        self._wait(lambda: self._http_ok(ep + "/health"), 30, "etcd /health")

    def start_apiserver(self, name: str = "kube-apiserver") -> None:
        """Start (or restart) an API server. name "kube-apiserver-b" is a second one on the same
        etcd (its own port): the tests use it to change objects while the first is down."""
        pki = self.pki
        port = self.ports["apiserver" if name == "kube-apiserver" else "apiserver_b"]
        self._spawn(name, [
            str(self.kbin / "kube-apiserver"),
            "--bind-address=127.0.0.1", f"--secure-port={port}",
            "--advertise-address=127.0.0.1",
            # No kubernetes Service endpoints (a loopback endpoint is invalid anyway).
            "--endpoint-reconciler-type=none",
            f"--etcd-servers={self.etcd_endpoint()}",
            # Off for the tests: watches go straight to etcd, so an etcd compaction surfaces as
            # 410 Gone to a watcher that resumes from an old resourceVersion (the 410 scenario
            # needs this). On (kube-apiserver's default) for the benchmarks.
            f"--watch-cache={'true' if self.watch_cache else 'false'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            "--profiling=false",
            "--event-ttl=2h",
            "--v=1",
        ])
        self.wait_ready(90, server=f"https://127.0.0.1:{port}")

    def start_controller_manager(self) -> None:
        kc = self.state / "kcm.kubeconfig"
        kc.write_text(kubeconfig_text(self.server, self.pki / "ca.crt", cert=self.pki / "kcm.crt",
                                      key=self.pki / "kcm.key", user="kcm"))
        self._spawn("kube-controller-manager", [
            str(self.kbin / "kube-controller-manager"),
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1", f"--secure-port={self.ports['kcm']}",
            "--leader-elect=false",
            "--controllers=namespace,garbagecollector,serviceaccount,root-ca-cert-publisher",
            f"--root-ca-file={self.pki / 'ca.crt'}",
            f"--service-account-private-key-file={self.pki / 'sa.key'}",
            "--use-service-account-credentials=false",
            "--v=1",
        ])

    def start(self) -> "Cluster":
        self.kbin, self.ebin = ensure_binaries()
        self.state.mkdir(parents=True, exist_ok=True)
        make_pki(self.pki)
        if not self.ports:
            self.ports = {k: free_port() for k in ("etcd", "etcd_peer", "apiserver", "apiserver_b", "kcm")}
            self._save_ports()
        t = time.monotonic()
        self.start_etcd()
        self.start_apiserver()
        self.admin_kubeconfig.write_text(
            kubeconfig_text(self.server, self.pki / "ca.crt", cert=self.pki / "admin.crt",
                            key=self.pki / "admin.key", user="admin"))
        self.start_controller_manager()
        self.write_env()
        log(f"control plane ready in {time.monotonic() - t:.1f} s at {self.server}")
        return self

    def write_env(self) -> None:
        (self.state / "env").write_text(
            f"export KUBECONFIG={self.admin_kubeconfig}\n"
            f"export PATH={self.kbin}:{self.ebin}:$PATH\n"
            f"export ETCDCTL_API=3 ETCDCTL_ENDPOINTS={self.etcd_endpoint()}\n")

    def stop(self) -> None:
        for name in ("kube-controller-manager", "kube-apiserver-b", "kube-apiserver", "etcd"):
            self.kill(name)

    def destroy(self) -> None:
        """Stop, and remove everything but logs/ (kept for post-mortems)."""
        self.stop()
        if self.state.exists():
            for p in self.state.iterdir():
                if p.name == "logs":
                    continue
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)

    # ---------- waiting / HTTP ----------
    @staticmethod
    def _wait(pred, timeout: float, what: str, interval: float = 0.1) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if pred():
                    return
            except Exception:  # noqa: BLE001 - retried until the deadline
                pass
            time.sleep(interval)
        raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")

    @staticmethod
    def _http_ok(url: str) -> bool:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def wait_ready(self, timeout: float = 90, server: str | None = None) -> None:
        ctx = self.ssl_context()
        url = (server or self.server) + "/readyz"

        def ready() -> bool:
            with urllib.request.urlopen(url, timeout=2, context=ctx) as r:
                return r.status == 200

        self._wait(ready, timeout, "kube-apiserver /readyz", 0.2)

    def api(self, method: str, path: str, body=None, *, content_type: str = "application/json",
            timeout: float = 10, ok=(200, 201, 202), server: str | None = None) -> tuple[int, dict]:
        """One admin request. Returns (status, parsed JSON). Raises on statuses not in ok.
        server: another API server URL (e.g. server_b) instead of the main one."""
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request((server or self.server) + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self._ctx()) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            doc = json.loads(raw) if raw else {}
        except ValueError:
            doc = {"text": raw.decode("utf-8", "replace")}
        if ok is not None and status not in ok:
            raise RuntimeError(f"{method} {path} -> {status}: {raw[:400]!r}")
        return status, doc

    _ctx_cache: ssl.SSLContext | None = None

    def _ctx(self) -> ssl.SSLContext:
        if self._ctx_cache is None:
            self._ctx_cache = self.ssl_context()
        return self._ctx_cache

    # ---------- kubectl / etcdctl ----------
    def kubectl(self, *args: str, input: str | None = None, kubeconfig: Path | None = None,
                check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        if self.kbin is None:
            self.kbin, self.ebin = ensure_binaries()
        argv = [str(self.kbin / "kubectl"), f"--kubeconfig={kubeconfig or self.admin_kubeconfig}",
                *args]
        r = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed ({r.returncode}): {r.stderr}")
        return r

    def etcdctl(self, *args: str, timeout: float = 60) -> str:
        env = dict(os.environ, ETCDCTL_API="3")
        r = subprocess.run([str(self.ebin / "etcdctl"), f"--endpoints={self.etcd_endpoint()}",
                            *args], capture_output=True, text=True, env=env, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"etcdctl {' '.join(args)}: {r.stderr}")
        return r.stdout

    def etcd_revision(self) -> int:
        out = json.loads(self.etcdctl("endpoint", "status", "-w", "json"))
        return int(out[0]["Status"]["header"]["revision"])

    def service_account_kubeconfig(self, ns: str, sa: str, path: Path,
                                   duration: str = "24h") -> Path:
        """A kubeconfig holding a TokenRequest token (kubectl create token) for ns/sa."""
        token = self.kubectl("create", "token", sa, "-n", ns, f"--duration={duration}").stdout
        token = token.strip()
        path.write_text(kubeconfig_text(self.server, self.pki / "ca.crt", token=token,
                                        user=f"{ns}-{sa}", namespace=ns))
        os.chmod(path, 0o600)
        return path


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else ""
    c = Cluster()
    if cmd == "start":
        c.start()
        # Leave the processes running (they are in their own sessions); cluster.sh stop ends them.
        for p in c.procs.values():
            p.returncode = 0  # detach: do not let Popen.__del__ warn
        print(c.state / "env")
        return 0
    if cmd == "stop":
        c.stop()
        return 0
    if cmd == "destroy":
        c.destroy()
        return 0
    if cmd == "env":
        print((c.state / "env").read_text(), end="")
        return 0
    print("usage: kcluster.py start|stop|destroy|env", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
