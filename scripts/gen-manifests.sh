#!/usr/bin/env bash
# Regenerate manifests/weir.yaml from the Helm chart with default values.
# `scripts/gen-manifests.sh --check` exits 1 when the checked-in file is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
helm="$(./scripts/install-helm.sh)"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
{
	echo "# GENERATED from charts/weir by scripts/gen-manifests.sh (helm template, default values)."
	echo "# Do not edit: change the chart and run the script again."
	echo "apiVersion: v1"
	echo "kind: Namespace"
	echo "metadata:"
	echo "  name: weir-system"
	"$helm" template weir charts/weir --namespace weir-system --skip-tests
} >"$out"
if [ "${1:-}" = "--check" ]; then
	if ! diff -u manifests/weir.yaml "$out"; then
		echo "manifests/weir.yaml is out of date: run scripts/gen-manifests.sh" >&2
		exit 1
	fi
	exit 0
fi
mkdir -p manifests
cp "$out" manifests/weir.yaml
echo "wrote manifests/weir.yaml"
