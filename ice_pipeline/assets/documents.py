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

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    Failure,
    MetadataValue,
    Output,
    asset,
)

from ice_pipeline.assets.common import (
    GROUP_PRODUCTION,
    OWNERS,
    MigrationOptions,
    StagingBatch,
    markdown_counts,
    writer_transaction,
)
from ice_pipeline.db import advance_watermark, record_run, write_links, write_rejections
from ice_pipeline.logic import documents as docs
from ice_pipeline.reporting import verification_metadata
from ice_pipeline.resources import (
    DatabaseUnavailable,
    DocumentStore,
    ProductionDatabase,
    StoreFailure,
    UploadOutcome,
    store_error_summary,
)
from ice_pipeline.settings import SettingsError
from ice_pipeline.store import documents as store
from ice_pipeline.summary import BYTES_UPLOADED, DOCUMENTS_UPLOADED

STAGING_TABLE = docs.STAGING_TABLE


def _upload(document_store: DocumentStore, fresh: pd.DataFrame) -> list[UploadOutcome]:
    """Put the new objects; a store that fails stops the run before anything is written."""
    items = docs.upload_items(fresh)
    try:
        client = document_store.client()
        document_store.ensure_bucket(client)
    except Exception as error:
        cause = (
            str(error).rstrip(".")
            if isinstance(error, SettingsError | DatabaseUnavailable)
            else f"the document store at {document_store.endpoint} failed ({store_error_summary(error)})"
        )
        raise Failure(
            description=f"{cause}; no document was uploaded, nothing was written to the database, "
            "and the next run completes the documents."
        ) from None
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


def _write(
    cur,
    plan: docs.DocumentPlan,
    fresh: pd.DataFrame,
    batch: StagingBatch,
    run_id: str,
    options: MigrationOptions,
    bytes_put: int,
) -> tuple[pd.DataFrame, set[str]]:
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
        record_run(
            cur,
            run_id,
            {DOCUMENTS_UPLOADED.stats_key: len(inserted), BYTES_UPLOADED.stats_key: int(bytes_put)},
            last=True,
        )
    return links, inserted


def _metadata(
    batch: StagingBatch,
    plan: docs.DocumentPlan,
    links: pd.DataFrame,
    fresh: pd.DataFrame,
    inserted: set[str],
    outcomes: list[UploadOutcome],
    options: MigrationOptions,
    seconds: dict[str, float],
) -> dict:
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
        "throughput_mb_s": round(bytes_put / 1e6 / seconds["upload"], 2)
        if bytes_put and seconds["upload"]
        else 0.0,
        "bytes_hashed": plan.hashed_bytes,
        "rejection_reasons": markdown_counts("reason", rejections["reason"].value_counts()),
        "hash_seconds": round(seconds["hash"], 2),
        "upload_seconds": round(seconds["upload"], 2),
        "seconds": round(seconds["total"], 2),
    }


def plan_documents(
    production_db: ProductionDatabase,
    document_store: DocumentStore,
    rows: pd.DataFrame,
    prod_students: pd.DataFrame,
) -> tuple[docs.DocumentPlan, pd.DataFrame, set[int]]:
    """Which students are loaded and which rows are linked; the files hashed and validated (no lock
    held); the documents whose object is not in production yet. Returns (plan, fresh, linked rows)."""
    with production_db.connection() as conn, conn.cursor() as cur:
        states = store.read_student_states(cur, rows)
        linked_docs = store.read_document_links(cur, rows)
        conn.rollback()
    students = docs.student_states(rows, prod_students, states)
    plan = docs.plan_batch(rows, students, linked_docs, document_store.root())
    with production_db.connection() as conn, conn.cursor() as cur:
        existing = store.read_existing(cur, plan.accepted)
        conn.rollback()
    return plan, docs.new_documents(plan.accepted, existing, document_store.bucket), linked_docs


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
def prod_documents(
    context: AssetExecutionContext,
    staging_documents: StagingBatch,
    prod_students: pd.DataFrame,
    production_db: ProductionDatabase,
    document_store: DocumentStore,
    options: MigrationOptions,
) -> Output[pd.DataFrame]:
    started = time.monotonic()
    plan, fresh, linked_docs = plan_documents(
        production_db, document_store, staging_documents.rows, prod_students
    )
    hash_seconds = time.monotonic() - started

    # 2. Upload the missing objects, outside the transaction; a file changed meanwhile waits.
    upload_started = time.monotonic()
    outcomes = _upload(document_store, fresh) if not options.dry_run and len(fresh) else []
    fresh = docs.drop_refused(plan, fresh, outcomes, linked_docs)
    upload_seconds = time.monotonic() - upload_started

    # 3. One transaction: re-check, insert, link, reject, watermark.
    with production_db.connection() as conn, writer_transaction(conn, options) as cur:
        links, inserted = _write(
            cur,
            plan,
            fresh,
            staging_documents,
            context.op_execution_context.run_id,
            options,
            sum(o.bytes for o in outcomes),
        )

    metadata = _metadata(
        staging_documents,
        plan,
        links,
        fresh,
        inserted,
        outcomes,
        options,
        {"hash": hash_seconds, "upload": upload_seconds, "total": time.monotonic() - started},
    )
    with production_db.connection() as conn:  # the plan's verification figures, on the run's last asset
        metadata.update(verification_metadata(conn))
    context.log.info(
        f"documents{' (dry run)' if options.dry_run else ''}: {metadata['documents_uploaded']} new, "
        f"{metadata['documents_skipped']} already present, {metadata['documents_rejected']} refused or waiting, "
        f"{metadata['bytes_uploaded'] / 1e6:.1f} MB"
    )
    return Output(
        links[["staging_id", "entity_id", "matched_by"]].rename(columns={"entity_id": "document_id"}),
        metadata=metadata,
    )
