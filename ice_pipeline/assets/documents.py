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
never points at an object that is not there. The planning is in
`logic/documents.py`, the SQL in `store/documents.py`, the object store
behind the `DocumentStore` resource; this module tells the story.
"""

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetIn,
    Failure,
    MetadataValue,
    Output,
    asset,
    asset_check,
)
from minio import Minio

from ice_pipeline.assets.common import (
    GROUP_PRODUCTION,
    OWNERS,
    MigrationOptions,
    StagingBatch,
    markdown_counts,
    writer_transaction,
)
from ice_pipeline.checks import accounting
from ice_pipeline.db import advance_watermark, read_frame, record_run, write_links, write_rejections
from ice_pipeline.logic import documents as docs
from ice_pipeline.resources import (
    UPLOAD_WORKERS,
    DatabaseUnavailable,
    DocumentStore,
    ProductionDatabase,
    StagingDatabase,
    StoreFailure,
    UploadOutcome,
    stat_object,
    store_error_summary,
)
from ice_pipeline.settings import SettingsError
from ice_pipeline.store import documents as store
from ice_pipeline.summary import BYTES_UPLOADED, DOCUMENTS_UPLOADED

STAGING_TABLE = docs.STAGING_TABLE
FULL_SCAN_LIMIT = 2000              # documents_objects_present: full scan up to this many rows...
SAMPLE_SIZE = 500                   # ...else a random sample of this many
MAX_LISTED = 50


# Kept for the checks below (they move to ice_pipeline/checks/documents.py): thin wrappers over the
# DocumentStore's logic in resources.py.
def stored_object(client: Minio, bucket: str, key: str) -> tuple[int, str | None] | None:
    """(size, sha256) of an object, None when there is none: the checksum the server verified when it
    reports one, else the x-amz-meta-sha256 metadata."""
    found = stat_object(client, bucket, key)
    return None if found is None else (found.size, found.sha256)


_summary = store_error_summary


def _upload(document_store: DocumentStore, fresh: pd.DataFrame) -> list[UploadOutcome]:
    """Put the new objects; a store that fails stops the run before anything is written."""
    items = docs.upload_items(fresh)
    try:
        client = document_store.client()
        document_store.ensure_bucket(client)
    except Exception as error:
        cause = str(error).rstrip(".") if isinstance(error, SettingsError | DatabaseUnavailable) else \
            f"the document store at {document_store.endpoint} failed ({_summary(error)})"
        raise Failure(description=f"{cause}; no document was uploaded, nothing was written to the database, "
                      "and the next run completes the documents.") from None
    try:
        return document_store.upload(items, client)
    except StoreFailure as failure:
        done = sum(o.status in ("put", "present") for o in failure.outcomes)
        raise Failure(
            description=f"The document store at {document_store.endpoint} failed after retries "
            f"({failure.summary}): {done} of {len(items)} documents were uploaded, nothing was written "
            "to the database, and the next run completes the rest.",
            metadata={"documents_uploaded_before_failure": done, "documents_to_upload": len(items)},
        ) from None


def _write(cur, plan: docs.DocumentPlan, fresh: pd.DataFrame, batch: StagingBatch, run_id: str,
           options: MigrationOptions, bytes_put: int) -> tuple[pd.DataFrame, set[str]]:
    """Inside the writer transaction: re-check, insert, link, reject, watermark. (links, inserted ids)"""
    existing = store.read_existing(cur, plan.accepted)
    to_insert = fresh[~docs.present_in(fresh, existing)]
    if options.dry_run:  # students created by this (rolled back) run do not exist: predict, never insert
        inserted, document_of = set(to_insert["document_id"]), docs.document_ids(existing, to_insert)
    else:
        inserted = store.insert_documents(cur, to_insert, dt.datetime.now(dt.UTC).replace(tzinfo=None))
        document_of = docs.document_ids(store.read_existing(cur, plan.accepted))
    links = docs.document_links(plan.accepted, document_of, inserted)
    if links["entity_id"].isna().any():  # pragma: no cover - the insert or the re-check found every key
        raise RuntimeError("a document row vanished while linking; the transaction was rolled back")
    if not options.dry_run:
        write_links(cur, links, run_id)
        store.relink_documents(cur, links, run_id)
        write_rejections(cur, plan.rejection_frame(), run_id)
        advance_watermark(cur, STAGING_TABLE, batch.high, run_id)
        record_run(cur, run_id, {DOCUMENTS_UPLOADED.stats_key: len(inserted), BYTES_UPLOADED.stats_key: int(bytes_put)},
                   last=True)
    return links, inserted


def _metadata(batch: StagingBatch, plan: docs.DocumentPlan, links: pd.DataFrame, fresh: pd.DataFrame,
              inserted: set[str], outcomes: list[UploadOutcome], options: MigrationOptions,
              seconds: dict[str, float]) -> dict:
    """Run metadata: counts, bytes and timings only (no paths, keys or names)."""
    rejections = plan.rejection_frame()
    bytes_put = sum(o.bytes for o in outcomes)
    new_bytes = int(fresh.loc[fresh["document_id"].isin(inserted), "file_size"].sum()) if len(fresh) else 0
    return {
        "dry_run": MetadataValue.bool(options.dry_run),
        "staging_rows": len(batch.rows),
        "retried_rows": batch.retried,
        "documents_uploaded": len(inserted),
        "documents_skipped": int((links["matched_by"] == "student_checksum").sum()),
        "documents_rejected": len(rejections),
        "documents_waiting": int(rejections["retryable"].sum()) if len(rejections) else 0,
        "documents_with_warnings": int(links["warnings"].notna().sum()),
        "rows_linked": len(links),
        "linked_rows_left_as_is": plan.left_as_linked,
        "objects_put": sum(o.status == "put" for o in outcomes),
        "objects_already_in_bucket": sum(o.status == "present" for o in outcomes),
        # On a dry run: the bytes a real run would upload.
        "bytes_uploaded": bytes_put if not options.dry_run else new_bytes,
        "throughput_mb_s": round(bytes_put / 1e6 / seconds["upload"], 2) if bytes_put and seconds["upload"] else 0.0,
        "bytes_hashed": plan.hashed_bytes,
        "rejection_reasons": markdown_counts("reason", rejections["reason"].value_counts()),
        "hash_seconds": round(seconds["hash"], 2),
        "upload_seconds": round(seconds["upload"], 2),
        "seconds": round(seconds["total"], 2),
    }


@asset(
    ins={"staging_documents": AssetIn(), "prod_students": AssetIn()},
    deps=["prod_leads"],  # the design card's order: documents come last
    group_name=GROUP_PRODUCTION,
    owners=OWNERS,
    kinds={"postgres", "minio"},
    description="Uploads the staged document files of loaded students to MinIO (streamed, SHA-256 verified by "
    "the server, key students/<student>/<type>/<sha256><ext>) and records them in `student_documents`, once per "
    "(student, SHA-256). The MIME type stored is the one the content shows; HTML/SVG/XML/JavaScript are only "
    "ever served as downloads. Files outside STAGING_FILES_ROOT, missing, empty, too large or not matching "
    "their staged checksum are refused with a reason; documents of students in review or rejected wait for "
    "them. Advances the staging_document watermark with its writes. Output: staging document -> document.",
)
def prod_documents(context: AssetExecutionContext, staging_documents: StagingBatch, prod_students: pd.DataFrame,
                   production_db: ProductionDatabase, document_store: DocumentStore,
                   options: MigrationOptions) -> Output[pd.DataFrame]:
    started = time.monotonic()
    rows = staging_documents.rows

    # 1. Which students are loaded, which rows are linked; hash and validate the files (no lock held).
    with production_db.connection() as conn, conn.cursor() as cur:
        states = store.read_student_states(cur, rows)
        linked_docs = store.read_document_links(cur, rows)
        conn.rollback()
    students = docs.student_states(rows, prod_students, states)
    plan = docs.plan_batch(rows, students, linked_docs, document_store.root())
    hash_seconds = time.monotonic() - started
    with production_db.connection() as conn, conn.cursor() as cur:
        existing = store.read_existing(cur, plan.accepted)
        conn.rollback()
    fresh = docs.new_documents(plan.accepted, existing, document_store.bucket)

    # 2. Upload the missing objects, outside the transaction; a file changed meanwhile waits.
    upload_started = time.monotonic()
    outcomes = _upload(document_store, fresh) if not options.dry_run and len(fresh) else []
    fresh = docs.drop_refused(plan, fresh, outcomes, linked_docs)
    upload_seconds = time.monotonic() - upload_started

    # 3. One transaction: re-check, insert, link, reject, watermark.
    with production_db.connection() as conn, writer_transaction(conn, options) as cur:
        links, inserted = _write(cur, plan, fresh, staging_documents, context.run_id, options,
                                 sum(o.bytes for o in outcomes))

    metadata = _metadata(staging_documents, plan, links, fresh, inserted, outcomes, options, {
        "hash": hash_seconds, "upload": upload_seconds, "total": time.monotonic() - started})
    context.log.info(
        f"documents{' (dry run)' if options.dry_run else ''}: {metadata['documents_uploaded']} new, "
        f"{metadata['documents_skipped']} already present, {metadata['documents_rejected']} refused or waiting, "
        f"{metadata['bytes_uploaded'] / 1e6:.1f} MB"
    )
    return Output(links[["staging_id", "entity_id", "matched_by"]].rename(columns={"entity_id": "document_id"}),
                  metadata=metadata)


# --- checks -------------------------------------------------------------------

DUPLICATES = """
SELECT string_agg(id::text, ',' ORDER BY id) AS ids, count(*) AS n FROM student_documents
WHERE checksum IS NOT NULL GROUP BY student_id, checksum HAVING count(*) > 1
"""
ORPHANS = """
SELECT d.id::text AS ids FROM student_documents d
LEFT JOIN students s ON s.id = d.student_id WHERE s.id IS NULL
"""
# Links to a document row deleted since (the bot may delete documents): reported, not a failure.
DANGLING_LINKS = """
SELECT count(*) FROM ice_pipeline.source_links l
LEFT JOIN student_documents d ON d.id = l.entity_id WHERE l.entity = 'document' AND d.id IS NULL
"""
COUNT_OBJECT_ROWS = "SELECT count(*) FROM student_documents WHERE storage_provider = 'MINIO' AND bucket = %(bucket)s"
OBJECT_ROWS = """
SELECT id::text AS id, object_key, file_size, checksum FROM student_documents
WHERE storage_provider = 'MINIO' AND bucket = %(bucket)s
"""
SAMPLE_OBJECT_ROWS = OBJECT_ROWS + " ORDER BY random() LIMIT %(sample)s"
OBJECT_KEYS = "SELECT object_key FROM student_documents WHERE bucket = %(bucket)s"


def _offending(found: pd.DataFrame) -> list[str]:
    return [i for ids in found["ids"] for i in str(ids).split(",")][:MAX_LISTED]


@asset_check(asset=prod_documents, name="documents_no_duplicates", blocking=False,
             description="No two document rows share (student, SHA-256): a file is stored once per student. "
             "Lists the offending document ids.")
def documents_no_duplicates(production_db: ProductionDatabase) -> AssetCheckResult:
    with production_db.connection() as conn, conn.cursor() as cur:
        found = read_frame(cur, DUPLICATES)
        conn.rollback()
    return AssetCheckResult(passed=found.empty, severity=AssetCheckSeverity.ERROR, metadata={
        "duplicate_groups": len(found), "offending_ids": MetadataValue.json(_offending(found))})


@asset_check(asset=prod_documents, name="documents_no_orphans",
             description="Every document row belongs to an existing student. Lists the offending document ids; "
             "also counts document links whose row was deleted since (not a failure).")
def documents_no_orphans(production_db: ProductionDatabase) -> AssetCheckResult:
    with production_db.connection() as conn, conn.cursor() as cur:
        found = read_frame(cur, ORPHANS)
        cur.execute(DANGLING_LINKS)
        dangling = int(cur.fetchone()[0])
        conn.rollback()
    return AssetCheckResult(passed=found.empty, severity=AssetCheckSeverity.ERROR, metadata={
        "orphans": len(found), "offending_ids": MetadataValue.json(found["ids"].head(MAX_LISTED).tolist()),
        "links_to_deleted_documents": dangling})


def _verify_object(client: Minio, bucket: str, row) -> str | None:
    """Why a document row's object is not right, or None."""
    try:
        stored = stored_object(client, bucket, row.object_key)
    except Exception as error:  # noqa: BLE001 - reported per row
        return f"store error ({_summary(error)})"
    if stored is None:
        return "object missing"
    size, sha256 = stored
    if pd.notna(row.file_size) and size != int(row.file_size):
        return "size differs"
    if pd.notna(row.checksum):
        if not sha256:
            return "no sha256 metadata"
        if sha256 != row.checksum:
            return "sha256 differs"
    return None


