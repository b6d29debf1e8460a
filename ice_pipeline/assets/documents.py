"""prod_documents: staged document files into MinIO and `student_documents` (DESIGN §2, §4).

Documents are matched on (student, SHA-256). The order of a run makes every
crash safe:

1. hash and validate the files (no lock: reading staging files only);
2. upload the missing objects, outside any database transaction. A key is
   `students/<student>/<type>/<sha256><ext>`, so uploading again is
   idempotent; an object without a row is harmless (the stray-objects check
   lists it, the next run links it without uploading it again);
3. one `writer_transaction`: re-check existing (student, checksum) rows,
   insert the new rows (`ON CONFLICT DO NOTHING`), links, rejections and the
   staging_document watermark, committed together.

If the store fails after its retries, the run stops before step 3: a row
never points at an object that is not there.
"""

import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    Failure,
    MetadataValue,
    Output,
    asset,
)
from minio import Minio
from minio.error import S3Error, ServerError
from psycopg2.extensions import cursor as Cursor
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import MaxRetryError

from ice_pipeline.assets.common import (
    GROUP_PRODUCTION,
    OWNERS,
    MigrationOptions,
    StagingBatch,
    markdown_counts,
    writer_transaction,
)
from ice_pipeline.db import (
    advance_watermark,
    copy_into_temp,
    read_frame,
    record_run,
    write_links,
    write_rejections,
)
from ice_pipeline.logic import documents as docs
from ice_pipeline.logic import normalize as nz
from ice_pipeline.resources import (
    DatabaseUnavailable,
    DocumentStore,
    MigrationLock,
    ProductionDatabase,
)
from ice_pipeline.settings import SettingsError

STAGING_TABLE = "staging_document"
HASH_WORKERS = 4
UPLOAD_WORKERS = 8
PART_SIZE = 16 * 1024 * 1024       # multipart part: what one upload holds in memory at most
UPLOAD_ATTEMPTS = 3                 # on top of the client's own HTTP retries
BACKOFF_SECONDS = 0.5
TRANSIENT_S3_CODES = frozenset({"RequestTimeout", "SlowDown", "InternalError", "ServiceUnavailable",
                                "OperationAborted", "XMinioServerNotInitialized"})
MISSING_OBJECT_CODES = frozenset({"NoSuchKey", "NoSuchObject", "NotFound", "ResourceNotFound"})

# State of each staging student a document of the batch belongs to. A student
# whose link points at a student that no longer exists counts as not loaded.
READ_STUDENT_STATES = """
SELECT k.staging_id,
       (SELECT l.entity_id::text FROM ice_pipeline.source_links l JOIN students s ON s.id = l.entity_id
         WHERE l.staging_table = 'staging_student' AND l.entity = 'student' AND l.staging_id = k.staging_id) AS student_id,
       EXISTS (SELECT 1 FROM ice_pipeline.rejected_rows r
                WHERE r.staging_table = 'staging_student' AND r.staging_id = k.staging_id) AS rejected,
       EXISTS (SELECT 1 FROM ice_pipeline.review_queue q
                WHERE q.kind = 'identity_conflict' AND q.status = 'open'
                  AND q.staging_table = 'staging_student' AND q.staging_id = k.staging_id) AS in_review
FROM tmp_doc_students k
"""
READ_DOCUMENT_LINKS = """
SELECT l.staging_id, l.entity_id::text AS document_id
FROM ice_pipeline.source_links l
WHERE l.staging_table = 'staging_document' AND l.entity = 'document'
  AND l.staging_id IN (SELECT staging_id FROM tmp_doc_rows)
"""
KEY_COLUMNS = {"student_id": "uuid", "checksum": "text"}
READ_EXISTING = """
SELECT d.id::text AS document_id, d.student_id::text AS student_id, d.checksum
FROM student_documents d
JOIN tmp_doc_keys k ON k.student_id = d.student_id AND k.checksum = d.checksum
"""
NEW_DOCUMENT_COLUMNS = {"document_id": "uuid", "student_id": "uuid", "document_type": "text", "file_name": "text",
                        "object_key": "text", "bucket": "text", "file_size": "integer", "mime_type": "text",
                        "checksum": "text", "original_file_path": "text"}
