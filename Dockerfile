# greenops controller image: `greenops` is the entry point (`run` for the controller, any other command works).
# Build: podman build -t greenops . (or docker build). Multi-stage: the runtime stage holds the virtualenv,
# git and nothing else; it runs as uid 10001 and works with a read-only root filesystem.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY controller ./controller
RUN python -m venv /opt/greenops \
 && /opt/greenops/bin/pip install --no-compile . \
 && /opt/greenops/bin/greenops --version

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/greenops/bin:$PATH HOME=/tmp
# git is what greenops pushes with; versions come from the pinned Debian release of the base image.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 greenops \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/greenops --shell /usr/sbin/nologin greenops \
 && install -d -o 10001 -g 10001 /var/lib/greenops
COPY --from=build /opt/greenops /opt/greenops
USER 10001:10001
WORKDIR /var/lib/greenops
EXPOSE 8080
ENTRYPOINT ["greenops"]
CMD ["run", "--state-dir", "/var/lib/greenops"]
