"""The review queue from the command line: list the questions, record a person's answer.

An identity_conflict waits until someone decides: merge the row into a
person, make it a new person, or dismiss it (it then counts as rejected).
The next migration run applies merge/new decisions; documents that waited for
that student are picked up in the same run.
"""

from __future__ import annotations

import uuid

from psycopg2.extensions import connection as Connection

from ice_pipeline.db import read_frame

LIST_ITEMS = """
SELECT id, kind, status, staging_table, staging_id, person_id::text AS person_id,
       candidate_person_id::text AS candidate_person_id, field, existing_value, incoming_value, reason,
       decision, created_at
FROM ice_pipeline.review_queue
WHERE (%(kind)s::text IS NULL OR kind = %(kind)s) AND (%(status)s::text IS NULL OR status = %(status)s)
ORDER BY id
LIMIT %(limit)s
"""
GET_ITEM = "SELECT kind, status, field, staging_table, staging_id FROM ice_pipeline.review_queue WHERE id = %s FOR UPDATE"
PERSON_EXISTS = "SELECT 1 FROM persons WHERE id = %s"
RECORD_DECISION = """
UPDATE ice_pipeline.review_queue SET status = 'resolved', decision = %(decision)s, resolved_at = now() WHERE id = %(id)s
"""
DISMISS = "UPDATE ice_pipeline.review_queue SET status = 'dismissed', resolved_at = now() WHERE id = %(id)s"
REJECT_DISMISSED = """
INSERT INTO ice_pipeline.rejected_rows (staging_table, staging_id, reason, details, retryable, run_id)
VALUES (%(table)s, %(staging_id)s, 'dismissed in review', jsonb_build_object('review_id', %(id)s), false, 'review')
ON CONFLICT (staging_table, staging_id) DO UPDATE SET reason = EXCLUDED.reason, details = EXCLUDED.details,
    retryable = false, rejected_at = now()
"""


class ReviewError(ValueError):
    """A decision that cannot be recorded; the message says why."""


def list_items(conn: Connection, kind: str | None = None, status: str | None = "open", limit: int = 50) -> list[dict]:
    with conn.cursor() as cur:
        items = read_frame(cur, LIST_ITEMS, {"kind": kind, "status": status, "limit": limit})
    conn.rollback()
    items = items.astype({"id": "int64", "staging_id": "int64"}).astype(object)
    return items.where(items.notna(), None).to_dict("records")


def resolve_item(conn: Connection, item_id: int, *, merge_into: str | None = None, new_person: bool = False,
                 dismiss: bool = False) -> str:
    """Record one decision on an open identity_conflict; returns what was recorded."""
    if sum((merge_into is not None, new_person, dismiss)) != 1:
        raise ReviewError("Give exactly one of --merge-into PERSON_ID, --new-person, --dismiss.")
    with conn, conn.cursor() as cur:
        cur.execute(GET_ITEM, (item_id,))
        row = cur.fetchone()
        if row is None:
            raise ReviewError(f"Review item {item_id} does not exist.")
        kind, status, field, table, staging_id = row
        if kind != "identity_conflict" or status != "open":
            raise ReviewError(f"Review item {item_id} is a {status} {kind}: only open identity conflicts take a decision.")
        if dismiss:
            cur.execute(DISMISS, {"id": item_id})
            cur.execute(REJECT_DISMISSED, {"table": table, "staging_id": staging_id, "id": item_id})
            return f"item {item_id} dismissed: {table} {staging_id} is now rejected ('dismissed in review')"
        if field is not None:
            raise ReviewError(f"Review item {item_id} is about the {field}, not the person: only --dismiss applies.")
        if merge_into is not None:
            try:
                person = str(uuid.UUID(merge_into))
            except ValueError:
                raise ReviewError(f"'{merge_into}' is not a person id (a UUID).") from None
            cur.execute(PERSON_EXISTS, (person,))
            if cur.fetchone() is None:
                raise ReviewError(f"No person has id {person}.")
            decision = f"merge:{person}"
        else:
            decision = "new"
        cur.execute(RECORD_DECISION, {"decision": decision, "id": item_id})
    return f"item {item_id}: {decision}; the next migration run applies it"