INSERT_DOCUMENTS = """
INSERT INTO student_documents (id, student_id, document_type, file_name, object_key, bucket, file_size, mime_type,
                               checksum, original_file_path, storage_provider, status, uploaded_at,
                               created_at, updated_at)
SELECT document_id, student_id, document_type, file_name, object_key, bucket, file_size, mime_type,
       checksum, original_file_path, 'MINIO', 'PENDING', %(now)s, %(now)s, %(now)s
FROM tmp_new_documents
ON CONFLICT (student_id, checksum) DO NOTHING
RETURNING id::text
"""
# A staging document read again (changed in V3, or a full refresh) whose file
# is now another document: its lineage follows the current content.
RELINK_COLUMNS = {"staging_id": "bigint", "entity_id": "uuid", "matched_by": "text"}
RELINK_DOCUMENTS = """
UPDATE ice_pipeline.source_links l
SET entity_id = t.entity_id, matched_by = t.matched_by, run_id = %(run_id)s, linked_at = now()
FROM tmp_doc_relinks t
WHERE l.staging_table = 'staging_document' AND l.entity = 'document' AND l.staging_id = t.staging_id
  AND l.entity_id <> t.entity_id
"""


# --- planning -----------------------------------------------------------------

@dataclass
class DocumentPlan:
    """What to do with one batch: files that passed, refusals, and the groups per (student, sha256)."""

    accepted: pd.DataFrame          # one row per staging document that passed
    rejections: list[dict] = field(default_factory=list)
    left_as_linked: int = 0         # already linked rows whose file/student now fails: link kept, not rejected
    hashed_bytes: int = 0


def _text(value) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


def _rejection(row, reason: str, retryable: bool, **details) -> dict:
    payload = {"path": _text(row.staging_file_path), "staging_student_id": _int_or_none(row.student_id), **details}
    return {"staging_table": STAGING_TABLE, "staging_id": int(row.id), "reason": reason,
            "details": json.dumps(payload, sort_keys=True), "retryable": retryable}


def _int_or_none(value) -> int | None:
    text = _text(value)
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def _student_ids(rows: pd.DataFrame, prod_students: pd.DataFrame, states: pd.DataFrame) -> pd.DataFrame:
    """Per staging student: production student id (this run's output first, then earlier links) and state."""
    states = states.copy()
    states["staging_id"] = states["staging_id"].astype("int64")
    if len(prod_students):
        this_run = prod_students[["staging_id", "student_id"]].dropna().copy()
        this_run["staging_id"] = pd.to_numeric(this_run["staging_id"]).astype("int64")
        this_run = this_run.drop_duplicates("staging_id", keep="last").set_index("staging_id")["student_id"]
        fresh = states["staging_id"].map(this_run)
        states["student_id"] = fresh.astype("string").fillna(states["student_id"])
    states["state"] = "linked"
    states.loc[states["student_id"].isna() & (states["in_review"] == "t"), "state"] = "in_review"
    states.loc[states["student_id"].isna() & (states["rejected"] == "t"), "state"] = "rejected"
    states.loc[states["student_id"].isna() & ~states["state"].isin(["in_review", "rejected"]), "state"] = "not_loaded"
    return states.set_index("staging_id")


