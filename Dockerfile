# Mirage's image: one image for the webhook service (`mirage serve`), the workers and the cron scheduler.
# Build from the repository root:  docker build -t mirage:0.2.0 .
# The compose file (infra/docker-compose.yml) runs it; the README and docs/operations.md explain the set-up.
# A multi-stage build: compilers exist only in the build stage; the final stage holds Python and the virtualenv.

ARG PYTHON_VERSION=3.11

# ---- build: a virtualenv with Mirage installed from this tree (the wheel's build hook bundles the migrations,
# example tenants and JSON Schemas, so nothing of the source tree is needed at run time)
FROM python:${PYTHON_VERSION}-slim AS build
RUN apt-get update \
 && apt-get install --yes --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/mirage
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY supabase/migrations ./supabase/migrations
COPY tenants.d ./tenants.d
COPY schemas ./schemas
COPY mirage ./mirage
RUN /opt/mirage/bin/pip install . \
 && /opt/mirage/bin/mirage --version

# ---- runtime: slim Python, the virtualenv, an unprivileged user; no compilers, no source tree
FROM python:${PYTHON_VERSION}-slim AS runtime
RUN groupadd --system --gid 10001 mirage \
 && useradd --system --uid 10001 --gid mirage --create-home --home-dir /home/mirage mirage
COPY --from=build /opt/mirage /opt/mirage
ENV PATH=/opt/mirage/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MIRAGE_HOST=0.0.0.0 \
    MIRAGE_PORT=8080 \
    MIRAGE_LOG_FORMAT=json \
    MIRAGE_STATE_DIR=/home/mirage/.mirage
USER mirage
WORKDIR /home/mirage
EXPOSE 8080
# Ready means Postgres answers and holds the schema (GET /readyz -> 200); urlopen raises on 503, so the exit is 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('MIRAGE_PORT', '8080') + '/readyz', timeout=4)"]
CMD ["mirage", "serve"]
