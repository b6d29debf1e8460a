"""Moving frames in and out of PostgreSQL with COPY, and the shared bookkeeping writes.

Set-based by construction: a frame goes into a temporary table with one
COPY, then one INSERT ... SELECT / UPDATE ... FROM per target table.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import psycopg2
import pyarrow as pa
import pyarrow.csv as pa_csv
from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor


def _as_text_dtype(kind: pa.DataType) -> pd.StringDtype | None:
    return pd.StringDtype() if pa.types.is_string(kind) or pa.types.is_large_string(kind) else None


def read_frame(
    cur: Cursor,
    query: str,
    params: Sequence | dict | None = None,
    types: dict[str, pa.DataType] | None = None,
) -> pd.DataFrame:
    """Run a SELECT and return all rows as text columns (or `types`), through COPY (fast at millions of rows).

    CSV as PostgreSQL writes it: NULL is an unquoted empty field, an empty
    string is quoted (""), so the two never mix. Parsed by Arrow's
    multi-threaded reader into Arrow-backed string columns; a column given in
    `types` (e.g. pa.int64() for ids) is parsed as that type instead.
    """
    bound = cur.mogrify(query, params).decode("utf-8")
    buffer = io.BytesIO()
    cur.copy_expert(f"COPY ({bound}) TO STDOUT WITH (FORMAT csv, HEADER true)", buffer)
    buffer.seek(0)
    names = next(csv.reader([buffer.readline().decode("utf-8")]))
    buffer.seek(0)
    table = pa_csv.read_csv(
        buffer,
        read_options=pa_csv.ReadOptions(column_names=names, skip_rows=1),
        parse_options=pa_csv.ParseOptions(newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(
            column_types={**dict.fromkeys(names, pa.large_string()), **(types or {})},
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )
    return table.to_pandas(types_mapper=_as_text_dtype)


def copy_into_temp(cur: Cursor, table: str, columns: dict[str, str], frame: pd.DataFrame) -> int:
    """Create temp table `table` (dropped at commit) with `columns` {name: type} and COPY `frame` into it.

    Written by Arrow's CSV writer: NULL as an unquoted empty field, every
    string quoted (an empty string is ""), which is PostgreSQL's own CSV.
    """
    definition = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind)) for name, kind in columns.items()
    )
    cur.execute(sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(sql.Identifier(table), definition))
    if frame.empty:
        return 0
    values = frame[list(columns)]
    # Python objects (uuids, mixed None/NaN) as text; Arrow converts every other dtype itself.
    text = {name: values[name].astype("string") for name in columns if values[name].dtype == object}
    if text:
        values = values.assign(**text)
    sink = pa.BufferOutputStream()
    arrow = pa.Table.from_pandas(values, preserve_index=False)
    # Arrow's CSV writer misreads some large_string arrays pandas produces (pyarrow 26): write plain strings.
    arrow = arrow.cast(
        pa.schema(
            [pa.field(f.name, pa.string()) if pa.types.is_large_string(f.type) else f for f in arrow.schema]
        )
    )
    pa_csv.write_csv(arrow, sink, write_options=pa_csv.WriteOptions(include_header=False))
    buffer = io.BytesIO(sink.getvalue().to_pybytes())
    cur.copy_expert(sql.SQL("COPY {} FROM STDIN WITH (FORMAT csv)").format(sql.Identifier(table)), buffer)
    return len(frame)


LINK_COLUMNS = {
    "staging_table": "text",
    "staging_id": "bigint",
    "entity": "text",
    "entity_id": "uuid",
    "matched_by": "text",
    "warnings": "text",
}
INSERT_LINKS = """
INSERT INTO ice_pipeline.source_links (staging_table, staging_id, entity, entity_id, matched_by, run_id, warnings)
SELECT staging_table, staging_id, entity, entity_id, matched_by, %(run_id)s,
       coalesce(string_to_array(warnings, '; '), '{}')
