"""The README's security tables, checked row by row against weir-controller.

Each annotation row that says "drops the Ingress" must drop an Ingress that
sets the key (under either prefix) with a value that asks for protection,
while a plain Ingress next to it keeps being served; a "harmless value" must
not drop it. Rows marked enforced/read must be acted on: neither dropped as
unenforced nor reported as unknown. ConfigMap rows are checked the same way
on the weir ConfigMap."""
import pathlib
import re
import subprocess

import pytest

from test_golden import controller

REPO = pathlib.Path(__file__).resolve().parent.parent.parent
ROW = re.compile(r"^\| `([a-z0-9-]+)` \| ([^|]+?) \|\s*([^|]*?)\s*\|$")

OBJECTS = """apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: weir
spec:
  controller: weir.dev/ingress-controller
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
spec:
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: default
  labels:
    kubernetes.io/service-name: web
addressType: IPv4
ports:
- port: 8080
endpoints:
- addresses: [10.0.1.1]
  conditions: {ready: true}
"""


def ingress(name, host, annotations):
    lines = "".join(f"    {k}: '{v}'\n" for k, v in annotations.items())
    return f"""---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: default
  annotations:
    example.com/x: y
{lines}spec:
  ingressClassName: weir
  rules:
  - host: {host}
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: web
            port:
              number: 80
"""


def table(heading):
    """Rows (key, weir, harmless) of the README table under the line that
    starts with heading."""
    text = (REPO / "README.md").read_text().splitlines()
    start = next(i for i, l in enumerate(text) if l.startswith(heading))
    rows = []
    for line in text[start + 1:]:
        m = ROW.match(line)
        if m:
            rows.append((m.group(1), m.group(2).strip(), m.group(3).strip().strip("`")))
        elif rows and not line.startswith("|"):
            break
    return rows


ANNOTATIONS = table("| annotation | weir |")
CONFIGMAP = table("| ConfigMap key | weir |")


def explain(tmp_path, docs):
    (tmp_path / "objects.yaml").write_text(OBJECTS)
    (tmp_path / "ingress.yaml").write_text("".join(docs))
    proc = subprocess.run([str(controller()), "--manifests", str(tmp_path), "--explain"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_tables_found():
    assert len(ANNOTATIONS) >= 40
    assert len(CONFIGMAP) >= 5
    assert all(w.startswith(("enforced", "read", "drops")) for _, w, _ in ANNOTATIONS)


@pytest.mark.parametrize("prefix", ["nginx.ingress.kubernetes.io/", "weir.dev/"])
@pytest.mark.parametrize("key,weir,harmless", ANNOTATIONS, ids=[r[0] for r in ANNOTATIONS])
def test_annotation_row(tmp_path, prefix, key, weir, harmless):
    docs = [ingress("guarded", "guarded.example.com", {prefix + key: "weir-test-value"}),
            ingress("plain", "plain.example.com", {})]
    if harmless:
        docs.append(ingress("harmless", "harmless.example.com", {prefix + key: harmless}))
    out = explain(tmp_path, docs)
    assert "host plain.example.com" in out, out
    diag = f"Ingress default/guarded: {prefix}{key}:"
    if weir.startswith("drops"):
        assert "host guarded.example.com" not in out, out
        reason = "SnippetRefused" if "snippet" in key else "SecurityNotEnforced"
        assert any(diag in l and l.endswith(f"({reason})") for l in out.splitlines()), out
    else:
        assert "SecurityNotEnforced" not in out and "UnknownAnnotation" not in out, out
    if harmless:
        assert "host harmless.example.com" in out, out


# Values the enforced ConfigMap keys accept, and values they cannot read
# ("weir-test-value" is a valid User-Agent or Referer entry).
GOOD = {
    "block-cidrs": "192.0.2.0/24",
    "block-user-agents": "BadBot/1.0, ~*crawler",
    "block-referers": "~*spam",
    "allowlist-source-range": "10.0.0.0/8",
    "whitelist-source-range": "10.0.0.0/8",
    "denylist-source-range": "10.66.0.0/16",
    "ssl-ciphers": "ECDHE-RSA-AES256-GCM-SHA384",
    "ssl-protocols": "TLSv1.3",
}
UNREADABLE = {"block-user-agents": "~*bad(", "block-referers": "ok, ~unclosed["}


def test_enforced_configmap_rows_have_values():
    for key, weir, _ in CONFIGMAP:
        if weir.startswith("enforced") and key != "global-auth-url":
            assert key in GOOD, key


@pytest.mark.parametrize("key,weir,harmless", CONFIGMAP, ids=[r[0] for r in CONFIGMAP])
def test_configmap_row(tmp_path, key, weir, harmless):
    def cm(value):
        return f"""---
apiVersion: v1
kind: ConfigMap
metadata:
  name: weir
  namespace: weir-system
data:
  {key}: '{value}'
"""
    docs = [ingress("covered", "covered.example.com", {}),
            ingress("opted-out", "opted-out.example.com",
                    {"nginx.ingress.kubernetes.io/enable-global-auth": "false"})]
    if weir.startswith("enforced") and key in GOOD:
        # An enforced key with a value weir reads serves every Ingress...
        out = explain(tmp_path, docs + [cm(GOOD[key])])
        assert "host covered.example.com" in out and "SecurityNotEnforced" not in out, out
    # ... and one it cannot read (or an unenforced key) serves none.
    out = explain(tmp_path, docs + [cm(UNREADABLE.get(key, "weir-test-value"))])
    assert "host covered.example.com" not in out, out
    assert f"ConfigMap weir-system/weir: {key}:" in out and "(SecurityNotEnforced)" in out, out
    if "enable-global-auth" in weir:
        assert "host opted-out.example.com" in out, out
    else:
        assert "host opted-out.example.com" not in out, out
    out = explain(tmp_path, docs + [cm("" if harmless == "empty" else harmless)])
    assert "host covered.example.com" in out and "SecurityNotEnforced" not in out, out
