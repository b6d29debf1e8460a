"""SQL of the staging step: watermarks and retries (production), the rows to process (staging).

Every statement is a named constant with parameters; the functions run one
each and return plain values or DataFrames. The guard against V3's open
write transactions (`open_writer_cap`) lives here so that the sensor can use
the same one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
from psycopg2.extensions import connection as Connection
from psycopg2.extensions import cursor as Cursor
from psycopg2.extensions import quote_ident

from ice_pipeline.db import read_frame
from ice_pipeline.logic.identity import FLAGGED_PERSON
from ice_pipeline.store.review import READ_RETRYABLE_DECISIONS

# (updated_at, id) below every row: the watermark of a table never processed.
BEGINNING = ("-infinity", 0)

# The staging session's time zone: timestamps read (and watermarks derived from them) print in UTC.
SET_UTC_TIME_ZONE = "SET TIME ZONE 'UTC'"
READ_WATERMARKS = "SELECT staging_table, high_updated_at, high_id FROM ice_pipeline.watermarks"
# Rows to read again whatever the watermark: rejections that may load later (a document waiting for
# its student), identity questions a person answered, and rows that waited for a person flagged as a
# possible false merge once that question is closed (split or kept together).
READ_RETRYABLE = (
    "SELECT staging_table, staging_id FROM ice_pipeline.rejected_rows WHERE retryable UNION "  # noqa: S608 - constants
    + READ_RETRYABLE_DECISIONS
    + """UNION
SELECT q.staging_table, q.staging_id FROM ice_pipeline.review_queue q
WHERE q.kind = 'identity_conflict' AND q.status = 'open' AND q.candidate_person_id IS NOT NULL
  AND q.reason = %(flagged_reason)s
  AND NOT EXISTS (SELECT 1 FROM ice_pipeline.review_queue f WHERE f.kind = 'possible_false_merge'
                  AND f.person_id = q.candidate_person_id AND f.status IN ('open', 'resolved'))
"""
)
# Rows beyond the watermark in (updated_at, id) order, below the cap (see
# open_writer_cap) and up to the batch's arrival cut (see ARRIVAL_CUT), plus
# rows to retry. `in_window` tells the two apart (only the window moves the
# watermark); the window condition is repeated in WHERE so the (updated_at, id)
# index serves it.
READ_STUDENTS = """
SELECT id, full_name, original_name, email, phone, cedula, birth_date, address, city, country,
       program, student_number, source, csv_enriched, created_at, updated_at,
       ((updated_at, id) > (%(since)s, %(since_id)s) AND updated_at < %(cap)s
        AND (%(cut_at)s::timestamptz IS NULL OR (updated_at, 0, id) <= (%(cut_at)s, %(cut_rank)s, %(cut_id)s)))
         AS in_window
FROM staging_student
WHERE ((updated_at, id) > (%(since)s, %(since_id)s) AND updated_at < %(cap)s
       AND (%(cut_at)s::timestamptz IS NULL OR (updated_at, 0, id) <= (%(cut_at)s, %(cut_rank)s, %(cut_id)s)))
   OR id = ANY(%(retry)s)
ORDER BY updated_at, id
"""
READ_LEADS = """
SELECT id, full_name, original_name, email, phone, cedula, birth_date, address, city, country,
       interest_program, service, event, status, notes, source_file, source_sheet, source_row,
       created_at, updated_at,
       ((updated_at, id) > (%(since)s, %(since_id)s) AND updated_at < %(cap)s
        AND (%(cut_at)s::timestamptz IS NULL OR (updated_at, 1, id) <= (%(cut_at)s, %(cut_rank)s, %(cut_id)s)))
         AS in_window
FROM staging_lead
WHERE ((updated_at, id) > (%(since)s, %(since_id)s) AND updated_at < %(cap)s
       AND (%(cut_at)s::timestamptz IS NULL OR (updated_at, 1, id) <= (%(cut_at)s, %(cut_rank)s, %(cut_id)s)))
   OR id = ANY(%(retry)s)
ORDER BY updated_at, id
"""
# Rows V3 could not parse, beyond their own watermark. The table has no updated_at (a raw row is
# written once, never changed): created_at stands in for it, so the watermark is (created_at, id).
READ_LEAD_FAILURES = """
SELECT id, source_file, source_sheet, source_row, raw_data::text AS raw_data, error, created_at,
       created_at AS updated_at,
       ((created_at, id) > (%(since)s, %(since_id)s) AND created_at < %(cap)s) AS in_window
FROM staging_lead_failures
WHERE ((created_at, id) > (%(since)s, %(since_id)s) AND created_at < %(cap)s)
   OR id = ANY(%(retry)s)
