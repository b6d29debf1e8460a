"""SQL of the review queue: reading items, recording decisions, applying them (ice_pipeline/review/).

A decision is two columns, `decision_kind` and `decision_person_id` (DESIGN §3.4); the old
`decision` text ('merge:<uuid>' | 'new') is still written for identity decisions until every
reader has switched to the columns (READ_IDENTITY_DECISIONS, READ_RETRYABLE_DECISIONS,
PENDING_IDENTITY_DECISIONS, DECIDED_MERGE_TARGETS below).
"""

from __future__ import annotations

# --- what the pipeline reads (constants the identity/staging/sensor code switches to) ---------------

# Identity questions a person answered, for the rows of the batch (tmp_keys): the same shape as the
# old assets/persons.py READ_DECISIONS (staging_table, staging_id, decided_person_id, decided_new).
READ_IDENTITY_DECISIONS = """
SELECT q.staging_table, q.staging_id, q.decision_person_id::text AS decided_person_id,
       q.decision_kind = 'new_person' AS decided_new
FROM ice_pipeline.review_queue q
JOIN tmp_keys k ON k.staging_table = q.staging_table AND k.staging_id = q.staging_id
WHERE q.kind = 'identity_conflict' AND q.status = 'resolved' AND q.field IS NULL
  AND q.decision_kind IN ('merge_into', 'new_person')
"""
# The persons identity decisions merge batch rows into (a UNION arm of FIND_CANDIDATES).
DECIDED_MERGE_TARGETS = """
SELECT q.decision_person_id FROM ice_pipeline.review_queue q
  JOIN tmp_keys k ON k.staging_table = q.staging_table AND k.staging_id = q.staging_id
 WHERE q.kind = 'identity_conflict' AND q.status = 'resolved' AND q.decision_kind = 'merge_into'
"""
# Rows to read again whatever the watermark because a person decided about them (assets/staging.py
# READ_RETRYABLE, second arm).
READ_RETRYABLE_DECISIONS = """
SELECT staging_table, staging_id FROM ice_pipeline.review_queue
WHERE kind = 'identity_conflict' AND status = 'resolved' AND decision_kind IN ('merge_into', 'new_person')
"""
# Decisions waiting for a run, as (how many, highest item id) (sensors.py DECISIONS): identity
# decisions and every other resolved decision (applied by applied_review_decisions / `review apply`).
PENDING_DECISIONS = """
SELECT count(*), max(id) FROM ice_pipeline.review_queue
WHERE status = 'resolved' AND decision_kind IS NOT NULL AND decision_kind <> 'dismiss'
"""
# Pairs of production persons a person already answered about (not the same, or split apart): the
# pipeline's possible_duplicate writer drops them (the pair index also refuses a second item of a
# pair, whatever its status). Usage: DELETE FROM tmp_reviews r USING (<this>) d WHERE r.kind =
# 'possible_duplicate' AND least(r.person_id, r.candidate_person_id) = d.low AND greatest(...) = d.high.
DECIDED_PAIRS = """
SELECT least(person_id, candidate_person_id) AS low, greatest(person_id, candidate_person_id) AS high
FROM ice_pipeline.review_queue
WHERE kind = 'possible_duplicate' AND status <> 'open' AND person_id IS NOT NULL AND candidate_person_id IS NOT NULL
UNION
SELECT least(from_person_id, to_person_id), greatest(from_person_id, to_person_id)
FROM ice_pipeline.person_moves WHERE kind = 'split'
"""

# --- the CLI: list, show, resolve ---------------------------------------------------------------------

