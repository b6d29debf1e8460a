"""Dagster resources: the staging database, the production database, the document store.

Configured from the environment variables of DESIGN §3 (see definitions.py);
no secret has a default here. Connections are plain psycopg2 connections:
the pipeline moves data with COPY and set-based SQL, not through an ORM.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import psycopg2.extensions
from dagster import ConfigurableResource, Failure, InitResourceContext
from minio import Minio
from minio.error import S3Error, ServerError
from psycopg2 import errors
from urllib3 import PoolManager, Retry, Timeout
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import MaxRetryError

from ice_pipeline.locks import RUN_LOCK_KEY
from ice_pipeline.logic import documents as docs
from ice_pipeline.logic.documents import UploadItem
from ice_pipeline.settings import SettingsError, parse_bool, parse_database_url, safe_url

Connection = psycopg2.extensions.connection


class DatabaseUnavailable(RuntimeError):
    """A database could not be reached; the message names which and how to fix it."""


def connect(
    url: str, variable: str, *, read_only: bool = False, application: str = "ice_pipeline"
) -> Connection:
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
                        raise Failure(
                            description=(
                                f"Another migration has been running for more than {self.wait_seconds} s; this run "
                                "stopped without reading or writing anything. The next run picks up the work."
                            )
                        ) from None
            yield self
        finally:
            conn.close()


# --- the document store -------------------------------------------------------

UPLOAD_WORKERS = 8
PART_SIZE = 16 * 1024 * 1024  # multipart part: what one upload holds in memory at most
UPLOAD_ATTEMPTS = 3  # on top of the client's own HTTP retries
BACKOFF_SECONDS = 0.5
READ_CHUNK = 1024 * 1024
TRANSIENT_S3_CODES = frozenset(
    {
        "RequestTimeout",
        "SlowDown",
        "InternalError",
        "ServiceUnavailable",
        "OperationAborted",
        "XMinioServerNotInitialized",
    }
)
MISSING_OBJECT_CODES = frozenset({"NoSuchKey", "NoSuchObject", "NotFound", "ResourceNotFound"})
# The server computed another SHA-256 than the x-amz-checksum-sha256 sent (AWS, MinIO).
CHECKSUM_REFUSED_CODES = frozenset({"BadDigest", "XAmzContentChecksumMismatch", "InvalidDigest"})
CHECKSUM_MODE = {"x-amz-checksum-mode": "ENABLED"}  # HEAD returns the checksum the server verified


class StoreFailure(Exception):
    """The object store failed after the retries; `summary` is safe for messages (no keys, no names)."""

    def __init__(self, summary: str, outcomes: list[UploadOutcome] | None = None) -> None:
        super().__init__(summary)
        self.summary = summary
        self.outcomes = outcomes or []


@dataclass
class UploadOutcome:
    status: str  # put | present | refused | not_attempted
    reason: str | None = None
    bytes: int = 0


@dataclass(frozen=True)
class StoredObject:
    """What the store says about an object. `server_sha256` is the full-object x-amz-checksum-sha256
    the server verified at upload (hex); `metadata_sha256` is x-amz-meta-sha256, written by the client."""

    size: int
    metadata_sha256: str | None
    server_sha256: str | None
    content_type: str | None
    content_disposition: str | None

    @property
    def sha256(self) -> str | None:
        return self.server_sha256 or self.metadata_sha256


def store_error_summary(error: BaseException) -> str:
    """An error of the store as a short phrase for messages: a code, never a key or a name."""
    if isinstance(error, S3Error):
        return f"S3 error {error.code}"
    if isinstance(error, ServerError):
        return f"HTTP {error.status_code}"
    if isinstance(error, MaxRetryError):
        return f"{type(error.reason).__name__ if error.reason else 'MaxRetryError'} after retries"
    return type(error).__name__


def is_transient(error: BaseException) -> bool:
    """Worth another attempt: throttling, 5xx, a dropped connection. Not: a refusal, or the client's
    own retries already exhausted (MaxRetryError)."""
    if isinstance(error, S3Error):
        return error.code in TRANSIENT_S3_CODES
    if isinstance(error, ServerError):
        return error.status_code >= 500
    if isinstance(error, MaxRetryError):
        return False
    return isinstance(error, Urllib3Error | ConnectionError | TimeoutError)


def checksum_header(sha256_hex: str) -> str:
    """x-amz-checksum-sha256 value: the base64 of the digest."""
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii")


def _server_sha256(value: str | None) -> str | None:
    """A full-object x-amz-checksum-sha256 as hex; None for none or a multipart composite ('…-N')."""
    if not value or "-" in value:
        return None
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return digest.hex() if len(digest) == 32 else None


def stat_object(client: Minio, bucket: str, key: str) -> StoredObject | None:
    """An object's size, checksums and served headers; None when there is none."""
    try:
        found = client.stat_object(bucket, key, extra_headers=dict(CHECKSUM_MODE))
    except S3Error as error:
        if error.code in MISSING_OBJECT_CODES:
            return None
        raise
    headers = found.metadata or {}
    return StoredObject(
        size=int(found.size or 0),
        metadata_sha256=headers.get("x-amz-meta-sha256"),
        server_sha256=_server_sha256(headers.get("x-amz-checksum-sha256")),
        content_type=found.content_type,
        content_disposition=headers.get("content-disposition"),
    )


