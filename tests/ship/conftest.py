"""Shared helpers for the packaging tests: the pinned helm binary and the repo root."""
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def helm() -> str:
    out = subprocess.run([str(ROOT / "scripts/install-helm.sh")], check=True,
                         capture_output=True, text=True, timeout=1800)
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def build_dir() -> Path:
    return Path(os.environ.get("WEIR_BUILD_DIR", ROOT / "build"))