FROM tmp_links
ON CONFLICT (staging_table, staging_id, entity) DO NOTHING
"""
# A row that now loads or waits in review is no longer rejected.
CLEAR_REJECTIONS = """
DELETE FROM ice_pipeline.rejected_rows r USING tmp_links l
WHERE r.staging_table = l.staging_table AND r.staging_id = l.staging_id
"""
# A row that is now linked no longer waits for an identity decision: an open
# question about it is superseded, an operator's decision is applied. Person
# questions have no field; a student's has field 'student_number'.
CLOSE_IDENTITY_REVIEWS = """
UPDATE ice_pipeline.review_queue q
SET status = CASE q.status WHEN 'open' THEN 'superseded' ELSE 'applied' END,
    resolved_at = coalesce(q.resolved_at, now())
FROM tmp_links l
WHERE q.kind = 'identity_conflict' AND q.status IN ('open', 'resolved')
  AND q.staging_table = l.staging_table AND q.staging_id = l.staging_id
  AND ((l.entity = 'person' AND q.field IS NULL) OR (l.entity = 'student' AND q.field = 'student_number'))
"""


def write_links(cur: Cursor, links: pd.DataFrame, run_id: str) -> int:
    """Record lineage (source_links) for loaded rows; returns rows newly linked."""
    copy_into_temp(cur, "tmp_links", LINK_COLUMNS, links)
    cur.execute(INSERT_LINKS, {"run_id": run_id})
    inserted = cur.rowcount
    cur.execute(CLEAR_REJECTIONS)
    cur.execute(CLOSE_IDENTITY_REVIEWS)
    cur.execute("DROP TABLE tmp_links")
    return inserted


REJECTION_COLUMNS = {
    "staging_table": "text",
    "staging_id": "bigint",
    "reason": "text",
    "details": "jsonb",
    "retryable": "boolean",
}
UPSERT_REJECTIONS = """
INSERT INTO ice_pipeline.rejected_rows (staging_table, staging_id, reason, details, retryable, run_id)
SELECT staging_table, staging_id, reason, coalesce(details, '{}'), coalesce(retryable, false), %(run_id)s
FROM tmp_rejections
ON CONFLICT (staging_table, staging_id) DO UPDATE
SET reason = EXCLUDED.reason, details = EXCLUDED.details, retryable = EXCLUDED.retryable,
    run_id = EXCLUDED.run_id, rejected_at = now()
WHERE (ice_pipeline.rejected_rows.reason, ice_pipeline.rejected_rows.details, ice_pipeline.rejected_rows.retryable)
      IS DISTINCT FROM (EXCLUDED.reason, EXCLUDED.details, EXCLUDED.retryable)
"""


def write_rejections(cur: Cursor, rejections: pd.DataFrame, run_id: str) -> int:
    """Record rows that cannot be loaded, with their reason; returns rows written or changed."""
    if rejections.empty:
        return 0
    copy_into_temp(cur, "tmp_rejections", REJECTION_COLUMNS, rejections)
    cur.execute(UPSERT_REJECTIONS, {"run_id": run_id})
    written = cur.rowcount
    cur.execute("DROP TABLE tmp_rejections")
    return written


REVIEW_COLUMNS = {
    "kind": "text",
    "staging_table": "text",
    "staging_id": "bigint",
    "person_id": "uuid",
    "candidate_person_id": "uuid",
    "field": "text",
    "existing_value": "text",
    "incoming_value": "text",
    "score": "real",
    "reason": "text",
    "details": "jsonb",
}
INSERT_REVIEWS = """
INSERT INTO ice_pipeline.review_queue (kind, staging_table, staging_id, person_id, candidate_person_id, field,
                                       existing_value, incoming_value, score, reason, details, run_id)
SELECT kind, staging_table, staging_id, person_id, candidate_person_id, field,
       existing_value, incoming_value, score, reason, coalesce(details, '{}'), %(run_id)s
