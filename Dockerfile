# One image for every role: `hotspot worker`, `hotspot gateway`, `hotspot run`.
# Kafka and ClickHouse run as their own services in docker-compose.yml; this
# image never starts a broker (HOTSPOT_KAFKA_BOOTSTRAP points at one).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN useradd --create-home --uid 10001 hotspot
WORKDIR /app

COPY pyproject.toml README.md ./
COPY schemas schemas
COPY processors processors
COPY streams streams
COPY sinks sinks
COPY gateway gateway
COPY infra infra
RUN pip install --no-cache-dir .

USER hotspot
ENV HOTSPOT_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["hotspot"]
CMD ["--help"]
