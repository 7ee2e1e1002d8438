#!/usr/bin/env bash
# Start/stop the single-machine Kubernetes control plane used by the cluster tests.
#   tests/cluster/cluster.sh start   # builds the binaries the first time (long), prints env file
#   source "$(tests/cluster/cluster.sh env-file)"; kubectl get ns
#   tests/cluster/cluster.sh stop    # kills etcd, kube-apiserver, kube-controller-manager
#   tests/cluster/cluster.sh destroy # stop + remove the state dir ($WEIR_CLUSTER_DIR)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
case "${1:-}" in
start | stop | destroy | env) exec python3 "$here/kcluster.py" "$1" ;;
env-file) echo "${WEIR_CLUSTER_DIR:-/tmp/weir-cluster}/env" ;;
*)
    echo "usage: $0 start|stop|destroy|env|env-file" >&2
    exit 2
    ;;
esac
