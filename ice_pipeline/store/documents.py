"""SQL of `prod_documents`, as named operations on a cursor the caller owns.

Reads run in the caller's (read-only, rolled back) session; writes run inside
the asset's `writer_transaction`. Keys travel through temp tables filled by
COPY, never through SQL assembled from values.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from psycopg2.extensions import cursor as Cursor

from ice_pipeline.db import copy_into_temp, read_frame

# State of each staging student a document of the batch belongs to. A student
# whose link points at a student that no longer exists counts as not loaded.
READ_STUDENT_STATES = """
SELECT k.staging_id,
       (SELECT l.entity_id::text FROM ice_pipeline.source_links l JOIN students s ON s.id = l.entity_id
         WHERE l.staging_table = 'staging_student' AND l.entity = 'student' AND l.staging_id = k.staging_id) AS student_id,
       EXISTS (SELECT 1 FROM ice_pipeline.rejected_rows r
                WHERE r.staging_table = 'staging_student' AND r.staging_id = k.staging_id) AS rejected,
       EXISTS (SELECT 1 FROM ice_pipeline.review_queue q
                WHERE q.kind = 'identity_conflict' AND q.status = 'open'
                  AND q.staging_table = 'staging_student' AND q.staging_id = k.staging_id) AS in_review
FROM tmp_doc_students k
"""
READ_DOCUMENT_LINKS = """
SELECT l.staging_id, l.entity_id::text AS document_id
FROM ice_pipeline.source_links l
WHERE l.staging_table = 'staging_document' AND l.entity = 'document'
  AND l.staging_id IN (SELECT staging_id FROM tmp_doc_rows)
"""
KEY_COLUMNS = {"student_id": "uuid", "checksum": "text"}
READ_EXISTING = """
SELECT d.id::text AS document_id, d.student_id::text AS student_id, d.checksum
FROM student_documents d
JOIN tmp_doc_keys k ON k.student_id = d.student_id AND k.checksum = d.checksum
"""
DROP_KEYS = "DROP TABLE tmp_doc_keys"
NEW_DOCUMENT_COLUMNS = {
    "document_id": "uuid",
    "student_id": "uuid",
    "document_type": "text",
    "file_name": "text",
    "object_key": "text",
    "bucket": "text",
    "file_size": "integer",
    "mime_type": "text",
    "checksum": "text",
    "original_file_path": "text",
}
INSERT_DOCUMENTS = """
INSERT INTO student_documents (id, student_id, document_type, file_name, object_key, bucket, file_size, mime_type,
                               checksum, original_file_path, storage_provider, status, uploaded_at,
                               created_at, updated_at)
SELECT document_id, student_id, document_type, file_name, object_key, bucket, file_size, mime_type,
       checksum, original_file_path, 'MINIO', 'PENDING', %(now)s, %(now)s, %(now)s
FROM tmp_new_documents
ON CONFLICT (student_id, checksum) DO NOTHING
RETURNING id::text
"""
# A staging document read again (changed in V3, or a full refresh) whose file
# is now another document: its lineage follows the current content.
RELINK_COLUMNS = {"staging_id": "bigint", "entity_id": "uuid", "matched_by": "text"}
RELINK_DOCUMENTS = """
UPDATE ice_pipeline.source_links l
SET entity_id = t.entity_id, matched_by = t.matched_by, run_id = %(run_id)s, linked_at = now()
FROM tmp_doc_relinks t
WHERE l.staging_table = 'staging_document' AND l.entity = 'document' AND l.staging_id = t.staging_id
  AND l.entity_id <> t.entity_id
"""


def read_student_states(cur: Cursor, rows: pd.DataFrame) -> pd.DataFrame:
    """staging_id, student_id, rejected, in_review of each staging student the batch's documents name."""
    students = pd.DataFrame({"staging_id": pd.to_numeric(rows["student_id"], errors="coerce")}).dropna()
    copy_into_temp(
        cur, "tmp_doc_students", {"staging_id": "bigint"}, students.drop_duplicates().astype("int64")
    )
    return read_frame(cur, READ_STUDENT_STATES)


def read_document_links(cur: Cursor, rows: pd.DataFrame) -> set[int]:
    """The staging document ids of the batch that are already linked to a document."""
    copy_into_temp(cur, "tmp_doc_rows", {"staging_id": "bigint"}, pd.DataFrame({"staging_id": rows["id"]}))
    return set(read_frame(cur, READ_DOCUMENT_LINKS)["staging_id"].astype("int64"))


def read_existing(cur: Cursor, accepted: pd.DataFrame) -> pd.DataFrame:
    """document_id, student_id, checksum of the production documents with the (student, sha256) of `accepted`."""
    copy_into_temp(cur, "tmp_doc_keys", KEY_COLUMNS, accepted[["student_id", "checksum"]].drop_duplicates())
    found = read_frame(cur, READ_EXISTING)
    cur.execute(DROP_KEYS)
    return found


def insert_documents(cur: Cursor, fresh: pd.DataFrame, now: dt.datetime) -> set[str]:
    """Insert the new document rows (a concurrent insert of the same key is skipped); the ids inserted."""
    copy_into_temp(cur, "tmp_new_documents", NEW_DOCUMENT_COLUMNS, fresh)
    cur.execute(INSERT_DOCUMENTS, {"now": now})
    return {r[0] for r in cur.fetchall()} if len(fresh) else set()


def relink_documents(cur: Cursor, links: pd.DataFrame, run_id: str) -> None:
    """Point links of staging documents whose content changed at their current document."""
    copy_into_temp(cur, "tmp_doc_relinks", RELINK_COLUMNS, links)
    cur.execute(RELINK_DOCUMENTS, {"run_id": run_id})