LIST_ITEMS = """
SELECT id, kind, status, staging_table, staging_id, person_id::text AS person_id,
       candidate_person_id::text AS candidate_person_id, field, existing_value, incoming_value, score, reason,
       decision_kind, decision_person_id::text AS decision_person_id, created_at, resolved_at
FROM ice_pipeline.review_queue
WHERE (%(kind)s::text IS NULL OR kind = %(kind)s) AND (%(status)s::text IS NULL OR status = %(status)s)
ORDER BY id
LIMIT %(limit)s
"""
GET_ITEM = """
SELECT id, kind, status, staging_table, staging_id, person_id::text AS person_id,
       candidate_person_id::text AS candidate_person_id, field, existing_value, incoming_value, score, reason,
       decision_kind, decision_person_id::text AS decision_person_id, details, run_id, created_at, resolved_at
FROM ice_pipeline.review_queue WHERE id = %(id)s
"""
LOCK_ITEM = GET_ITEM + " FOR UPDATE"
PERSON_FIELDS_OF = """
SELECT id::text AS person_id, full_name, email, phone, cedula, birth_date::text AS birth_date, address, city,
       country, data_source, original_name, csv_enriched, created_at, updated_at,
       (SELECT s.student_number FROM students s WHERE s.person_id = p.id) AS student_number,
       (SELECT count(*) FROM leads l WHERE l.person_id = p.id) AS leads,
       (SELECT count(*) FROM ice_pipeline.source_links k WHERE k.entity = 'person' AND k.entity_id = p.id) AS staging_rows
FROM persons p WHERE id = ANY(%(ids)s::uuid[])
ORDER BY created_at, id
"""
PERSON_EXISTS = "SELECT 1 FROM persons WHERE id = %(id)s"
# The older person of a pair stays by default (it has the longer history in the bot).
OLDER_PERSON = """
SELECT id::text FROM persons WHERE id = ANY(%(ids)s::uuid[]) ORDER BY created_at, id LIMIT 1
"""
# `decision` (text) only for identity decisions, for the readers that still parse it.
RECORD_DECISION = """
UPDATE ice_pipeline.review_queue
SET status = 'resolved', decision_kind = %(kind)s, decision_person_id = %(person)s, decision = %(legacy)s,
    resolved_at = now()
WHERE id = %(id)s
"""
DISMISS = """
UPDATE ice_pipeline.review_queue
SET status = 'dismissed', decision_kind = 'dismiss', decision_person_id = NULL, resolved_at = now()
WHERE id = %(id)s
"""
REJECT_DISMISSED = """
INSERT INTO ice_pipeline.rejected_rows (staging_table, staging_id, reason, details, retryable, run_id)
VALUES (%(table)s, %(staging_id)s, 'dismissed in review', jsonb_build_object('review_id', %(id)s), false, 'review')
ON CONFLICT (staging_table, staging_id) DO UPDATE SET reason = EXCLUDED.reason, details = EXCLUDED.details,
    retryable = false, rejected_at = now()
"""

# --- applying decisions (ice_pipeline/review/apply.py), one transaction per item -------------------

MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(%(key)s)"
# Decisions the pipeline's own resolution does not apply (identity decisions are applied by
# resolved_persons when it links the row; dismissals were applied when recorded).
READ_RESOLVED = """
SELECT id FROM ice_pipeline.review_queue
WHERE status = 'resolved' AND decision_kind IS NOT NULL
  AND kind IN ('field_conflict', 'possible_duplicate', 'possible_false_merge')
ORDER BY id
"""
COUNT_RESOLVED = """
SELECT decision_kind, count(*)::int FROM ice_pipeline.review_queue
WHERE status = 'resolved' AND decision_kind IS NOT NULL
  AND kind IN ('field_conflict', 'possible_duplicate', 'possible_false_merge')
GROUP BY decision_kind
"""
MARK_APPLIED = """
UPDATE ice_pipeline.review_queue
SET status = 'applied', resolved_at = coalesce(resolved_at, now()),
    details = details || jsonb_build_object('applied', %(applied)s::jsonb)
WHERE id = %(id)s
"""
# A decision that cannot be applied goes back to the queue, saying why (shown by `review show`).
MARK_REFUSED = """
UPDATE ice_pipeline.review_queue
SET status = 'open', decision_kind = NULL, decision_person_id = NULL, decision = NULL, resolved_at = NULL,
    details = details || jsonb_build_object('refused', jsonb_build_object(
        'decision', %(decision)s::text, 'reason', %(reason)s::text, 'at', now()::text))
WHERE id = %(id)s AND status = 'resolved'
"""
LOCK_PERSONS = """
SELECT id::text, created_at FROM persons WHERE id = ANY(%(ids)s::uuid[]) ORDER BY id FOR UPDATE
"""
# Person keys are recomputed from `persons` by the next run (a missing row is always recomputed).
FORGET_PERSON_KEYS = "DELETE FROM ice_pipeline.person_keys WHERE person_id = ANY(%(ids)s::uuid[])"

