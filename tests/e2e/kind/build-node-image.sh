#!/usr/bin/env bash
# Build, without any container registry, a kind node image for weir's e2e suite:
#   weir-kind-node:<k8s version>   (override with KIND_NODE_IMAGE)
# from Debian packages (systemd, containerd, runc, CNI plugins, iptables) on the local
# weir-base:bookworm image, Kubernetes binaries built from source (tests/cluster/build-k8s.sh,
# tests/e2e/kind/build-node-bins.sh), and control-plane images made here from those binaries,
# named as kubeadm expects them:
#   registry.k8s.io/{kube-apiserver,kube-controller-manager,kube-scheduler,kube-proxy}:<version>
#   registry.k8s.io/coredns/coredns:v1.12.1   registry.k8s.io/pause:3.10.1 (tests/e2e/kind/node/pause.c)
#   registry.k8s.io/etcd:3.6.16-0 (etcd v3.6.16; kind-config-offline.yaml points kubeadm at this
#   tag instead of its default 3.6.5-0)
# The images are saved into the node image and imported into containerd at node boot.
# A second run with unchanged inputs reuses the image. Prints the image name on stdout.
set -euo pipefail
cd "$(dirname "$0")/../../.."
CACHE="${WEIR_CACHE:-/var/cache/weir}"
K8S_VERSION="${WEIR_K8S_VERSION:-v1.34.10}"
ETCD_VERSION="${WEIR_ETCD_VERSION:-v3.6.16}"
COREDNS_VERSION="${WEIR_COREDNS_VERSION:-v1.12.1}"
PAUSE_TAG="3.10.1"
ETCD_TAG="${ETCD_VERSION#v}-0"
BASE="weir-base:bookworm"
IMAGE="${KIND_NODE_IMAGE:-weir-kind-node:$K8S_VERSION}"
SRC=tests/e2e/kind/node
CTX="$CACHE/kind/node-context"
REG=registry.k8s.io

