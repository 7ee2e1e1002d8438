"""The container image: builds here with no registry, holds both programs
(they answer --version) and no shell, runs as non-root on a read-only root
filesystem with every capability dropped, and two containers sharing one
volume pass the route table from the controller (reading the real test API
server with the chart's ServiceAccount token) to the proxy, which serves it."""
import json
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

from shiputil import ROOT

sys.path.insert(0, str(ROOT / "tests" / "backends"))
from ports import free_port  # noqa: E402

TAG = "weir:test"
LOCKED = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
          "--user", "65532:65532"]


def docker(*args, check=True, timeout=120):
    r = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {r.stderr}")
    return r


@pytest.fixture(scope="module")
def image():
    r = subprocess.run([str(ROOT / "scripts/build-image.sh"), TAG], capture_output=True,
                       text=True, timeout=3000)
    assert r.returncode == 0, r.stderr[-3000:]
    size = int(r.stdout.strip().splitlines()[-1])
    print(f"\nimage {TAG}: {size / 1e6:.1f} MB")
    return size


def test_image_is_small(image):
    assert image < 40e6, f"image is {image / 1e6:.1f} MB, goal is under 40 MB"


def test_binaries_answer_version_locked_down(image):
    r = docker("run", "--rm", *LOCKED, TAG, "--version")
    assert r.stdout.startswith("weir-proxy ")
    r = docker("run", "--rm", *LOCKED, "--entrypoint", "/usr/local/bin/weir-controller", TAG,
               "--version")
    assert r.stdout.startswith("weir-controller ")
    r = docker("run", "--rm", *LOCKED, "--entrypoint", "/bin/sh", TAG, "-c", "true", check=False)
    assert r.returncode != 0, "the runtime image should hold no shell"
    r = docker("run", "--rm", *LOCKED, "--entrypoint", "/usr/local/bin/weir-probe", TAG,
               check=False)
    assert r.returncode == 2


def wait_http(url, timeout=30, host=None):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(url, headers={"Host": host} if host else {})
            with urllib.request.urlopen(req, timeout=2) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            last = e.code
        except OSError as e:
            last = e
        time.sleep(0.3)
    raise AssertionError(f"{url} never answered 200 (last: {last})")


def embed_ca(kubeconfig):
    """The container cannot see the host's CA file: put it in the kubeconfig."""
    import base64

    import yaml
    doc = yaml.safe_load(kubeconfig.read_text())
    for c in doc["clusters"]:
        path = c["cluster"].pop("certificate-authority", None)
        if path:
            with open(path, "rb") as f:
                c["cluster"]["certificate-authority-data"] = base64.b64encode(f.read()).decode()
    kubeconfig.write_text(yaml.safe_dump(doc))


@pytest.fixture
def backend_ns():
    import sys
    sys.path.insert(0, str(ROOT / "tests/cluster"))
    from netns import Netns

    ns = Netns(9, naddrs=1)
    ns.create()
    ns.start_backend(ROOT / "build" / "ship-logs")
    yield ns
    ns.delete()


def test_route_table_flows_between_containers(image, installed, backend_ns, tmp_path):
    """controller container (API mode, chart RBAC) -> shared volume -> proxy container."""
    cluster = installed
    kubeconfig = cluster.service_account_kubeconfig("weir-system", "weir", tmp_path / "kc")
    embed_ca(kubeconfig)
    kubeconfig.chmod(0o644)
    addr = backend_ns.addrs[0]
    objs = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "img-echo", "namespace": "default"},
         "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "img-echo-1", "namespace": "default",
                      "labels": {"kubernetes.io/service-name": "img-echo"}},
         "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
         "endpoints": [{"addresses": [addr], "conditions": {"ready": True}}]},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
         "metadata": {"name": "img-echo", "namespace": "default"},
         "spec": {"ingressClassName": "weir", "rules": [{"host": "image.example", "http": {
             "paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {
                 "name": "img-echo", "port": {"number": 80}}}}]}}]}},
    ]}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(objs))
    vol = f"weir-routes-{uuid.uuid4().hex[:8]}"
    http_port, https_port, admin_port = free_port(), free_port(), free_port()
    names = [f"weir-ctl-{vol}", f"weir-proxy-{vol}"]
    docker("volume", "create", vol)
    try:
        docker("run", "-d", "--name", names[0], "--network", "host", *LOCKED,
               "-v", f"{vol}:/run/weir", "-v", f"{kubeconfig}:/etc/weir/kubeconfig:ro",
               "--entrypoint", "/usr/local/bin/weir-controller", TAG,
               "--kubeconfig", "/etc/weir/kubeconfig", "--publish", "/run/weir",
               "--metrics-port", "0")
        docker("run", "-d", "--name", names[1], "--network", "host", *LOCKED,
               "-v", f"{vol}:/run/weir:ro", TAG, "--routes", "/run/weir",
               "--listen-address", "127.0.0.1", "--http-port", str(http_port),
               "--https-port", str(https_port), "--admin-port", str(admin_port), "--workers", "1")
        wait_http(f"http://127.0.0.1:{admin_port}/readyz")
        status, body = wait_http(f"http://127.0.0.1:{http_port}/hello", host="image.example")
        assert status == 200
        assert backend_ns.name.encode() in body
    finally:
        for n in names:
            logs = docker("logs", n, check=False)
            print(f"--- {n}\n{logs.stdout[-2000:]}{logs.stderr[-2000:]}")
            docker("rm", "-f", n, check=False)
        docker("volume", "rm", vol, check=False)