# field_conflict take_incoming: one statement per field (identifiers are never built from data).
SET_PERSON_FIELD = {
    "full_name": "UPDATE persons SET full_name = %(value)s, updated_at = %(now)s WHERE id = %(person)s",
    "email": "UPDATE persons SET email = %(value)s, updated_at = %(now)s WHERE id = %(person)s",
    "phone": "UPDATE persons SET phone = %(value)s, updated_at = %(now)s WHERE id = %(person)s",
    "cedula": "UPDATE persons SET cedula = %(value)s, updated_at = %(now)s WHERE id = %(person)s",
    "birth_date": "UPDATE persons SET birth_date = %(value)s::date, updated_at = %(now)s WHERE id = %(person)s",
    "address": "UPDATE persons SET address = %(value)s, updated_at = %(now)s WHERE id = %(person)s",
    "city": "UPDATE persons SET city = %(value)s, updated_at = %(now)s WHERE id = %(person)s",
    "country": "UPDATE persons SET country = %(value)s, updated_at = %(now)s WHERE id = %(person)s",
}
# Another person holding a unique value (stored as is, or as its normalized key).
UNIQUE_HOLDER = {
    "email": """SELECT id::text FROM persons WHERE id <> %(person)s AND lower(btrim(email)) = lower(btrim(%(value)s))
                UNION SELECT person_id::text FROM ice_pipeline.person_keys
                WHERE person_id <> %(person)s AND email = lower(btrim(%(value)s)) LIMIT 1""",
    "cedula": """SELECT id::text FROM persons WHERE id <> %(person)s
                   AND regexp_replace(cedula, '[^0-9]', '', 'g') = regexp_replace(%(value)s, '[^0-9]', '', 'g')
                 UNION SELECT person_id::text FROM ice_pipeline.person_keys
                 WHERE person_id <> %(person)s AND cedula = regexp_replace(%(value)s, '[^0-9]', '', 'g') LIMIT 1""",
}
SET_STUDENT_FIELD = {
    "student_number": "UPDATE students SET student_number = %(value)s, updated_at = %(now)s WHERE person_id = %(person)s",
    "program": "UPDATE students SET program = %(value)s, updated_at = %(now)s WHERE person_id = %(person)s",
}
STUDENT_NUMBER_HOLDER = """
SELECT person_id::text FROM students WHERE person_id <> %(person)s AND upper(btrim(student_number)) = upper(btrim(%(value)s))
"""
STUDENT_OF = "SELECT id::text FROM students WHERE person_id = %(person)s"
RECORD_FIELD_SOURCE = """
INSERT INTO ice_pipeline.field_sources (person_id, field, staging_table, staging_id, run_id)
VALUES (%(person)s, %(field)s, %(staging_table)s, %(staging_id)s, %(run_id)s)
ON CONFLICT (person_id, field) DO UPDATE SET staging_table = EXCLUDED.staging_table,
    staging_id = EXCLUDED.staging_id, run_id = EXCLUDED.run_id, set_at = now()
"""
READ_PERSON_VALUE = {
    "full_name": "SELECT full_name FROM persons WHERE id = %(person)s",
    "email": "SELECT email FROM persons WHERE id = %(person)s",
    "phone": "SELECT phone FROM persons WHERE id = %(person)s",
    "cedula": "SELECT cedula FROM persons WHERE id = %(person)s",
    "birth_date": "SELECT birth_date::text FROM persons WHERE id = %(person)s",
    "address": "SELECT address FROM persons WHERE id = %(person)s",
    "city": "SELECT city FROM persons WHERE id = %(person)s",
    "country": "SELECT country FROM persons WHERE id = %(person)s",
}
READ_STUDENT_VALUE = {
    "student_number": "SELECT student_number FROM students WHERE person_id = %(person)s",
    "program": "SELECT program FROM students WHERE person_id = %(person)s",
}

