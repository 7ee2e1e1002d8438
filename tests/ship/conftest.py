"""Shared helpers for the packaging tests: the pinned helm binary and the repo root."""
import subprocess
import sys
from pathlib import Path

import pytest

from shiputil import ROOT, build_dir  # noqa: F401


@pytest.fixture(scope="session")
def helm() -> str:
    out = subprocess.run([str(ROOT / "scripts/install-helm.sh")], check=True,
                         capture_output=True, text=True, timeout=1800)
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def cluster():
    """A kube-apiserver of the packaging tests' own (separate state and ports
    from the cluster tests'), torn down at the end of the session."""
    sys.path.insert(0, str(ROOT / "tests/cluster"))
    from kcluster import Cluster

    c = Cluster(state=Path("/tmp/weir-ship-cluster"))
    c.destroy()
    c.start()
    c.wait_ready()
    yield c
    c.destroy()


@pytest.fixture(scope="session")
def installed(cluster, helm):
    """The chart installed with default values into the packaging tests' cluster."""
    out = subprocess.run(
        [helm, "install", "weir", str(ROOT / "charts/weir"), "--namespace", "weir-system",
         "--create-namespace", "--kubeconfig", str(cluster.admin_kubeconfig)],
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return cluster
