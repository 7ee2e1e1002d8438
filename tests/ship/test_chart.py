"""The Helm chart: lints, renders both workload variants, matches the checked-in
raw manifests and the RBAC rules the cluster tests run with, and keeps the pod
locked down (non-root, read-only root filesystem, no capabilities)."""
import subprocess

import yaml


def render(helm, root, *args):
    out = subprocess.run([helm, "template", "weir", str(root / "charts/weir"),
                          "--namespace", "weir-system", *args],
                         check=True, capture_output=True, text=True)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def test_lint(helm, root):
    out = subprocess.run([helm, "lint", "--strict", str(root / "charts/weir")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_default_render_is_a_locked_down_deployment(helm, root):
    docs = render(helm, root)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
                            "RoleBinding", "IngressClass", "ConfigMap", "Deployment", "Service",
                            "Service", "PodDisruptionBudget", "Pod"])
    dep = by_kind(docs, "Deployment")[0]
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    names = [c["name"] for c in pod["containers"]]
    assert names == ["controller", "proxy"]
    for c in pod["containers"]:
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert "requests" in c["resources"]
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        assert "/run/weir" in mounts
    assert pod["volumes"][0]["emptyDir"]["medium"] == "Memory"
    proxy = pod["containers"][1]
    assert proxy["readinessProbe"]["httpGet"]["path"] == "/readyz"
    ctl_args = pod["containers"][0]["args"]
    assert "--publish-service=weir-system/weir" in ctl_args
    assert "--leader-elect" in ctl_args
    svc = [s for s in by_kind(docs, "Service") if s["metadata"]["name"] == "weir"][0]
    assert svc["spec"]["type"] == "LoadBalancer"
    ic = by_kind(docs, "IngressClass")[0]
    assert ic["spec"]["controller"] == "weir.dev/ingress-controller"
    assert "annotations" not in ic["metadata"]


def test_daemonset_nodeport_default_class_variant(helm, root):
    docs = render(helm, root, "--set", "kind=DaemonSet", "--set", "service.type=NodePort",
                  "--set", "service.nodePorts.http=30080", "--set", "ingressClass.default=true")
    assert by_kind(docs, "DaemonSet") and not by_kind(docs, "Deployment")
    assert not by_kind(docs, "PodDisruptionBudget")
    svc = [s for s in by_kind(docs, "Service") if s["metadata"]["name"] == "weir"][0]
    assert svc["spec"]["type"] == "NodePort"
    assert svc["spec"]["ports"][0]["nodePort"] == 30080
    ic = by_kind(docs, "IngressClass")[0]
    assert ic["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"] == "true"


def test_take_over_class_variant(helm, root):
    docs = render(helm, root, "--set", "ingressClass.name=nginx",
                  "--set", "ingressClass.takeOver=true")
    assert not by_kind(docs, "IngressClass")  # the existing one is served, not replaced
    args = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--ingress-class=nginx" in args and "--take-over-class" in args
    args = by_kind(render(helm, root), "Deployment")[0]["spec"]["template"]["spec"][
        "containers"][0]["args"]
    assert "--take-over-class" not in args


def test_schema_refuses_bad_values(helm, root):
    out = subprocess.run([helm, "template", "weir", str(root / "charts/weir"),
                          "--set", "kind=StatefulSet"], capture_output=True, text=True)
    assert out.returncode != 0
    assert "kind" in out.stderr


def test_manifests_in_sync_with_chart(root):
    out = subprocess.run([str(root / "scripts/gen-manifests.sh"), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def rules_of(docs, kind):
    rules = []
    for d in by_kind(docs, kind):
        for r in d["rules"]:
            rules.append((tuple(r["apiGroups"]), tuple(r["resources"]), tuple(sorted(r["verbs"]))))
    return sorted(rules)


def test_chart_rbac_equals_deploy_rbac(helm, root):
    chart = render(helm, root)
    with open(root / "deploy/rbac.yaml") as f:
        deploy = [d for d in yaml.safe_load_all(f) if d]
    assert rules_of(chart, "ClusterRole") == rules_of(deploy, "ClusterRole")
    assert rules_of(chart, "Role") == rules_of(deploy, "Role")
    # nothing that writes beyond status, events and leases
    writes = {v for _, _, verbs in rules_of(chart, "ClusterRole") + rules_of(chart, "Role")
              for v in verbs} - {"get", "list", "watch"}
    assert writes == {"create", "patch", "update"}


def test_chart_rbac_configmaps_read_only(helm, root):
    # auth-proxy-set-headers: ConfigMaps are read (get/list/watch) wherever
    # Ingresses are, and written nowhere.
    for args in ([], ["--set", "controller.watchNamespace=apps"]):
        docs = render(helm, root, *args)
        grants = [(kind, verbs) for kind in ("ClusterRole", "Role")
                  for _, resources, verbs in rules_of(docs, kind) if "configmaps" in resources]
        assert ("ClusterRole", ("get", "list", "watch")) in grants, grants
        assert all(verbs == ("get", "list", "watch") for _, verbs in grants), grants
        ingress_rule = [r for r in rules_of(docs, "ClusterRole") if "ingresses" in r[1]]
        assert ingress_rule and ingress_rule[0][2] == ("get", "list", "watch")


def controller_args(docs):
    dep = by_kind(docs, "Deployment")[0]
    return [c for c in dep["spec"]["template"]["spec"]["containers"]
            if c["name"] == "controller"][0]["args"]


def test_default_backend_service_is_off_by_default(helm, root):
    assert not [a for a in controller_args(render(helm, root))
                if a.startswith("--default-backend-service")]
    args = controller_args(render(helm, root, "--set",
                                  "controller.defaultBackendService=errors/pages"))
    assert "--default-backend-service=errors/pages" in args


def test_default_backend_service_must_be_namespace_name(helm, root):
    out = subprocess.run([helm, "template", "weir", str(root / "charts/weir"), "--set",
                          "controller.defaultBackendService=pages"],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "defaultBackendService" in out.stderr, out.stderr
