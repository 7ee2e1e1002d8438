#!/usr/bin/env python3
"""Generate N Ingresses (+ their Services and EndpointSlices, an IngressClass, TLS Secrets) as
YAML, for weir-controller --manifests DIR or for kubectl apply -f. Deterministic for a seed.

  gen_ingresses.py --count 1000 --out /tmp/bench-1k            # a dir of YAML files
  gen_ingresses.py --count 10 --out - | kubectl apply -f -     # one stream on stdout
  gen_ingresses.py --count 10000 --out /tmp/b10k --measure build/weir-controller
      # then runs `weir-controller --manifests DIR --once --publish TMP` and prints wall time,
      # max RSS and routes.json size (GNU time is not needed: uses wait4's rusage)

Endpoint addresses default to the cluster tests' netns backends (10.213.1.2-4, port 8080); pass
--addresses 127.0.0.1 for --manifests runs that need no network namespace (loopback endpoints
are allowed only there). Nothing here sends any traffic.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import routetable  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))
import proxycerts  # noqa: E402

ANNOTATION_SETS = [
    {},
    {"nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
     "nginx.ingress.kubernetes.io/proxy-send-timeout": "3600"},
    {"weir.dev/websocket-idle-timeout": "600", "weir.dev/drain-window": "10s"},
    {"nginx.ingress.kubernetes.io/affinity": "cookie",
     "nginx.ingress.kubernetes.io/session-cookie-name": "route"},
    {"nginx.ingress.kubernetes.io/proxy-body-size": "0",
     "weir.dev/request-base": "true"},
    {"nginx.ingress.kubernetes.io/upstream-hash-by": "$remote_addr"},
    {"nginx.ingress.kubernetes.io/use-regex": "true"},
]

# One self-signed P-256 certificate shared by every TLS Secret (generation speed matters more
# than distinct keys here); made once per run with openssl.


def make_cert(workdir: Path) -> tuple[str, str]:
    k, c = workdir / "bench.key", workdir / "bench.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(k), "-out", str(c),
                    "-days", "30", "-subj", "/CN=*.bench.weir.test",
                    "-addext", "subjectAltName=DNS:*.bench.weir.test"],
                   check=True, capture_output=True)
    return c.read_text(), k.read_text()


def distinct_cert(host: str) -> tuple[str, str]:
    """A self-signed P-256 certificate for host and its key (the integration tests' maker)."""
    with tempfile.TemporaryDirectory() as d:
        cert_pem, key_pem, _ = proxycerts.make_cert(host, d)
    return cert_pem, key_pem


def objects(i: int, a: argparse.Namespace, rnd: random.Random, cert: tuple[str, str] | None):
    import base64

    ns = f"{a.namespace}-{i % a.namespaces}" if a.namespaces > 1 else a.namespace
    name = f"app-{i:05d}"
    svc = f"{name}-svc"
    host = f"{name}.bench.weir.test"
    addrs = a.addresses
    k = min(a.endpoints, len(addrs) * 50)
    eps = []
    for j in range(k):
        eps.append({"addresses": [addrs[j % len(addrs)]],
                    "conditions": {"ready": True, "serving": True, "terminating": False},
                    "_port_hint": j})
    # Distinct (address, port) pairs: spread endpoints over ports 8080.. when addresses repeat.
    out = []
    out.append({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": svc, "namespace": ns},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080,
                                    "protocol": "TCP"}]}})
    by_port: dict[int, list] = {}
    for e in eps:
        port = a.port + e.pop("_port_hint") // len(addrs)
        by_port.setdefault(port, []).append(e)
    for sn, (port, group) in enumerate(sorted(by_port.items())):
        out.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": f"{svc}-{sn}", "namespace": ns,
                                 "labels": {"kubernetes.io/service-name": svc}},
                    "addressType": "IPv4", "endpoints": group,
                    "ports": [{"name": "http", "port": port, "protocol": "TCP"}]})
    ann = dict(ANNOTATION_SETS[rnd.randrange(len(ANNOTATION_SETS))])
    regex = ann.get("nginx.ingress.kubernetes.io/use-regex") == "true"
    paths = [
        {"path": "/api/v[0-9]+/" if regex else "/api", "pathType": "ImplementationSpecific"
         if regex else "Prefix",
         "backend": {"service": {"name": svc, "port": {"number": 80}}}},
        {"path": "/ws", "pathType": "Prefix",
         "backend": {"service": {"name": svc, "port": {"number": 80}}}},
        {"path": "/healthz", "pathType": "Exact",
         "backend": {"service": {"name": svc, "port": {"number": 80}}}},
    ]
    spec: dict = {"ingressClassName": a.ingress_class,
                  "rules": [{"host": host, "http": {"paths": paths}}]}
    if cert is not None and a.tls_every and i % a.tls_every == 0:
        sec = f"{name}-tls"
        if a.distinct_certs:
            cert = distinct_cert(host)
        out.append({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                    "metadata": {"name": sec, "namespace": ns},
                    "data": {"tls.crt": base64.b64encode(cert[0].encode()).decode(),
                             "tls.key": base64.b64encode(cert[1].encode()).decode()}})
        spec["tls"] = [{"hosts": [host], "secretName": sec}]
    md: dict = {"name": name, "namespace": ns}
    if ann:
        md["annotations"] = ann
    out.append({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": md,
                "spec": spec})
    return ns, out


