"""staging_*: the staging rows to process in this run, read in one snapshot and normalized.

"To process" = new or changed since the production-side watermark (or all of
them with full_refresh), plus rows an earlier run could not load yet. The SQL
is in `store/staging.py`, the normalization in `logic/staging.py`.
"""

import datetime as dt
from dataclasses import dataclass

import pandas as pd
from dagster import AssetExecutionContext, AssetOut, Failure, MetadataValue, Output, multi_asset
from psycopg2.extensions import connection as Connection
from psycopg2.extensions import cursor as Cursor

from ice_pipeline.assets.common import GROUP_STAGING, OWNERS, MigrationOptions, StagingBatch, markdown_counts
from ice_pipeline.logic import failures as lf
from ice_pipeline.logic.staging import batch_extent, normalize_leads, normalize_students
from ice_pipeline.resources import MigrationLock, ProductionDatabase, StagingDatabase
from ice_pipeline.schema import check_staging_schema
from ice_pipeline.store import staging as store
from ice_pipeline.store.staging import BEGINNING


def _batch(
    table: str, rows: pd.DataFrame, retry: list[int], *, limit: int = 0, cut: tuple | None = None
) -> StagingBatch:
    extent = batch_extent(rows, retry, limit=limit, cut=cut)
    return StagingBatch(
        table=table,
        rows=rows.drop(columns="in_window"),
        high=extent.high,
        retried=extent.retried,
        limited=extent.limited,
    )


def _summary(batch: StagingBatch, normalized: pd.DataFrame | None = None) -> dict:
    metadata = {
        "rows": len(batch),
        "retried_rows": batch.retried,
        "more_pending": MetadataValue.bool(batch.limited),
        "watermark_after": MetadataValue.text(
            f"{batch.high[0]} / id {batch.high[1]}" if batch.high else "unchanged"
        ),
    }
    if batch.table == "staging_lead":
        metadata["failures_read"] = batch.failures_read
        metadata["failures_recovered_rows"] = (
            int((batch.rows["staging_table"] == lf.TABLE).sum()) if "staging_table" in batch.rows else 0
        )
        metadata["failures_watermark_after"] = MetadataValue.text(
            f"{batch.failures_high[0]} / id {batch.failures_high[1]}" if batch.failures_high else "unchanged"
        )
    if normalized is not None:
        warnings = normalized["warnings"].dropna().str.split("; ").explode()
        metadata["warnings"] = markdown_counts("warning", warnings.value_counts())
        metadata["rejected_at_normalization"] = int(normalized["reject_reason"].notna().sum())
    return metadata


def _reference_summary(reference: pd.DataFrame) -> dict:
    """Reference rows per category: a missing category shows in the UI before anything resolves against it."""
    categories = reference["category"].value_counts() if len(reference) else pd.Series(dtype=int)
    return {"rows": len(reference), "by_category": markdown_counts("category", categories)}


def _add_failures(leads: StagingBatch, failures: StagingBatch, reference: pd.DataFrame) -> None:
    """Lead failures whose raw cells give a name and an identifier join the leads, normalized by the same
    `normalize_leads` (staging_table 'staging_lead_failures'); the others wait, as rejections, for prod_leads."""
    recovered, rejected = lf.recover_failures(failures.rows)
    damaged = recovered.pop("_encoding_damage").astype(bool).to_numpy()
    normalized = normalize_leads(recovered, reference, table=lf.TABLE)
    if damaged.any():
        normalized.loc[damaged, "warnings"] = normalized.loc[damaged, "warnings"].map(
            lambda w: f"{w}; {lf.ENCODING_WARNING}" if isinstance(w, str) and w else lf.ENCODING_WARNING
        )
    lost = lf.unidentified(normalized).to_numpy() & normalized["reject_reason"].isna().to_numpy()
    errors = failures.rows.set_index("id")["error"]
    rejected = pd.concat(
        [
            rejected,
            lf.rejections(
                [
                    (int(i), lf.reason(lf.NO_IDENTIFIER, errors.get(int(i))))
                    for i in normalized.loc[lost, "staging_id"]
                ]
            ),
        ],
        ignore_index=True,
    )
    kept = normalized.loc[~lost]
    leads.rows = pd.concat([leads.rows, kept], ignore_index=True) if len(kept) else leads.rows
    leads.failures_read, leads.failures_high, leads.failures_rejected = len(failures), failures.high, rejected
    leads.limited = leads.limited or failures.limited


@dataclass
class StagingSnapshot:
    """What one run reads from staging in one snapshot: reference data and each staging table's batch."""

    reference: pd.DataFrame
    students: StagingBatch
    leads: StagingBatch
    documents: StagingBatch
    failures: StagingBatch  # staging_lead_failures: V3's rows it could not parse


def where_last_run_stopped(
    production_db: ProductionDatabase, full_refresh: bool
) -> tuple[dict[str, tuple], dict[str, list[int]]]:
    """(watermark per staging table, staging ids per table to read again), as committed in production."""
    with production_db.connection() as prod, prod.cursor() as cur:
        marks = {} if full_refresh else store.read_watermarks(cur)
        retry = store.read_retryable(cur)
        prod.rollback()
    return marks, retry


