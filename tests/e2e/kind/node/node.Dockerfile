# Offline kind node image for weir's e2e suite: Debian bookworm with systemd, containerd, runc,
# CNI plugins and iptables from Debian, kubelet/kubeadm/kubectl built from source, and the
# control-plane images built from source (docker-save archive under /kind/images) that a
# oneshot unit imports into containerd at boot. Built by tests/e2e/kind/build-node-image.sh
# from a staged context; never pulls from a registry.
ARG BASE_IMAGE=weir-base:bookworm
FROM ${BASE_IMAGE}
ENV container=docker DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
        systemd systemd-sysv dbus containerd runc containernetworking-plugins \
        iptables nftables conntrack ethtool socat iproute2 kmod ca-certificates procps \
        util-linux mount bash libseccomp2 \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
# Units that make no sense in a node container.
RUN systemctl mask getty@tty1.service console-getty.service serial-getty@.service \
        systemd-udevd.service systemd-udev-trigger.service systemd-udevd-control.socket \
        systemd-udevd-kernel.socket systemd-modules-load.service systemd-remount-fs.service \
        sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
        systemd-firstboot.service systemd-journald-audit.socket \
    && rm -f /etc/machine-id && touch /etc/machine-id
COPY bin/kubelet bin/kubeadm bin/kubectl /usr/bin/
COPY containerd-config.toml /etc/containerd/config.toml
COPY 10-weir-ptp.conflist /etc/cni/net.d/10-weir-ptp.conflist
COPY kubelet.service weir-preload-images.service /etc/systemd/system/
COPY 10-kubeadm.conf /etc/systemd/system/kubelet.service.d/10-kubeadm.conf
COPY weir-kind-entrypoint weir-preload-images weir-kubelet-cgroups /usr/local/bin/
COPY version /kind/version
COPY images/ /kind/images/
RUN systemctl enable containerd.service kubelet.service weir-preload-images.service \
    && mkdir -p /etc/kubernetes/manifests
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/weir-kind-entrypoint", "/sbin/init"]
