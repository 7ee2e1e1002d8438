#!/usr/bin/env bash
# Build the weir image without any registry: start dockerd if needed, make the
# base image with debootstrap + docker import (cached under $WEIR_CACHE), then
# docker build. Usage: scripts/build-image.sh [TAG]   (default weir:dev)
set -euo pipefail
cd "$(dirname "$0")/.."
TAG="${1:-weir:dev}"
BASE="weir-base:bookworm"
CACHE="${WEIR_CACHE:-/var/cache/weir}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

for p in docker.io debootstrap; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
done
./scripts/start-dockerd.sh

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
	tarball="$CACHE/base/bookworm-minbase.tar"
	if [ ! -s "$tarball" ]; then
		mkdir -p "$CACHE/base"
		root="$(mktemp -d "$CACHE/base/root.XXXXXX")"
		echo "debootstrap bookworm (minbase) into $root" >&2
		debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$CACHE/base/debootstrap.log" 2>&1
		rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
		tar -C "$root" -cf "$tarball.tmp" .
		mv "$tarball.tmp" "$tarball"
		rm -rf "$root"
	fi
	docker import "$tarball" "$BASE" >/dev/null
fi

# --network host: the build stage reaches Debian's mirror like the host does.
DOCKER_BUILDKIT=0 docker build --network host --build-arg BASE_IMAGE="$BASE" -t "$TAG" . >&2
# Superseded build stages are 800+ MB each: drop those older than a day
# (recent ones stay as the build cache).
docker image prune -f --filter until=24h >/dev/null
docker image inspect "$TAG" --format '{{.Size}}'
