"""weir against a real Kubernetes API server (tests/cluster/conftest.py starts it once).

Traffic goes only to 127.0.0.1 (API server, etcd, weir-proxy) and to the test network namespaces
weir-b1/weir-b2 (10.213.1.0/24, 10.213.2.0/24). Every loop is bounded by count and time.
"""

from __future__ import annotations

import base64
import json
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import kweir
from kweir import (NS, Traffic, endpointslice, ingress, report, served_addr, served_by, service,
                   tls_cert_sha256, tls_secret, wait_for)
import routetable

SA = "system:serviceaccount:weir-system:weir"
ROUTE_TIMEOUT = 30  # s for a change to reach the proxy


# ---------------------------------------------------------------- infrastructure
def test_apiserver_version_and_ready(cluster):
    _, v = cluster.api("GET", "/version")
    assert v["gitVersion"].startswith("v1.34."), v
    assert v["major"] == "1" and v["minor"] == "34", v
    st, _ = cluster.api("GET", "/readyz", ok=None)
    assert st == 200
    report(f"\n[cluster] kube-apiserver {v['gitVersion']} commit={v.get('gitCommit')!r} "
          f"built {v.get('buildDate')}")


def test_rbac_least_privilege(cluster, base, sa_kubeconfig):
    out = cluster.kubectl("auth", "can-i", "--list", f"--as={SA}", "-n", "weir-system").stdout
    print("\n[rbac] kubectl auth can-i --list --as=" + SA + " -n weir-system\n" + out)

    def can(verb: str, res: str, ns: str | None = None, sub: str | None = None) -> bool:
        args = ["auth", "can-i", verb, res]
        if sub:
            args += ["--subresource", sub]
        args += ["-n", ns] if ns else ["--all-namespaces"]
        r = cluster.kubectl(*args, kubeconfig=sa_kubeconfig, check=False)
        return r.stdout.strip() == "yes"

    allowed = [("list", "ingresses.networking.k8s.io"), ("watch", "ingresses.networking.k8s.io"),
               ("list", "ingressclasses.networking.k8s.io"), ("watch", "services"),
               ("list", "endpointslices.discovery.k8s.io"), ("watch", "secrets"),
               ("list", "configmaps"), ("watch", "configmaps"),  # auth-proxy-set-headers
               ("create", "events"), ("patch", "events")]
    for verb, res in allowed:
        assert can(verb, res), f"SA cannot {verb} {res}"
    assert can("update", "ingresses.networking.k8s.io", NS, sub="status")
    for verb, res in [("get", "configmaps/weir"), ("watch", "configmaps/weir"),
                      ("list", "configmaps/weir"),
                      ("get", "leases.coordination.k8s.io"),
                      ("create", "leases.coordination.k8s.io"),
                      ("update", "leases.coordination.k8s.io")]:
        assert can(verb, res, "weir-system"), f"SA cannot {verb} {res} in weir-system"
    denied = [("create", "secrets", NS), ("update", "secrets", NS), ("delete", "secrets", NS),
              ("update", "ingresses.networking.k8s.io", NS),
              ("delete", "ingresses.networking.k8s.io", NS),
              ("create", "ingresses.networking.k8s.io", NS),
              ("update", "services", NS), ("create", "endpointslices.discovery.k8s.io", NS),
              ("create", "configmaps", NS), ("update", "configmaps", NS),
              ("patch", "configmaps", NS), ("delete", "configmaps", NS),
              ("update", "configmaps/weir", "weir-system"),
              ("delete", "configmaps/weir", "weir-system"),
              ("get", "leases.coordination.k8s.io", "default"),
              ("delete", "leases.coordination.k8s.io", "weir-system"),
              ("list", "pods", NS), ("create", "pods", NS), ("list", "nodes", None),
              ("create", "clusterrolebindings.rbac.authorization.k8s.io", None),
              ("delete", "events", NS)]
    for verb, res, ns in denied:
        assert not can(verb, res, ns), f"SA should not {verb} {res} (ns={ns})"


def test_service_account_token_works(cluster, sa_kubeconfig):
    who = cluster.kubectl("auth", "whoami", "-o", "json", kubeconfig=sa_kubeconfig).stdout
    assert json.loads(who)["status"]["userInfo"]["username"] == SA
    r = cluster.kubectl("get", "ingresses", "-A", kubeconfig=sa_kubeconfig, check=False)
    assert r.returncode == 0, r.stderr
    r = cluster.kubectl("get", "pods", "-A", kubeconfig=sa_kubeconfig, check=False)
    assert r.returncode != 0 and "forbidden" in r.stderr.lower()


