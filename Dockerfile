# The reconciler daemon: `reconciler run --config /etc/reconciler/config.yaml`.
# Build: docker build -t reconciler .   (see docs/status-page.md and deploy/kubernetes/)

# kustomize and helm, which render Kustomize and Helm apps: built from the Go
# modules pinned in .ci/tools by the same script CI runs (.ci/build-tools).
FROM golang:1.26-bookworm AS tools
WORKDIR /src
COPY .ci/build-tools /src/.ci/build-tools
COPY .ci/tools /src/.ci/tools
RUN bin="$(RECONCILER_CACHE=/build bash .ci/build-tools)" \
 && mkdir -p /out \
 && cp "$bin/kustomize" "$bin/helm" /out/ \
 && /out/kustomize version && /out/helm version --short

FROM python:3.11-slim-bookworm

# git for the mirror's tooling and hooks, openssh-client for ssh:// remotes and VM targets.
# Debian's package versions move within bookworm; the base image tag pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client \
 && rm -rf /var/lib/apt/lists/*
COPY --from=tools /out/kustomize /out/helm /usr/local/bin/

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RECONCILER_DATA_DIR=/var/lib/reconciler

WORKDIR /src
# Dependencies first (pinned), so a code change does not reinstall them.
COPY deploy/constraints.txt /src/deploy/constraints.txt
COPY pyproject.toml README.md /src/
COPY reconciler /src/reconciler
COPY backends /src/backends
# The same install as .ci/install, without the test extras.
RUN pip install --no-cache-dir -c /src/deploy/constraints.txt /src \
 && groupadd --system --gid 10001 reconciler \
 && useradd --system --uid 10001 --gid reconciler --home-dir /var/lib/reconciler \
    --shell /usr/sbin/nologin reconciler \
 && mkdir -p /var/lib/reconciler /etc/reconciler \
 && chown reconciler:reconciler /var/lib/reconciler

USER 10001:10001
WORKDIR /var/lib/reconciler
VOLUME ["/var/lib/reconciler"]
EXPOSE 8080

# The config must listen on 0.0.0.0:8080 (or another port: change this and EXPOSE).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["reconciler", "run", "--config", "/etc/reconciler/config.yaml"]
