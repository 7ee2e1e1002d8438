"""Session fixtures for the cluster tests: one real control plane (etcd + kube-apiserver +
kube-controller-manager on 127.0.0.1), deploy/rbac.yaml applied, a ServiceAccount token from the
TokenRequest API, backends in two network namespaces, and weir-controller + weir-proxy.

The first run builds the Kubernetes binaries (tests/cluster/build-k8s.sh, cached under
$WEIR_CACHE); that takes a few minutes to much longer on 2 cores.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import kcluster  # noqa: E402
import kweir  # noqa: E402
from netns import Netns  # noqa: E402

REPO = HERE.parent.parent


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("the cluster tests need root (network namespaces)")


@pytest.fixture(scope="session")
def cluster():
    _need_root()
    state = Path(os.environ.get("WEIR_TEST_CLUSTER_DIR") or
                 tempfile.mkdtemp(prefix="weir-cluster-test-"))
    c = kcluster.Cluster(state)
    c.start()
    print(f"\n[cluster] state and logs in {state}", file=sys.stderr)
    yield c
    c.destroy()
    print(f"\n[cluster] logs kept in {c.logs}", file=sys.stderr)


@pytest.fixture(scope="session")
def api(cluster):
    return kweir.Api(cluster)


@pytest.fixture(scope="session")
def base(cluster, api):
    """RBAC from deploy/rbac.yaml, test namespace, our IngressClass, the publish Service."""
    cluster.kubectl("apply", "-f", str(REPO / "deploy" / "rbac.yaml"))
    api.apply({"kind": "Namespace", "metadata": {"name": kweir.NS}})
    api.apply({"kind": "IngressClass", "metadata": {"name": kweir.INGRESS_CLASS},
               "spec": {"controller": kweir.CONTROLLER_NAME}})
    api.apply({"kind": "IngressClass", "metadata": {"name": "other"},
               "spec": {"controller": "example.com/other-controller"}})
    api.apply({"kind": "Service",
               "metadata": {"name": kweir.PUBLISH_SERVICE, "namespace": kweir.SYSTEM_NS},
               "spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": False,
                        "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
    api.patch_status("Service", kweir.PUBLISH_SERVICE, kweir.SYSTEM_NS,
                     {"status": {"loadBalancer": {"ingress": [{"ip": kweir.PUBLISH_IP}]}}})
    return True


@pytest.fixture(scope="session")
def sa_kubeconfig(cluster, base):
    return cluster.service_account_kubeconfig(kweir.SYSTEM_NS, "weir",
                                              cluster.state / "weir-sa.kubeconfig")


@pytest.fixture(scope="session")
def backends(cluster):
    _need_root()
    nets = [Netns(1), Netns(2)]
    try:
        for n in nets:
            n.create()
            n.start_backend(cluster.logs)
        yield {n.name: n for n in nets}
    finally:
        for n in nets:
            n.delete()


@pytest.fixture(scope="session")
def weir(cluster, api, base, sa_kubeconfig, backends):
    """weir-proxy + weir-controller (ServiceAccount token), and Services svc-b1/svc-b2 whose
    EndpointSlices hold the first address of netns weir-b1/weir-b2."""
    for name in ("b1", "b2"):
        n = backends[f"weir-{name}"]
        api.apply(kweir.service(f"svc-{name}"))
        api.apply(kweir.endpointslice(f"svc-{name}", [n.addrs[0]]))
    w = kweir.Weir(cluster, sa_kubeconfig, cluster.state / "weir")
    try:
        w.start_proxy()
        w.start_controller()
        kweir.wait_for(lambda: (w.publish / "routes.json").exists() or not w.controller_alive(),
                       60, "the controller's first routes.json")
        assert w.controller_alive(), "weir-controller exited:\n" + w.log_tail("weir-controller")
        yield w
    finally:
        t = time.monotonic()
        w.stop_controller()
        w.stop_proxy()
        print(f"\n[weir] stopped in {time.monotonic() - t:.1f} s; controller log tail:\n"
              f"{w.log_tail('weir-controller', 15)}\nproxy log tail:\n"
              f"{w.log_tail('weir-proxy', 15)}", file=sys.stderr)


def pytest_terminal_summary(terminalreporter):
    if kweir.REPORT:
        terminalreporter.section("weir cluster measurements")
        for line in kweir.REPORT:
            terminalreporter.write_line(line)
