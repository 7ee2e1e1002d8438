#!/usr/bin/env bash
# Build (once, cached) the node-side Kubernetes binaries a kind node image needs, from the Go
# module proxy, with the same wrapper module tests/cluster/build-k8s.sh generates:
#   $WEIR_CACHE/k8s/<version>/bin/{kubelet,kubeadm,kube-scheduler,kube-proxy}
# (kube-apiserver, kube-controller-manager and kubectl come from build-k8s.sh itself), and
#   $WEIR_CACHE/coredns/<version>/bin/coredns
# (the cluster DNS addon kubeadm installs; the chart's helm test resolves a Service name).
# kind's kindnetd is not built: the offline node image uses a static bridge CNI config.
# A second run finds the binaries and exits at once.
#
# Env: WEIR_CACHE (default /var/cache/weir), WEIR_K8S_VERSION (default v1.34.10),
#      WEIR_COREDNS_VERSION (default v1.12.1, the tag kubeadm v1.34 deploys),
#      WEIR_BUILD_JOBS (go build -p, default 2).
set -euo pipefail
cd "$(dirname "$0")/../../.."
K8S_VERSION="${WEIR_K8S_VERSION:-v1.34.10}"
CACHE="${WEIR_CACHE:-/var/cache/weir}"
JOBS="${WEIR_BUILD_JOBS:-2}"
COREDNS_VERSION="${WEIR_COREDNS_VERSION:-v1.12.1}"
K8S_DIR="$CACHE/k8s/$K8S_VERSION"
COREDNS_DIR="$CACHE/coredns/$COREDNS_VERSION"
BINS=(kubelet kubeadm kube-scheduler kube-proxy)

log() { printf '[build-node-bins %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

export GOMODCACHE="$CACHE/go/mod"
export GOCACHE="$CACHE/go/cache"
export GOPROXY="${GOPROXY:-https://proxy.golang.org,direct}"
export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0
export GOTOOLCHAIN=local

build_k8s_node() {
	missing=()
	for b in "${BINS[@]}"; do
		[ -x "$K8S_DIR/bin/$b" ] || missing+=("$b")
	done
	if [ "${#missing[@]}" -eq 0 ]; then
		log "already built: ${BINS[*]} in $K8S_DIR/bin"
		return 0
	fi
	# The wrapper module (and the three control-plane binaries) come from build-k8s.sh.
	WEIR_K8S_VERSION="$K8S_VERSION" bash tests/cluster/build-k8s.sh k8s >/dev/null
	exec 9>"$CACHE/.build-k8s.lock"
	flock 9
	t0=$(date +%s)
	major="${K8S_VERSION#v}"
	major="${major%%.*}"
	minor="${K8S_VERSION#v*.}"
	minor="${minor%%.*}"
	bdate=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	# kubeadm derives the control-plane image tags from its own gitVersion, and kubelet reports
	# it as the node version: both must be the exact release version.
	ld="-s -w"
	for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld="$ld -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor"
		ld="$ld -X $p.gitTreeState=clean -X $p.buildDate=$bdate"
	done
	pkgs=()
	for b in "${missing[@]}"; do
		pkgs+=("k8s.io/kubernetes/cmd/$b")
	done
	log "go build (nice, -p $JOBS): ${missing[*]}"
	(cd "$K8S_DIR/wrapper" && nice -n 10 go build -p "$JOBS" -trimpath -ldflags "$ld" \
		-o "$K8S_DIR/bin.node.tmp/" "${pkgs[@]}")
	for b in "${missing[@]}"; do
		mv -f "$K8S_DIR/bin.node.tmp/$b" "$K8S_DIR/bin/$b"
	done
	rmdir "$K8S_DIR/bin.node.tmp" 2>/dev/null || true
	log "built ${missing[*]} in $(($(date +%s) - t0)) s"
	exec 9>&-
}

build_coredns() {
	if [ -x "$COREDNS_DIR/bin/coredns" ]; then
		log "coredns $COREDNS_VERSION already built in $COREDNS_DIR/bin"
		return 0
	fi
	local t0 w="$COREDNS_DIR/wrapper"
	t0=$(date +%s)
	mkdir -p "$w" "$COREDNS_DIR/bin"
	# The main package is the module root; its plugin list (core/plugin/zplugin.go) is
	# generated and committed upstream, so a plain build gives the standard plugin set.
	printf 'module weir.test/corednsbuild\n\ngo 1.24.0\n\nrequire github.com/coredns/coredns %s\n' \
		"$COREDNS_VERSION" >"$w/go.mod"
	printf 'package corednsbuild\n' >"$w/doc.go"
	log "coredns $COREDNS_VERSION: go build (nice, -p $JOBS)"
	(cd "$w" && nice -n 10 go mod download github.com/coredns/coredns &&
		nice -n 10 go build -p "$JOBS" -trimpath -ldflags "-s -w" -o "$COREDNS_DIR/bin/coredns.tmp" \
			github.com/coredns/coredns)
	mv -f "$COREDNS_DIR/bin/coredns.tmp" "$COREDNS_DIR/bin/coredns"
	log "built coredns in $(($(date +%s) - t0)) s"
}

case "${1:-all}" in
k8s) build_k8s_node ;;
coredns) build_coredns ;;
all)
	build_k8s_node
	build_coredns
	;;
paths)
	echo "K8S_BIN=$K8S_DIR/bin"
	echo "COREDNS_BIN=$COREDNS_DIR/bin"
	;;
*)
	echo "usage: $0 [all|k8s|coredns|paths]" >&2
	exit 2
	;;
esac
