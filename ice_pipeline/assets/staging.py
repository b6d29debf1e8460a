"""staging_*: the staging rows to process in this run, read in one snapshot and normalized.

"To process" = new or changed since the production-side watermark (or all of
them with full_refresh), plus rows an earlier run could not load yet.
"""


import pandas as pd
from dagster import AssetExecutionContext, AssetOut, MetadataValue, Output, multi_asset
from psycopg2.extensions import cursor as Cursor

from ice_pipeline.assets.common import GROUP_STAGING, OWNERS, MigrationOptions, StagingBatch, markdown_counts
from ice_pipeline.db import read_frame
from ice_pipeline.logic import normalize as nz
from ice_pipeline.logic.people import alias_map, prepare_person_rows
from ice_pipeline.resources import MigrationLock, ProductionDatabase, StagingDatabase
from ice_pipeline.schema import check_staging_schema

READ_WATERMARKS = "SELECT staging_table, high_updated_at, high_id FROM ice_pipeline.watermarks"
# Rows to read again whatever the watermark: rejections that may load later
# (a document waiting for its student), identity questions a person answered.
READ_RETRYABLE = """
SELECT staging_table, staging_id FROM ice_pipeline.rejected_rows WHERE retryable
UNION
SELECT staging_table, staging_id FROM ice_pipeline.review_queue
WHERE kind = 'identity_conflict' AND status = 'resolved' AND decision IS NOT NULL
"""
# Rows beyond the watermark in (updated_at, id) order, up to the batch's arrival
# cut (see ARRIVAL_CUT), plus rows to retry.
READ_STUDENTS = """
SELECT id, full_name, original_name, email, phone, cedula, birth_date, address, city, country,
       program, student_number, source, csv_enriched, created_at, updated_at
FROM staging_student
WHERE (((updated_at, id) > (%(since)s, %(since_id)s) AND (%(cap)s::timestamptz IS NULL OR updated_at < %(cap)s))
       AND (%(cut_at)s::timestamptz IS NULL OR (updated_at, 0, id) <= (%(cut_at)s, %(cut_rank)s, %(cut_id)s)))
   OR id = ANY(%(retry)s)
ORDER BY updated_at, id
"""
READ_LEADS = """
SELECT id, full_name, original_name, email, phone, cedula, birth_date, address, city, country,
       interest_program, service, event, status, notes, source_file, source_sheet, source_row,
       created_at, updated_at
FROM staging_lead
WHERE (((updated_at, id) > (%(since)s, %(since_id)s) AND (%(cap)s::timestamptz IS NULL OR updated_at < %(cap)s))
       AND (%(cut_at)s::timestamptz IS NULL OR (updated_at, 1, id) <= (%(cut_at)s, %(cut_rank)s, %(cut_id)s)))
   OR id = ANY(%(retry)s)
ORDER BY updated_at, id
"""
# The batch limit counts students and leads together, in arrival order
# (updated_at, table: students first, id) -- the order identity resolution
# uses -- so that a backlog taken in several runs gives the same result as one
# batch. The cut is the last row of the batch; NULL when everything fits.
ARRIVAL_CUT = """
SELECT updated_at, rank, id FROM (
    (SELECT updated_at, 0 AS rank, id FROM staging_student
     WHERE (updated_at, id) > (%(student_since)s, %(student_since_id)s)
       AND (%(cap)s::timestamptz IS NULL OR updated_at < %(cap)s)
     ORDER BY updated_at, id LIMIT %(limit)s)
    UNION ALL
    (SELECT updated_at, 1 AS rank, id FROM staging_lead
     WHERE (updated_at, id) > (%(lead_since)s, %(lead_since_id)s)
       AND (%(cap)s::timestamptz IS NULL OR updated_at < %(cap)s)
     ORDER BY updated_at, id LIMIT %(limit)s)
) arrivals
ORDER BY updated_at, rank, id OFFSET %(limit)s - 1 LIMIT 1
"""
READ_DOCUMENTS = """
SELECT id, student_id, document_type, original_file_path, staging_file_path, normalized_file_name,
       checksum, file_size, mime_type, created_at, updated_at
FROM staging_document
WHERE ((updated_at, id) > (%(since)s, %(since_id)s) AND (%(cap)s::timestamptz IS NULL OR updated_at < %(cap)s))
   OR id = ANY(%(retry)s)
ORDER BY updated_at, id
LIMIT %(limit)s
"""
READ_REFERENCE = """
SELECT id, source_file, category, code, label, aliases, attributes, updated_at
FROM staging_reference_data ORDER BY category, code
"""
BEGINNING = ("-infinity", 0)
# updated_at defaults to now(), the *start* of V3's transaction: while one is
# still open, rows it will commit are older than rows committed meanwhile.
# Reading only below its start keeps the watermark from passing them by.
OPEN_WRITER_START = """
SELECT min(xact_start) FROM pg_stat_activity
WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()
"""