def generate(a: argparse.Namespace) -> list[tuple[str, list[dict]]]:
    """[(file name, [objects])]: one header file plus one file per chunk of Ingresses."""
    rnd = random.Random(a.seed)
    cert = None
    if a.tls_every:
        with tempfile.TemporaryDirectory() as d:
            cert = make_cert(Path(d))
    header: list[dict] = [{"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                           "metadata": {"name": a.ingress_class},
                           "spec": {"controller": "weir.dev/ingress-controller"}}]
    namespaces: set[str] = set()
    files: list[tuple[str, list[dict]]] = []
    chunk: list[dict] = []
    for i in range(a.count):
        ns, objs = objects(i, a, rnd, cert)
        namespaces.add(ns)
        chunk.extend(objs)
        if (i + 1) % a.per_file == 0 or i + 1 == a.count:
            files.append((f"ingresses-{len(files):04d}.yaml", chunk))
            chunk = []
    for ns in sorted(namespaces):
        header.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    return [("00-header.yaml", header)] + files


def dump(objs: list[dict]) -> str:
    return yaml.safe_dump_all(objs, sort_keys=False, default_flow_style=False)


def measure(controller: str, mdir: Path) -> dict:
    pub = Path(tempfile.mkdtemp(prefix="weir-bench-pub-"))
    t0 = time.monotonic()
    p = subprocess.Popen([controller, "--manifests", str(mdir), "--publish", str(pub), "--once"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
    routes = pub / "routes.json"
    size = routetable.published_bytes(pub) if routes.exists() else 0
    nroutes = 0
    if size:
        t = routetable.load(pub)
        nroutes = sum(len(h.get("routes", [])) for h in t.get("hosts", []))
    return {"exit": p.returncode, "wall_s": round(wall, 3),
            "max_rss_mib": round(ru.ru_maxrss / 1024, 1),  # ru_maxrss is KiB on Linux
            "user_s": round(ru.ru_utime, 3), "sys_s": round(ru.ru_stime, 3),
            "routes_json_bytes": size, "routes": nroutes, "stderr_tail": err[-400:]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, required=True, help="number of Ingresses")
    ap.add_argument("--out", required=True, help="output dir, or - for one YAML stream on stdout")
    ap.add_argument("--namespace", default="bench")
    ap.add_argument("--namespaces", type=int, default=10, help="spread over NS-0..NS-(n-1)")
    ap.add_argument("--ingress-class", default="weir")
    ap.add_argument("--endpoints", type=int, default=3, help="endpoints per Service")
    ap.add_argument("--addresses", default="10.213.1.2,10.213.1.3,10.213.1.4",
                    help="comma-separated endpoint addresses (127.0.0.1 for --manifests runs)")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--tls-every", type=int, default=10, help="every Nth Ingress has TLS (0: none)")
    ap.add_argument("--distinct-certs", action="store_true",
                    help="a certificate and key of its own for each TLS Secret (default: one "
                         "shared pair)")
    ap.add_argument("--per-file", type=int, default=500, help="Ingresses per YAML file")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--measure", metavar="WEIR_CONTROLLER",
                    help="run this weir-controller --manifests --once on the output and report")
    a = ap.parse_args()
    if a.count < 0 or a.per_file < 1 or a.namespaces < 1 or a.endpoints < 0:
        ap.error("bad numbers")
    a.addresses = [x.strip() for x in a.addresses.split(",") if x.strip()]
    if not a.addresses:
        ap.error("--addresses is empty")
    t0 = time.monotonic()
    files = generate(a)
    if a.out == "-":
        sys.stdout.write("---\n".join(dump(objs) for _, objs in files))
        return 0
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, objs in files:
        (out / name).write_text(dump(objs))
    nobj = sum(len(o) for _, o in files)
    print(f"wrote {a.count} Ingresses ({nobj} objects, {len(files)} files) to {out} in "
          f"{time.monotonic() - t0:.1f} s", file=sys.stderr)
    if a.measure:
        r = measure(a.measure, out)
        print(json.dumps({"ingresses": a.count, **r}))
        return 0 if r["exit"] == 0 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