def test_netns_backends_reachable(backends):
    for n in backends.values():
        for a in n.addrs:
            with urllib.request.urlopen(f"http://{a}:8080/probe", timeout=3) as r:
                body = json.loads(r.read())
            assert body["name"] == n.name and body["server"] == f"{a}:8080"


# ---------------------------------------------------------------- weir scenarios
def test_ingress_create_modify_delete(weir, api):
    host = "crud.weir.test"
    api.apply(ingress("crud", host, [("/", "Prefix", "svc-b1", 80)]))
    wait_for(lambda: served_by(weir.http_port, host, "/x") == "weir-b1", ROUTE_TIMEOUT,
             "crud -> b1")
    api.apply(ingress("crud", host, [("/", "Prefix", "svc-b2", 80)]))
    wait_for(lambda: served_by(weir.http_port, host, "/x") == "weir-b2", ROUTE_TIMEOUT,
             "crud -> b2 after modify")
    # add an Exact path to the other backend
    api.apply(ingress("crud", host, [("/", "Prefix", "svc-b2", 80),
                                     ("/only", "Exact", "svc-b1", 80)]))
    wait_for(lambda: served_by(weir.http_port, host, "/only") == "weir-b1", ROUTE_TIMEOUT,
             "Exact /only -> b1")
    assert served_by(weir.http_port, host, "/only/more") == "weir-b2"
    api.delete("Ingress", "crud", NS)
    wait_for(lambda: kweir.http_get(weir.http_port, host, "/x")[0] == 404, ROUTE_TIMEOUT,
             "404 after delete")


def test_endpointslice_scale_up_and_down(weir, api, backends):
    b1 = backends["weir-b1"]
    host = "scale.weir.test"
    api.apply(service("svc-scale"))
    api.apply(endpointslice("svc-scale", [b1.addrs[0]]))
    api.apply(ingress("scale", host, [("/", "Prefix", "svc-scale", 80)]))
    wait_for(lambda: served_addr(weir.http_port, host) == f"{b1.addrs[0]}:8080", ROUTE_TIMEOUT,
             "1 endpoint")

    def seen(n: int) -> set:
        return {served_addr(weir.http_port, host) for _ in range(n)}

    want = {f"{a}:8080" for a in b1.addrs}
    api.apply(endpointslice("svc-scale", b1.addrs))
    wait_for(lambda: seen(12) == want, ROUTE_TIMEOUT, f"all of {want}")
    # a second slice of the same Service adds the other namespace's address
    b2 = backends["weir-b2"]
    api.apply(endpointslice("svc-scale", [b2.addrs[1]], name="svc-scale-2"))
    want2 = want | {f"{b2.addrs[1]}:8080"}
    wait_for(lambda: seen(16) == want2, ROUTE_TIMEOUT, "two slices merged")
    # scale down: one endpoint left; a not-ready endpoint gets no traffic
    api.delete("EndpointSlice", "svc-scale-2", NS)
    api.apply(endpointslice("svc-scale", b1.addrs[:2], not_ready=(b1.addrs[1],)))
    wait_for(lambda: seen(12) == {f"{b1.addrs[0]}:8080"}, ROUTE_TIMEOUT, "scaled down to 1")
    api.delete("Ingress", "scale", NS)