LEAD_STATUS = {"nuevo": "NEW", "new": "NEW", "contactado": "CONTACTED", "contacted": "CONTACTED",
               "interesado": "INTERESTED", "interested": "INTERESTED", "inscrito": "ENROLLED",
               "enrolled": "ENROLLED", "perdido": "LOST", "lost": "LOST", "noresponde": "NO_ANSWER"}


def canonical_status(values: pd.Series) -> pd.Series:
    """'nuevo', 'New ', 'NEW' -> 'NEW'; unknown statuses kept, upper-cased."""
    status = nz.clean_text(values, max_length=50)
    return nz.label_key(status).map(LEAD_STATUS).astype("string").fillna(status.str.upper())


def arrival_cut(cur: Cursor, marks: dict[str, tuple], limit: int, cap: object) -> tuple | None:
    """(updated_at, rank, id) of the last student/lead row of a batch of `limit` rows; None when all fit."""
    if not limit:
        return None
    student, lead = marks.get("staging_student", BEGINNING), marks.get("staging_lead", BEGINNING)
    cur.execute(ARRIVAL_CUT, {"student_since": student[0], "student_since_id": student[1], "lead_since": lead[0],
                              "lead_since_id": lead[1], "cap": cap, "limit": limit})
    return cur.fetchone()


def _read_batch(cur: Cursor, table: str, query: str, since: tuple, retry: list[int], *, limit: int = 0,
                cap: object = None, cut: tuple | None = None) -> StagingBatch:
    cut_at, cut_rank, cut_id = cut or (None, None, None)
    rows = read_frame(cur, query, {"since": since[0], "since_id": since[1], "retry": retry, "limit": limit or None,
                                   "cap": cap, "cut_at": cut_at, "cut_rank": cut_rank, "cut_id": cut_id})
    rows["id"] = rows["id"].astype("int64")
    high = None
    if len(rows):
        last_ts, last_id = rows["updated_at"].iloc[-1], int(rows["id"].iloc[-1])
        beyond = len(rows) - int(rows["id"].isin(retry).sum())
        if beyond:
            high = (str(last_ts), last_id)
    retried = int(rows["id"].isin(retry).sum())
    # More rows wait beyond this batch: the arrival cut fell inside it, or the per-table limit was reached.
    limited = cut is not None or bool(limit and len(rows) - retried >= limit)
    return StagingBatch(table=table, rows=rows, high=high, retried=retried, limited=limited)


