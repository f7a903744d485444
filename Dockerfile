# One image for every role: `hotspot worker`, `hotspot gateway`, `hotspot run`.
# Kafka and ClickHouse run as their own services in docker-compose.yml; this
# image never starts a broker (HOTSPOT_KAFKA_BOOTSTRAP points at one).

# The API docs' assets (Swagger UI, ReDoc), pinned by web/package-lock.json, as
# `make setup` installs them: the gateway serves /docs and /redoc from them.
FROM node:22-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --omit=peer --ignore-scripts --no-audit --no-fund

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN useradd --create-home --uid 10001 hotspot
WORKDIR /app

COPY pyproject.toml README.md ./
COPY core core
COPY schemas schemas
COPY processors processors
COPY formats formats
COPY replay replay
COPY simulation simulation
COPY streams streams
COPY sinks sinks
COPY gateway gateway
COPY cli cli
COPY reports reports
COPY infra infra
# Editable: the gateway serves the officer app and the control room from web/ beside its package.
RUN pip install --no-cache-dir -e .
COPY web/app web/app
COPY web/control web/control
COPY --from=web /web/node_modules web/node_modules

# The data volume belongs to the user the processes run as, private to it (0700, as
# the system makes every folder it writes): Docker gives a new named volume the
# owner and mode of the image's folder, so /data must exist here before VOLUME.
RUN mkdir -p /data && chown hotspot:hotspot /data && chmod 0700 /data
USER hotspot
ENV HOTSPOT_DATA_DIR=/data HOTSPOT_WEB_ASSETS_DIR=/app/web/node_modules
VOLUME ["/data"]
# 8080: gateway (HOTSPOT_HTTP_PORT); 9108: worker /metrics and /healthz (HOTSPOT_WORKER_METRICS_PORT)
EXPOSE 8080 9108
ENTRYPOINT ["hotspot"]
CMD ["--help"]
