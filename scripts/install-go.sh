#!/usr/bin/env bash
# Make sure a Go >= 1.24 is on PATH (Kubernetes 1.34, helm and kind need it).
# A machine that has one keeps it. Otherwise Debian's golang-go (1.19) is
# installed and used to fetch the pinned toolchain module
# golang.org/toolchain from the Go module proxy (the same module `go` itself
# uses to switch toolchains), which is unpacked into $WEIR_CACHE/go-toolchain
# and linked as /usr/local/bin/go.
set -euo pipefail
GO_VERSION="${WEIR_GO_VERSION:-1.25.4}"
CACHE="${WEIR_CACHE:-/var/cache/weir}"

new_enough() {
	local v
	v="$("$1" env GOVERSION 2>/dev/null)" || return 1
	v="${v#go}"
	local major="${v%%.*}" rest="${v#*.}"
	local minor="${rest%%.*}"
	[ "$major" -gt 1 ] || { [ "$major" -eq 1 ] && [ "${minor%%[!0-9]*}" -ge 24 ]; }
}

if command -v go >/dev/null 2>&1 && new_enough "$(command -v go)"; then
	exit 0
fi
root="$CACHE/go-toolchain/go$GO_VERSION"
if [ ! -x "$root/bin/go" ]; then
	if ! command -v go >/dev/null 2>&1; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go ca-certificates >/dev/null
	fi
	bootstrap="$(command -v go)"
	mod="golang.org/toolchain@v0.0.1-go$GO_VERSION.linux-amd64"
	tmp="$(mktemp -d)"
	dir="$(cd "$tmp" && GOMODCACHE="$tmp/mod" GOFLAGS=-mod=mod GO111MODULE=on \
		"$bootstrap" mod download -json "$mod" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
	[ -n "$dir" ] && [ -f "$dir/bin/go" ] || { echo "could not fetch $mod" >&2; exit 1; }
	mkdir -p "$(dirname "$root")"
	rm -rf "$root.tmp"
	cp -r "$dir" "$root.tmp"
	chmod -R u+w "$root.tmp"
	# module zips carry no file modes: make the toolchain's programs executable
	chmod +x "$root.tmp"/bin/* "$root.tmp"/pkg/tool/*/*
	mv "$root.tmp" "$root"
	chmod -R u+w "$tmp" && rm -rf "$tmp"
fi
ln -sf "$root/bin/go" /usr/local/bin/go
ln -sf "$root/bin/gofmt" /usr/local/bin/gofmt
hash -r
new_enough /usr/local/bin/go || { echo "go at /usr/local/bin/go is still too old" >&2; exit 1; }
