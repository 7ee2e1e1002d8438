"""Paths shared by the packaging tests (a module of its own, not conftest, so
imports do not collide with other test directories' conftest modules)."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def build_dir() -> Path:
    return Path(os.environ.get("WEIR_BUILD_DIR", ROOT / "build"))
