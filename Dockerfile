# syntax=docker/dockerfile:1
#
# ice_pipeline image: one image for the three Dagster roles of
# docker-compose.yml (code location, webserver, daemon) and for one-off
# commands (`docker compose run --rm dagster-code ice-pipeline db migrate`).
#
#   docker build -t ice-pipeline:0.1.0 .      # the tag docker-compose.yml uses (ICE_PIPELINE_TAG)
#
# Installs the package with the pinned constraints file `constraints.txt`
# when the build context has it (`pip install -c constraints.txt .`), so
# builds repeat; without it the install is unpinned (and says so).
# No secret is baked in: settings come from the environment at run time
# (docker-compose.yml reads them from .env; .dockerignore keeps .env out).

# Pinned to a patch release (Python and Debian); move it deliberately, with
# the constraints file. A digest (`@sha256:...`) pins it byte for byte.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- build: a virtualenv holding the package and its pinned dependencies ----
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first (their layer survives code changes). The bracket makes
# constraints.txt optional: COPY only fails when no source matches at all.
COPY pyproject.toml constraints.tx[t] ./
RUN set -eu; \
    python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt; \
    if [ -f constraints.txt ]; then \
        pip install -c constraints.txt -r /tmp/requirements.txt; \
    else \
        echo "WARNING: constraints.txt not in the build context: installing unpinned dependencies" >&2; \
        pip install -r /tmp/requirements.txt; \
    fi

# Then the package itself (SQL files are package data).
COPY ice_pipeline ./ice_pipeline
RUN set -eu; \
    if [ -f constraints.txt ]; then pip install -c constraints.txt .; else pip install .; fi; \
    pip check

# --- runtime ----------------------------------------------------------------
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="ice_pipeline" \
      org.opencontainers.image.description="Dagster pipeline: V3 staging data -> ICE bot production PostgreSQL and MinIO"

ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home

# A fixed, unprivileged uid/gid: the named volumes and the read-only mount
# of the staged files only need to be readable (or, for storage/, writable)
# by 10001.
RUN groupadd --system --gid 10001 dagster \
 && useradd --system --uid 10001 --gid dagster --home-dir /opt/dagster --shell /usr/sbin/nologin dagster \
 && mkdir -p /opt/dagster/app "$DAGSTER_HOME/storage" /data/staging_files \
 && chown -R dagster:dagster /opt/dagster

COPY --from=build /opt/venv /opt/venv

# Dagster instance configuration (run/event storage in PostgreSQL from
# DAGSTER_PG_URL) and the default workspace (the code location loaded in
# process). docker-compose.yml mounts deploy/workspace.docker.yaml over
# workspace.yaml so the webserver and the daemon talk to the code server.
COPY --chown=dagster:dagster dagster.yaml workspace.yaml ${DAGSTER_HOME}/
# Refuses to start while a secret still holds .env.example's `change-me`
# (root-owned, read-only for the runtime user).
COPY --chmod=0755 deploy/check-secrets.sh /usr/local/bin/check-secrets.sh

USER dagster:dagster
WORKDIR /opt/dagster/dagster_home

EXPOSE 3000 4000

# Every command (the three roles, `docker compose run ... ice-pipeline ...`)
# starts through the secrets check; variables a role is not given are skipped.
ENTRYPOINT ["/usr/local/bin/check-secrets.sh", "STAGING_DATABASE_URL", "DATABASE_URL", "MINIO_ACCESS_KEY", \
            "MINIO_SECRET_KEY", "DAGSTER_PG_URL", "--"]
# The code location; docker-compose.yml sets the command of each role.
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "ice_pipeline.definitions"]
