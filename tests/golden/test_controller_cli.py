"""weir-controller as a program, in --manifests mode: the CLI contract
(flags, exit codes, one-line errors), --once publishing with a growing
generation, change-only writes, following edits with inotify, and a clean
SIGTERM that leaves the last table in place. Uses the demo in
examples/manifests (loopback endpoints; no network traffic)."""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import time

import pytest

import routetable

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
EXAMPLES = REPO / "examples" / "manifests"


def controller():
    build = pathlib.Path(os.environ.get("WEIR_BUILD_DIR", REPO / "build"))
    exe = build / "weir-controller"
    if not exe.exists():
        pytest.fail(f"{exe} not built (set WEIR_BUILD_DIR)")
    return str(exe)


def run(*args, timeout=30):
    return subprocess.run([controller(), *args], capture_output=True, text=True,
                          timeout=timeout)


def table(pub):
    return routetable.load(pub)


@pytest.mark.parametrize("args", [
    ["--bogus"],
    ["--metrics-port", "70000"],
    ["--metrics-port", "x"],
    ["--publish-service", "no-slash"],
    ["--log-format", "xml"],
    ["--log-format"],
    ["extra-argument"],
    ["--once", "--explain", "--manifests", "."],
    ["--publish-format", "v3"],
])
def test_bad_flags_exit_2_with_one_line(args):
    proc = run(*args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("weir-controller: ")


def test_version_and_help():
    proc = run("--version")
    assert proc.returncode == 0
    assert proc.stdout.startswith("weir-controller ") and len(proc.stdout.split()) == 2
    proc = run("--help")
    assert proc.returncode == 0
    for flag in ("--kubeconfig", "--manifests", "--publish", "--ingress-class",
                 "--watch-namespace", "--publish-service", "--leader-elect", "--once",
                 "--explain", "--log-format", "--version", "--help", "--metrics-port",
                 "--election-id", "--take-over-class"):
        assert flag in proc.stdout


def test_explain_unreadable_dir_exits_1(tmp_path):
    proc = run("--manifests", str(tmp_path / "missing"), "--explain")
    assert proc.returncode == 1
    assert "missing" in proc.stderr


def test_explain_demo():
    proc = run("--manifests", str(EXAMPLES), "--explain")
    assert proc.returncode == 0, proc.stderr
    assert "demo.localhost" in proc.stdout
    assert "127.0.0.1:18081" in proc.stdout and "127.0.0.1:18082" in proc.stdout


def test_once_generation_and_unchanged(tmp_path):
    man = tmp_path / "man"
    pub = tmp_path / "pub"
    shutil.copytree(EXAMPLES, man)
    assert run("--manifests", str(man), "--publish", str(pub), "--once").returncode == 0
    first = table(pub)
    assert first["generation"] == 1
    hosts = [h["name"] for h in first["hosts"]]
    assert hosts == ["demo.localhost"]
    mtime = (pub / "routes.json").stat().st_mtime_ns
    # same input: nothing is written, the generation stays
    assert run("--manifests", str(man), "--publish", str(pub), "--once").returncode == 0
    assert table(pub)["generation"] == 1
    assert (pub / "routes.json").stat().st_mtime_ns == mtime
    # a change: generation + 1, continued from the file on disk
    ing = man / "ingresses.yaml"
    ing.write_text(ing.read_text().replace("path: /app", "path: /app2"))
    assert run("--manifests", str(man), "--publish", str(pub), "--once").returncode == 0
    second = table(pub)
    assert second["generation"] == 2
    paths = [r["path"] for r in second["hosts"][0]["routes"]]
    assert "/app2" in paths and "/app" not in paths
    assert sorted(p.name for p in pub.iterdir()) == ["routes.json", "shards"]
    index = json.loads((pub / "routes.json").read_text())
    assert index["version"] == 2
    # the index names every shard on disk but the first table's host (kept for a while
    # for proxies still reading an older index); no temporary file is left
    names = routetable.shard_files(pub)
    assert all(not n.startswith(".") for n in names), names
    named = [s for s in index["hosts"] + index["backends"] + index["certs"] if s]
    assert set(f"{s}.json" for s in named) <= set(names)
    assert len(names) == len(named) + 1


def test_once_publish_format_v1(tmp_path):
    pub = tmp_path / "pub"
    assert run("--manifests", str(EXAMPLES), "--publish", str(pub), "--once",
               "--publish-format", "v1").returncode == 0
    assert sorted(p.name for p in pub.iterdir()) == ["routes.json"]
    t = json.loads((pub / "routes.json").read_text())
    assert t["version"] == 1 and t["hosts"][0]["name"] == "demo.localhost"
    # switching to v2 rewrites the same table once as an index and shards
    assert run("--manifests", str(EXAMPLES), "--publish", str(pub), "--once").returncode == 0
    t2 = table(pub)
    assert json.loads((pub / "routes.json").read_text())["version"] == 2
    assert t2["generation"] == 2 and t2["hosts"] == t["hosts"]


def wait_for(pred, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if pred():
                return True
        except (OSError, ValueError, KeyError, IndexError):
            pass
        time.sleep(0.02)
    return False


def test_follows_edits_and_stops_cleanly(tmp_path):
    man = tmp_path / "man"
    pub = tmp_path / "pub"
    shutil.copytree(EXAMPLES, man)
    proc = subprocess.Popen([controller(), "--manifests", str(man), "--publish", str(pub),
                             "--metrics-port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: table(pub)["generation"] == 1)
        ing = man / "ingresses.yaml"
        ing.write_text(ing.read_text().replace("path: /ws", "path: /socket"))
        assert wait_for(lambda: any(r["path"] == "/socket"
                                    for r in table(pub)["hosts"][0]["routes"]))
        assert table(pub)["generation"] == 2
        # a broken file is reported; the objects of the other files stay
        (man / "zz-broken.yaml").write_text("kind: Service\nmetadata:\n  name: [x\n")
        time.sleep(0.5)
        assert table(pub)["hosts"][0]["name"] == "demo.localhost"
        # deleting every Ingress empties the table
        ing.unlink()
        assert wait_for(lambda: table(pub)["hosts"] == [])
        gen = table(pub)["generation"]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "zz-broken.yaml:" in err
    assert table(pub)["generation"] == gen  # the last table stays in place


def test_half_written_file_is_not_read(tmp_path):
    """A file rewritten in place by a slow writer is read when the writer
    closes it: in between, the table keeps the file's old objects."""
    man = tmp_path / "man"
    pub = tmp_path / "pub"
    shutil.copytree(EXAMPLES, man)
    proc = subprocess.Popen([controller(), "--manifests", str(man), "--publish", str(pub),
                             "--metrics-port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: table(pub)["generation"] == 1)
        ing = man / "ingresses.yaml"
        text = ing.read_text().replace("path: /ws", "path: /socket")
        with open(ing, "w") as f:  # truncates: the file is empty until the writes land
            f.write(text[: len(text) // 3])
            f.flush()
            time.sleep(0.4)
            assert table(pub)["generation"] == 1, "a half-written file was read"
            assert table(pub)["hosts"][0]["name"] == "demo.localhost"
            f.write(text[len(text) // 3:])
        assert wait_for(lambda: any(r["path"] == "/socket"
                                    for r in table(pub)["hosts"][0]["routes"]))
        assert table(pub)["generation"] == 2
    finally:
        proc.kill()
        proc.communicate(timeout=10)
