# greenops controller image: `greenops` is the entry point (`run` for the controller, any other command works).
# Build: podman build -t greenops . (or docker build). Multi-stage: the runtime stage holds the virtualenv,
# git and nothing else; it runs as uid 10001 and works with a read-only root filesystem.
# Reproducible: Python packages are the exact versions in constraints.txt; pin the base image by digest with
# --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:... and pass --timestamp to podman for stable layers.
# Any Debian-based image with python3 and its venv module works as PYTHON_IMAGE. Behind a mirror, pass
# --build-arg PIP_INDEX_URL=https://mirror.example.com/simple (podman can also mount a pip.conf:
# --volume ./pip.conf:/etc/pip.conf:ro); the HTTP(S)_PROXY build arguments work as in any build.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# No default: a default would override the index of a mounted pip.conf (pip ranks variables first).
ARG PIP_INDEX_URL
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY schemas ./schemas
COPY controller ./controller
RUN python3 -m venv /opt/greenops \
 && /opt/greenops/bin/pip install --constraint constraints.txt . \
 && /opt/greenops/bin/greenops --version

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/greenops/bin:$PATH HOME=/tmp
# git is what greenops pushes with; git and the CA certificates come from the base image's pinned Debian
# release unless the base already carries them.
# hadolint ignore=DL3008
RUN if ! command -v git >/dev/null || [ ! -e /etc/ssl/certs/ca-certificates.crt ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends git ca-certificates \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
 && groupadd --gid 10001 greenops \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/greenops --shell /usr/sbin/nologin greenops \
 && install -d -o 10001 -g 10001 /var/lib/greenops
COPY --from=build /opt/greenops /opt/greenops
USER 10001:10001
WORKDIR /var/lib/greenops
# The image's own smoke test: the console script starts as the unprivileged user it will run as.
RUN greenops --version
EXPOSE 8080
ENTRYPOINT ["greenops"]
CMD ["run", "--state-dir", "/var/lib/greenops"]
