#!/usr/bin/env bash
# Build (once, cached) the real Kubernetes control-plane binaries that weir's cluster tests run:
#   $WEIR_CACHE/k8s/<version>/bin/{kube-apiserver,kube-controller-manager,kubectl}
#   $WEIR_CACHE/etcd/<version>/bin/{etcd,etcdctl}
# from the Go module proxy, through small wrapper modules generated in the cache dir.
# A second run finds the binaries and exits at once. Prints timings.
#
# Env: WEIR_CACHE (default /var/cache/weir), WEIR_K8S_VERSION (default below),
#      WEIR_ETCD_VERSION (default below), WEIR_BUILD_JOBS (go build -p, default 2).
set -euo pipefail

# v1.34.10: the newest 1.34 patch whose go.mod the checksum database (reached through the module
# proxy) can verify; v1.34.11/12 are served by the proxy but their sumdb lookups answer 404.
K8S_VERSION="${WEIR_K8S_VERSION:-v1.34.10}"
# gitCommit for /version: the proxy's .info carries the tag's commit for some versions only.
K8S_COMMIT="${WEIR_K8S_COMMIT:-}"
# kube-apiserver 1.34 supports etcd >= 3.5 only (Debian's etcd-server 3.4 is too old); we build
# 3.6.x, the line whose client Kubernetes 1.34 itself uses.
ETCD_VERSION="${WEIR_ETCD_VERSION:-v3.6.16}"
CACHE="${WEIR_CACHE:-/var/cache/weir}"
JOBS="${WEIR_BUILD_JOBS:-2}"

export GOMODCACHE="$CACHE/go/mod"
export GOCACHE="$CACHE/go/cache"
export GOPROXY="${GOPROXY:-https://proxy.golang.org,direct}"
export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0
export GOTOOLCHAIN=local
# The checksum database is only reachable through the module proxy here; go does that by itself
# (<proxy>/sumdb/...). Set GONOSUMDB/GOSUMDB=off in the environment only if that fails.

K8S_DIR="$CACHE/k8s/$K8S_VERSION"
ETCD_DIR="$CACHE/etcd/$ETCD_VERSION"
mkdir -p "$GOMODCACHE" "$GOCACHE" "$K8S_DIR/bin" "$ETCD_DIR/bin"

now() { date +%s; }
T0=$(now)

