# journey-ledger: the `journeys` command (worker, API, topics, send, queries). Built by compose.yaml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY projections ./projections
COPY streams ./streams
COPY journeys ./journeys
RUN pip install . \
    && rm -rf /src

# A non-root user; /data (the worker's RocksDB state) is owned by it, so a named volume
# mounted there starts out writable.
RUN useradd --create-home --uid 10001 --user-group journeys \
    && mkdir -p /data \
    && chown journeys:journeys /data
USER journeys
WORKDIR /home/journeys
VOLUME ["/data"]
EXPOSE 8080

CMD ["journeys", "--help"]
