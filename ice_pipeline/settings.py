"""Settings from the environment (DESIGN §3), and which world they describe.

Every variable is read from the process environment, then from a `.env` file
in the working directory when present. Two worlds never mix: either *no*
connection variable is set and the commands use the embedded services of
`ice-pipeline local up` for all of them, or every connection variable is set
and nothing embedded is used; a partial configuration stops with one sentence
naming what is missing (a real DATABASE_URL next to an embedded staging
database would move demo data into production). No secret has a default in
code. Importing this module has no side effect: the CLI entry point and the
launcher call `apply_environment()`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

# The variables that say where the data lives: all of them, or none (embedded services).
CONNECTION_VARS: tuple[str, ...] = (
    "STAGING_DATABASE_URL",
    "DATABASE_URL",
    "MINIO_ENDPOINT",
    "MINIO_ACCESS_KEY",
    "MINIO_SECRET_KEY",
    "STAGING_FILES_ROOT",
)
DEFAULT_BUCKET = "apex-ice-docs"
# Staging rows (students + leads) per migration run: bounds a run's memory whatever
# the backlog; a larger one is taken in several runs (docs/benchmarks.md).
DEFAULT_BATCH_ROWS = 120_000
# Not secrets: the two settings DESIGN §3 gives a default.
OPTIONAL_DEFAULTS = {"MINIO_BUCKET": DEFAULT_BUCKET, "MINIO_SECURE": "false"}
# A custom setting of the embedded PostgreSQL cluster (ice_pipeline.dev.local): how
# `demo-data` and `db init` know a database is the embedded one and not a real one.
EMBEDDED_SETTING = "ice_pipeline.embedded"
# Query parameters that carry secrets in libpq/SQLAlchemy URLs.
_SECRET_QUERY_KEYS = ("password", "pass", "pwd", "secret", "sslpassword", "token", "key")


class SettingsError(RuntimeError):
    """A setting is missing or malformed; the message says which and what to set."""


@dataclass(frozen=True)
class World:
    """Which services the commands use: the embedded ones, or the configured ones."""

    embedded: bool
    root: Path | None = None  # the embedded services' directory

    def describe(self) -> str:
        """One line for stderr, without passwords."""
        if self.embedded:
            return f"using the embedded services ({self.root})"
        parts = []
        for name in ("STAGING_DATABASE_URL", "DATABASE_URL", "DAGSTER_PG_URL"):
            if os.environ.get(name):
                parts.append(f"{name}={describe_url(os.environ[name])}")
        parts.append(f"MINIO_ENDPOINT={os.environ.get('MINIO_ENDPOINT')}/{os.environ.get('MINIO_BUCKET')}")
        parts.append(f"STAGING_FILES_ROOT={os.environ.get('STAGING_FILES_ROOT')}")
        return "using " + ", ".join(parts)


def load_dotenv_file() -> None:
    """Read `.env` of the working directory; the process environment wins."""
    from dotenv import load_dotenv

    load_dotenv(Path.cwd() / ".env", override=False)


def apply_environment() -> World:
    """Load `.env`, then choose the world: configured (all set) or embedded (none set).

    Raises SettingsError when only some connection variables are set, or when
    none is set and the embedded services do not run. Fills the embedded
    services' variables (Dagster's too, unless set) into `os.environ`.
    """
    load_dotenv_file()
    for name, default in OPTIONAL_DEFAULTS.items():
        if not os.environ.get(name):
            os.environ[name] = default
    present = [name for name in CONNECTION_VARS if os.environ.get(name, "").strip()]
    if present:
        missing = [name for name in CONNECTION_VARS if name not in present]
        if missing:
            raise SettingsError(
                f"{', '.join(present)} {'is' if len(present) == 1 else 'are'} set but {', '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not: set every connection variable, or none of them "
                "to use the embedded services of `ice-pipeline local up`."
            )
        return World(embedded=False)
    from ice_pipeline.dev import local

    env = local.embedded_env()
    if env is None:
        raise SettingsError(
            "No connection variable is set and the embedded services do not run: run `ice-pipeline local up`, "
            f"or set {', '.join(CONNECTION_VARS)} (in the environment or in .env)."
        )
    for name, value in env.items():
        if name in CONNECTION_VARS or not os.environ.get(name):
            os.environ[name] = value
    global _embedded_chosen
    _embedded_chosen = True
    return World(embedded=True, root=local.local_dir())


_embedded_chosen = False  # apply_environment() filled the connection variables from the embedded services


def is_embedded_database(conn) -> bool:
    """Whether `conn` is a database of the embedded cluster.

    True when apply_environment() took the URLs from the embedded services, or
    when the server carries EMBEDDED_SETTING (the embedded cluster, reached
    through variables set by hand, e.g. `eval "$(ice-pipeline local env)"`).
    """
    if _embedded_chosen:
        return True
    with conn.cursor() as cur:
        cur.execute("SELECT current_setting(%s, true)", (EMBEDDED_SETTING,))
        value = cur.fetchone()[0]
    conn.rollback()
    return value == "on"


def require(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise SettingsError(
            f"{name} is not set: set it in the environment or in .env, "
            "or start the embedded services with `ice-pipeline local up`."
        )
    return value


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
        raise SettingsError(
            f"{name} names no database: expected postgresql://user:password@host:port/database."
        )
    query = dict(url.query)
    # Prisma's ?schema=public is a Prisma option, not a libpq one.
    query.pop("schema", None)
    return url.set(drivername="postgresql+psycopg2", query=query)


def safe_url(url: URL) -> str:
    """The URL for messages and metadata: never the password, in the authority or the query string."""
    from urllib.parse import quote

    base = url.set(query={}).render_as_string(hide_password=True)
    pairs = []
    for key in sorted(url.query):
        values = url.query[key]
        for value in values if isinstance(values, tuple) else (values,):
            pairs.append(f"{quote(key)}={'***' if _is_secret_key(key) else quote(str(value), safe='')}")
    return base + ("?" + "&".join(pairs) if pairs else "")


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(part in lowered for part in _SECRET_QUERY_KEYS)


def describe_url(raw: str) -> str:
    """`host:port/database` of a database URL, for the one line that says which services a command uses."""
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        return "(not a valid URL)"
    return f"{url.host or 'localhost'}{f':{url.port}' if url.port else ''}/{url.database or ''}"


def parse_bool(value: str | None, default: bool = False) -> bool:
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")