def normalize_students(rows: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Person fields plus the student's own: program through aliases, student number, source."""
    out = prepare_person_rows(rows, reference)
    out["staging_table"], out["staging_id"], out["updated_at"] = "staging_student", rows["id"], rows["updated_at"]
    out["program"] = nz.canonical_label(rows["program"], alias_map(reference, "program"))
    out["student_number"] = nz.clean_text(rows["student_number"], max_length=64).str.upper()
    source = nz.by_unique(rows["source"], nz.clean_text).str.lower()
    out["data_source"] = source
    csv_flag = rows["csv_enriched"].fillna("f").isin(["t", "true", "True"])
    from_csv = csv_flag | source.str.contains("csv", regex=False).fillna(False)
    out["csv_enriched"] = from_csv.to_numpy()
    out["source_kind"] = pd.Series(from_csv.to_numpy(), index=rows.index).map({True: "CSV", False: "DIRECTORY"})
    return out


def normalize_leads(rows: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Person fields plus the lead's own: program type, service, event, status, provenance."""
    out = prepare_person_rows(rows, reference)
    out["staging_table"], out["staging_id"], out["updated_at"] = "staging_lead", rows["id"], rows["updated_at"]
    out["program_type"] = nz.canonical_label(rows["interest_program"], alias_map(reference, "program"))
    out["service_key"] = nz.by_unique(rows["service"], nz.label_key)
    out["event_key"] = nz.by_unique(rows["event"], nz.label_key)
    out["lead_status"] = nz.by_unique(rows["status"], canonical_status)
    out["notes"] = nz.clean_text(rows["notes"])
    out["source_file"] = nz.by_unique(rows["source_file"], lambda s: nz.clean_text(s, max_length=500))
    out["source_sheet"] = nz.by_unique(rows["source_sheet"], lambda s: nz.clean_text(s, max_length=200))
    out["source_row"] = pd.to_numeric(rows["source_row"], errors="coerce").astype("Int64")
    out["lead_date"] = rows["created_at"]
    out["source_kind"] = "CSV"
    return out


def _reference(cur: Cursor) -> pd.DataFrame:
    cur.execute(READ_REFERENCE)
    columns = [d[0] for d in cur.description]
    return pd.DataFrame(cur.fetchall(), columns=columns)


def _summary(batch: StagingBatch, normalized: pd.DataFrame | None = None) -> dict:
    metadata = {
        "rows": len(batch),
        "retried_rows": batch.retried,
        "more_pending": MetadataValue.bool(batch.limited),
        "watermark_after": MetadataValue.text(f"{batch.high[0]} / id {batch.high[1]}" if batch.high else "unchanged"),
    }
    if normalized is not None:
        warnings = normalized["warnings"].dropna().str.split("; ").explode()
        metadata["warnings"] = markdown_counts("warning", warnings.value_counts())
        metadata["rejected_at_normalization"] = int(normalized["reject_reason"].notna().sum())
    return metadata


@multi_asset(
    outs={
        "staging_students": AssetOut(description="Staging students to process, normalized.", group_name=GROUP_STAGING,
                                     owners=OWNERS, kinds={"postgres", "pandas"}),
        "staging_leads": AssetOut(description="Staging leads to process, normalized.", group_name=GROUP_STAGING,
                                  owners=OWNERS, kinds={"postgres", "pandas"}),
        "staging_documents": AssetOut(description="Staged documents to process.", group_name=GROUP_STAGING,
                                      owners=OWNERS, kinds={"postgres", "pandas"}),
        "staging_reference_data": AssetOut(description="Programs, services, events, cities and countries (all rows).",
                                           group_name=GROUP_STAGING, owners=OWNERS, kinds={"postgres", "pandas"}),
    },
    description="Reads the staging rows new or changed since the production watermarks, in one snapshot.",
)
def staging_tables(context: AssetExecutionContext, staging_db: StagingDatabase, production_db: ProductionDatabase,
                   migration_lock: MigrationLock,
                   options: MigrationOptions):
    with production_db.connection() as prod, prod.cursor() as cur:
        cur.execute(READ_WATERMARKS)
        marks = {table: (ts, high_id) for table, ts, high_id in cur.fetchall()}
        cur.execute(READ_RETRYABLE)
        retry: dict[str, list[int]] = {}
        for table, staging_id in cur.fetchall():
            retry.setdefault(table, []).append(int(staging_id))
        prod.rollback()
    if options.full_refresh:
        marks = {}

    with staging_db.connection() as conn:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        check_staging_schema(conn)
        with conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
            cur.execute(OPEN_WRITER_START)
            cap = cur.fetchone()[0]
            if cap is not None:
                context.log.info(f"a staging write transaction is open since {cap}: rows from then on wait for the next run")
            reference = _reference(cur)
            cut = arrival_cut(cur, marks, options.limit, cap)
            students = _read_batch(cur, "staging_student", READ_STUDENTS, marks.get("staging_student", BEGINNING),
                                   retry.get("staging_student", []), cap=cap, cut=cut)
            leads = _read_batch(cur, "staging_lead", READ_LEADS, marks.get("staging_lead", BEGINNING),
                                retry.get("staging_lead", []), cap=cap, cut=cut)
            documents = _read_batch(cur, "staging_document", READ_DOCUMENTS, marks.get("staging_document", BEGINNING),
                                    retry.get("staging_document", []), limit=options.limit, cap=cap)
        conn.rollback()

    context.log.info(f"staging: {len(students)} students, {len(leads)} leads, {len(documents)} documents to process")
    students.rows = normalize_students(students.rows, reference)
    leads.rows = normalize_leads(leads.rows, reference)
    yield Output(students, "staging_students", metadata=_summary(students, students.rows))
    yield Output(leads, "staging_leads", metadata=_summary(leads, leads.rows))
    yield Output(documents, "staging_documents", metadata=_summary(documents))
    categories = reference["category"].value_counts() if len(reference) else pd.Series(dtype=int)
    yield Output(reference, "staging_reference_data",
                 metadata={"rows": len(reference), "by_category": markdown_counts("category", categories)})