log() { printf '[build-k8s %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

have_all() {
    local d="$1"
    shift
    local b
    for b in "$@"; do
        [ -x "$d/bin/$b" ] || return 1
    done
    return 0
}

build_k8s() {
    if have_all "$K8S_DIR" kube-apiserver kube-controller-manager kubectl; then
        log "kubernetes $K8S_VERSION already built in $K8S_DIR/bin"
        return 0
    fi
    local t=$(now)
    local w="$K8S_DIR/wrapper"
    mkdir -p "$w"
    local staging_ver="v0.${K8S_VERSION#v1.}"
    log "kubernetes $K8S_VERSION (staging modules $staging_ver): resolving"
    local dl
    dl=$(cd /tmp && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" || true)
    if printf '%s' "$dl" | grep -q '"Error"'; then
        log "download failed: $dl"
        return 1
    fi
    if [ -z "$K8S_COMMIT" ]; then
        K8S_COMMIT=$(sed -n 's/.*"Hash": *"\([0-9a-f]\{40\}\)".*/\1/p' \
            "$GOMODCACHE/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.info" | head -1)
    fi
    local kmod="$GOMODCACHE/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod"
    [ -s "$kmod" ] || {
        log "missing $kmod"
        return 1
    }
    # Every staging module is required as v0.0.0 and replaced by ./staging/... in the upstream
    # go.mod; a dependent module must replace each by its published version.
    local staging
    staging=$(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$kmod" | sort -u)
    [ -n "$staging" ] || {
        log "no staging modules found in $kmod"
        return 1
    }
    {
        echo "module weir.test/k8sbuild"
        echo
        echo "go 1.24.0"
        echo
        echo "godebug default=go1.24"
        echo
        echo "require k8s.io/kubernetes $K8S_VERSION"
        echo
        echo "replace ("
        local m
        for m in $staging; do
            echo "	$m => $m $staging_ver"
        done
        echo ")"
    } >"$w/go.mod"
    # Keep the upstream module's indirect pins (otherwise MVS may pick other versions).
    awk '/^require \(/{r=1;next} r&&/^\)/{r=0} r&&$1!~/^k8s\.io\//&&$2~/^v/{print $1" "$2}' "$kmod" |
        while read -r mod ver; do
            printf 'require %s %s\n' "$mod" "$ver"
        done >>"$w/go.mod"
    printf 'package k8sbuild\n' >"$w/doc.go"
    (cd "$w" && nice -n 10 go mod download k8s.io/kubernetes)
    local pkg="k8s.io/component-base/version"
    local cpkg="k8s.io/client-go/pkg/version"
    local bdate
    bdate=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    local major="${K8S_VERSION#v}"
    major="${major%%.*}"
    local minor="${K8S_VERSION#v*.}"
    minor="${minor%%.*}"
    local ld="-s -w"
    local p
    for p in "$pkg" "$cpkg"; do
        ld="$ld -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor"
        # Empty when unknown (rather than the source's "$Format:%H$" placeholder).
        ld="$ld -X $p.gitTreeState=clean -X $p.buildDate=$bdate -X $p.gitCommit=$K8S_COMMIT"
    done
    log "kubernetes: go build (nice, -p $JOBS); this takes long on 2 cores"
    (cd "$w" && nice -n 10 go build -p "$JOBS" -trimpath -ldflags "$ld" -o "$K8S_DIR/bin.tmp/" \
        k8s.io/kubernetes/cmd/kube-apiserver \
        k8s.io/kubernetes/cmd/kube-controller-manager \
        k8s.io/kubernetes/cmd/kubectl)
    local b
    for b in kube-apiserver kube-controller-manager kubectl; do
        mv -f "$K8S_DIR/bin.tmp/$b" "$K8S_DIR/bin/$b"
    done
    rmdir "$K8S_DIR/bin.tmp" 2>/dev/null || true
    log "kubernetes built in $(($(now) - t)) s"
    "$K8S_DIR/bin/kubectl" version --client >&2 || true
}

build_etcd() {
    if have_all "$ETCD_DIR" etcd etcdctl; then
        log "etcd $ETCD_VERSION already built in $ETCD_DIR/bin"
        return 0
    fi
    local t=$(now)
    local w="$ETCD_DIR/wrapper"
    mkdir -p "$w"
    # The etcd server's main package is the root of module go.etcd.io/etcd/server/v3 and
    # etcdctl's the root of go.etcd.io/etcd/etcdctl/v3.
    cat >"$w/go.mod" <<EOF
module weir.test/etcdbuild

go 1.24.0

require (
	go.etcd.io/etcd/server/v3 $ETCD_VERSION
	go.etcd.io/etcd/etcdctl/v3 $ETCD_VERSION
)
EOF
    printf 'package etcdbuild\n' >"$w/doc.go"
    log "etcd $ETCD_VERSION: go build (nice)"
    (cd "$w" && nice -n 10 go mod download go.etcd.io/etcd/server/v3 go.etcd.io/etcd/etcdctl/v3)
    local ld="-s -w"
    (cd "$w" && nice -n 10 go build -p "$JOBS" -trimpath -ldflags "$ld" -o "$ETCD_DIR/bin.tmp/etcd" \
        go.etcd.io/etcd/server/v3)
    (cd "$w" && nice -n 10 go build -p "$JOBS" -trimpath -ldflags "$ld" -o "$ETCD_DIR/bin.tmp/etcdctl" \
        go.etcd.io/etcd/etcdctl/v3)
    mv -f "$ETCD_DIR/bin.tmp/etcd" "$ETCD_DIR/bin/etcd"
    mv -f "$ETCD_DIR/bin.tmp/etcdctl" "$ETCD_DIR/bin/etcdctl"
    rmdir "$ETCD_DIR/bin.tmp" 2>/dev/null || true
    log "etcd built in $(($(now) - t)) s"
    "$ETCD_DIR/bin/etcd" --version >&2 || true
}

if [ "${1:-}" = paths ]; then
    echo "K8S_BIN=$K8S_DIR/bin"
    echo "ETCD_BIN=$ETCD_DIR/bin"
    exit 0
fi

# One builder at a time (the fixture and a human may both call us).
exec 9>"$CACHE/.build-k8s.lock"
flock 9

case "${1:-all}" in
etcd) build_etcd ;;
k8s) build_k8s ;;
all)
    build_etcd
    build_k8s
    ;;
*)
    echo "usage: $0 [all|etcd|k8s|paths]" >&2
    exit 2
    ;;
esac
log "total $(($(now) - T0)) s"
echo "K8S_BIN=$K8S_DIR/bin"
echo "ETCD_BIN=$ETCD_DIR/bin"
