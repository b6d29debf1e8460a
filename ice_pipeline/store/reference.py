"""Production services and events: reading them, creating the ones reference data brings."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from psycopg2.extensions import cursor as Cursor

from ice_pipeline.db import IsolatedWrite, read_frame, write_isolating

READ_SERVICES = "SELECT id::text AS id, name FROM services ORDER BY created_at, id"
READ_EVENTS = "SELECT id::text AS id, name FROM events ORDER BY created_at, id"
SERVICE_COLUMNS = {"id": "uuid", "name": "text", "description": "text"}
INSERT_SERVICES = """
INSERT INTO services (id, name, description, created_at, updated_at)
SELECT id, name, description, %(now)s, %(now)s FROM tmp_new_services
WHERE _row >= %(lo)s AND _row < %(hi)s
ON CONFLICT (name) DO NOTHING
"""
EVENT_COLUMNS = {
    "id": "uuid",
    "name": "text",
    "event_date": "timestamp",
    "location": "text",
    "service_id": "uuid",
}
INSERT_EVENTS = """
INSERT INTO events (id, name, event_date, location, service_id, created_at, updated_at)
SELECT id, name, event_date, location, service_id, %(now)s, %(now)s FROM tmp_new_events
WHERE _row >= %(lo)s AND _row < %(hi)s
"""
# A reference item that now loads is no longer rejected (reference data is read whole every run).
CLEAR_REFERENCE_REJECTIONS = """
DELETE FROM ice_pipeline.rejected_rows
WHERE staging_table = 'staging_reference_data' AND NOT (staging_id = ANY(%(still_rejected)s))
"""


def read_services(cur: Cursor) -> pd.DataFrame:
    """id, name of every production service, oldest first (the oldest wins a name)."""
    return read_frame(cur, READ_SERVICES)


def read_events(cur: Cursor) -> pd.DataFrame:
    """id, name of every production event, oldest first."""
    return read_frame(cur, READ_EVENTS)


def insert_services(cur: Cursor, services: pd.DataFrame, now: dt.datetime) -> IsolatedWrite:
    """Create services (id, name, description); a row production refuses costs that service only."""
    return write_isolating(cur, "tmp_new_services", SERVICE_COLUMNS, services, INSERT_SERVICES, {"now": now})


def insert_events(cur: Cursor, events: pd.DataFrame, now: dt.datetime) -> IsolatedWrite:
    """Create events (id, name, event_date, location, service_id); a refused row costs that event only."""
    return write_isolating(cur, "tmp_new_events", EVENT_COLUMNS, events, INSERT_EVENTS, {"now": now})


def clear_reference_rejections(cur: Cursor, still_rejected: list[int]) -> None:
    """Forget rejections of reference items that load now."""
    cur.execute(CLEAR_REFERENCE_REJECTIONS, {"still_rejected": still_rejected})