def plan_batch(rows: pd.DataFrame, students: pd.DataFrame, linked_docs: set[int], root: Path,
               inspect: Callable = docs.inspect_file) -> DocumentPlan:
    """Validate every staged document: student state first, then the file (hashed in a small pool)."""
    plan = DocumentPlan(accepted=pd.DataFrame())
    state_of = dict(zip(students.index, zip(students["state"], students["student_id"], strict=True), strict=True))
    candidates = []
    for row in rows.itertuples(index=False):
        state, student_id = state_of.get(_int_or_none(row.student_id), ("not_loaded", None))
        if state != "linked":
            if int(row.id) in linked_docs:
                plan.left_as_linked += 1
            else:
                plan.rejections.append(_rejection(row, docs.student_refusal(state).reason, True, student_state=state))
            continue
        candidates.append((row, str(student_id)))

    def _inspect(item):
        row, _ = item
        try:
            return inspect(root, _text(row.staging_file_path), _text(row.checksum))
        except docs.DocumentRefused as refusal:
            return refusal

    accepted = []
    with ThreadPoolExecutor(max_workers=HASH_WORKERS, thread_name_prefix="hash") as pool:
        for (row, student_id), found in zip(candidates, pool.map(_inspect, candidates), strict=True):
            if isinstance(found, docs.DocumentRefused):
                if int(row.id) in linked_docs:
                    plan.left_as_linked += 1
                    continue
                extra = {}
                if found.reason == docs.CHECKSUM_MISMATCH:
                    extra = {"staged_checksum": docs.normalize_checksum(_text(row.checksum))}
                plan.rejections.append(_rejection(row, found.reason, found.retryable, **extra))
                continue
            plan.hashed_bytes += found.size
            staged_size = _int_or_none(row.file_size)
            accepted.append({
                "staging_id": int(row.id), "student_id": student_id, "path": found.path,
                "staging_file_path": _text(row.staging_file_path), "staging_student_id": _int_or_none(row.student_id),
                "checksum": found.sha256, "file_size": found.size,
                "document_type": _text(row.document_type), "file_name": _text(row.normalized_file_name),
                "original_file_path": _text(row.original_file_path), "staged_mime": _text(row.mime_type),
                "warnings": "staged file_size differs from the file" if staged_size not in (None, found.size) else None,
            })
    plan.accepted = pd.DataFrame(accepted, columns=[
        "staging_id", "student_id", "path", "staging_file_path", "staging_student_id", "checksum", "file_size",
        "document_type", "file_name", "original_file_path", "staged_mime", "warnings"])
    return plan


def _present_in(frame: pd.DataFrame, existing: pd.DataFrame) -> pd.Series:
    """Which rows of `frame` have their (student_id, checksum) among `existing`'s."""
    present = set(zip(existing["student_id"], existing["checksum"], strict=True))
    return pd.Series([(s, c) in present for s, c in zip(frame["student_id"], frame["checksum"], strict=True)],
                     index=frame.index, dtype=bool)


def new_documents(accepted: pd.DataFrame, existing: pd.DataFrame, bucket: str) -> pd.DataFrame:
    """One new document per (student, sha256) not already in production: the first staging row of each group."""
    heads = accepted.drop_duplicates(["student_id", "checksum"], keep="first")
    fresh = heads[~_present_in(heads, existing)].copy()
    fresh["document_type"] = nz.clean_text(fresh["document_type"].astype("string"), max_length=100).fillna("other")
    names = nz.clean_text(fresh["file_name"].astype("string"), max_length=255)
    fresh["file_name"] = names.fillna(pd.Series([Path(p).name for p in fresh["path"]], index=fresh.index, dtype="string"))
    fresh["object_key"] = [docs.object_key(s, t, c, n) for s, t, c, n in
                           zip(fresh["student_id"], fresh["document_type"], fresh["checksum"], fresh["file_name"], strict=True)]
    fresh["mime_type"] = [docs.guess_mime(m, p, n) for m, p, n in
                          zip(fresh["staged_mime"], fresh["path"], fresh["file_name"], strict=True)]
    fresh["bucket"] = bucket
    fresh["document_id"] = [str(uuid.uuid4()) for _ in range(len(fresh))]
    return fresh.reset_index(drop=True)


# --- uploading ----------------------------------------------------------------

class StoreFailure(Exception):
    """The object store failed after the retries; `summary` is safe for messages (no keys, no names)."""

    def __init__(self, summary: str) -> None:
        super().__init__(summary)
        self.summary = summary


@dataclass
class UploadOutcome:
    status: str                     # put | present | refused | not_attempted
    reason: str | None = None
    bytes: int = 0


def _summary(error: BaseException) -> str:
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


def stored_object(client: Minio, bucket: str, key: str) -> tuple[int, str | None] | None:
    """(size, sha256 metadata) of an object, None when there is none."""
    try:
        found = client.stat_object(bucket, key)
    except S3Error as error:
        if error.code in MISSING_OBJECT_CODES:
            return None
        raise
    return int(found.size or 0), (found.metadata or {}).get("x-amz-meta-sha256")


