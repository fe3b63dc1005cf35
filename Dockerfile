# journey-ledger: the `journeys` command (worker, API, topics, send, queries). Built by compose.yaml.
# Installs exactly what uv.lock pins (hashes checked), as `make` does on a developer's machine.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/journeys

WORKDIR /src
COPY tools/uv.txt ./tools/uv.txt
RUN pip install --require-hashes --no-deps -r tools/uv.txt
COPY pyproject.toml uv.lock README.md ./
COPY schemas ./schemas
COPY projections ./projections
COPY streams ./streams
COPY journeys ./journeys
# Runtime dependencies only (no dev extra); the project itself as a regular, non-editable install.
RUN uv sync --frozen --no-editable --python /usr/local/bin/python3 \
    && pip uninstall --yes uv \
    && rm -rf /src
ENV PATH=/opt/journeys/bin:$PATH

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
