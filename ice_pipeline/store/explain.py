"""Named SQL of `ice-pipeline explain`: what the pipeline decided about one staging row or one person.

Read-only. Values of the person's fields are not read: explain says which row brought a field, the
review commands show values to the operators who decide.
"""

from __future__ import annotations

from psycopg2.extensions import cursor as Cursor

ROW_LINKS = """
SELECT entity, entity_id::text AS entity_id, matched_by, run_id, linked_at::text AS linked_at, warnings
FROM ice_pipeline.source_links
WHERE staging_table = %(table)s AND staging_id = %(id)s
ORDER BY CASE entity WHEN 'person' THEN 0 WHEN 'student' THEN 1 WHEN 'lead' THEN 2 ELSE 3 END
"""
ROW_KEYS = """
SELECT person_id::text AS person_id, evidence, run_id,
       cedula IS NOT NULL AS has_cedula, email IS NOT NULL AS has_email, name_key IS NOT NULL AS has_name,
       birth_date IS NOT NULL AS has_birth_date, phone_tail IS NOT NULL AS has_mobile,
       student_number IS NOT NULL AS has_student_number
FROM ice_pipeline.row_keys
WHERE staging_table = %(table)s AND staging_id = %(id)s
"""
ROW_REJECTION = """
SELECT reason, details, retryable, run_id, rejected_at::text AS rejected_at
FROM ice_pipeline.rejected_rows
WHERE staging_table = %(table)s AND staging_id = %(id)s
"""
ROW_REVIEWS = """
SELECT id, kind, status, staging_table, staging_id, person_id::text AS person_id,
       candidate_person_id::text AS candidate_person_id, field, score, reason, details, decision_kind,
       decision_person_id::text AS decision_person_id, run_id, created_at::text AS created_at,
       resolved_at::text AS resolved_at
FROM ice_pipeline.review_queue
WHERE staging_table = %(table)s AND staging_id = %(id)s
ORDER BY id
"""
PERSON = """
SELECT id::text AS person_id, created_at::text AS created_at, updated_at::text AS updated_at, data_source,
       csv_enriched
FROM persons WHERE id = %(person)s
"""
PERSON_ROWS = """
SELECT l.staging_table, l.staging_id, l.matched_by, l.run_id, l.linked_at::text AS linked_at, l.warnings,
       k.evidence
FROM ice_pipeline.source_links l
LEFT JOIN ice_pipeline.row_keys k ON k.staging_table = l.staging_table AND k.staging_id = l.staging_id
WHERE l.entity = 'person' AND l.entity_id = %(person)s
ORDER BY l.linked_at, l.staging_table, l.staging_id
"""
PERSON_FIELD_SOURCES = """
SELECT field, staging_table, staging_id, run_id, set_at::text AS set_at
FROM ice_pipeline.field_sources
WHERE person_id = %(person)s
ORDER BY field
"""
PERSON_REVIEWS = """
SELECT id, kind, status, staging_table, staging_id, person_id::text AS person_id,
       candidate_person_id::text AS candidate_person_id, field, score, reason, details, decision_kind,
       decision_person_id::text AS decision_person_id, run_id, created_at::text AS created_at,
       resolved_at::text AS resolved_at
FROM ice_pipeline.review_queue
WHERE (person_id = %(person)s OR candidate_person_id = %(person)s OR decision_person_id = %(person)s)
  AND (status = 'open' OR %(all)s)
ORDER BY id
"""
PERSON_MOVES = """
SELECT id, kind, from_person_id::text AS from_person_id, to_person_id::text AS to_person_id, review_id, run_id,
       staging_rows, moved_at::text AS moved_at
FROM ice_pipeline.person_moves
WHERE from_person_id = %(person)s OR to_person_id = %(person)s
ORDER BY moved_at, id
"""


def fetch(cur: Cursor, query: str, params: dict) -> list[dict]:
    """Rows as dicts (jsonb columns arrive as Python objects)."""
    cur.execute(query, params)
    names = [d.name for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
