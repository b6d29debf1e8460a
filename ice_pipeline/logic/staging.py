"""Pure logic of the staging step: how far a batch reaches, and the student/lead normalization.

No database and no Dagster here: `store/staging.py` reads the rows, `assets/staging.py` tells the story.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ice_pipeline.logic import normalize as nz
from ice_pipeline.logic.people import alias_map, prepare_person_rows

LEAD_STATUS = {
    "nuevo": "NEW",
    "new": "NEW",
    "contactado": "CONTACTED",
    "contacted": "CONTACTED",
    "interesado": "INTERESTED",
    "interested": "INTERESTED",
    "inscrito": "ENROLLED",
    "enrolled": "ENROLLED",
    "perdido": "LOST",
    "lost": "LOST",
    "noresponde": "NO_ANSWER",
}


@dataclass(frozen=True)
class BatchExtent:
    """How far the rows of one staging table reach in this run."""

    high: tuple[str, int] | None  # (updated_at, id) of the last row read beyond the watermark, or None
    retried: int  # rows read again because an earlier run could not load them yet
    limited: bool  # more rows wait beyond this batch


def batch_extent(
    rows: pd.DataFrame, retry: list[int], *, limit: int = 0, cut: tuple | None = None
) -> BatchExtent:
    """The watermark a batch may move to, and whether more rows wait.

    `rows` are in (updated_at, id) order; `in_window` (bool, or PostgreSQL's
    't'/'f' as text) marks the rows read
    because they lie beyond the watermark and below the run's cap and cut
    (the others were read only to be retried). The watermark moves to the last
    row of that window, never to a retried row outside it: a retried row that
    V3 changed after an open transaction began must not carry the watermark
    past that transaction's rows. More rows wait when the arrival cut
    (students and leads together) fell inside the batch, or the per-table
    `limit` was reached.
    """
    window = rows.loc[rows["in_window"].isin([True, "t", "true"]).to_numpy(dtype=bool)] if len(rows) else rows
    retried = int(rows["id"].isin(retry).sum()) if len(rows) else 0
    high = (str(window["updated_at"].iloc[-1]), int(window["id"].iloc[-1])) if len(window) else None
    limited = cut is not None or bool(limit and len(rows) - retried >= limit)
    return BatchExtent(high=high, retried=retried, limited=limited)


def canonical_status(values: pd.Series) -> pd.Series:
    """'nuevo', 'New ', 'NEW' -> 'NEW'; unknown statuses kept, upper-cased."""
    status = nz.clean_text(values, max_length=50)
    return nz.label_key(status).map(LEAD_STATUS).astype("string").fillna(status.str.upper())


def normalize_students(rows: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Person fields plus the student's own: program through aliases, student number, source."""
    out = prepare_person_rows(rows, reference)
    out["staging_table"], out["staging_id"], out["updated_at"] = (
        "staging_student",
        rows["id"],
        rows["updated_at"],
    )
    out["program"] = nz.canonical_label(rows["program"], alias_map(reference, "program"))
    out["student_number"] = nz.clean_text(rows["student_number"], max_length=64).str.upper()
    source = nz.by_unique(rows["source"], nz.clean_text).str.lower()
    out["data_source"] = source
    csv_flag = rows["csv_enriched"].fillna("f").isin(["t", "true", "True"])
    from_csv = csv_flag | source.str.contains("csv", regex=False).fillna(False)
    out["csv_enriched"] = from_csv.to_numpy()
    out["source_kind"] = pd.Series(from_csv.to_numpy(), index=rows.index).map(
        {True: "CSV", False: "DIRECTORY"}
    )
    return out


def normalize_leads(rows: pd.DataFrame, reference: pd.DataFrame, table: str = "staging_lead") -> pd.DataFrame:
    """Person fields plus the lead's own: program type, service, event, status, provenance.

    `table`: staging_lead, or staging_lead_failures for rows recovered from V3's raw cells
    (`logic.failures`), which take exactly this path."""
    out = prepare_person_rows(rows, reference)
    out["staging_table"], out["staging_id"], out["updated_at"] = table, rows["id"], rows["updated_at"]
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
