"""Named SQL of the duplicate candidates (`person_candidates`, `ice-pipeline candidates --full`).

Persons are read with their match keys (`ice_pipeline.person_keys`, computed by the pipeline from the
stored values) and their display name; candidates go to `ice_pipeline.review_queue` as
`possible_duplicate` items about two production persons (no staging row). The unique index
`review_queue_pair_key` makes a pair asked once, whatever its status: a pair a person already decided
(`not_same` included) is never queued again.
"""

from __future__ import annotations

import json

import pandas as pd
from psycopg2.extensions import cursor as Cursor

from ice_pipeline.db import copy_into_temp, read_frame

READ_ALL_PERSONS = """
SELECT k.person_id::text AS person_id, p.full_name, k.name_key, k.birth_date::text AS birth_date, k.cedula,
       k.email, k.phone_tail, k.student_number
FROM ice_pipeline.person_keys k
JOIN persons p ON p.id = k.person_id
ORDER BY k.person_id
"""

FOCUS_COLUMNS = {"person_id": "uuid"}
BLOCK_KEY_COLUMNS = {"kind": "text", "value": "text"}
# The run's persons, and every person sharing a blocking key with them: a birth date (as stored or with
# day and month swapped), a name key, a cédula one edit away, a mobile, an e-mail local part. Hashed
# sub-plans over one scan of person_keys: about a second at a million persons.
READ_NEIGHBOURS = """
SELECT k.person_id::text AS person_id, p.full_name, k.name_key, k.birth_date::text AS birth_date, k.cedula,
       k.email, k.phone_tail, k.student_number
FROM ice_pipeline.person_keys k
JOIN persons p ON p.id = k.person_id
WHERE k.person_id IN (SELECT person_id FROM tmp_candidate_focus)
   OR k.birth_date IN (SELECT value::date FROM tmp_candidate_keys WHERE kind = 'birth')
   OR k.name_key IN (SELECT value FROM tmp_candidate_keys WHERE kind = 'name')
   OR k.cedula IN (SELECT value FROM tmp_candidate_keys WHERE kind = 'cedula')
   OR k.phone_tail IN (SELECT value FROM tmp_candidate_keys WHERE kind = 'mobile')
   OR (k.email IS NOT NULL AND split_part(k.email, '@', 1) IN (SELECT value FROM tmp_candidate_keys
                                                               WHERE kind = 'email'))
ORDER BY k.person_id
"""
READ_FOCUS = """
SELECT k.person_id::text AS person_id, p.full_name, k.name_key, k.birth_date::text AS birth_date, k.cedula,
       k.email, k.phone_tail, k.student_number
FROM ice_pipeline.person_keys k
JOIN persons p ON p.id = k.person_id
WHERE k.person_id IN (SELECT person_id FROM tmp_candidate_focus)
"""

CANDIDATE_COLUMNS = {
    "person_id": "uuid",
    "candidate_person_id": "uuid",
    "score": "real",
    "reason": "text",
    "details": "jsonb",
}
INSERT_CANDIDATES = """
INSERT INTO ice_pipeline.review_queue (kind, staging_table, staging_id, person_id, candidate_person_id, score,
                                       reason, details, run_id)
SELECT 'possible_duplicate', NULL, NULL, c.person_id, c.candidate_person_id, c.score, c.reason, c.details,
       %(run_id)s
FROM tmp_candidates_found c
JOIN persons a ON a.id = c.person_id
JOIN persons b ON b.id = c.candidate_person_id
ORDER BY c.score DESC, c.person_id, c.candidate_person_id
ON CONFLICT DO NOTHING  -- review_queue_pair_key: a pair is asked once, whatever was decided
"""


def read_all_persons(cur: Cursor) -> pd.DataFrame:
    """Every production person with its match keys (the full scan)."""
    return read_frame(cur, READ_ALL_PERSONS)


def read_neighbours(cur: Cursor, focus: list[str], block_keys: pd.DataFrame) -> pd.DataFrame:
    """The focus persons and the persons sharing one of `block_keys` (kind, value) with them."""
    copy_into_temp(cur, "tmp_candidate_focus", FOCUS_COLUMNS, pd.DataFrame({"person_id": focus}))
    copy_into_temp(cur, "tmp_candidate_keys", BLOCK_KEY_COLUMNS, block_keys)
    cur.execute("ANALYZE tmp_candidate_focus")
    cur.execute("ANALYZE tmp_candidate_keys")
    frame = read_frame(cur, READ_NEIGHBOURS)
    cur.execute("DROP TABLE tmp_candidate_focus, tmp_candidate_keys")
    return frame


def read_focus(cur: Cursor, focus: list[str]) -> pd.DataFrame:
    """The focus persons' keys (to derive the blocking keys their neighbours are fetched by)."""
    copy_into_temp(cur, "tmp_candidate_focus", FOCUS_COLUMNS, pd.DataFrame({"person_id": focus}))
    frame = read_frame(cur, READ_FOCUS)
    cur.execute("DROP TABLE tmp_candidate_focus")
    return frame


def queue_candidates(cur: Cursor, pairs: pd.DataFrame, run_id: str) -> int:
    """Queue candidate pairs as possible_duplicate items; returns how many were new (never asked before)."""
    if pairs.empty:
        return 0
    frame = pd.DataFrame(
        {
            "person_id": pairs["person_id"],
            "candidate_person_id": pairs["candidate_person_id"],
            "score": pairs["score"].astype(float),
            "reason": [f"possible duplicate: {e['summary']}" for e in pairs["evidence"]],
            "details": [json.dumps(e, ensure_ascii=False) for e in pairs["evidence"]],
        }
    )
    copy_into_temp(cur, "tmp_candidates_found", CANDIDATE_COLUMNS, frame)
    cur.execute(INSERT_CANDIDATES, {"run_id": run_id})
    queued = cur.rowcount
    cur.execute("DROP TABLE tmp_candidates_found")
    return queued


# Open review items by kind and age: counts only (the review-queue asset check).
OPEN_REVIEW_AGES = """
SELECT kind,
       count(*) AS open_items,
       count(*) FILTER (WHERE created_at > now() - interval '1 day') AS under_1_day,
       count(*) FILTER (WHERE created_at <= now() - interval '1 day' AND created_at > now() - interval '7 days')
           AS days_1_to_7,
       count(*) FILTER (WHERE created_at <= now() - interval '7 days' AND created_at > now() - interval '30 days')
           AS days_7_to_30,
       count(*) FILTER (WHERE created_at <= now() - interval '30 days') AS over_30_days,
       count(*) FILTER (WHERE created_at <= now() - make_interval(days => %(max_age_days)s)) AS older_than_max,
       extract(epoch FROM now() - min(created_at)) / 86400.0 AS oldest_days
FROM ice_pipeline.review_queue
WHERE status = 'open'
GROUP BY kind
ORDER BY kind
"""
