#!/usr/bin/env bash
# weir end-to-end on kind: create a cluster with NodePorts mapped to loopback,
# build and load the weir and echo images, helm install the chart, deploy the
# echo app and run the user-level scenarios (tests/e2e/kind/test_kind.py).
#
# Needs a Docker that can run kind node containers and a kind node image
# (KIND_NODE_IMAGE, default kind's own for its version, pulled from its
# registry). See tests/e2e/kind/README.md for what blocks it on an offline
# machine.
set -euo pipefail
cd "$(dirname "$0")/../../.."
CACHE="${WEIR_CACHE:-/var/cache/weir}"
KIND_VERSION="${KIND_VERSION:-v0.30.0}"
CLUSTER="${KIND_CLUSTER:-weir-e2e}"
export KUBECONFIG="$CACHE/kind/$CLUSTER.kubeconfig"
mkdir -p "$CACHE/kind" "$CACHE/bin"

./scripts/install-deps.sh
./scripts/start-dockerd.sh
helm="$(./scripts/install-helm.sh)"
if ! "$CACHE/bin/kind" version 2>/dev/null | grep -q "$KIND_VERSION"; then
	GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOBIN="$CACHE/bin" \
		go install "sigs.k8s.io/kind@$KIND_VERSION"
fi
kind="$CACHE/bin/kind"
kubectl="$(ls "$CACHE"/k8s/*/bin/kubectl 2>/dev/null | head -1)"
[ -x "$kubectl" ] || { bash tests/cluster/build-k8s.sh all; kubectl="$(ls "$CACHE"/k8s/*/bin/kubectl | head -1)"; }

./scripts/build-image.sh weir:e2e >/dev/null
DOCKER_BUILDKIT=0 docker build --network host -q -f tests/e2e/kind/echo.Dockerfile \
	-t weir-echo:e2e . >/dev/null

"$kind" delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
node_image=()
[ -n "${KIND_NODE_IMAGE:-}" ] && node_image=(--image "$KIND_NODE_IMAGE")
"$kind" create cluster --name "$CLUSTER" --config tests/e2e/kind/kind-config.yaml \
	"${node_image[@]}" --kubeconfig "$KUBECONFIG" --wait 180s
trap '[ -n "${KEEP_CLUSTER:-}" ] || "$kind" delete cluster --name "$CLUSTER"' EXIT
"$kind" load docker-image weir:e2e weir-echo:e2e --name "$CLUSTER"

"$helm" install weir charts/weir --namespace weir-system --create-namespace \
	--set image.tag=e2e --set image.pullPolicy=Never --set replicaCount=1 \
	--set service.type=NodePort --set service.nodePorts.http=30080 \
	--set service.nodePorts.https=30443 --wait --timeout 180s
"$kubectl" apply -f tests/e2e/kind/echo-app.yaml
"$kubectl" rollout status deployment/echo --timeout=120s
"$helm" test weir --namespace weir-system --timeout 120s

KUBECTL="$kubectl" WEIR_E2E_HTTP=127.0.0.1:30080 WEIR_E2E_HTTPS=127.0.0.1:30443 \
	python3 -m pytest -q tests/e2e/kind/test_kind.py
