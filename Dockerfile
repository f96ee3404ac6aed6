# syntax=docker/dockerfile:1
# ordergraph: build the virtualenv in one stage, run it in a slim one without build tools.
#   docker build -t ordergraph .                       (production image)
#   docker build --build-arg EXTRAS=local -t ordergraph:demo .   (with the Stripe emulator)
# Release step before each deploy: `docker run --rm --env-file prod.env ordergraph ordergraph migrate`

FROM python:3.11-slim-bookworm AS build
ARG EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ordergraph ./ordergraph
# Every dependency ships a wheel for this platform (psycopg[binary], argon2-cffi), so no
# compiler is needed even here. Versions are pinned in pyproject.toml.
# hadolint ignore=DL3013
RUN if [ -n "$EXTRAS" ]; then pip install ".[${EXTRAS}]"; else pip install .; fi

FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 ordergraph \
    && useradd --system --uid 10001 --gid ordergraph --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin ordergraph
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ORDERGRAPH_ENV=production \
    LOG_FORMAT=json \
    HOST=0.0.0.0 \
    PORT=8000 \
    WEB_CONCURRENCY=1
WORKDIR /app
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["ordergraph", "healthcheck"]
# uvicorn with WEB_CONCURRENCY workers; SIGTERM lets in-flight requests finish.
STOPSIGNAL SIGTERM
CMD ["ordergraph", "serve"]
