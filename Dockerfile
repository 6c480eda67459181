# greenops controller image (minimal for now; hardened in a later release).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends git \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 greenops
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY controller ./controller
RUN pip install --no-compile . && rm -rf /src
USER 10001
WORKDIR /home/greenops
ENTRYPOINT ["greenops"]
CMD ["--help"]