# possible_duplicate same_person: merge `absorbed` into `stayer` (both locked FOR UPDATE).
READ_STUDENTS_OF_PAIR = """
SELECT person_id::text, id::text AS student_id, upper(btrim(student_number)) AS student_number
FROM students WHERE person_id IN (%(stayer)s, %(absorbed)s)
"""
MOVE_STUDENT = (
    "UPDATE students SET person_id = %(stayer)s, updated_at = %(now)s WHERE person_id = %(absorbed)s"
)
# Both have a student: the stayer's stays; the absorbed one's documents, lineage and NULL-filling
# values go to it, then it is deleted. A document whose file the stayer's student already has
# (same checksum) is dropped and its lineage points at the stayer's copy.
REDIRECT_DUPLICATE_DOCUMENT_LINKS = """
UPDATE ice_pipeline.source_links l SET entity_id = keep.id
FROM student_documents drop_, student_documents keep
WHERE l.entity = 'document' AND l.entity_id = drop_.id
  AND drop_.student_id = %(absorbed_student)s AND keep.student_id = %(stayer_student)s
  AND keep.checksum = drop_.checksum
"""
DROP_DUPLICATE_DOCUMENTS = """
DELETE FROM student_documents drop_ USING student_documents keep
WHERE drop_.student_id = %(absorbed_student)s AND keep.student_id = %(stayer_student)s
  AND keep.checksum = drop_.checksum
"""
MOVE_DOCUMENTS = """
UPDATE student_documents SET student_id = %(stayer_student)s, updated_at = %(now)s
WHERE student_id = %(absorbed_student)s
"""
REDIRECT_STUDENT_LINKS = """
UPDATE ice_pipeline.source_links SET entity_id = %(stayer_student)s
WHERE entity = 'student' AND entity_id = %(absorbed_student)s
"""
SAVE_ABSORBED_STUDENT = """
CREATE TEMP TABLE tmp_absorbed_student ON COMMIT DROP AS SELECT * FROM students WHERE id = %(absorbed_student)s
"""
DELETE_STUDENT = "DELETE FROM students WHERE id = %(absorbed_student)s"
FILL_STUDENT = """
UPDATE students s SET
    student_number = coalesce(s.student_number, a.student_number),
    program = coalesce(s.program, a.program),
    start_date = coalesce(s.start_date, a.start_date),
    end_date = coalesce(s.end_date, a.end_date),
    current_semester = coalesce(s.current_semester, a.current_semester),
    gpa = coalesce(s.gpa, a.gpa),
    credits_total = coalesce(s.credits_total, a.credits_total),
    credits_completed = coalesce(s.credits_completed, a.credits_completed),
    data_source = nullif(array_to_string(ARRAY(
        SELECT DISTINCT btrim(t) FROM unnest(string_to_array(concat_ws(',', s.data_source, a.data_source), ',')) t
        WHERE btrim(t) <> '' ORDER BY 1), ','), ''),
    csv_enriched = s.csv_enriched OR a.csv_enriched,
    updated_at = %(now)s
FROM tmp_absorbed_student a
WHERE s.id = %(stayer_student)s
"""
# Leads: the absorbed person's lead that has the same key as one of the stayer's -- (service, event)
# when both are set, else the program (keys computed in Python: logic/normalize.label_key) -- fills
# that lead's NULLs and is dropped (its lineage follows); the others move.
READ_PAIR_LEADS = """
SELECT id::text AS lead_id, person_id::text AS person_id, service_id::text AS service_id,
       event_id::text AS event_id, program_type
FROM leads WHERE person_id IN (%(stayer)s, %(absorbed)s)
ORDER BY created_at, id
"""
LEAD_MERGE_COLUMNS = {"from_id": "uuid", "to_id": "uuid"}
FILL_MERGED_LEADS = """
UPDATE leads s SET
    lead_date = coalesce(s.lead_date, a.lead_date),
    lead_status = coalesce(s.lead_status, a.lead_status),
    followup_status = coalesce(s.followup_status, a.followup_status),
    notes = coalesce(s.notes, a.notes),
    program_type = coalesce(s.program_type, a.program_type),
    source_file = coalesce(s.source_file, a.source_file),
    source_sheet = coalesce(s.source_sheet, a.source_sheet),
    source_row = coalesce(s.source_row, a.source_row),
    assigned_agent_id = coalesce(s.assigned_agent_id, a.assigned_agent_id),
    updated_at = %(now)s
FROM (SELECT DISTINCT ON (m.to_id) m.to_id, l.* FROM tmp_lead_merge m JOIN leads l ON l.id = m.from_id
      ORDER BY m.to_id, l.created_at, l.id) a
WHERE s.id = a.to_id
"""
REDIRECT_MERGED_LEAD_LINKS = """
UPDATE ice_pipeline.source_links l SET entity_id = m.to_id
FROM tmp_lead_merge m WHERE l.entity = 'lead' AND l.entity_id = m.from_id
"""
DELETE_MERGED_LEADS = "DELETE FROM leads WHERE id IN (SELECT from_id FROM tmp_lead_merge)"
MOVE_LEADS = "UPDATE leads SET person_id = %(stayer)s, updated_at = %(now)s WHERE person_id = %(absorbed)s"
ABSORBED_ROWS = """
SELECT coalesce(jsonb_agg(jsonb_build_array(staging_table, staging_id) ORDER BY staging_table, staging_id), '[]')
FROM ice_pipeline.source_links WHERE entity = 'person' AND entity_id = %(absorbed)s
"""
MOVE_PERSON_LINKS = """
UPDATE ice_pipeline.source_links SET entity_id = %(stayer)s WHERE entity = 'person' AND entity_id = %(absorbed)s
"""
MOVE_ROW_KEYS = "UPDATE ice_pipeline.row_keys SET person_id = %(stayer)s WHERE person_id = %(absorbed)s"
SAVE_ABSORBED_PERSON = """
CREATE TEMP TABLE tmp_absorbed_person ON COMMIT DROP AS SELECT * FROM persons WHERE id = %(absorbed)s
"""
# The fields the stayer lacks and the absorbed person has: their value sources move with them.
FIELDS_TAKEN = """
SELECT f FROM persons s, tmp_absorbed_person a,
LATERAL (VALUES ('full_name', s.full_name IS NULL AND a.full_name IS NOT NULL),
                ('email', s.email IS NULL AND a.email IS NOT NULL),
                ('phone', s.phone IS NULL AND a.phone IS NOT NULL),
                ('cedula', s.cedula IS NULL AND a.cedula IS NOT NULL),
                ('birth_date', s.birth_date IS NULL AND a.birth_date IS NOT NULL),
                ('address', s.address IS NULL AND a.address IS NOT NULL),
                ('city', s.city IS NULL AND a.city IS NOT NULL),
                ('country', s.country IS NULL AND a.country IS NOT NULL)) v(f, taken)
WHERE s.id = %(stayer)s AND v.taken
"""
MOVE_FIELD_SOURCES = """
INSERT INTO ice_pipeline.field_sources (person_id, field, staging_table, staging_id, run_id, set_at)
SELECT %(stayer)s::uuid, field, staging_table, staging_id, run_id, set_at FROM ice_pipeline.field_sources
WHERE person_id = %(absorbed)s AND field = ANY(%(fields)s)
ON CONFLICT (person_id, field) DO UPDATE SET staging_table = EXCLUDED.staging_table,
    staging_id = EXCLUDED.staging_id, run_id = EXCLUDED.run_id, set_at = EXCLUDED.set_at
"""
FORGET_FIELD_SOURCES = "DELETE FROM ice_pipeline.field_sources WHERE person_id = %(absorbed)s"
DELETE_PERSON = "DELETE FROM persons WHERE id = %(absorbed)s"
# After the absorbed person is deleted, so that its unique e-mail/cédula can move.
FILL_STAYER = """
UPDATE persons p SET
    email = coalesce(p.email, a.email),
    phone = coalesce(p.phone, a.phone),
    cedula = coalesce(p.cedula, a.cedula),
    birth_date = coalesce(p.birth_date, a.birth_date),
    address = coalesce(p.address, a.address),
    city = coalesce(p.city, a.city),
    country = coalesce(p.country, a.country),
    age = coalesce(p.age, a.age),
    agency_id = coalesce(p.agency_id, a.agency_id),
    original_name = coalesce(p.original_name, a.original_name),
    data_source = nullif(array_to_string(ARRAY(
        SELECT DISTINCT btrim(t) FROM unnest(string_to_array(concat_ws(',', p.data_source, a.data_source), ',')) t
        WHERE btrim(t) <> '' ORDER BY 1), ','), ''),
    csv_enriched = p.csv_enriched OR a.csv_enriched,
    created_at = least(p.created_at, a.created_at),
    updated_at = %(now)s
FROM tmp_absorbed_person a
WHERE p.id = %(stayer)s
"""
# Other questions about the absorbed person are now about the stayer; pending identity decisions that
# named it name the stayer; its other duplicate pairs are superseded (the pipeline asks again
# about the stayer if the evidence is still there).
SUPERSEDE_ABSORBED_PAIRS = """
UPDATE ice_pipeline.review_queue SET status = 'superseded', resolved_at = now()
WHERE id <> %(review_id)s AND kind = 'possible_duplicate' AND status IN ('open', 'resolved')
  AND (person_id = %(absorbed)s OR candidate_person_id = %(absorbed)s)
"""
REPOINT_REVIEWS = """
UPDATE ice_pipeline.review_queue SET
    person_id = CASE WHEN person_id = %(absorbed)s THEN %(stayer)s::uuid ELSE person_id END,
    candidate_person_id = CASE WHEN candidate_person_id = %(absorbed)s THEN %(stayer)s::uuid
                               ELSE candidate_person_id END,
    decision_person_id = CASE WHEN decision_person_id = %(absorbed)s THEN %(stayer)s::uuid
                              ELSE decision_person_id END,
    decision = CASE WHEN decision = 'merge:' || %(absorbed)s THEN 'merge:' || %(stayer)s ELSE decision END
WHERE id <> %(review_id)s AND kind <> 'possible_duplicate' AND status IN ('open', 'resolved')
  AND (person_id = %(absorbed)s OR candidate_person_id = %(absorbed)s OR decision_person_id = %(absorbed)s)
"""
RECORD_MOVE = """
INSERT INTO ice_pipeline.person_moves (kind, from_person_id, to_person_id, review_id, run_id, staging_rows)
VALUES (%(kind)s, %(from_person)s, %(to_person)s, %(review_id)s, %(run_id)s, %(rows)s::jsonb)
"""

