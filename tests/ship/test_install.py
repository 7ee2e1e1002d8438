"""helm install into a real kube-apiserver, then weir-controller running with
the token of the chart's own ServiceAccount: the chart's objects are all
accepted, the account can do exactly what the controller needs and nothing
more, and with exactly that RBAC the controller compiles and publishes."""
import json
import os
import re
import subprocess
import time

import pytest

from shiputil import ROOT, build_dir
import routetable


NS = "weir-system"
SA = f"system:serviceaccount:{NS}:weir"


def test_every_chart_object_accepted(installed, helm):
    out = subprocess.run([helm, "get", "manifest", "weir", "-n", NS, "--kubeconfig",
                          str(installed.admin_kubeconfig)], capture_output=True, text=True,
                         check=True)
    import yaml
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert len(docs) >= 10
    for d in docs:
        kind, name = d["kind"], d["metadata"]["name"]
        args = ["get", kind.lower(), name, "-o", "name"]
        if kind not in ("ClusterRole", "ClusterRoleBinding", "IngressClass"):
            args += ["-n", NS]
        r = installed.kubectl(*args)
        assert name in r.stdout, f"{kind}/{name} not in the API server"


def can_i_list(cluster, namespace):
    """Resource -> verbs from `kubectl auth can-i --list` (rows end in "[verb ...]")."""
    r = cluster.kubectl("auth", "can-i", "--list", f"--as={SA}", "-n", namespace)
    rules = {}
    for line in r.stdout.splitlines()[1:]:
        groups = re.findall(r"\[([^\]]*)\]", line)
        if not groups or line.startswith(" ") or line.startswith("["):
            continue
        resource = line.split()[0]
        rules.setdefault(resource, set()).update(groups[-1].split())
    return rules


def test_service_account_can_do_only_what_it_needs(installed):
    for ns in ("default", NS):
        rules = can_i_list(installed, ns)
        writes = {res: verbs - {"get", "list", "watch"} for res, verbs in rules.items()}
        writes = {res: v for res, v in writes.items() if v}
        # Kubernetes grants every account self-review creation; weir adds only these writes.
        allowed = {
            "events": {"create", "patch"},
            "ingresses.networking.k8s.io/status": {"update"},
            "selfsubjectreviews.authentication.k8s.io": {"create"},
            "selfsubjectaccessreviews.authorization.k8s.io": {"create"},
            "selfsubjectrulesreviews.authorization.k8s.io": {"create"},
        }
        if ns == NS:
            allowed["leases.coordination.k8s.io"] = {"get", "create", "update"}
        for res, verbs in writes.items():
            assert res in allowed and verbs <= allowed[res], f"{ns}: unexpected {res} {verbs}"
        assert "secrets" in rules and rules["secrets"] == {"get", "list", "watch"}
        assert "*.*" not in rules
    denied = installed.kubectl("auth", "can-i", "create", "secrets", f"--as={SA}", "-n", NS,
                               check=False)
    assert denied.stdout.strip() == "no"
    denied = installed.kubectl("auth", "can-i", "delete", "ingresses", f"--as={SA}", "-A",
                               check=False)
    assert denied.stdout.strip() == "no"


BACKEND = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "echo", "namespace": "default"},
    "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
}


def slice_for(addr):
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "echo-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "echo"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": [addr], "conditions": {"ready": True}}],
    }


INGRESS = {
    "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
    "metadata": {"name": "echo", "namespace": "default"},
    "spec": {"ingressClassName": "weir", "rules": [{"host": "ship.example", "http": {"paths": [
        {"path": "/", "pathType": "Prefix",
         "backend": {"service": {"name": "echo", "port": {"name": "http"}}}}]}}]},
}


def test_controller_works_with_exactly_the_chart_rbac(installed, tmp_path):
    controller = build_dir() / "weir-controller"
    assert controller.exists(), f"{controller} not built"
    kubeconfig = installed.service_account_kubeconfig(NS, "weir", tmp_path / "sa.kubeconfig")
    installed.kubectl("apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": [BACKEND, slice_for("10.213.9.2"), INGRESS]}))
    publish = tmp_path / "routes"
    publish.mkdir()
    log = open(tmp_path / "controller.log", "w+")
    proc = subprocess.Popen([str(controller), "--kubeconfig", str(kubeconfig), "--publish",
                             str(publish), "--publish-service", f"{NS}/weir", "--leader-elect",
                             "--metrics-port", "0", "--log-format", "text"],
                            stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, POD_NAMESPACE=NS, POD_NAME="ship-test"))
    try:
        table = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            f = publish / "routes.json"
            if f.exists():
                table = routetable.load(publish)
                if any(h["name"] == "ship.example" for h in table.get("hosts", [])):
                    break
            time.sleep(0.2)
        assert table and any(h["name"] == "ship.example" for h in table["hosts"]), \
            "route for ship.example never published"
        backend = table["backends"][table["hosts"][0]["routes"][0]["backend"]]
        assert [e["address"] for e in backend["endpoints"]] == ["10.213.9.2"]
        # status.loadBalancer is written by the leader from the chart's Service
        deadline = time.monotonic() + 30
        lb = []
        while time.monotonic() < deadline and not lb:
            _, ing = installed.api("GET", "/apis/networking.k8s.io/v1/namespaces/default/"
                                   "ingresses/echo")
            lb = ing.get("status", {}).get("loadBalancer", {}).get("ingress", [])
            time.sleep(0.3)
        assert lb, "status.loadBalancer.ingress never written"
        log.seek(0)
        text = log.read()
        assert "forbidden" not in text.lower(), text[-2000:]
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()