def _probe(client: Minio, bucket: str) -> bool | str:
    """True when the bucket can be read, else why not (for check metadata)."""
    try:
        return True if client.bucket_exists(bucket) else "bucket does not exist"
    except Exception as error:  # noqa: BLE001 - reported in the check's metadata
        return f"store unreachable ({_summary(error)})"


@asset_check(asset=prod_documents, name="documents_objects_present",
             description=f"Every document row's object exists in the bucket with the recorded size and SHA-256 "
             f"(object metadata): a full scan up to {FULL_SCAN_LIMIT} rows, else a random sample of "
             f"{SAMPLE_SIZE}. A row without its object is not allowed. Lists the offending document ids.")
def documents_objects_present(production_db: ProductionDatabase, document_store: DocumentStore) -> AssetCheckResult:
    bucket = document_store.bucket
    with production_db.connection() as conn, conn.cursor() as cur:
        cur.execute(COUNT_OBJECT_ROWS, {"bucket": bucket})
        total = int(cur.fetchone()[0])
        full = total <= FULL_SCAN_LIMIT
        rows = read_frame(cur, OBJECT_ROWS if full else SAMPLE_OBJECT_ROWS, {"bucket": bucket, "sample": SAMPLE_SIZE})
        conn.rollback()
    rows["file_size"] = pd.to_numeric(rows["file_size"])
    mode = f"full scan of {total} rows" if full else f"random sample of {len(rows)} of {total} rows"
    client = document_store.client()
    reachable = _probe(client, bucket)
    if reachable is not True:
        return AssetCheckResult(passed=rows.empty, severity=AssetCheckSeverity.ERROR, metadata={
            "mode": mode, "rows_checked": 0, "rows_failing": len(rows), "store": reachable,
            "offending_ids": MetadataValue.json(rows["id"].head(MAX_LISTED).tolist())})
    with ThreadPoolExecutor(max_workers=UPLOAD_WORKERS, thread_name_prefix="verify") as pool:
        problems = list(pool.map(lambda r: _verify_object(client, bucket, r), rows.itertuples(index=False)))
    bad = rows.assign(problem=problems).dropna(subset=["problem"])
    return AssetCheckResult(passed=bad.empty, severity=AssetCheckSeverity.ERROR, metadata={
        "mode": mode,
        "rows_checked": len(rows),
        "rows_failing": len(bad),
        "problems": markdown_counts("problem", bad["problem"].value_counts()),
        "offending_ids": MetadataValue.json(bad["id"].head(MAX_LISTED).tolist())})


