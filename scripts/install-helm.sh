#!/usr/bin/env bash
# Install helm at a pinned version with `go install` (version ldflags set so
# `helm version` is right), cached under $WEIR_CACHE/bin. Prints its path.
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v3.19.0}"
CACHE="${WEIR_CACHE:-/var/cache/weir}"
bin="$CACHE/bin/helm"
if [ -x "$bin" ] && "$bin" version --short 2>/dev/null | grep -q "^${HELM_VERSION}"; then
	echo "$bin"
	exit 0
fi
mkdir -p "$CACHE/bin" "$CACHE/go"
GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOBIN="$CACHE/bin" GOFLAGS=-mod=mod \
	nice -n 10 go install -ldflags "-X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}" \
	"helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" >&2
echo "$bin"
