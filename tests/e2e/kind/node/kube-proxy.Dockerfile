# kube-proxy image for the offline kind node: the binary built from source plus Debian's
# iptables/conntrack, which kube-proxy's iptables mode runs.
ARG BASE_IMAGE=weir-base:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends iptables conntrack nftables kmod \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
COPY kube-proxy /usr/local/bin/kube-proxy
ENTRYPOINT ["/usr/local/bin/kube-proxy"]
