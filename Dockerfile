# weir image: both programs (weir-controller, weir-proxy) plus weir-probe.
# Build stage: Debian bookworm with the build dependencies from Debian.
# Runtime stage: from scratch, holding only the binaries, the shared
# libraries they load (found with ldd), and a passwd entry for the non-root
# user. No shell, no package manager; works with a read-only root filesystem.
#
# The base image name is local: scripts/build-image.sh makes it with
# debootstrap + docker import, so no registry is needed.
ARG BASE_IMAGE=weir-base:bookworm

FROM ${BASE_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
        build-essential cmake ninja-build pkg-config node-llhttp libwebsockets-dev \
        libcurl4-openssl-dev libjson-c-dev libyaml-dev libssl-dev libpcre2-dev libcrypt-dev \
        zlib1g-dev libbrotli-dev libnghttp2-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY common ./common
COPY proxy ./proxy
COPY controller ./controller
COPY tools ./tools
COPY tests/unit ./tests/unit
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
    && cmake --build /build \
    && strip /build/weir-proxy /build/weir-controller /build/weir-probe
# Collect the binaries and every shared library they load into /out.
RUN set -e; mkdir -p /out/usr/local/bin /out/etc /out/run/weir /out/tmp; \
    cp /build/weir-proxy /build/weir-controller /build/weir-probe /out/usr/local/bin/; \
    for lib in $(ldd /build/weir-proxy /build/weir-controller /build/weir-probe \
                 | awk '/=>/ {print $3} /^\t\/lib/ {print $1}' | sort -u); do \
        mkdir -p "/out$(dirname "$lib")"; cp -L "$lib" "/out$lib"; \
    done; \
    echo 'weir:x:65532:65532:weir:/nonexistent:/usr/sbin/nologin' > /out/etc/passwd; \
    echo 'weir:x:65532:' > /out/etc/group; \
    chown 65532:65532 /out/run/weir; chmod 1777 /out/tmp

FROM scratch
COPY --from=build /out/ /
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/weir-proxy"]
CMD ["--help"]