log() { printf '[build-node-image %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
t0=$(date +%s)

./scripts/start-dockerd.sh >&2
WEIR_K8S_VERSION="$K8S_VERSION" WEIR_ETCD_VERSION="$ETCD_VERSION" bash tests/cluster/build-k8s.sh all >/dev/null
WEIR_K8S_VERSION="$K8S_VERSION" WEIR_COREDNS_VERSION="$COREDNS_VERSION" \
	bash tests/e2e/kind/build-node-bins.sh all
KBIN="$CACHE/k8s/$K8S_VERSION/bin"
EBIN="$CACHE/etcd/$ETCD_VERSION/bin"
CBIN="$CACHE/coredns/$COREDNS_VERSION/bin"

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
	[ -s "$CACHE/base/bookworm-minbase.tar" ] || {
		log "no $BASE image and no $CACHE/base/bookworm-minbase.tar: run scripts/build-image.sh once"
		exit 1
	}
	docker import "$CACHE/base/bookworm-minbase.tar" "$BASE" >/dev/null
fi

# Inputs of the image: our files, the binaries, the base image. Same inputs -> reuse.
inputs_hash() {
	{
		sha256sum "$SRC"/* tests/e2e/kind/build-node-image.sh
		stat -c '%n %s %Y' "$KBIN"/kubelet "$KBIN"/kubeadm "$KBIN"/kubectl "$KBIN"/kube-apiserver \
			"$KBIN"/kube-controller-manager "$KBIN"/kube-scheduler "$KBIN"/kube-proxy \
			"$EBIN"/etcd "$CBIN"/coredns
		docker image inspect -f '{{.Id}}' "$BASE"
		echo "$K8S_VERSION $ETCD_TAG $COREDNS_VERSION $PAUSE_TAG"
	} | sha256sum | cut -c1-16
}
hash=$(inputs_hash)
if [ "$(docker image inspect -f '{{index .Config.Labels "weir.inputs"}}' "$IMAGE" 2>/dev/null)" = "$hash" ]; then
	log "$IMAGE is up to date (inputs $hash)"
	echo "$IMAGE"
	exit 0
fi

rm -rf "$CTX"
mkdir -p "$CTX/bin" "$CTX/images" "$CTX/rootfs"

# One-binary images from a tarball: docker import, with PATH and the entrypoint set.
single_binary_image() { # name src dest-in-image entrypoint-json
	local name="$1" src="$2" dest="$3" ep="$4" root="$CTX/rootfs/${1//[\/:]/_}"
	mkdir -p "$root$(dirname "$dest")" "$root/tmp" "$root/etc"
	chmod 1777 "$root/tmp"
	cp "$src" "$root$dest"
	echo 'root:x:0:0:root:/root:/sbin/nologin' >"$root/etc/passwd"
	echo 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin' >>"$root/etc/passwd"
	tar -C "$root" -c . | docker import \
		--change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
		--change "ENTRYPOINT $ep" - "$name" >/dev/null
	log "image $name"
}

gcc -O2 -static -Wall -Wextra -Werror -o "$CTX/pause" "$SRC/pause.c"
single_binary_image "$REG/pause:$PAUSE_TAG" "$CTX/pause" /pause '["/pause"]'
for b in kube-apiserver kube-controller-manager kube-scheduler; do
	single_binary_image "$REG/$b:$K8S_VERSION" "$KBIN/$b" "/usr/local/bin/$b" "[\"/usr/local/bin/$b\"]"
done
single_binary_image "$REG/etcd:$ETCD_TAG" "$EBIN/etcd" /usr/local/bin/etcd '["/usr/local/bin/etcd"]'
single_binary_image "$REG/coredns/coredns:$COREDNS_VERSION" "$CBIN/coredns" /coredns '["/coredns"]'
mkdir -p "$CTX/kube-proxy"
cp "$KBIN/kube-proxy" "$CTX/kube-proxy/"
DOCKER_BUILDKIT=0 nice -n 10 docker build --network host -q --build-arg BASE_IMAGE="$BASE" \
	-f "$SRC/kube-proxy.Dockerfile" -t "$REG/kube-proxy:$K8S_VERSION" "$CTX/kube-proxy" >/dev/null
log "image $REG/kube-proxy:$K8S_VERSION"

docker save -o "$CTX/images/control-plane.tar" \
	"$REG/pause:$PAUSE_TAG" "$REG/kube-apiserver:$K8S_VERSION" \
	"$REG/kube-controller-manager:$K8S_VERSION" "$REG/kube-scheduler:$K8S_VERSION" \
	"$REG/kube-proxy:$K8S_VERSION" "$REG/etcd:$ETCD_TAG" "$REG/coredns/coredns:$COREDNS_VERSION"
log "saved control-plane images: $(du -h "$CTX/images/control-plane.tar" | cut -f1)"

cp "$KBIN/kubelet" "$KBIN/kubeadm" "$KBIN/kubectl" "$CTX/bin/"
cp "$SRC"/containerd-config.toml "$SRC"/10-weir-ptp.conflist "$SRC"/kubelet.service \
	"$SRC"/weir-preload-images.service "$SRC"/10-kubeadm.conf "$SRC"/weir-kind-entrypoint \
	"$SRC"/weir-preload-images "$SRC"/weir-kubelet-cgroups "$CTX/"
echo "$K8S_VERSION" >"$CTX/version"
rm -rf "$CTX/rootfs" "$CTX/kube-proxy"
DOCKER_BUILDKIT=0 nice -n 10 docker build --network host -q --build-arg BASE_IMAGE="$BASE" \
	--label "weir.inputs=$hash" -f "$SRC/node.Dockerfile" -t "$IMAGE" "$CTX" >/dev/null
rm -rf "$CTX"
log "built $IMAGE in $(($(date +%s) - t0)) s"
echo "$IMAGE"