def test_unreferenced_changes_keep_steps_incremental(weir, api, backends):
    """Objects no Ingress names (another team's Secret, Service and EndpointSlice) change
    between two steps: the Ingress change after them is still compiled alone and the
    EndpointSlice change after them still only patches endpoints, not a full compile."""
    b1 = backends["weir-b1"]
    host = "incr.weir.test"
    log = weir.c.logs / "weir-controller.log"
    api.apply(service("svc-incr"))
    api.apply(endpointslice("svc-incr", [b1.addrs[0]]))
    api.apply(ingress("incr", host, [("/", "Prefix", "svc-incr", 80)]))
    wait_for(lambda: served_addr(weir.http_port, host) == f"{b1.addrs[0]}:8080", ROUTE_TIMEOUT,
             "incr served")
    time.sleep(0.5)

    def unrelated(tag: str) -> None:
        api.apply({"kind": "Secret", "type": "Opaque",
                   "metadata": {"name": "unrelated", "namespace": NS},
                   "data": {"k": base64.b64encode(tag.encode()).decode()}})
        api.apply(service("svc-unrelated"))
        api.apply(endpointslice("svc-unrelated", [b1.addrs[int(tag) % 2]]))
        time.sleep(0.5)

    def publishes_since(n: int) -> list[str]:
        return [ln for ln in log.read_text(errors="replace").splitlines()[n:]
                if "published generation" in ln]

    unrelated("1")
    mark = len(log.read_text(errors="replace").splitlines())
    api.apply(ingress("incr", host, [("/", "Prefix", "svc-incr", 80),
                                     ("/two", "Exact", "svc-b2", 80)]))
    wait_for(lambda: served_by(weir.http_port, host, "/two") == "weir-b2", ROUTE_TIMEOUT,
             "the new path served")
    lines = publishes_since(mark)
    assert any("1 Ingresses changed" in ln for ln in lines), lines
    assert not any("compiled in" in ln for ln in lines), lines  # a full compile's line

    unrelated("2")
    mark = len(log.read_text(errors="replace").splitlines())
    api.apply(endpointslice("svc-incr", [b1.addrs[1]]))
    wait_for(lambda: served_addr(weir.http_port, host) == f"{b1.addrs[1]}:8080", ROUTE_TIMEOUT,
             "the new endpoint served")
    lines = publishes_since(mark)
    assert any("endpoints of 1 backends" in ln for ln in lines), lines
    assert not any("compiled in" in ln for ln in lines), lines
    api.delete("Ingress", "incr", NS)
    for kind, name in (("Secret", "unrelated"), ("Service", "svc-unrelated"),
                       ("EndpointSlice", "svc-unrelated-1"), ("Service", "svc-incr"),
                       ("EndpointSlice", "svc-incr-1")):
        api.delete(kind, name, NS)


def test_named_secret_rotation_compiles_its_ingress_alone(weir, api, tmp_path):
    """A TLS Secret an Ingress names is rotated: that Ingress is compiled again on its own
    (an incremental step, the certificate replaced in place), not every Ingress."""
    host = "rot-incr.weir.test"
    log = weir.c.logs / "weir-controller.log"
    c1, k1, fp1 = kweir.self_signed(host, tmp_path, "one")
    c2, k2, fp2 = kweir.self_signed(host, tmp_path, "two")
    api.apply(tls_secret("rot-incr", c1, k1))
    api.apply(ingress("rot-incr", host, [("/", "Prefix", "svc-b1", 80)],
                      tls=[([host], "rot-incr")]))
    wait_for(lambda: tls_cert_sha256(weir.https_port, host) == fp1, ROUTE_TIMEOUT,
             "first certificate")
    time.sleep(0.5)
    mark = len(log.read_text(errors="replace").splitlines())
    api.apply(tls_secret("rot-incr", c2, k2))
    wait_for(lambda: tls_cert_sha256(weir.https_port, host) == fp2, ROUTE_TIMEOUT,
             "rotated certificate")
    lines = [ln for ln in log.read_text(errors="replace").splitlines()[mark:]
             if "published generation" in ln]
    assert any("1 Ingresses changed" in ln for ln in lines), lines
    assert not any("compiled in" in ln for ln in lines), lines
    api.delete("Ingress", "rot-incr", NS)
    api.delete("Secret", "rot-incr", NS)


def test_tls_secret_rotation(weir, api, tmp_path):
    host = "tls.weir.test"
    c1, k1, fp1 = kweir.self_signed(host, tmp_path, "one")
    c2, k2, fp2 = kweir.self_signed(host, tmp_path, "two")
    api.apply(tls_secret("tls-rot", c1, k1))
    api.apply(ingress("tls", host, [("/", "Prefix", "svc-b1", 80)], tls=[([host], "tls-rot")]))
    wait_for(lambda: tls_cert_sha256(weir.https_port, host) == fp1, ROUTE_TIMEOUT,
             "first certificate")
    st, _, body = kweir.https_get_sni(weir.https_port, host, "/secure")
    assert st == 200 and json.loads(body)["name"] == "weir-b1"
    # ssl-redirect defaults to true for a TLS host: plain HTTP gets 308 to https
    st, _, hdrs = kweir.http_get(weir.http_port, host, "/secure")
    assert st == 308 and hdrs.get("location", "").startswith(f"https://{host}"), (st, hdrs)
    api.apply(tls_secret("tls-rot", c2, k2))
    wait_for(lambda: tls_cert_sha256(weir.https_port, host) == fp2, ROUTE_TIMEOUT,
             "rotated certificate")
    api.delete("Ingress", "tls", NS)
    api.delete("Secret", "tls-rot", NS)