FROM tmp_reviews
ON CONFLICT DO NOTHING  -- the same row question (review_queue_row_key) or person pair (review_queue_pair_key)
"""


# A pair of persons already asked about without a staging row (found by the candidates scan) that a
# row of this run ties together: the row becomes the item's witness, as if the row had asked first
# (one item per pair; one possible_duplicate item per row).
ATTACH_WITNESS = """
WITH witness AS (
    SELECT DISTINCT ON (r.staging_table, r.staging_id) q.id, r.staging_table, r.staging_id, r.reason, r.details
    FROM tmp_reviews r
    JOIN ice_pipeline.review_queue q ON q.kind = 'possible_duplicate' AND q.staging_table IS NULL
     AND least(q.person_id, q.candidate_person_id) = least(r.person_id, r.candidate_person_id)
     AND greatest(q.person_id, q.candidate_person_id) = greatest(r.person_id, r.candidate_person_id)
    WHERE r.kind = 'possible_duplicate' AND r.staging_table IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM ice_pipeline.review_queue x WHERE x.kind = 'possible_duplicate'
                      AND x.staging_table = r.staging_table AND x.staging_id = r.staging_id AND x.field IS NULL)
    ORDER BY r.staging_table, r.staging_id, q.id
)
UPDATE ice_pipeline.review_queue q
SET staging_table = w.staging_table, staging_id = w.staging_id, reason = w.reason,
    details = q.details || coalesce(w.details, '{}')
FROM witness w WHERE q.id = w.id
"""


def write_reviews(cur: Cursor, reviews: pd.DataFrame, run_id: str) -> int:
    """Queue review items; the same question is never queued twice. Returns items added."""
    if reviews.empty:
        return 0
    frame = reviews.copy()
    for column in REVIEW_COLUMNS:
        if column not in frame:
            frame[column] = pd.NA
    copy_into_temp(cur, "tmp_reviews", REVIEW_COLUMNS, frame)
    cur.execute(ATTACH_WITNESS)
    cur.execute(INSERT_REVIEWS, {"run_id": run_id})
    added = cur.rowcount
    cur.execute("DROP TABLE tmp_reviews")
    return added


RECORD_RUN = """
INSERT INTO ice_pipeline.runs (run_id, stats) VALUES (%(run_id)s, %(stats)s::jsonb)
ON CONFLICT (run_id) DO UPDATE SET stats = ice_pipeline.runs.stats || EXCLUDED.stats
"""


FINISH_RUN = """
UPDATE ice_pipeline.runs SET status = 'succeeded', finished_at = now() WHERE run_id = %(run_id)s
"""


def record_run(cur: Cursor, run_id: str, figures: dict[str, int], *, last: bool = False) -> None:
    """Add this asset's figures to the run's row in ice_pipeline.runs, in the asset's transaction.

    A run that writes nothing leaves no row: re-running with nothing new changes nothing.
    The last asset of the graph marks the run finished; a row left 'running' is a
    run that stopped midway (what it wrote is consistent and the next run resumes).
    """
    if any(figures.values()):
        cur.execute(RECORD_RUN, {"run_id": run_id, "stats": json.dumps(figures)})
    if last:
        cur.execute(FINISH_RUN, {"run_id": run_id})


ADVANCE_WATERMARK = """
INSERT INTO ice_pipeline.watermarks (staging_table, high_updated_at, high_id, run_id)
VALUES (%(table)s, %(high_updated_at)s, %(high_id)s, %(run_id)s)
ON CONFLICT (staging_table) DO UPDATE
SET high_updated_at = EXCLUDED.high_updated_at, high_id = EXCLUDED.high_id, run_id = EXCLUDED.run_id, updated_at = now()
WHERE (EXCLUDED.high_updated_at, EXCLUDED.high_id)
      > (ice_pipeline.watermarks.high_updated_at, ice_pipeline.watermarks.high_id)