def staging_read_cap(context: AssetExecutionContext, conn: Connection) -> dt.datetime:
    """Set up the staging session (read-only REPEATABLE READ, UTC, schema checked) and return the `updated_at`
    below which this run may read: below V3's open write transactions, checked before the snapshot."""
    conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
    with conn.cursor() as cur:
        cur.execute(store.SET_UTC_TIME_ZONE)
    check_staging_schema(conn)
    conn.commit()  # keeps the session's time zone; the read's snapshot is taken by read_snapshot
    try:
        cap, writers = store.open_writer_cap(conn)
    except store.OpenWriterNotVisible as error:
        raise Failure(description=str(error)) from None
    conn.rollback()
    if writers:
        context.log.info(
            f"{writers} staging write transaction(s) open since {cap}: rows from then on wait "
            "for the next run"
        )
    return cap


def read_snapshot(
    cur: Cursor, marks: dict[str, tuple], retry: dict[str, list[int]], cap: dt.datetime, limit: int
) -> StagingSnapshot:
    """Reference data, the batch's arrival cut, and the rows of each table beyond its watermark (`marks`)
    below `cap`, plus the rows to `retry`: all in the cursor's one snapshot."""
    reference = store.read_reference(cur)
    cut = store.arrival_cut(cur, marks, limit, cap)
    since = {
        table: marks.get(table, BEGINNING)
        for table in ("staging_student", "staging_lead", "staging_document", lf.TABLE)
    }
    student_retry, lead_retry = retry.get("staging_student", []), retry.get("staging_lead", [])
    document_retry = retry.get("staging_document", [])
    students = _batch(
        "staging_student",
        store.read_students(cur, since["staging_student"], student_retry, cap, cut),
        student_retry,
        cut=cut,
    )
    leads = _batch(
        "staging_lead",
        store.read_leads(cur, since["staging_lead"], lead_retry, cap, cut),
        lead_retry,
        cut=cut,
    )
    documents = _batch(
        "staging_document",
        store.read_documents(cur, since["staging_document"], document_retry, cap, limit),
        document_retry,
        limit=limit,
    )
    failure_retry = retry.get(lf.TABLE, [])
    failures = _batch(
        lf.TABLE,
        store.read_lead_failures(cur, since[lf.TABLE], failure_retry, cap, limit),
        failure_retry,
        limit=limit,
    )
    return StagingSnapshot(reference, students, leads, documents, failures)


@multi_asset(
    outs={
        "staging_students": AssetOut(
            description="Staging students to process, normalized.",
            group_name=GROUP_STAGING,
            owners=OWNERS,
            kinds={"postgres", "pandas"},
        ),
        "staging_leads": AssetOut(
            description="Staging leads to process, normalized.",
            group_name=GROUP_STAGING,
            owners=OWNERS,
            kinds={"postgres", "pandas"},
        ),
        "staging_documents": AssetOut(
            description="Staged documents to process.",
            group_name=GROUP_STAGING,
            owners=OWNERS,
            kinds={"postgres", "pandas"},
        ),
        "staging_reference_data": AssetOut(
            description="Programs, services, events, cities and countries (all rows).",
            group_name=GROUP_STAGING,
            owners=OWNERS,
            kinds={"postgres", "pandas"},
        ),
    },
    description="Reads the staging rows new or changed since the production watermarks, in one snapshot.",
)
def staging_tables(
    context: AssetExecutionContext,
    staging_db: StagingDatabase,
    production_db: ProductionDatabase,
    migration_lock: MigrationLock,
    options: MigrationOptions,
):
    """`migration_lock` is required here, on the first asset of the run, and nowhere else: initialising it
    takes the run lock before the watermarks are read, and Dagster keeps it for the whole run."""
    marks, retry = where_last_run_stopped(production_db, options.full_refresh)
    with staging_db.connection() as conn:
        cap = staging_read_cap(context, conn)
        with conn.cursor() as cur:
            snapshot = read_snapshot(cur, marks, retry, cap, options.limit)
        conn.rollback()
    reference, students, leads = snapshot.reference, snapshot.students, snapshot.leads
    documents, failures = snapshot.documents, snapshot.failures
    # Normalized, with what the run will show in the UI.
    context.log.info(
        f"staging: {len(students)} students, {len(leads)} leads, {len(documents)} documents, "
        f"{len(failures)} lead failures to process"
    )
    students.rows = normalize_students(students.rows, reference)
    leads.rows = normalize_leads(leads.rows, reference)
    _add_failures(leads, failures, reference)
    yield Output(students, "staging_students", metadata=_summary(students, students.rows))
    yield Output(leads, "staging_leads", metadata=_summary(leads, leads.rows))
    yield Output(documents, "staging_documents", metadata=_summary(documents))
    yield Output(reference, "staging_reference_data", metadata=_reference_summary(reference))