# possible_false_merge split: the rows that move, as a temp table (staging_table, staging_id).
SPLIT_ROW_COLUMNS = {"staging_table": "text", "staging_id": "bigint"}
ROWS_NOT_LINKED = """
SELECT m.staging_table, m.staging_id FROM tmp_split_rows m
WHERE NOT EXISTS (SELECT 1 FROM ice_pipeline.source_links l WHERE l.entity = 'person' AND l.entity_id = %(person)s
                  AND l.staging_table = m.staging_table AND l.staging_id = m.staging_id)
ORDER BY 1, 2
"""
# Students/leads linked by a moving row and also by a row that stays: (entity, id, linked by stay rows).
SHARED_ENTITIES = """
SELECT DISTINCT l.entity, l.entity_id::text
FROM ice_pipeline.source_links l
JOIN tmp_split_rows m ON m.staging_table = l.staging_table AND m.staging_id = l.staging_id
WHERE l.entity IN ('student', 'lead')
  AND EXISTS (SELECT 1 FROM ice_pipeline.source_links o
              JOIN ice_pipeline.source_links op ON op.staging_table = o.staging_table AND op.staging_id = o.staging_id
                   AND op.entity = 'person' AND op.entity_id = %(person)s
              WHERE o.entity = l.entity AND o.entity_id = l.entity_id
                AND (o.staging_table, o.staging_id) NOT IN (SELECT staging_table, staging_id FROM tmp_split_rows))
"""
# The fields whose value a moving row brought (field_sources), and their values on the person.
FIELDS_OF_ROWS = """
SELECT f.field FROM ice_pipeline.field_sources f
JOIN tmp_split_rows m ON m.staging_table = f.staging_table AND m.staging_id = f.staging_id
WHERE f.person_id = %(person)s
ORDER BY 1
"""
SAVE_SPLIT_PERSON = """
CREATE TEMP TABLE tmp_split_person ON COMMIT DROP AS SELECT * FROM persons WHERE id = %(person)s
"""
# The values that move are cleared on the original first (unique e-mail/cédula), then the new person
# takes them. The name stays on both (it is NOT NULL, and namesakes are what false merges are made of).
CLEAR_MOVED_FIELDS = """
UPDATE persons SET
    email = CASE WHEN 'email' = ANY(%(fields)s) THEN NULL ELSE email END,
    phone = CASE WHEN 'phone' = ANY(%(fields)s) THEN NULL ELSE phone END,
    cedula = CASE WHEN 'cedula' = ANY(%(fields)s) THEN NULL ELSE cedula END,
    birth_date = CASE WHEN 'birth_date' = ANY(%(fields)s) THEN NULL ELSE birth_date END,
    address = CASE WHEN 'address' = ANY(%(fields)s) THEN NULL ELSE address END,
    city = CASE WHEN 'city' = ANY(%(fields)s) THEN NULL ELSE city END,
    country = CASE WHEN 'country' = ANY(%(fields)s) THEN NULL ELSE country END,
    updated_at = %(now)s
WHERE id = %(person)s
"""
INSERT_SPLIT_PERSON = """
INSERT INTO persons (id, full_name, email, phone, cedula, birth_date, address, city, country, data_source,
                     original_name, csv_enriched, created_at, updated_at)
SELECT %(new_person)s::uuid, o.full_name,
       CASE WHEN 'email' = ANY(%(fields)s) THEN o.email END,
       CASE WHEN 'phone' = ANY(%(fields)s) THEN o.phone END,
       CASE WHEN 'cedula' = ANY(%(fields)s) THEN o.cedula END,
       CASE WHEN 'birth_date' = ANY(%(fields)s) THEN o.birth_date END,
       CASE WHEN 'address' = ANY(%(fields)s) THEN o.address END,
       CASE WHEN 'city' = ANY(%(fields)s) THEN o.city END,
       CASE WHEN 'country' = ANY(%(fields)s) THEN o.country END,
       o.data_source, o.original_name, o.csv_enriched, %(now)s, %(now)s
FROM tmp_split_person o
"""
MOVE_SPLIT_FIELD_SOURCES = """
UPDATE ice_pipeline.field_sources f SET person_id = %(new_person)s
FROM tmp_split_rows m
WHERE f.person_id = %(person)s AND m.staging_table = f.staging_table AND m.staging_id = f.staging_id
"""
MOVE_SPLIT_STUDENTS = """
UPDATE students s SET person_id = %(new_person)s, updated_at = %(now)s
WHERE s.person_id = %(person)s AND s.id IN (
    SELECT l.entity_id FROM ice_pipeline.source_links l
    JOIN tmp_split_rows m ON m.staging_table = l.staging_table AND m.staging_id = l.staging_id
    WHERE l.entity = 'student')
"""
MOVE_SPLIT_LEADS = """
UPDATE leads s SET person_id = %(new_person)s, updated_at = %(now)s
WHERE s.person_id = %(person)s AND s.id IN (
    SELECT l.entity_id FROM ice_pipeline.source_links l
    JOIN tmp_split_rows m ON m.staging_table = l.staging_table AND m.staging_id = l.staging_id
    WHERE l.entity = 'lead')
"""
MOVE_SPLIT_PERSON_LINKS = """
UPDATE ice_pipeline.source_links l SET entity_id = %(new_person)s
FROM tmp_split_rows m
WHERE l.entity = 'person' AND l.entity_id = %(person)s
  AND m.staging_table = l.staging_table AND m.staging_id = l.staging_id
"""
MOVE_SPLIT_ROW_KEYS = """
UPDATE ice_pipeline.row_keys k SET person_id = %(new_person)s
FROM tmp_split_rows m
WHERE k.person_id = %(person)s AND m.staging_table = k.staging_table AND m.staging_id = k.staging_id
"""
# A moved student's documents follow it (student_documents.student_id is unchanged): counted for the record.
COUNT_MOVED_DOCUMENTS = """
SELECT count(*) FROM student_documents d JOIN students s ON s.id = d.student_id WHERE s.person_id = %(new_person)s
"""

# --- export / import -----------------------------------------------------------------------------

EXPORT_ITEMS = """
SELECT id, kind, status, person_id::text AS person_id, candidate_person_id::text AS candidate_person_id,
       staging_table, staging_id, field, existing_value, incoming_value, score, reason, details::text AS details
FROM ice_pipeline.review_queue
WHERE status = 'open' AND (%(kind)s::text IS NULL OR kind = %(kind)s)
ORDER BY id
"""
