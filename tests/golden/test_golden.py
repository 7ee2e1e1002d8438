"""Golden tests of the compiler: each directory here holds input manifests
(*.yaml) and expected.txt, the `weir-controller --manifests DIR --explain`
output; an optional file `flags` adds controller flags (one per line). WEIR_BUILD_DIR names the build directory (default <repo>/build);
WEIR_UPDATE_GOLDEN=1 rewrites expected.txt (review the diff by eye)."""
import os
import pathlib
import subprocess

import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
CASES = sorted(p for p in HERE.iterdir() if p.is_dir() and any(p.glob("*.yaml")))


def controller():
    build = pathlib.Path(os.environ.get("WEIR_BUILD_DIR", REPO / "build"))
    exe = build / "weir-controller"
    if not exe.exists():
        pytest.fail(f"{exe} not built (set WEIR_BUILD_DIR)")
    return exe


def explain(case):
    flags_file = case / "flags"
    flags = flags_file.read_text().split() if flags_file.exists() else []
    proc = subprocess.run(
        [str(controller()), "--manifests", str(case), "--explain", *flags],
        capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr}"
    return proc.stdout


def test_enough_cases():
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[p.name for p in CASES])
def test_golden(case):
    got = explain(case)
    expected_file = case / "expected.txt"
    if os.environ.get("WEIR_UPDATE_GOLDEN") == "1":
        expected_file.write_text(got)
        return
    assert expected_file.exists(), f"{expected_file} missing (run with WEIR_UPDATE_GOLDEN=1)"
    assert got == expected_file.read_text()


@pytest.mark.parametrize("case", CASES[:3], ids=[p.name for p in CASES[:3]])
def test_deterministic(case):
    assert explain(case) == explain(case)