ORDER BY created_at, id
LIMIT %(limit)s
"""
# The batch limit counts students and leads together, in arrival order
# (updated_at, table: students first, id) -- the order identity resolution
# uses -- so that a backlog taken in several runs gives the same result as one
# batch. The cut is the last row of the batch; NULL when everything fits.
ARRIVAL_CUT = """
SELECT updated_at, rank, id FROM (
    (SELECT updated_at, 0 AS rank, id FROM staging_student
     WHERE (updated_at, id) > (%(student_since)s, %(student_since_id)s) AND updated_at < %(cap)s
     ORDER BY updated_at, id LIMIT %(limit)s)
    UNION ALL
    (SELECT updated_at, 1 AS rank, id FROM staging_lead
     WHERE (updated_at, id) > (%(lead_since)s, %(lead_since_id)s) AND updated_at < %(cap)s
     ORDER BY updated_at, id LIMIT %(limit)s)
) arrivals
ORDER BY updated_at, rank, id OFFSET %(limit)s - 1 LIMIT 1
"""
READ_DOCUMENTS = """
SELECT id, student_id, document_type, original_file_path, staging_file_path, normalized_file_name,
       checksum, file_size, mime_type, created_at, updated_at,
       ((updated_at, id) > (%(since)s, %(since_id)s) AND updated_at < %(cap)s) AS in_window
FROM staging_document
WHERE ((updated_at, id) > (%(since)s, %(since_id)s) AND updated_at < %(cap)s)
   OR id = ANY(%(retry)s)
ORDER BY updated_at, id
LIMIT %(limit)s
"""
READ_REFERENCE = """
SELECT id, source_file, category, code, label, aliases, attributes, updated_at
FROM staging_reference_data ORDER BY category, code
"""
# Open transactions that write (or are writing) the watermarked staging tables:
# sessions of this database holding a row-writing lock on them. pg_locks is
# readable by every role; pg_stat_activity.xact_start of another role's session
# is NULL unless the reader has pg_read_all_stats. A prepared transaction holds
# its locks with no pid (its start is unknown to anyone). A session that ended
# between reading pg_locks and pg_stat_activity has committed (or not) before
# the read's snapshot: not a writer to wait for.
OPEN_WRITERS = """
SELECT now() AS checked_at,
       min(a.xact_start) AS oldest_start,
       count(DISTINCT l.virtualtransaction) FILTER (WHERE l.pid IS NULL OR a.pid IS NOT NULL) AS writers,
       count(DISTINCT l.virtualtransaction)
         FILTER (WHERE l.pid IS NULL OR (a.pid IS NOT NULL AND a.xact_start IS NULL)) AS hidden,
       current_user AS role,
       pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS can_read_all_stats
FROM pg_locks l
LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'relation'
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.relation IN ('staging_student'::regclass, 'staging_lead'::regclass, 'staging_document'::regclass,
                     'staging_lead_failures'::regclass)
  AND l.mode IN ('RowExclusiveLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')
  AND l.pid IS DISTINCT FROM pg_backend_pid()
"""


@dataclass(frozen=True)
class OpenWriters:
    """The V3 transactions writing the watermarked staging tables right now (OPEN_WRITERS)."""

    checked_at: dt.datetime  # now() of the checking transaction
    oldest_start: dt.datetime | None  # earliest xact_start among those this role can see
    count: int  # open write transactions
    hidden: int  # of which this role cannot see the start
    role: str
    can_read_all_stats: bool


def open_writers(cur: Cursor) -> OpenWriters:
    """Who writes the staging tables now. The sensor can use it to wait for V3's commit before launching."""
    cur.execute(OPEN_WRITERS)
    checked_at, oldest_start, count, hidden, role, can_read_all_stats = cur.fetchone()
    return OpenWriters(checked_at, oldest_start, int(count), int(hidden), role, bool(can_read_all_stats))


class OpenWriterNotVisible(RuntimeError):
    """A V3 write transaction is open and this role cannot see when it began: reading now could skip rows."""


def read_watermarks(cur: Cursor) -> dict[str, tuple]:
    """(high_updated_at, high_id) per staging table, as committed in production with the data."""
    cur.execute(READ_WATERMARKS)
    return {table: (ts, high_id) for table, ts, high_id in cur.fetchall()}


def read_retryable(cur: Cursor) -> dict[str, list[int]]:
    """Staging ids per table to read again whatever the watermark."""
    cur.execute(READ_RETRYABLE, {"flagged_reason": FLAGGED_PERSON})
    retry: dict[str, list[int]] = {}
    for table, staging_id in cur.fetchall():
        retry.setdefault(table, []).append(int(staging_id))
    return retry