def test_two_ingresses_for_one_host_merge(weir, api):
    host = "merge.weir.test"
    api.apply(ingress("merge-a", host, [("/a", "Prefix", "svc-b1", 80)]))
    api.apply(ingress("merge-b", host, [("/b", "Prefix", "svc-b2", 80)]))
    wait_for(lambda: served_by(weir.http_port, host, "/a/1") == "weir-b1"
             and served_by(weir.http_port, host, "/b/1") == "weir-b2", ROUTE_TIMEOUT, "merged")
    assert kweir.http_get(weir.http_port, host, "/c")[0] == 404
    api.delete("Ingress", "merge-a", NS)
    wait_for(lambda: kweir.http_get(weir.http_port, host, "/a/1")[0] == 404, ROUTE_TIMEOUT,
             "merge-a gone")
    assert served_by(weir.http_port, host, "/b/1") == "weir-b2"
    api.delete("Ingress", "merge-b", NS)


def _warning_events(api, name: str) -> list[dict]:
    q = f"?fieldSelector=involvedObject.name={name},type=Warning"
    return api.list("Event", NS, q).get("items", [])


def test_bad_ingress_isolated_with_warning_event(weir, api):
    api.apply(ingress("bad", "bad.weir.test", [("/", "Prefix", "svc-b1", 80)],
                      annotations={"weir.dev/proxy-body-size": "lots"}))
    api.apply(ingress("good", "good.weir.test", [("/", "Prefix", "svc-b2", 80)]))
    wait_for(lambda: served_by(weir.http_port, "good.weir.test") == "weir-b2", ROUTE_TIMEOUT,
             "good ingress served next to a bad one")
    assert kweir.http_get(weir.http_port, "bad.weir.test")[0] == 404
    evs = wait_for(lambda: _warning_events(api, "bad"), ROUTE_TIMEOUT, "Warning Event on bad")
    text = " ".join(f"{e.get('reason')} {e.get('message')}" for e in evs)
    assert "proxy-body-size" in text, text
    assert evs[0]["involvedObject"]["kind"] == "Ingress"
    assert not _warning_events(api, "good")
    # fixing the value brings the Ingress in
    api.apply(ingress("bad", "bad.weir.test", [("/", "Prefix", "svc-b1", 80)],
                      annotations={"weir.dev/proxy-body-size": "8m"}))
    wait_for(lambda: served_by(weir.http_port, "bad.weir.test") == "weir-b1", ROUTE_TIMEOUT,
             "fixed ingress served")
    api.delete("Ingress", "bad", NS)
    api.delete("Ingress", "good", NS)


def test_wrong_class_ignored(weir, api):
    api.apply(ingress("other-cls", "other.weir.test", [("/", "Prefix", "svc-b1", 80)],
                      cls="other"))
    api.apply(ingress("other-anno", "other2.weir.test", [("/", "Prefix", "svc-b1", 80)], cls=None,
                      annotations={"kubernetes.io/ingress.class": "nginx"}))
    # a later change of our class proves the controller has seen the earlier ones
    api.apply(ingress("mine", "mine.weir.test", [("/", "Prefix", "svc-b2", 80)]))
    api.apply(ingress("mine-anno", "mine2.weir.test", [("/", "Prefix", "svc-b2", 80)], cls=None,
                      annotations={"kubernetes.io/ingress.class": "weir"}))
    wait_for(lambda: served_by(weir.http_port, "mine.weir.test") == "weir-b2"
             and served_by(weir.http_port, "mine2.weir.test") == "weir-b2", ROUTE_TIMEOUT,
             "our class served (spec field and legacy annotation)")
    assert kweir.http_get(weir.http_port, "other.weir.test")[0] == 404
    assert kweir.http_get(weir.http_port, "other2.weir.test")[0] == 404
    wait_for(lambda: (api.get("Ingress", "mine", NS).get("status", {}).get("loadBalancer", {})
                      .get("ingress")), ROUTE_TIMEOUT, "status on ours")
    time.sleep(2)
    for n in ("other-cls", "other-anno"):
        st = api.get("Ingress", n, NS).get("status", {}).get("loadBalancer", {})
        assert not st.get("ingress"), f"{n} got a status: {st}"
        assert not _warning_events(api, n)
    for n in ("other-cls", "other-anno", "mine", "mine-anno"):
        api.delete("Ingress", n, NS)


