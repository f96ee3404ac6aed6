# syntax=docker/dockerfile:1
# ordergraph: build the virtualenv in one stage, run it in a slim one without build tools.
#   docker build -t ordergraph .                       (production image)
#   docker build --build-arg EXTRAS=local -t ordergraph:demo .   (with the Stripe emulator)
# Release step before each deploy: `docker run --rm --env-file prod.env ordergraph ordergraph migrate`
#
# Base image: python:3.11-slim-bookworm, by tag only. NOT PINNED BY DIGEST YET: this file was
# written where no registry of images can be reached, and a digest nobody has pulled is worse
# than none. To pin it, on a machine with Docker:
#   docker buildx imagetools inspect python:3.11-slim-bookworm   (the "Digest:" line)
# then write both FROM lines as `FROM python:3.11-slim-bookworm@sha256:<digest>` and keep
# this tag in the comment (tests/unit/test_deployment.py checks the form).

FROM python:3.11-slim-bookworm AS build
ARG EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1
# The same uv as the Makefile's (pyproject.toml's dev extra pins it; a test checks).
RUN pip install uv==0.13.8
WORKDIR /src
# Every version and hash comes from uv.lock; --locked refuses a lock that pyproject.toml has
# moved away from. Dependencies first, so a code change does not reinstall them. Every one
# ships a wheel for this platform (psycopg[binary], argon2-cffi): no compiler needed.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-install-project --no-editable --python /usr/local/bin/python \
        ${EXTRAS:+--extra "$EXTRAS"}
COPY ordergraph ./ordergraph
RUN uv sync --locked --no-editable --python /usr/local/bin/python ${EXTRAS:+--extra "$EXTRAS"}

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