def upload_one(client: Minio, bucket: str, item: dict, abort: threading.Event) -> UploadOutcome:
    """Upload one file unless the same content is already under its key; verified against its SHA-256."""
    for attempt in range(UPLOAD_ATTEMPTS):
        if abort.is_set():
            return UploadOutcome("not_attempted")
        try:
            present = stored_object(client, bucket, item["object_key"])
            if present == (int(item["file_size"]), item["checksum"]):
                return UploadOutcome("present")
            with docs.open_regular(item["path"]) as handle:
                reader = docs.HashingReader(handle)
                try:
                    client.put_object(bucket, item["object_key"], reader, length=int(item["file_size"]),
                                      content_type=item["mime_type"], metadata={"sha256": item["checksum"]},
                                      part_size=PART_SIZE, num_parallel_uploads=1)
                except OSError:
                    if reader.count < item["file_size"]:   # the file shrank under us
                        raise docs.DocumentRefused(docs.FILE_CHANGED) from None
                    raise
            if reader.hexdigest() != item["checksum"] or reader.count != item["file_size"]:
                # The file changed since it was hashed: the key would lie about the content.
                client.remove_object(bucket, item["object_key"])
                return UploadOutcome("refused", docs.FILE_CHANGED)
            return UploadOutcome("put", bytes=reader.count)
        except docs.DocumentRefused as refusal:
            return UploadOutcome("refused", refusal.reason)
        except Exception as error:
            if attempt + 1 < UPLOAD_ATTEMPTS and is_transient(error) and not abort.is_set():
                time.sleep(BACKOFF_SECONDS * 2**attempt)
                continue
            abort.set()  # the other workers start nothing more
            raise StoreFailure(_summary(error)) from error
    return UploadOutcome("not_attempted")  # pragma: no cover - the loop always returns or raises


def upload_all(client: Minio, bucket: str, items: list[dict]) -> tuple[list[UploadOutcome], StoreFailure | None]:
    """Upload concurrently (a bounded pool). On a store failure the remaining uploads are not started."""
    abort = threading.Event()
    outcomes: list[UploadOutcome] = [UploadOutcome("not_attempted")] * len(items)
    failure: StoreFailure | None = None
    with ThreadPoolExecutor(max_workers=UPLOAD_WORKERS, thread_name_prefix="upload") as pool:
        futures = {pool.submit(upload_one, client, bucket, item, abort): i for i, item in enumerate(items)}
        for future in as_completed(futures):
            try:
                outcomes[futures[future]] = future.result()
            except StoreFailure as error:
                abort.set()
                failure = failure or error
    return outcomes, failure


# --- the asset ----------------------------------------------------------------

def _read_states(production_db: ProductionDatabase, rows: pd.DataFrame) -> tuple[pd.DataFrame, set[int]]:
    staging_students = pd.DataFrame({"staging_id": pd.to_numeric(rows["student_id"], errors="coerce")}).dropna()
    staging_students = staging_students.drop_duplicates().astype("int64")
    with production_db.connection() as conn, conn.cursor() as cur:
        copy_into_temp(cur, "tmp_doc_students", {"staging_id": "bigint"}, staging_students)
        states = read_frame(cur, READ_STUDENT_STATES)
        copy_into_temp(cur, "tmp_doc_rows", {"staging_id": "bigint"}, pd.DataFrame({"staging_id": rows["id"]}))
        linked = read_frame(cur, READ_DOCUMENT_LINKS)
        conn.rollback()
    return states, set(linked["staging_id"].astype("int64"))


def _existing(cur: Cursor, accepted: pd.DataFrame, table: str = "tmp_doc_keys") -> pd.DataFrame:
    keys = accepted[["student_id", "checksum"]].drop_duplicates()
    copy_into_temp(cur, table, KEY_COLUMNS, keys)
    found = read_frame(cur, READ_EXISTING.replace("tmp_doc_keys", table))
    cur.execute(f"DROP TABLE {table}")
    return found


