#!/usr/bin/env bash
# Install oauth2-proxy (the forward-auth server the integration tests run
# weir against) at a pinned version with `go install` through the Go module
# proxy, version ldflags set, cached under $WEIR_CACHE/bin. Prints its path.
set -euo pipefail
OAUTH2_PROXY_VERSION="${OAUTH2_PROXY_VERSION:-v7.15.6}"
CACHE="${WEIR_CACHE:-/var/cache/weir}"
bin="$CACHE/bin/oauth2-proxy"
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q " ${OAUTH2_PROXY_VERSION} "; then
	echo "$bin"
	exit 0
fi
mkdir -p "$CACHE/bin" "$CACHE/go"
GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOBIN="$CACHE/bin" GOFLAGS=-mod=mod \
	nice -n 10 go install \
	-ldflags "-X github.com/oauth2-proxy/oauth2-proxy/v7/pkg/version.VERSION=${OAUTH2_PROXY_VERSION}" \
	"github.com/oauth2-proxy/oauth2-proxy/v7@${OAUTH2_PROXY_VERSION}" >&2
echo "$bin"