@asset_check(asset=prod_documents, name="documents_no_stray_objects",
             description="Objects under students/ with no document row (e.g. left by a run interrupted after "
             f"uploading; the next run links them). A warning; lists up to {MAX_LISTED} keys.")
def documents_no_stray_objects(production_db: ProductionDatabase, document_store: DocumentStore) -> AssetCheckResult:
    bucket = document_store.bucket
    client = document_store.client()
    reachable = _probe(client, bucket)
    if reachable is not True:
        return AssetCheckResult(passed=reachable == "bucket does not exist", severity=AssetCheckSeverity.WARN,
                                metadata={"objects": 0, "store": reachable})
    with production_db.connection() as conn, conn.cursor() as cur:
        known = set(read_frame(cur, OBJECT_KEYS, {"bucket": bucket})["object_key"].dropna())
        conn.rollback()
    objects = 0
    stray: list[str] = []
    stray_count = 0
    for item in client.list_objects(bucket, prefix="students/", recursive=True):
        objects += 1
        if item.object_name not in known:
            stray_count += 1
            if len(stray) < MAX_LISTED:
                stray.append(item.object_name)
    return AssetCheckResult(passed=stray_count == 0, severity=AssetCheckSeverity.WARN, metadata={
        "objects": objects, "stray_objects": stray_count, "stray_keys": MetadataValue.json(stray)})


@asset_check(asset=prod_documents, name="documents_accounting",
             description="Every staging_document row is linked to a document or rejected with a reason (or beyond "
             "the watermark, not processed yet), and in only one of those places. Lists unaccounted staging ids.")
def documents_accounting(staging_db: StagingDatabase, production_db: ProductionDatabase) -> AssetCheckResult:
    with staging_db.connection() as s, production_db.connection() as p:
        figures = accounting(s, p, STAGING_TABLE)
    passed = figures["unaccounted"] == 0 and figures["in_two_places"] == 0
    return AssetCheckResult(passed=passed, severity=AssetCheckSeverity.ERROR, metadata={
        k: (MetadataValue.json(v) if isinstance(v, list) else v) for k, v in figures.items()})


document_checks = [documents_no_duplicates, documents_no_orphans, documents_objects_present,
                   documents_no_stray_objects, documents_accounting]