@asset(
    ins={"staging_documents": AssetIn(), "prod_students": AssetIn()},
    deps=["prod_leads"],  # the design card's order: documents come last
    group_name=GROUP_PRODUCTION,
    owners=OWNERS,
    kinds={"postgres", "minio"},
    description="Uploads the staged document files of loaded students to MinIO (streamed, SHA-256 verified, "
    "key students/<student>/<type>/<sha256><ext>) and records them in `student_documents`, once per "
    "(student, SHA-256). Files outside STAGING_FILES_ROOT, missing, empty or not matching their staged "
    "checksum are refused with a reason; documents of students in review or rejected wait for them. "
    "Advances the staging_document watermark with its writes. Output: staging document -> document.",
)
def prod_documents(context: AssetExecutionContext, staging_documents: StagingBatch, prod_students: pd.DataFrame,
                   production_db: ProductionDatabase,
        migration_lock: MigrationLock, document_store: DocumentStore,
                   options: MigrationOptions) -> Output[pd.DataFrame]:
    started = time.monotonic()
    run_id = context.run_id
    rows = staging_documents.rows
    root = document_store.root()

    # 1. Which students are loaded, then hash and validate the files (no lock held).
    states, linked_docs = _read_states(production_db, rows)
    students = _student_ids(rows, prod_students, states)
    plan = plan_batch(rows, students, linked_docs, root)
    hash_seconds = time.monotonic() - started
    accepted = plan.accepted
    with production_db.connection() as conn, conn.cursor() as cur:
        existing_before = _existing(cur, accepted)
        conn.rollback()
    fresh = new_documents(accepted, existing_before, document_store.bucket)

    # 2. Upload the missing objects, outside the transaction.
    upload_started = time.monotonic()
    outcomes: list[UploadOutcome] = []
    if not options.dry_run and len(fresh):
        items = fresh.to_dict("records")
        try:
            client = document_store.client()
            document_store.ensure_bucket(client)
        except Exception as error:
            cause = str(error).rstrip(".") if isinstance(error, SettingsError | DatabaseUnavailable) else \
                f"the document store at {document_store.endpoint} failed ({_summary(error)})"
            raise Failure(
                description=f"{cause}; no document was uploaded, nothing was written to the database, "
                "and the next run completes the documents.",
            ) from None
        outcomes, failure = upload_all(client, document_store.bucket, items)
        if failure is not None:
            done = sum(o.status in ("put", "present") for o in outcomes)
            raise Failure(
                description=f"The document store at {document_store.endpoint} failed after retries "
                f"({failure.summary}): {done} of {len(items)} documents were uploaded, nothing was written "
                "to the database, and the next run completes the rest.",
                metadata={"documents_uploaded_before_failure": done, "documents_to_upload": len(items)},
            )
        refused = {item["student_id"] + item["checksum"]: o.reason
                   for item, o in zip(items, outcomes, strict=True) if o.status == "refused"}
        if refused:
            # Every staging row of a group whose file changed while uploading waits for the next run.
            group = accepted["student_id"] + accepted["checksum"]
            for row in accepted[group.isin(refused)].itertuples(index=False):
                if row.staging_id in linked_docs:
                    plan.left_as_linked += 1
                    continue
                details = {"path": row.staging_file_path, "staging_student_id": row.staging_student_id}
                plan.rejections.append({"staging_table": STAGING_TABLE, "staging_id": int(row.staging_id),
                                        "reason": refused[row.student_id + row.checksum],
                                        "details": json.dumps(details, sort_keys=True), "retryable": True})
            accepted = accepted[~group.isin(refused)].reset_index(drop=True)
            fresh = fresh[~(fresh["student_id"] + fresh["checksum"]).isin(refused)].reset_index(drop=True)
    upload_seconds = time.monotonic() - upload_started
    bytes_put = sum(o.bytes for o in outcomes)

    # 3. One transaction: re-check, insert, link, reject, watermark.
    rejections = pd.DataFrame(plan.rejections, columns=list(("staging_table", "staging_id", "reason", "details",
                                                             "retryable")))
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    inserted: set[str] = set()
    with production_db.connection() as conn, writer_transaction(conn, options) as cur:
        existing = _existing(cur, accepted)
        to_insert = fresh[~_present_in(fresh, existing)]
        if options.dry_run:
            # Students created by this (rolled back) run do not exist: predict instead of inserting.
            document_of = {(s, c): d for d, s, c in existing[["document_id", "student_id", "checksum"]].itertuples(index=False)}
            for d, s, c in to_insert[["document_id", "student_id", "checksum"]].itertuples(index=False):
                document_of[(s, c)] = d
            inserted = set(to_insert["document_id"])
        else:
            copy_into_temp(cur, "tmp_new_documents", NEW_DOCUMENT_COLUMNS, to_insert)
            cur.execute(INSERT_DOCUMENTS, {"now": now})
            inserted = {r[0] for r in cur.fetchall()} if len(to_insert) else set()
            final = _existing(cur, accepted, "tmp_doc_keys_after")
            document_of = {(s, c): d for d, s, c in final[["document_id", "student_id", "checksum"]].itertuples(index=False)}
        document_ids = [document_of.get((s, c)) for s, c in zip(accepted["student_id"], accepted["checksum"], strict=True)]
        first_of_group = ~accepted.duplicated(["student_id", "checksum"], keep="first")
        links = pd.DataFrame({
            "staging_table": STAGING_TABLE, "staging_id": accepted["staging_id"], "entity": "document",
            "entity_id": document_ids, "warnings": accepted["warnings"],
            "matched_by": ["new" if first and d in inserted else "student_checksum"
                           for first, d in zip(first_of_group, document_ids, strict=True)],
        })
        if links["entity_id"].isna().any():  # pragma: no cover - the insert or the re-check found every key
            raise RuntimeError("a document row vanished while linking; the transaction was rolled back")
        if not options.dry_run:
            write_links(cur, links, run_id)
            copy_into_temp(cur, "tmp_doc_relinks", RELINK_COLUMNS, links)
            cur.execute(RELINK_DOCUMENTS, {"run_id": run_id})
            write_rejections(cur, rejections, run_id)
            advance_watermark(cur, STAGING_TABLE, staging_documents.high, run_id)
            record_run(cur, run_id, {"documents_uploaded": len(inserted), "bytes_uploaded": int(bytes_put)}, last=True)

    uploaded = len(inserted)
    skipped = int((links["matched_by"] == "student_checksum").sum())
    new_bytes = int(fresh.loc[fresh["document_id"].isin(inserted), "file_size"].sum()) if len(fresh) else 0
    reasons = rejections["reason"].value_counts()
    metadata = {
        "dry_run": MetadataValue.bool(options.dry_run),
        "staging_rows": len(rows),
        "retried_rows": staging_documents.retried,
        "documents_uploaded": uploaded,
        "documents_skipped": skipped,
        "documents_rejected": len(rejections),
        "documents_waiting": int(rejections["retryable"].sum()) if len(rejections) else 0,
        "rows_linked": len(links),
        "linked_rows_left_as_is": plan.left_as_linked,
        "objects_put": sum(o.status == "put" for o in outcomes),
        "objects_already_in_bucket": sum(o.status == "present" for o in outcomes),
        # On a dry run: the bytes a real run would upload.
        "bytes_uploaded": bytes_put if not options.dry_run else new_bytes,
        "throughput_mb_s": round(bytes_put / 1e6 / upload_seconds, 2) if bytes_put and upload_seconds else 0.0,
        "bytes_hashed": plan.hashed_bytes,
        "rejection_reasons": markdown_counts("reason", reasons),
        "hash_seconds": round(hash_seconds, 2),
        "upload_seconds": round(upload_seconds, 2),
        "seconds": round(time.monotonic() - started, 2),
    }
    context.log.info(
        f"documents{' (dry run)' if options.dry_run else ''}: {uploaded} new, {skipped} already present, "
        f"{len(rejections)} refused or waiting, {metadata['bytes_uploaded'] / 1e6:.1f} MB"
    )
    return Output(links[["staging_id", "entity_id", "matched_by"]].rename(columns={"entity_id": "document_id"}),
                  metadata=metadata)


