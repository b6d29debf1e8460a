"""Reviewing in a spreadsheet: `review export --csv F` writes the open items with empty `decision`
and `decision_person_id` columns; a team fills them; `review import F` records every decision in
one transaction, or none when any line is wrong (each error names its line).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from psycopg2.extensions import connection as Connection
from psycopg2.extras import RealDictCursor

from ice_pipeline.review import KINDS, ReviewError, _record
from ice_pipeline.store import review as sql

COLUMNS = (
    "id",
    "kind",
    "status",
    "person_id",
    "candidate_person_id",
    "staging_table",
    "staging_id",
    "field",
    "existing_value",
    "incoming_value",
    "score",
    "reason",
    "evidence",
    "valid_decisions",
    "decision",
    "decision_person_id",
)
# A cell a spreadsheet would run as a formula (CSV injection): exported with a leading quote.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class ImportReport:
    recorded: int
    skipped: int  # lines left without a decision


class ImportErrors(ReviewError):
    """Lines that cannot be recorded: nothing was recorded. `errors` is [(line number, message)]."""

    def __init__(self, errors: list[tuple[int, str]]):
        self.errors = errors
        super().__init__("; ".join(f"line {line}: {message}" for line, message in errors))


def evidence_summary(details: dict | None) -> str:
    """One line saying what the evidence holds (rows on each side, fields that agree or differ)."""
    if not details:
        return ""
    parts = []
    rows = details.get("rows")
    if isinstance(rows, dict):
        for side in ("move", "stay"):
            listed = rows.get(side) or []
            if listed:
                parts.append(
                    f"{side}: "
                    + ", ".join(f"{t}:{i}" for t, i in listed[:10])
                    + (f" (+{len(listed) - 10})" if len(listed) > 10 else "")
                )
    for key, value in details.items():
        if key in ("rows", "applied"):
            continue
        if isinstance(value, dict | list):
            value = json.dumps(value, ensure_ascii=False, default=str)
        parts.append(f"{key}: {value}")
    return "; ".join(parts)[:1000]


def _cell(value) -> str:
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def export_items(conn: Connection, path: Path, kind: str | None = None) -> int:
    """Write the open items (of `kind`) to `path`; returns how many."""
    from ice_pipeline.review import DECISIONS

    if kind is not None and kind not in KINDS:
        raise ReviewError(f"Unknown kind '{kind}': one of {', '.join(KINDS)}.")
    try:
        with conn.cursor(cursor_factory=RealDictCursor) as cur:
            cur.execute(sql.EXPORT_ITEMS, {"kind": kind})
            items = cur.fetchall()
    finally:
        conn.rollback()
    try:
        handle = path.open("w", newline="", encoding="utf-8")
    except OSError as error:
        raise ReviewError(f"Cannot write {path}: {error.strerror}.") from None
    with handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for item in items:
            details = json.loads(item["details"]) if item["details"] else {}
            row = {
                **item,
                "evidence": evidence_summary(details),
                "valid_decisions": " | ".join(DECISIONS[item["kind"]]),
                "decision": "",
                "decision_person_id": "",
            }
            writer.writerow([row["id"] if c == "id" else _cell(row.get(c)) for c in COLUMNS])
    return len(items)


def import_decisions(conn: Connection, path: Path) -> ImportReport:
    """Validate every line, then record all decisions in one transaction (or none)."""
    errors: list[tuple[int, str]] = []
    recorded = skipped = 0
    seen: dict[int, int] = {}
    try:
        handle = path.open(newline="", encoding="utf-8-sig")  # a spreadsheet's BOM is not part of 'id'
    except OSError as error:
        raise ReviewError(f"Cannot read {path}: {error.strerror}.") from None
    with handle, conn, conn.cursor(cursor_factory=RealDictCursor) as cur:
        reader = csv.DictReader(handle)
        missing = [c for c in ("id", "decision") if c not in (reader.fieldnames or [])]
        if missing:
            raise ImportErrors([(1, f"the header lacks the column(s) {', '.join(missing)}")])
        for line in reader:
            number = reader.line_num
            decision = (line.get("decision") or "").strip().lower()
            person = (line.get("decision_person_id") or "").strip() or None
            if not decision:
                skipped += 1
                if person:
                    errors.append((number, "decision_person_id given without a decision"))
                continue
            try:
                item_id = int((line.get("id") or "").strip())
            except ValueError:
                errors.append((number, f"'{line.get('id')}' is not a review item id"))
                continue
            if item_id in seen:
                errors.append((number, f"item {item_id} is decided twice (also on line {seen[item_id]})"))
                continue
            seen[item_id] = number
            try:
                _record(cur, item_id, decision, person)
                recorded += 1
            except ReviewError as error:
                errors.append((number, str(error)))
        if errors:
            conn.rollback()
            raise ImportErrors(errors)
    return ImportReport(recorded, skipped)
