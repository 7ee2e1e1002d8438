"""The sharded route table (version 2) end to end: weir-controller following a --manifests
directory of many Ingresses publishes an index and one shard per host; weir-proxy loads it. A
change to one Ingress adds exactly one shard file and the proxy parses only that shard; an
endpoint-only change adds one backend shard and the proxy parses no host."""

import json
import os
import re
import time

import yaml

import proxyutil as pu
import routetable

CONTROLLER_BIN = os.path.join(pu.BUILD_DIR, "weir-controller")
N = 300
CHANGED = 123


def write_manifests(mdir, port, changed_path=None):
    def ingress(i):
        path = changed_path if (i == CHANGED and changed_path) else "/app"
        return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": f"ing-{i:03d}", "namespace": "default",
                             "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"ingressClassName": "weir", "rules": [{
                    "host": f"h{i:03d}.shard.test", "http": {"paths": [
                        {"path": path, "pathType": "Prefix",
                         "backend": {"service": {"name": "echo", "port": {"number": 80}}}}]}}]}}

    objs = [
        {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
         "metadata": {"name": "weir"}, "spec": {"controller": "weir.dev/ingress-controller"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo", "namespace": "default"},
         "spec": {"ports": [{"name": "http", "port": 80, "targetPort": port}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "echo-1", "namespace": "default",
                      "labels": {"kubernetes.io/service-name": "echo"}},
         "addressType": "IPv4", "ports": [{"name": "http", "port": port}],
         "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]},
    ] + [ingress(i) for i in range(N)]
    tmp = os.path.join(mdir, ".objects.yaml.tmp")
    with open(tmp, "w") as f:
        yaml.safe_dump_all(objs, f)
    os.replace(tmp, os.path.join(mdir, "objects.yaml"))


def last_load_line(proxy, gen):
    for line in reversed(proxy.log_tail(200000).splitlines()):
        if f"route table loaded: generation {gen} " in line:
            return line
    return ""


def test_one_ingress_changed_one_shard(backends, tmp_path):
    mdir, pub = tmp_path / "manifests", tmp_path / "routes"
    mdir.mkdir()
    pub.mkdir()
    write_manifests(str(mdir), backends["echo"])
    ctl = pu.start_ready([CONTROLLER_BIN, "--manifests", str(mdir), "--publish", str(pub),
                          "--metrics-port", "0", "--log-format", "text"],
                         "published generation 1", str(tmp_path / "controller.log"))
    p = pu.Proxy(str(pub), str(tmp_path / "proxy.log"), workers=2)
    try:
        p.wait_ready()
        p.wait_generation(1)
        assert pu.get(p.http_port, "/app", host="h005.shard.test").status == 200
        line = last_load_line(p, 1)
        assert "(v2 index + shards)" in line and f"{N} hosts ({N} parsed, 0 reused)" in line, line
        before = set(routetable.shard_files(pub))
        lists = set(routetable.list_files(pub))
        # one shard per host and the one backend, and the id lists naming the hosts (300 is
        # past the 256 ids an index holds inline; one backend is not)
        assert len(before - lists) == N + 1
        index = json.loads((pub / "routes.json").read_text())
        assert "hosts" not in index and "backends" in index
        assert {f"{i}.json" for i in index["host_lists"]} == lists
        index1 = routetable.load(pub)
        assert len(index1["hosts"]) == N

        # One Ingress changed: one new shard file, the proxy parses only it.
        write_manifests(str(mdir), backends["echo"], changed_path="/changed")
        p.wait_generation(2)
        host = f"h{CHANGED}.shard.test"
        assert pu.get(p.http_port, "/changed/x", host=host).status == 200
        assert pu.get(p.http_port, "/app", host=host).status == 404
        assert pu.get(p.http_port, "/app", host="h124.shard.test").status == 200
        added = set(routetable.shard_files(pub)) - before
        added_lists = added & set(routetable.list_files(pub))
        added -= added_lists
        assert len(added) == 1, added
        sid = added.pop()[:-len(".json")]
        assert routetable.shard(pub, sid)["name"] == host
        # the list that names it (two if its id starts or ends a list where the old one did
        # not); the other lists stay
        assert 1 <= len(added_lists) <= 2, added_lists
        line = last_load_line(p, 2)
        assert f"{N} hosts (1 parsed, {N - 1} reused)" in line, line
        m = re.search(r"in ([0-9.]+) ms", line)
        assert m, line

        # An endpoint change: the backend's shard and the index, no host parsed.
        before = set(routetable.shard_files(pub))
        write_manifests(str(mdir), backends["echo_a"], changed_path="/changed")
        p.wait_generation(3)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            r = pu.get(p.http_port, "/app", host="h005.shard.test")
            if r.status == 200 and r.json()["name"] == "A":
                break
            time.sleep(0.05)
        assert r.status == 200 and r.json()["name"] == "A", r
        added = set(routetable.shard_files(pub)) - before
        assert len(added) == 1, added
        assert routetable.shard(pub, added.pop()[:-len(".json")])["name"] == "default/echo:80"
        line = last_load_line(p, 3)
        assert f"{N} hosts (0 parsed, {N} reused)" in line, line
        assert p.metric("weir_proxy_route_table_hosts_total", 'result="parsed"') == N + 1
    finally:
        p.stop()
        pu.stop_process(ctl)