def object_sha256(client: Minio, bucket: str, key: str) -> str:
    """The SHA-256 of an object's content, read back streaming (for objects without a server checksum)."""
    digest = hashlib.sha256()
    response = client.get_object(bucket, key)
    try:
        for chunk in response.stream(READ_CHUNK):
            digest.update(chunk)
    finally:
        response.close()
        response.release_conn()
    return digest.hexdigest()


def probe_bucket(client: Minio, bucket: str) -> bool | str:
    """True when the bucket can be read, else why not (for check metadata)."""
    try:
        return True if client.bucket_exists(bucket) else "bucket does not exist"
    except Exception as error:  # noqa: BLE001 - reported in the check's metadata
        return f"store unreachable ({store_error_summary(error)})"


class DocumentStore(ConfigurableResource):
    """MinIO (or any S3-compatible store) holding the student documents.

    `files_root` is the directory of the staged files (STAGING_FILES_ROOT):
    documents are only ever read from inside it. The resource owns every
    conversation with the store: the bucket, uploads (a bounded pool, retries
    with backoff, server-verified SHA-256), stat/verify and listing.
    """

    endpoint: str
    access_key: str
    secret_key: str
    bucket: str = "apex-ice-docs"
    secure: str = "false"  # MINIO_SECURE: true/false
    files_root: str
    max_attempts: int = 4

    def client(self) -> Minio:
        # Bounded retries with backoff on transient errors, short timeouts, so
        # that an S3 outage fails a run in seconds, not hours.
        http = PoolManager(
            timeout=Timeout(connect=5, read=60),
            maxsize=16,
            retries=Retry(
                total=self.max_attempts - 1, backoff_factor=0.5, status_forcelist=(500, 502, 503, 504)
            ),
        )
        return Minio(
            self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=parse_bool(self.secure),
            http_client=http,
        )

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

    # -- reading ---------------------------------------------------------------

    def stat(self, key: str, client: Minio | None = None) -> StoredObject | None:
        return stat_object(client or self.client(), self.bucket, key)

    def verify(
        self, key: str, size: int | None, sha256: str | None, client: Minio | None = None
    ) -> str | None:
        """Why the object under `key` is not the recorded content, or None when it is."""
        try:
            stored = self.stat(key, client)
        except Exception as error:  # noqa: BLE001 - reported per object
            return f"store error ({store_error_summary(error)})"
        if stored is None:
            return "object missing"
        if size is not None and stored.size != int(size):
            return "size differs"
        if sha256 is not None:
            if not stored.sha256:
                return "no sha256 metadata"
            if stored.sha256 != sha256:
                return "sha256 differs"
        return None

    def list_keys(self, prefix: str, client: Minio | None = None) -> Iterator[str]:
        for item in (client or self.client()).list_objects(self.bucket, prefix=prefix, recursive=True):
            yield item.object_name

    def probe(self, client: Minio | None = None) -> bool | str:
        return probe_bucket(client or self.client(), self.bucket)

    # -- uploading -------------------------------------------------------------

    def is_present(self, client: Minio, item: UploadItem) -> bool:
        """The object under the key holds the item's bytes and is served as the item says.

        Rests on the checksum the server verified when there is one; an object
        without it (uploaded in parts, or by an older run) is read back and
        hashed: client-written metadata alone never counts as proof.
        """
        stored = stat_object(client, self.bucket, item.key)
        if stored is None or stored.size != item.size:
            return False
        if (stored.content_type or "").split(";")[0].strip().lower() != item.content_type or (
            stored.content_disposition or None
        ) != item.disposition:
            return False  # served otherwise (e.g. inline HTML from before): put again
        if stored.server_sha256 is not None:
            return stored.server_sha256 == item.sha256
        return (
            stored.metadata_sha256 == item.sha256
            and object_sha256(client, self.bucket, item.key) == item.sha256
        )

    def put_headers(self, item: UploadItem) -> dict[str, str]:
        """Metadata and headers of the PUT. A single-request upload carries x-amz-checksum-sha256, which
        the server verifies before storing (AWS S3, MinIO); S3 has no full-object SHA-256 for multipart
        uploads, whose bytes are checked against the digest as they are read instead."""
        headers = {"sha256": item.sha256}
        if item.disposition:
            headers["Content-Disposition"] = item.disposition
        if item.size <= PART_SIZE:
            headers["x-amz-sdk-checksum-algorithm"] = "SHA256"
            headers["x-amz-checksum-sha256"] = checksum_header(item.sha256)
        return headers

    def upload_one(self, client: Minio, item: UploadItem, abort: threading.Event) -> UploadOutcome:
        """Upload one file unless the same content is already under its key; verified against its SHA-256."""
        for attempt in range(UPLOAD_ATTEMPTS):
            if abort.is_set():
                return UploadOutcome("not_attempted")
            try:
                if self.is_present(client, item):
                    return UploadOutcome("present")
                with docs.open_regular(item.path) as handle:
                    reader = docs.HashingReader(handle)
                    try:
                        client.put_object(
                            self.bucket,
                            item.key,
                            reader,
                            length=item.size,
                            content_type=item.content_type,
                            metadata=self.put_headers(item),
                            part_size=PART_SIZE,
                            num_parallel_uploads=1,
                        )
                    except OSError:
                        if reader.count < item.size:  # the file shrank under us
                            raise docs.DocumentRefused(docs.FILE_CHANGED) from None
                        raise
                    except S3Error as error:
                        if error.code in CHECKSUM_REFUSED_CODES and reader.hexdigest() != item.sha256:
                            raise docs.DocumentRefused(docs.FILE_CHANGED) from None  # the server refused it
                        raise
                if reader.hexdigest() != item.sha256 or reader.count != item.size:
                    # The file changed since it was hashed: the key would lie about the content.
                    client.remove_object(self.bucket, item.key)
                    return UploadOutcome("refused", docs.FILE_CHANGED)
                return UploadOutcome("put", bytes=reader.count)
            except docs.DocumentRefused as refusal:
                return UploadOutcome("refused", refusal.reason)
            except Exception as error:
                if attempt + 1 < UPLOAD_ATTEMPTS and is_transient(error) and not abort.is_set():
                    time.sleep(BACKOFF_SECONDS * 2**attempt)
                    continue
                abort.set()  # the other workers start nothing more
                raise StoreFailure(store_error_summary(error)) from error
        return UploadOutcome("not_attempted")  # pragma: no cover - the loop always returns or raises

    def upload(self, items: Sequence[UploadItem], client: Minio | None = None) -> list[UploadOutcome]:
        """Upload concurrently (a bounded pool), one outcome per item. On a store failure the remaining
        uploads are not started and StoreFailure carries the outcomes so far."""
        client = client or self.client()
        abort = threading.Event()
        outcomes: list[UploadOutcome] = [UploadOutcome("not_attempted")] * len(items)
        failure: StoreFailure | None = None
        with ThreadPoolExecutor(max_workers=UPLOAD_WORKERS, thread_name_prefix="upload") as pool:
            futures = {pool.submit(self.upload_one, client, item, abort): i for i, item in enumerate(items)}
            for future in as_completed(futures):
                try:
                    outcomes[futures[future]] = future.result()
                except StoreFailure as error:
                    abort.set()
                    failure = failure or error
        if failure is not None:
            failure.outcomes = outcomes
            raise failure
        return outcomes
