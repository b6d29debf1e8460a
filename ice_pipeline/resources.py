"""Dagster resources: the staging database, the production database, the document store.

Configured from the environment variables of DESIGN §3 (see definitions.py);
no secret has a default here. Connections are plain psycopg2 connections:
the pipeline moves data with COPY and set-based SQL, not through an ORM.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import psycopg2.extensions
from dagster import ConfigurableResource, Failure, InitResourceContext
from minio import Minio
from minio.error import S3Error
from psycopg2 import errors
from urllib3 import PoolManager, Retry, Timeout

from ice_pipeline.settings import SettingsError, parse_bool, parse_database_url, safe_url

Connection = psycopg2.extensions.connection


class DatabaseUnavailable(RuntimeError):
    """A database could not be reached; the message names which and how to fix it."""


def connect(url: str, variable: str, *, read_only: bool = False, application: str = "ice_pipeline") -> Connection:
    """Open a psycopg2 connection to the database in `url` (from `variable`).

    A staging connection is opened read-only: the session refuses writes, so
    the pipeline can never modify what V3 wrote.
    """
    parsed = parse_database_url(url, variable)
    dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    options = "-c default_transaction_read_only=on" if read_only else ""
    try:
        conn = psycopg2.connect(dsn, application_name=application, options=options, connect_timeout=10)
    except psycopg2.OperationalError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DatabaseUnavailable(
            f"Cannot connect to {variable} ({safe_url(parsed)}): {first_line}. "
            f"Check that the server runs and that {variable} is right "
            "(or run `ice-pipeline local up` for the embedded services)."
        ) from None
    return conn


class StagingDatabase(ConfigurableResource):
    """The V3 staging database (`leads_project`), read-only."""

    url: str

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        conn = connect(self.url, "STAGING_DATABASE_URL", read_only=True, application="ice_pipeline_staging")
        try:
            yield conn
        finally:
            conn.close()


class ProductionDatabase(ConfigurableResource):
    """The ICE bot's production database (Prisma tables + schema ice_pipeline)."""

    url: str

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        conn = connect(self.url, "DATABASE_URL", application="ice_pipeline")
        try:
            yield conn
        finally:
            conn.close()


# Session-level advisory lock held by a migration run from its first step to
# its last (the writer transactions also take their own xact-level lock).
RUN_LOCK_KEY = 0x1CE0002


class MigrationLock(ConfigurableResource):
    """One migration at a time, for the whole run, whatever launched it.

    Dagster's tag concurrency limit covers runs launched through the daemon;
    `ice-pipeline migrate` runs in process and bypasses it. This lock is taken
    before the staging watermarks are read and released when the run ends
    (closing the session releases it even if the process dies). A second run
    waits up to `wait_seconds`, then stops without writing, saying why.
    """

    url: str
    wait_seconds: int = 600

    @contextmanager
    def yield_for_execution(self, context: InitResourceContext) -> Iterator[MigrationLock]:
        conn = connect(self.url, "DATABASE_URL", application="ice_pipeline_run_lock")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_try_advisory_lock(%s)", (RUN_LOCK_KEY,))
                if not cur.fetchone()[0]:
                    if context.log:
                        context.log.info("another migration is running: waiting for it to finish")
                    cur.execute("SET lock_timeout = %s", (f"{self.wait_seconds}s",))
                    try:
                        cur.execute("SELECT pg_advisory_lock(%s)", (RUN_LOCK_KEY,))
                    except errors.LockNotAvailable:
                        raise Failure(description=(
                            f"Another migration has been running for more than {self.wait_seconds} s; this run "
                            "stopped without reading or writing anything. The next run picks up the work.")) from None
            yield self
        finally:
            conn.close()


class DocumentStore(ConfigurableResource):
    """MinIO (or any S3-compatible store) holding the student documents.

    `files_root` is the directory of the staged files (STAGING_FILES_ROOT):
    documents are only ever read from inside it.
    """

    endpoint: str
    access_key: str
    secret_key: str
    bucket: str = "apex-ice-docs"
    secure: str = "false"           # MINIO_SECURE: true/false
    files_root: str
    max_attempts: int = 4

    def client(self) -> Minio:
        # Bounded retries with backoff on transient errors, short timeouts, so
        # that an S3 outage fails a run in seconds, not hours.
        http = PoolManager(
            timeout=Timeout(connect=5, read=60),
            maxsize=16,
            retries=Retry(total=self.max_attempts - 1, backoff_factor=0.5,
                          status_forcelist=(500, 502, 503, 504)),
        )
        return Minio(self.endpoint, access_key=self.access_key, secret_key=self.secret_key,
                     secure=parse_bool(self.secure), http_client=http)

    def root(self) -> Path:
        return Path(self.files_root).resolve()

    def ensure_bucket(self, client: Minio | None = None) -> None:
        """Create the bucket, private, if it is missing. Never makes it public."""
        client = client or self.client()
        try:
            if not client.bucket_exists(self.bucket):
                client.make_bucket(self.bucket)
        except S3Error as error:
            raise SettingsError(
                f"The document store refused access to bucket '{self.bucket}' at {self.endpoint} "
                f"({error.code}): check MINIO_ACCESS_KEY/MINIO_SECRET_KEY and the key's permissions."
            ) from None
        except Exception as error:  # urllib3 MaxRetryError and friends
            raise DatabaseUnavailable(
                f"Cannot reach the document store at {self.endpoint} (MINIO_ENDPOINT): "
                f"{type(error).__name__}. Check that MinIO runs and MINIO_ENDPOINT/MINIO_SECURE are right."
            ) from None