def open_writer_cap(conn: Connection) -> tuple[dt.datetime, int]:
    """The `updated_at` below which this run may read, and how many V3 write transactions are open.

    Call it in a transaction of its own, *before* the read snapshot is taken.

    Why: `updated_at` defaults to now(), the *start* of V3's transaction. The
    run reads in one REPEATABLE READ snapshot and moves the watermark to the
    last row it read; a V3 transaction that began earlier and commits later
    brings rows older than that watermark, which no later run would read.
    So the run reads only rows with `updated_at` below

    - the start of the oldest transaction holding a write lock on
      staging_student / staging_lead / staging_document / staging_lead_failures (pg_locks, readable by
      every role; the start from pg_stat_activity.xact_start), and
    - the moment of this check: a transaction that starts between the check and
      the snapshot and is still open at the snapshot writes rows dated after it.

    Rows at or above the cap wait for the next run; nothing is skipped.

    Fail closed: `xact_start` of another role's session is NULL unless this
    role has pg_read_all_stats (`.env.example` recommends a read-only role).
    Privilege-free signals (pg_locks, backend_xid, `pg_current_snapshot()`'s
    in-progress xids) tell *that* a writer is open but never *when it began*,
    and no row of it is visible to bound it; guessing a maximum transaction
    length would skip rows whenever V3 ran longer. So when an open writer's
    start is hidden, the run stops before reading anything, with the GRANT
    that fixes it; once V3's transaction commits, the next run goes through.

    Not covered (by any signal): a V3 transaction that began but has not yet
    written a staging row holds no lock; V3 should write soon after BEGIN or
    set updated_at at insert time (clock_timestamp()).
    """
    with conn.cursor() as cur:
        writers = open_writers(cur)
    if writers.hidden:
        grantee = quote_ident(writers.role, conn)
        fix = (
            f"GRANT pg_read_all_stats TO {grantee}; (as a superuser) lets it read below their start instead"
            if not writers.can_read_all_stats
            else "they are prepared transactions (COMMIT/ROLLBACK PREPARED ends them)"
        )
        raise OpenWriterNotVisible(
            f"{writers.hidden} open V3 write transaction(s) on the staging tables, and the staging role "
            f"{writers.role} cannot see when they began: stopped before reading, so that no row they commit later "
            f"is skipped; {fix}. The next run after they commit reads everything."
        )
    oldest = writers.oldest_start
    return (min(oldest, writers.checked_at) if oldest is not None else writers.checked_at), writers.count


def arrival_cut(cur: Cursor, marks: dict[str, tuple], limit: int, cap: dt.datetime) -> tuple | None:
    """(updated_at, rank, id) of the last student/lead row of a batch of `limit` rows; None when all fit."""
    if not limit:
        return None
    student, lead = marks.get("staging_student", BEGINNING), marks.get("staging_lead", BEGINNING)
    cur.execute(
        ARRIVAL_CUT,
        {
            "student_since": student[0],
            "student_since_id": student[1],
            "lead_since": lead[0],
            "lead_since_id": lead[1],
            "cap": cap,
            "limit": limit,
        },
    )
    return cur.fetchone()


def _read(
    cur: Cursor,
    query: str,
    since: tuple,
    retry: list[int],
    cap: dt.datetime,
    *,
    cut: tuple | None = None,
    limit: int = 0,
) -> pd.DataFrame:
    cut_at, cut_rank, cut_id = cut or (None, None, None)
    rows = read_frame(
        cur,
        query,
        {
            "since": since[0],
            "since_id": since[1],
            "retry": retry,
            "cap": cap,
            "limit": limit or None,
            "cut_at": cut_at,
            "cut_rank": cut_rank,
            "cut_id": cut_id,
        },
    )
    rows["id"] = rows["id"].astype("int64")
    return rows


def read_students(
    cur: Cursor, since: tuple, retry: list[int], cap: dt.datetime, cut: tuple | None
) -> pd.DataFrame:
    """Students beyond `since` below `cap` up to `cut`, plus `retry`; column `in_window` tells which."""
    return _read(cur, READ_STUDENTS, since, retry, cap, cut=cut)


def read_leads(
    cur: Cursor, since: tuple, retry: list[int], cap: dt.datetime, cut: tuple | None
) -> pd.DataFrame:
    """Leads beyond `since` below `cap` up to `cut`, plus `retry`; column `in_window` tells which."""
    return _read(cur, READ_LEADS, since, retry, cap, cut=cut)


def read_documents(cur: Cursor, since: tuple, retry: list[int], cap: dt.datetime, limit: int) -> pd.DataFrame:
    """At most `limit` documents (0 = all) beyond `since` below `cap`, plus `retry`."""
    return _read(cur, READ_DOCUMENTS, since, retry, cap, limit=limit)


def read_lead_failures(
    cur: Cursor, since: tuple, retry: list[int], cap: dt.datetime, limit: int
) -> pd.DataFrame:
    """At most `limit` lead failures (0 = all) beyond `since` (created_at, id) below `cap`, plus `retry`."""
    return _read(cur, READ_LEAD_FAILURES, since, retry, cap, limit=limit)


def read_reference(cur: Cursor) -> pd.DataFrame:
    """Every reference row (programs, services, events, cities, countries, ...)."""
    cur.execute(READ_REFERENCE)
    columns = [d[0] for d in cur.description]
    return pd.DataFrame(cur.fetchall(), columns=columns)
