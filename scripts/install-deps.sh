#!/usr/bin/env bash
# Install everything weir needs to build, run and test on Debian bookworm.
# Idempotent: a second run only checks. Run as root.
set -euo pipefail

APT_PACKAGES=(
	build-essential cmake ninja-build pkg-config git curl ca-certificates openssl
	node-llhttp libwebsockets-dev libcurl4-openssl-dev libjson-c-dev libyaml-dev
	libssl-dev libpcre2-dev libcrypt-dev zlib1g-dev libbrotli-dev libnghttp2-dev apache2-utils
	python3 python3-pip python3-venv iproute2 procps psmisc
	nginx-light haproxy wrk etcd-server etcd-client clang-format
	clang libclang-rt-dev php-fpm nghttp2-client chromium
)
PIP_PACKAGES=(pytest websockets aiohttp requests pyyaml h2 grpcio)

missing=()
for p in "${APT_PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts these services on install; weir's tests and benchmarks run
# their own instances on their own ports.
for svc in nginx haproxy etcd php8.2-fpm; do
	if command -v service >/dev/null 2>&1; then service "$svc" stop >/dev/null 2>&1 || true; fi
done

py=python3
if ! $py -c 'import pytest, websockets, aiohttp, requests, yaml, h2, grpc' 2>/dev/null; then
	$py -m pip install -q --disable-pip-version-check "${PIP_PACKAGES[@]}" 2>/dev/null ||
		$py -m pip install -q --disable-pip-version-check --break-system-packages "${PIP_PACKAGES[@]}"
fi

# Go >= 1.24 for the Kubernetes, etcd, helm and kind builds of the tests.
"$(dirname "$0")/install-go.sh"
