"""Production leads: reading the ones a batch touches, creating and filling them."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from psycopg2.extensions import cursor as Cursor

from ice_pipeline.db import IsolatedWrite, copy_into_temp, read_frame, write_isolating

# Rows re-processed (V3 changed them) keep the lead they were linked to.
READ_LINKED_LEADS = """
SELECT l.staging_table, l.staging_id, l.entity_id::text AS linked_lead_id
FROM ice_pipeline.source_links l
JOIN tmp_lead_rows t ON t.staging_table = l.staging_table AND t.staging_id = l.staging_id
WHERE l.entity = 'lead'
"""
READ_LEADS = """
SELECT l.id::text AS lead_id, l.person_id::text AS person_id, l.lead_status, l.notes, l.lead_date::text AS lead_date,
       l.program_type, l.service_id::text AS service_id, l.event_id::text AS event_id,
       l.source_file, l.source_sheet, l.source_row
FROM leads l
WHERE l.person_id IN (SELECT person_id FROM tmp_lead_persons)
ORDER BY l.created_at, l.source_file NULLS LAST, l.source_sheet NULLS LAST, l.source_row NULLS LAST, l.id
"""
LEAD_COLUMNS = {
    "lead_id": "uuid",
    "person_id": "uuid",
    "lead_status": "text",
    "notes": "text",
    "lead_date": "timestamptz",
    "program_type": "text",
    "service_id": "uuid",
    "event_id": "uuid",
    "source_file": "text",
    "source_sheet": "text",
    "source_row": "integer",
}
INSERT_LEADS = """
INSERT INTO leads (id, person_id, lead_status, notes, lead_date, program_type, service_id, event_id,
                   source_file, source_sheet, source_row, created_at, updated_at)
SELECT lead_id, person_id, lead_status, notes, lead_date AT TIME ZONE 'UTC', program_type, service_id, event_id,
       source_file, source_sheet, source_row, %(now)s, %(now)s
FROM tmp_new_leads
WHERE _row >= %(lo)s AND _row < %(hi)s
"""
FILL_LEADS = """
UPDATE leads l SET
    lead_status = coalesce(l.lead_status, f.lead_status),
    notes = coalesce(l.notes, f.notes),
    lead_date = coalesce(l.lead_date, f.lead_date AT TIME ZONE 'UTC'),
    program_type = coalesce(l.program_type, f.program_type),
    service_id = coalesce(l.service_id, f.service_id),
    event_id = coalesce(l.event_id, f.event_id),
    source_file = coalesce(l.source_file, f.source_file),
    source_sheet = coalesce(l.source_sheet, f.source_sheet),
    source_row = coalesce(l.source_row, f.source_row),
    updated_at = %(now)s
FROM tmp_lead_fills f
WHERE l.id = f.lead_id AND f._row >= %(lo)s AND f._row < %(hi)s
"""


def read_leads(cur: Cursor, person_ids: pd.Series) -> pd.DataFrame:
    """Production leads of these persons, oldest first (the oldest lead wins a key)."""
    copy_into_temp(
        cur, "tmp_lead_persons", {"person_id": "uuid"}, person_ids.drop_duplicates().to_frame("person_id")
    )
    cur.execute("ANALYZE tmp_lead_persons")
    existing = read_frame(cur, READ_LEADS)
    cur.execute("DROP TABLE tmp_lead_persons")
    return existing


def read_linked_leads(cur: Cursor, rows: pd.DataFrame) -> pd.DataFrame:
    """staging_table, staging_id, linked_lead_id of the rows (staging_table, staging_id: staging_lead or
    staging_lead_failures) already linked to a lead (a re-processed row keeps its lead)."""
    copy_into_temp(
        cur,
        "tmp_lead_rows",
        {"staging_table": "text", "staging_id": "bigint"},
        rows[["staging_table", "staging_id"]],
    )
    linked = read_frame(cur, READ_LINKED_LEADS).astype({"staging_id": "int64"})
    cur.execute("DROP TABLE tmp_lead_rows")
    return linked


def insert_leads(cur: Cursor, leads: pd.DataFrame, now: dt.datetime) -> IsolatedWrite:
    """Create leads (LEAD_COLUMNS); a row production refuses costs that lead only."""
    return write_isolating(cur, "tmp_new_leads", LEAD_COLUMNS, leads, INSERT_LEADS, {"now": now})


def fill_leads(cur: Cursor, fills: pd.DataFrame, now: dt.datetime) -> IsolatedWrite:
    """Fill NULL fields of existing leads (lead_id + fills, NA = keep); a refused fill costs that lead."""
    return write_isolating(
        cur, "tmp_lead_fills", LEAD_COLUMNS, fills.assign(person_id=pd.NA), FILL_LEADS, {"now": now}
    )