def test_status_load_balancer_from_publish_service(weir, api):
    api.apply(ingress("status", "status.weir.test", [("/", "Prefix", "svc-b1", 80)]))

    def lb():
        return (api.get("Ingress", "status", NS).get("status", {}).get("loadBalancer", {})
                .get("ingress"))

    got = wait_for(lb, ROUTE_TIMEOUT, "status.loadBalancer")
    assert got == [{"ip": kweir.PUBLISH_IP}], got
    # the publish Service's address changes -> every Ingress of ours follows
    api.patch_status("Service", kweir.PUBLISH_SERVICE, kweir.SYSTEM_NS,
                     {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.11"}]}}})
    wait_for(lambda: lb() == [{"ip": "192.0.2.11"}], 60, "status follows the publish Service")
    api.patch_status("Service", kweir.PUBLISH_SERVICE, kweir.SYSTEM_NS,
                     {"status": {"loadBalancer": {"ingress": [{"ip": kweir.PUBLISH_IP}]}}})
    wait_for(lambda: lb() == [{"ip": kweir.PUBLISH_IP}], 60, "status back")
    lease = api.get("Lease", "weir", kweir.SYSTEM_NS) or next(
        iter(api.list("Lease", kweir.SYSTEM_NS).get("items", [])), None)
    assert lease and lease["spec"].get("holderIdentity"), "no leader Lease in weir-system"
    api.delete("Ingress", "status", NS)


def test_websocket_through_proxy(weir, api):
    import asyncio

    import websockets

    host = "ws.weir.test"
    api.apply(ingress("ws", host, [("/socket", "Prefix", "svc-b2", 80)],
                      annotations={"weir.dev/websocket-idle-timeout": "120"}))
    wait_for(lambda: served_by(weir.http_port, host, "/socket") == "weir-b2", ROUTE_TIMEOUT,
             "ws route")

    async def talk():
        # The URI names the virtual host (Host header); the socket goes to the proxy on loopback.
        sock = socket.create_connection(("127.0.0.1", weir.http_port), timeout=5)
        async with websockets.connect(f"ws://{host}:{weir.http_port}/socket/x", sock=sock,
                                      open_timeout=5) as ws:
            hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert hello["hello"] == "weir-b2"
            for i in range(5):
                await ws.send(f"m{i}")
                assert await asyncio.wait_for(ws.recv(), 5) == f"m{i}"

    asyncio.run(talk())
    api.delete("Ingress", "ws", NS)


# ---------------------------------------------------------------- disruption
@pytest.fixture
def steady(weir, api):
    """A route with live traffic to a healthy backend."""
    host = "steady.weir.test"
    api.apply(ingress("steady", host, [("/", "Prefix", "svc-b1", 80)]))
    wait_for(lambda: served_by(weir.http_port, host) == "weir-b1", ROUTE_TIMEOUT, "steady")
    yield host
    api.delete("Ingress", "steady", NS)
    # Gone from the proxy before the next test applies it again: else that test's wait above
    # can pass on this old route, and its traffic then sees the delete and the new create
    # published one after the other (a 404 in between).
    wait_for(lambda: kweir.http_get(weir.http_port, host)[0] == 404, ROUTE_TIMEOUT,
             "steady removed")


def test_apiserver_outage_no_failed_requests(weir, api, cluster, steady):
    api_b = kweir.Api(cluster, server=cluster.server_b)
    cluster.start_apiserver("kube-apiserver-b")
    try:
        with Traffic(weir.http_port, steady, "/", {"weir-b1"}, max_seconds=150) as tr:
            time.sleep(1)
            cluster.kill("kube-apiserver", signal.SIGKILL)
            t0 = time.monotonic()
            # while the controller's API server is down, change objects through the other one
            api_b.apply(ingress("outage", "outage.weir.test", [("/", "Prefix", "svc-b2", 80)]))
            time.sleep(max(0.0, 30 - (time.monotonic() - t0)))
            assert weir.controller_alive(), "controller died without its API server:\n" + \
                weir.log_tail("weir-controller")
            assert kweir.http_get(weir.http_port, "outage.weir.test")[0] == 404
            cluster.start_apiserver("kube-apiserver")
            t1 = time.monotonic()
            wait_for(lambda: served_by(weir.http_port, "outage.weir.test") == "weir-b2", 120,
                     "controller catches up after the API server is back")
            report(f"\n[outage] API server down 30 s; change made meanwhile served "
                  f"{time.monotonic() - t1:.1f} s after restart")
            time.sleep(1)
        report(f"[outage] {tr.ok} requests ok, {len(tr.failures)} failed")
        assert tr.ok > 500, tr.ok
        assert not tr.failures, tr.failures[:10]
    finally:
        cluster.kill("kube-apiserver-b")
        if not cluster.alive("kube-apiserver"):
            cluster.start_apiserver("kube-apiserver")
        if not cluster.alive("kube-controller-manager"):
            cluster.start_controller_manager()
        api.delete("Ingress", "outage", NS)


def _watch_first_event(cluster, path: str, rv: str) -> dict:
    """First event of a watch from resourceVersion rv (with a short server-side timeout)."""
    req = urllib.request.Request(
        f"{cluster.server}{path}?watch=1&resourceVersion={rv}&timeoutSeconds=3")
    with urllib.request.urlopen(req, timeout=10, context=cluster.ssl_context()) as r:
        line = r.readline()
    return json.loads(line) if line else {}


def _metric_sum(weir, name: str) -> float:
    """Sum of every sample of one metric on the controller's /metrics."""
    total = 0.0
    for ln in weir.controller_metrics().splitlines():
        if ln.startswith(name + "{") or ln.startswith(name + " "):
            total += float(ln.rsplit(" ", 1)[1])
    return total


def test_watch_410_gone_relist(weir, api, cluster, steady):
    api_b = kweir.Api(cluster, server=cluster.server_b)
    ing_path = "/apis/networking.k8s.io/v1/ingresses"
    api.apply(ingress("gone", "gone.weir.test", [("/", "Prefix", "svc-b1", 80)]))
    wait_for(lambda: served_by(weir.http_port, "gone.weir.test") == "weir-b1", ROUTE_TIMEOUT,
             "gone -> b1")
    old_rv = api.list("Ingress")["metadata"]["resourceVersion"]
    relists0 = _metric_sum(weir, "weir_controller_relists_total")
    cluster.start_apiserver("kube-apiserver-b")
    try:
        with Traffic(weir.http_port, steady, "/", {"weir-b1"}, max_seconds=150) as tr:
            cluster.kill("kube-apiserver", signal.SIGKILL)
            # Through the other API server: an Ingress change the controller can only learn by
            # relisting, then churn and an etcd compaction past every revision it has seen.
            api_b.apply(ingress("gone", "gone.weir.test", [("/", "Prefix", "svc-b2", 80)]))
            api_b.apply({"kind": "Namespace", "metadata": {"name": "weir-churn"}})
            for i in range(150):
                api_b.apply({"kind": "ConfigMap",
                             "metadata": {"name": f"churn-{i % 30}", "namespace": "weir-churn"},
                             "data": {"i": str(i)}})
            rev = cluster.etcd_revision()
            cluster.etcdctl("compact", str(rev))
            cluster.start_apiserver("kube-apiserver")
            ev = _watch_first_event(cluster, ing_path, old_rv)
            assert ev.get("type") == "ERROR" and ev["object"].get("code") == 410, ev
            report(f"\n[410] compacted etcd at revision {rev}; a watch from rv {old_rv} now gets "
                  f"410 Gone: {ev['object'].get('message')}")
            t1 = time.monotonic()
            wait_for(lambda: served_by(weir.http_port, "gone.weir.test") == "weir-b2", 120,
                     "change seen after 410 -> relist")
            report(f"[410] relisted and served the change {time.monotonic() - t1:.1f} s after the "
                  f"API server came back")
            api.apply(ingress("gone2", "gone2.weir.test", [("/", "Prefix", "svc-b1", 80)]))
            wait_for(lambda: served_by(weir.http_port, "gone2.weir.test") == "weir-b1",
                     ROUTE_TIMEOUT, "watch carries on after the relist")
        assert weir.controller_alive()
        assert not tr.failures, tr.failures[:10]
        relists1 = _metric_sum(weir, "weir_controller_relists_total")
        report(f"[410] weir_controller_relists_total (all kinds) {relists0:.0f} -> {relists1:.0f}")
        assert relists1 > relists0
    finally:
        cluster.kill("kube-apiserver-b")
        if not cluster.alive("kube-apiserver"):
            cluster.start_apiserver("kube-apiserver")
        api.delete("Ingress", "gone", NS)
        api.delete("Ingress", "gone2", NS)
        api.delete("Namespace", "weir-churn")


def test_controller_restart_proxy_keeps_serving(weir, api, steady):
    with Traffic(weir.http_port, steady, "/", {"weir-b1"}, max_seconds=120) as tr:
        time.sleep(1)
        gen0 = weir.routes_generation()
        rc = weir.stop_controller()
        report(f"\n[restart] controller exited with {rc}")
        api.apply(ingress("while-down", "down.weir.test", [("/", "Prefix", "svc-b2", 80)]))
        time.sleep(3)
        assert kweir.http_get(weir.http_port, "down.weir.test")[0] == 404
        weir.start_controller()
        t1 = time.monotonic()
        wait_for(lambda: served_by(weir.http_port, "down.weir.test") == "weir-b2", 60,
                 "restarted controller publishes the change")
        report(f"[restart] change served {time.monotonic() - t1:.1f} s after the restart "
              f"(generation {gen0} -> {weir.routes_generation()})")
        time.sleep(1)
    assert rc == 0, f"controller exit code on SIGTERM: {rc}"
    assert weir.proxy_alive()
    report(f"[restart] {tr.ok} requests ok, {len(tr.failures)} failed")
    assert tr.ok > 100 and not tr.failures, tr.failures[:10]
    api.delete("Ingress", "while-down", NS)


def test_latency_ingress_create_to_served(weir, api):
    n = 100
    lat = []
    names = []
    try:
        for i in range(n):
            host = f"lat{i}.weir.test"
            name = f"lat-{i}"
            names.append(name)
            api.create(ingress(name, host, [("/", "Prefix", "svc-b1" if i % 2 else "svc-b2", 80)]))
            t0 = time.monotonic()
            want = "weir-b1" if i % 2 else "weir-b2"
            deadline = t0 + ROUTE_TIMEOUT
            while served_by(weir.http_port, host) != want:
                assert time.monotonic() < deadline, f"{host} not served after {ROUTE_TIMEOUT} s"
                time.sleep(0.005)
            lat.append(time.monotonic() - t0)
    finally:
        for name in names:
            api.delete("Ingress", name, NS)
    lat.sort()
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(round(0.99 * len(lat))) - 1)]
    report(f"\n[latency] Ingress create -> route served over {n} changes: "
          f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms")
    assert p99 < 5.0, f"p99 {p99:.2f} s"


_shard_names: dict[str, str] = {}


def _published_hosts(weir) -> set[str]:
    try:
        return routetable.host_names(weir.publish, _shard_names)
    except (OSError, ValueError, AssertionError):
        return set()


def test_scale_1000_ingresses(weir, api, cluster, tmp_path):
    """1,000 generated Ingresses (+ Services, EndpointSlices, TLS Secrets) applied at once: time
    until all are published and served, controller and proxy memory."""
    n = 1000
    out = tmp_path / "gen"
    subprocess.run([sys.executable, str(kweir.REPO / "tests" / "bench" / "gen_ingresses.py"),
                    "--count", str(n), "--out", str(out), "--namespaces", "5"], check=True)
    cluster.kubectl("apply", "-f", str(out / "00-header.yaml"))
    rss0 = weir.rss_kib("controller")
    t0 = time.monotonic()
    try:
        cluster.kubectl("apply", "--server-side", "-f", str(out), timeout=300)
        t_apply = time.monotonic() - t0
        want = {f"app-{i:05d}.bench.weir.test" for i in range(n)}
        wait_for(lambda: want <= _published_hosts(weir), 180, f"{n} hosts published",
                 interval=0.25)
        t_pub = time.monotonic() - t0
        last = f"app-{n - 1:05d}.bench.weir.test"
        wait_for(lambda: served_by(weir.http_port, last, "/ws") == "weir-b1", 60, "last served")
        t_srv = time.monotonic() - t0
        rss, hwm = weir.rss_kib("controller")
        prss, phwm = weir.rss_kib("proxy")
        size = routetable.published_bytes(weir.publish)
        report(f"\n[scale] {n} Ingresses: kubectl apply {t_apply:.1f} s, all published "
               f"{t_pub:.1f} s, last served {t_srv:.1f} s after the apply began; published "
               f"{size / 1e6:.1f} MB; controller RSS {rss0[0] / 1024:.0f} -> {rss / 1024:.0f} MiB "
               f"(peak {hwm / 1024:.0f}), proxy RSS {prss / 1024:.0f} MiB (peak {phwm / 1024:.0f})")
        for h in (f"app-{i:05d}.bench.weir.test" for i in (1, 499, 998)):
            assert served_by(weir.http_port, h, "/ws") == "weir-b1", h
        # every 10th generated Ingress has TLS (and so redirects plain HTTP)
        for i in (0, 500, 990):
            h = f"app-{i:05d}.bench.weir.test"
            st, _, body = kweir.https_get_sni(weir.https_port, h, "/ws")
            assert st == 200 and json.loads(body)["name"] == "weir-b1", (h, st)
    finally:
        for i in range(5):
            api.delete("Namespace", f"bench-{i}")
    wait_for(lambda: not any(h.endswith(".bench.weir.test") for h in _published_hosts(weir)),
             180, "bench hosts gone after namespace deletion", interval=0.5)


# The RBAC authorizer's reason, as the controller logs it (k8s_client: "HTTP 403: <message>").
RBAC_DENIED = re.compile(
    r'HTTP 403: .*?User "(?P<user>[^"]+)" cannot (?P<verb>\S+) resource "(?P<res>[^"]+)" '
    r'in API group "(?P<group>[^"]*)"(?: in the namespace "(?P<ns>[^"]+)"| at the cluster scope)')


def _rbac_denials(log: Path) -> list[re.Match]:
    return [m for m in map(RBAC_DENIED.search, log.read_text(errors="replace").splitlines())
            if m]


def test_denied_requests_are_logged(cluster, api, base, tmp_path):
    """Control for the next test: a ServiceAccount with no role at all makes the controller
    log its refused requests in the form that test parses, and it keeps running."""
    api.apply({"kind": "ServiceAccount",
               "metadata": {"name": "weir-no-rbac", "namespace": kweir.SYSTEM_NS}})
    kc = cluster.service_account_kubeconfig(kweir.SYSTEM_NS, "weir-no-rbac",
                                            tmp_path / "no-rbac.kubeconfig", duration="1h")
    w = kweir.Weir(cluster, kc, tmp_path / "weir")
    logf = cluster.logs / "weir-controller-no-rbac.log"
    with open(logf, "wb") as f:
        p = subprocess.Popen([str(w.binary("weir-controller")), "--kubeconfig", str(kc),
                              "--publish", str(w.publish), "--ingress-class",
                              kweir.INGRESS_CLASS, "--log-format", "text",
                              "--metrics-port", str(w.metrics_port)],
                             stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: any(m["res"] == "ingresses" and m["group"] == "networking.k8s.io"
                             for m in _rbac_denials(logf)),
                 20, "a logged RBAC denial of ingresses for the role-less account")
        assert all(m["user"] == f"system:serviceaccount:{kweir.SYSTEM_NS}:weir-no-rbac"
                   for m in _rbac_denials(logf))
        assert p.poll() is None, "weir-controller exited on a Forbidden"
    finally:
        p.terminate()
        p.wait(20)


def test_rbac_only_errors_absent_from_controller_log(cluster, weir):
    """Every request the controller had refused by RBAC during the whole run is allowed by the
    role as installed (run last). A denial can be transient - the API server's authorizer
    warms up for a moment after the outage tests restart it - but one the role still refuses
    now means the role is missing a rule the controller needs."""
    denials = _rbac_denials(weir.c.logs / "weir-controller.log")
    if denials:
        report(f"\n[rbac] {len(denials)} logged denial(s), e.g. {denials[0].group(0)[:200]}")
    missing = set()
    for m in denials:
        res, _, sub = m["res"].partition("/")
        if m["group"]:
            res += "." + m["group"]
        args = ["auth", "can-i", m["verb"], res, f"--as={m['user']}"]
        if sub:
            args += ["--subresource", sub]
        args += ["-n", m["ns"]] if m["ns"] else []
        if cluster.kubectl(*args, check=False).stdout.strip() != "yes":
            missing.add(m.group(0))
    assert not missing, sorted(missing)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v", "-s"]))
