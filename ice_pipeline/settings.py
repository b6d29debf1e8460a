"""Settings from the environment (DESIGN §3).

Every variable is read from the process environment, then from a `.env` file
in the working directory when present. A variable that is still unset falls
back to the embedded services of `ice-pipeline local up` when they run. No
secret has a default in code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dotenv import load_dotenv
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from ice_pipeline import local

ENV_VARS: tuple[str, ...] = (
    "STAGING_DATABASE_URL",
    "DATABASE_URL",
    "MINIO_ENDPOINT",
    "MINIO_ACCESS_KEY",
    "MINIO_SECRET_KEY",
    "MINIO_BUCKET",
    "MINIO_SECURE",
    "STAGING_FILES_ROOT",
    "DAGSTER_HOME",
    "DAGSTER_PG_URL",
)
DEFAULT_BUCKET = "apex-ice-docs"
# Staging rows (students + leads) per migration run: bounds a run's memory whatever
# the backlog; a larger one is taken in several runs (docs/benchmarks.md).
DEFAULT_BATCH_ROWS = 120_000
# Not secrets: the two settings DESIGN §3 gives a default.
OPTIONAL_DEFAULTS = {"MINIO_BUCKET": DEFAULT_BUCKET, "MINIO_SECURE": "false"}


class SettingsError(RuntimeError):
    """A setting is missing or malformed; the message says which and what to set."""


def apply_environment() -> list[str]:
    """Load `.env`, then fill unset variables from the running embedded services.

    Returns the names filled from the embedded services, so the CLI can say so.
    """
    load_dotenv(Path.cwd() / ".env", override=False)
    for name, default in OPTIONAL_DEFAULTS.items():
        if not os.environ.get(name):
            os.environ[name] = default
    missing = [name for name in ENV_VARS if not os.environ.get(name)]
    if not missing:
        return []
    embedded = local.embedded_env()
    if embedded is None:
        return []
    filled = []
    for name in missing:
        if embedded.get(name):
            os.environ[name] = embedded[name]
            filled.append(name)
    return filled


def require(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise SettingsError(
            f"{name} is not set: set it in the environment or in .env, "
            "or start the embedded services with `ice-pipeline local up`."
        )
    return value


def database_url(name: str) -> URL:
    """The PostgreSQL URL in variable `name` (see `parse_database_url`)."""
    return parse_database_url(require(name), name)


def parse_database_url(raw: str, name: str) -> URL:
    """Parse a PostgreSQL URL, forcing the psycopg2 driver.

    Prisma's `postgresql://` form is accepted; SQLAlchemy 2.1 would map it to
    psycopg 3, which dagster-postgres and our COPY code do not use. `name` is
    the variable it came from, for the error message.
    """
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise SettingsError(
            f"{name} is not a valid database URL: expected postgresql://user:password@host:port/database."
        ) from None
    if url.get_backend_name() not in ("postgresql", "postgres"):
        raise SettingsError(
            f"{name} must point at PostgreSQL (postgresql://...), not '{url.get_backend_name()}'."
        )
    if not url.database:
        raise SettingsError(f"{name} names no database: expected postgresql://user:password@host:port/database.")
    query = dict(url.query)
    # Prisma's ?schema=public is a Prisma option, not a libpq one.
    query.pop("schema", None)
    return url.set(drivername="postgresql+psycopg2", query=query)


def safe_url(url: URL) -> str:
    """The URL for messages and metadata: never the password."""
    return url.render_as_string(hide_password=True)


@dataclass(frozen=True)
class DocumentStoreSettings:
    endpoint: str
    access_key: str
    secret_key: str
    bucket: str
    secure: bool
    files_root: Path


def parse_bool(value: str | None, default: bool = False) -> bool:
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def document_store() -> DocumentStoreSettings:
    return DocumentStoreSettings(
        endpoint=require("MINIO_ENDPOINT"),
        access_key=require("MINIO_ACCESS_KEY"),
        secret_key=require("MINIO_SECRET_KEY"),
        bucket=os.environ.get("MINIO_BUCKET") or DEFAULT_BUCKET,
        secure=parse_bool(os.environ.get("MINIO_SECURE")),
        files_root=Path(require("STAGING_FILES_ROOT")),
    )
