# Echo app for the kind suite: the same HTTP + WebSocket echo backend the
# cluster tests run, on Debian's python3-aiohttp. Built from the local
# debootstrap base, so no registry is needed. The repo's .dockerignore leaves tests/cluster out
# of the root context, so run.sh builds this from a staged context holding echo_backend.py.
ARG BASE_IMAGE=weir-base:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends python3-aiohttp && rm -rf /var/lib/apt/lists/*
COPY echo_backend.py /app/echo_backend.py
USER 65532:65532
ENTRYPOINT ["python3", "/app/echo_backend.py", "--name", "kind-echo", "--listen", "0.0.0.0:8080"]
