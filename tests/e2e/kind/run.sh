#!/usr/bin/env bash
# weir end-to-end on kind: create a cluster with NodePorts mapped to loopback,
# build and load the weir and echo images, helm install the chart, deploy the
# echo app and run the user-level scenarios (tests/e2e/kind/test_kind.py).
#
# Node image:
# - default (offline): tests/e2e/kind/build-node-image.sh builds weir-kind-node:<k8s version>
#   from Debian packages and Kubernetes built from source (no registry needed), used with
#   tests/e2e/kind/kind-config-offline.yaml;
# - KIND_NODE_IMAGE=<image>: that image (with kind-config-offline.yaml if its name starts
#   with weir-kind-node, else kind-config.yaml);
# - WEIR_KIND_ONLINE=1: kind's own default node image, pulled from its registry.
# See tests/e2e/kind/README.md.
#
# Env: KIND_CLUSTER (default weir-e2e), KEEP_CLUSTER=1 keeps the cluster afterwards,
#      WEIR_CACHE (default /var/cache/weir), KIND_VERSION (default v0.30.0).
set -euo pipefail
cd "$(dirname "$0")/../../.."
CACHE="${WEIR_CACHE:-/var/cache/weir}"
KIND_VERSION="${KIND_VERSION:-v0.30.0}"
K8S_VERSION="${WEIR_K8S_VERSION:-v1.34.10}"
CLUSTER="${KIND_CLUSTER:-weir-e2e}"
export KUBECONFIG="$CACHE/kind/$CLUSTER.kubeconfig"
LOGS="$CACHE/kind/logs"
mkdir -p "$CACHE/kind" "$CACHE/bin" "$LOGS"

T0=$(date +%s)
step() { printf '[kind-e2e %s +%ss] %s\n' "$(date -u +%H:%M:%S)" "$(($(date +%s) - T0))" "$*" >&2; }

./scripts/install-deps.sh
./scripts/start-dockerd.sh
helm="$(./scripts/install-helm.sh)"
if ! "$CACHE/bin/kind" version 2>/dev/null | grep -q "$KIND_VERSION"; then
	GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOBIN="$CACHE/bin" \
		go install "sigs.k8s.io/kind@$KIND_VERSION"
fi
kind="$CACHE/bin/kind"
kubectl="$CACHE/k8s/$K8S_VERSION/bin/kubectl"
[ -x "$kubectl" ] || WEIR_K8S_VERSION="$K8S_VERSION" bash tests/cluster/build-k8s.sh all >/dev/null

# docker exec into a privileged kind node needs the runc wrapper to drop CAP_SYS_RESOURCE from
# exec'd processes too (this machine's bounding set lacks it); say so instead of failing later.
probe="weir-kind-exec-probe-$$"
if docker run -d --privileged --name "$probe" weir-base:bookworm sleep 60 >/dev/null 2>&1; then
	if ! docker exec "$probe" true >"$LOGS/exec-probe.err" 2>&1; then
		docker rm -f "$probe" >/dev/null 2>&1 || true
		echo "docker exec into a --privileged container fails here:" >&2
		cat "$LOGS/exec-probe.err" >&2
		echo "kind needs it (see tests/e2e/kind/README.md, 'runc wrapper')." >&2
		exit 1
	fi
	docker rm -f "$probe" >/dev/null 2>&1 || true
fi

config=tests/e2e/kind/kind-config.yaml
node_image=()
if [ -n "${KIND_NODE_IMAGE:-}" ]; then
	node_image=(--image "$KIND_NODE_IMAGE")
	case "$KIND_NODE_IMAGE" in weir-kind-node*) config=tests/e2e/kind/kind-config-offline.yaml ;; esac
elif [ -z "${WEIR_KIND_ONLINE:-}" ]; then
	step "building the offline node image"
	img="$(WEIR_K8S_VERSION="$K8S_VERSION" bash tests/e2e/kind/build-node-image.sh)"
	node_image=(--image "$img")
	config=tests/e2e/kind/kind-config-offline.yaml
fi

step "building weir:e2e and weir-echo:e2e"
./scripts/build-image.sh weir:e2e >/dev/null
# The root .dockerignore leaves tests/cluster out: build the echo image from a staged context.
echo_ctx="$(mktemp -d)"
cp tests/cluster/echo_backend.py "$echo_ctx/"
DOCKER_BUILDKIT=0 nice -n 10 docker build --network host -q -f tests/e2e/kind/echo.Dockerfile \
	-t weir-echo:e2e "$echo_ctx" >/dev/null
rm -rf "$echo_ctx"

step "creating kind cluster $CLUSTER (${node_image[*]:-kind default image}, $config)"
"$kind" delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
cleanup() {
	rc=$?
	if [ "$rc" -ne 0 ]; then
		d="$LOGS/$CLUSTER-$(date -u +%Y%m%dT%H%M%S)"
		"$kind" export logs "$d" --name "$CLUSTER" >/dev/null 2>&1 && echo "cluster logs: $d" >&2
	fi
	[ -n "${KEEP_CLUSTER:-}" ] || "$kind" delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
	step "done (rc $rc)"
}
trap cleanup EXIT
"$kind" create cluster --name "$CLUSTER" --config "$config" \
	"${node_image[@]}" --kubeconfig "$KUBECONFIG" --wait 180s
step "cluster ready"
"$kind" load docker-image weir:e2e weir-echo:e2e --name "$CLUSTER"

step "helm install"
"$helm" install weir charts/weir --namespace weir-system --create-namespace \
	--set image.tag=e2e --set image.pullPolicy=Never --set replicaCount=1 \
	--set service.type=NodePort --set service.nodePorts.http=30080 \
	--set service.nodePorts.https=30443 --wait --timeout 180s
"$kubectl" apply -f tests/e2e/kind/echo-app.yaml
"$kubectl" rollout status deployment/echo --timeout=120s
"$helm" test weir --namespace weir-system --timeout 120s

step "pytest tests/e2e/kind/test_kind.py"
KUBECTL="$kubectl" WEIR_E2E_HTTP=127.0.0.1:30080 WEIR_E2E_HTTPS=127.0.0.1:30443 \
	python3 -m pytest -q tests/e2e/kind/test_kind.py
