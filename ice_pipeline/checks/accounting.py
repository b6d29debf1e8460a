"""The accounting identity (DESIGN §3.4): every staging row is linked, rejected with a reason, or in review.

Always over the whole staging table (by design: nothing may be lost anywhere), so it
means the same in a migration run, a check-only run and `ice-pipeline report`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ice_pipeline.db import read_frame

FINAL_ENTITY = {
    "staging_student": "student",
    "staging_lead": "lead",
    "staging_document": "document",
    "staging_lead_failures": "lead",
}
ACCOUNTED_IDS = """
SELECT 0 AS place, staging_id FROM ice_pipeline.source_links WHERE staging_table = %(table)s AND entity = %(entity)s
UNION ALL
SELECT 1, staging_id FROM ice_pipeline.rejected_rows WHERE staging_table = %(table)s
UNION ALL
SELECT DISTINCT 2, q.staging_id FROM ice_pipeline.review_queue q
 WHERE q.staging_table = %(table)s AND q.kind = 'identity_conflict' AND q.status IN ('open', 'resolved')
   AND NOT EXISTS (SELECT 1 FROM ice_pipeline.source_links l WHERE l.staging_table = q.staging_table
                   AND l.staging_id = q.staging_id AND l.entity = %(entity)s)
"""
PLACES = ("linked", "rejected", "in_review")  # the place codes of ACCOUNTED_IDS
WATERMARK = "SELECT high_updated_at, high_id FROM ice_pipeline.watermarks WHERE staging_table = %(table)s"
STAGING_IDS = {
    "staging_student": "SELECT id, ((updated_at, id) > (%(ts)s, %(id)s))::int AS pending FROM staging_student",
    "staging_lead": "SELECT id, ((updated_at, id) > (%(ts)s, %(id)s))::int AS pending FROM staging_lead",
    # No updated_at: a raw row is written once; its watermark is (created_at, id).
    "staging_lead_failures": "SELECT id, ((created_at, id) > (%(ts)s, %(id)s))::int AS pending "
    "FROM staging_lead_failures",
    "staging_document": "SELECT id, ((updated_at, id) > (%(ts)s, %(id)s))::int AS pending FROM staging_document",
}
ID_TYPES = {"place": pa.int8(), "staging_id": pa.int64(), "id": pa.int64(), "pending": pa.int8()}


def accounting(staging_conn, production_conn, table: str) -> dict[str, int]:
    """staging rows = linked + rejected + in review (+ not processed yet), each row in exactly one place.

    Ids are counted on arrays indexed by staging id (one pass, no sorting): the check
    runs after every batch, over the whole table, so it must stay cheap at millions of rows.
    """
    with production_conn.cursor() as cur:
        places = read_frame(
            cur, ACCOUNTED_IDS, {"table": table, "entity": FINAL_ENTITY[table]}, types=ID_TYPES
        )
        cur.execute(WATERMARK, {"table": table})
        mark = cur.fetchone() or ("-infinity", 0)
    with staging_conn.cursor() as cur:
        staged = read_frame(cur, STAGING_IDS[table], {"ts": mark[0], "id": mark[1]}, types=ID_TYPES)
    staging_conn.rollback()
    production_conn.rollback()
    all_ids = staged["id"].to_numpy(dtype=np.int64)
    place_ids = places["staging_id"].to_numpy(dtype=np.int64)
    place_code = places["place"].to_numpy(dtype=np.int64)
    size = int(max(all_ids.max(initial=0), place_ids.max(initial=0))) + 1
    # per id: in how many places (an id listed twice in one place counts once there)
    seen = np.zeros((len(PLACES), size), dtype=bool)
    seen[place_code, place_ids] = True
    count = {place: int(seen[i].sum()) for i, place in enumerate(PLACES)}
    places_of = seen.sum(axis=0)
    staged_mask = np.zeros(size, dtype=bool)
    staged_mask[all_ids] = True
    pending_mask = np.zeros(size, dtype=bool)
    pending_mask[all_ids[staged["pending"].to_numpy(dtype=np.int8) == 1]] = True
    lost = np.flatnonzero(staged_mask & (places_of == 0) & ~pending_mask)
    return {
        "staging_rows": len(all_ids),
        "linked": count["linked"],
        "rejected": count["rejected"],
        "in_review": count["in_review"],
        "not_processed_yet": int((pending_mask & (places_of == 0)).sum()),
        "in_two_places": int((places_of - 1).clip(min=0).sum()),
        "unaccounted": len(lost),
        "unaccounted_ids": lost[:50].tolist(),
    }