"""


def advance_watermark(cur: Cursor, table: str, high: tuple[str, int] | None, run_id: str) -> None:
    """Move the table's watermark forward (never back), in the caller's transaction."""
    if high is None:
        return
    cur.execute(
        ADVANCE_WATERMARK, {"table": table, "high_updated_at": high[0], "high_id": high[1], "run_id": run_id}
    )


# --- writes that a bad row cannot stop ------------------------------------------------------

# SQLSTATE classes a single row can cause: data exceptions (22: too long, a failed cast, out of
# range), integrity violations (23: unique, foreign key, check, not null), program limits (54: an
# index entry too large), errors raised by triggers (P0). Anything else (a missing column, a lock
# timeout, a lost connection) is the statement's or the server's, not a row's: it stops the write.
ROW_ERROR_CLASSES = ("22", "23", "54", "P0")
ROW_COLUMN = "_row"
_QUOTED = re.compile(r'"[^"]*"')


@dataclass
class IsolatedWrite:
    """What write_isolating did: rows written, and the rows the database refused (by position)."""

    written: int
    refused: pd.DataFrame  # position (0-based, in the frame), reason, details (JSON text)

    @property
    def positions(self) -> list[int]:
        return self.refused["position"].tolist()


def is_row_error(error: psycopg2.Error) -> bool:
    """True when the error can be caused by the values of one row (ROW_ERROR_CLASSES)."""
    return bool(error.pgcode) and error.pgcode[:2] in ROW_ERROR_CLASSES


def refusal(error: psycopg2.Error) -> tuple[str, str]:
    """(reason, details JSON) of a refused row, without the row's values.

    The server's DETAIL line and the quoted parts of its message can quote the
    value (personal data): only the error class, SQLSTATE, the message with its
    quoted parts masked, and the constraint/column/table names are kept.
    """
    diag = error.diag
    details = {
        "error": type(error).__name__,
        "sqlstate": error.pgcode,
        "message": _QUOTED.sub('"…"', diag.message_primary or ""),
        "constraint": diag.constraint_name,
        "column": diag.column_name,
        "table": diag.table_name,
    }
    reason = f"refused by the production database: {type(error).__name__} (SQLSTATE {error.pgcode})"
    return reason, json.dumps({k: v for k, v in details.items() if v})


def write_isolating(
    cur: Cursor,
    table: str,
    columns: dict[str, str],
    frame: pd.DataFrame,
    statement: str,
    params: dict | None = None,
) -> IsolatedWrite:
    """COPY `frame` into temp table `table` and run `statement` on it; a row the database refuses costs that row.

    `statement` reads `table` restricted to `_row >= %(lo)s AND _row < %(hi)s` (the frame's
    positions). It runs once on the whole set -- one statement when all is well. On a row-caused
    error (ROW_ERROR_CLASSES) the set is rolled back to a SAVEPOINT and halved, down to single
    rows: those are refused with the error's class as the reason, every other row is written.
    k bad rows among n cost about 2·k·log2(n) statements. Any other error propagates.
    """
    copy_into_temp(
        cur, table, {**columns, ROW_COLUMN: "bigint"}, frame.assign(**{ROW_COLUMN: np.arange(len(frame))})
    )
    written, refused, indexed = 0, [], False
    pending = [(0, len(frame))] if len(frame) else []
    while pending:
        lo, hi = pending.pop()
        cur.execute("SAVEPOINT ice_isolate")
        try:
            cur.execute(statement, {**(params or {}), "lo": lo, "hi": hi})
        except psycopg2.Error as error:
            cur.execute("ROLLBACK TO SAVEPOINT ice_isolate")
            cur.execute("RELEASE SAVEPOINT ice_isolate")
            if not is_row_error(error):
                raise
            if hi - lo == 1:
                refused.append((lo, *refusal(error)))
                continue
            if not indexed:  # halving reads ranges of the temp table: index it once
                cur.execute(
                    sql.SQL("CREATE INDEX ON {} ({})").format(
                        sql.Identifier(table), sql.Identifier(ROW_COLUMN)
                    )
                )
                indexed = True
            middle = (lo + hi) // 2
            pending += [(middle, hi), (lo, middle)]  # the lower half first: rows keep their order
        else:
            written += max(cur.rowcount, 0)
            cur.execute("RELEASE SAVEPOINT ice_isolate")
    cur.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))
    return IsolatedWrite(written, pd.DataFrame(refused, columns=["position", "reason", "details"]))


LINKED_IDS = """
SELECT staging_id FROM ice_pipeline.source_links
WHERE staging_table = %(table)s AND entity = %(entity)s AND staging_id = ANY(%(ids)s)
"""


def linked_ids(cur: Cursor, staging_table: str, entity: str, staging_ids: Sequence[int]) -> set[int]:
    """The staging ids among `staging_ids` already linked to an `entity`: a rejection must not contradict a link."""
    if not len(staging_ids):
        return set()
    cur.execute(LINKED_IDS, {"table": staging_table, "entity": entity, "ids": [int(i) for i in staging_ids]})
    return {int(staging_id) for (staging_id,) in cur.fetchall()}
