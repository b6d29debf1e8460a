"""Named SQL of `resolved_persons`: candidates, evidence, the writes into `persons` and the pipeline's tables.

The batch's match keys are in temp table `tmp_keys` (COPY, see `db.copy_into_temp`); every lookup
joins it, so each costs what the batch costs, not what production holds (indexes on
`ice_pipeline.person_keys` and `ice_pipeline.row_keys`).
"""

from __future__ import annotations

from ice_pipeline.store.review import DECIDED_MERGE_TARGETS, DECIDED_PAIRS, READ_IDENTITY_DECISIONS

KEY_COLUMNS = {
    "staging_table": "text",
    "staging_id": "bigint",
    "cedula": "text",
    "email": "text",
    "name_key": "text",
    "birth_date": "date",
    "phone_tail": "text",
    "student_number": "text",
    "source_file": "text",
    "source_sheet": "text",
    "source_row": "integer",
}

# Identity questions a person answered (`ice-pipeline review resolve`): store/review.py.
READ_DECISIONS = READ_IDENTITY_DECISIONS
# The person of the lead first seen at the same file/sheet/row, when the name matches.
READ_SAME_SOURCE_ROW = """
SELECT DISTINCT ON (t.staging_table, t.staging_id) t.staging_table, t.staging_id,
       l.person_id::text AS source_row_person_id
FROM tmp_keys t
JOIN leads l ON l.source_file = t.source_file AND l.source_row = t.source_row
            AND l.source_sheet IS NOT DISTINCT FROM t.source_sheet
JOIN ice_pipeline.person_keys k ON k.person_id = l.person_id AND k.name_key = t.name_key
WHERE t.source_file IS NOT NULL AND t.source_row IS NOT NULL
ORDER BY t.staging_table, t.staging_id, l.created_at, l.id
"""
# Rows of the batch linked before (V3 changed them): they stay with their person.
READ_LINKED = """
SELECT l.staging_table, l.staging_id, l.entity_id::text AS linked_person_id
FROM ice_pipeline.source_links l
JOIN tmp_keys k ON k.staging_table = l.staging_table AND k.staging_id = l.staging_id
JOIN persons p ON p.id = l.entity_id
WHERE l.entity = 'person'
"""

# Keys of persons written or changed outside the pipeline since the last run
# (the bot's own inserts and edits): recomputed in Python before matching.
REFRESH_MARK = "production.persons"
READ_KEYS_SINCE = """
SELECT coalesce((SELECT (high_updated_at AT TIME ZONE 'UTC')::text FROM ice_pipeline.watermarks
                 WHERE staging_table = %(mark)s), '-infinity'),
       ((now() AT TIME ZONE 'UTC') - interval '10 minutes')::text
"""
READ_CHANGED_PERSONS = """
SELECT p.id::text AS person_id, p.full_name, p.email, p.phone, p.cedula, p.birth_date::text AS birth_date,
       p.address, p.city, p.country, p.updated_at::text AS person_updated_at,
       (SELECT upper(btrim(min(s.student_number))) FROM students s WHERE s.person_id = p.id) AS student_number
FROM persons p
LEFT JOIN ice_pipeline.person_keys k ON k.person_id = p.id
WHERE k.person_id IS NULL OR (p.updated_at > %(since)s::timestamp AND k.person_updated_at <> p.updated_at)
"""
PERSON_KEY_COLUMNS = {
    "person_id": "uuid",
    "cedula": "text",
    "email": "text",
    "name_key": "text",
    "birth_date": "date",
    "phone_tail": "text",
    "student_number": "text",
    "person_updated_at": "timestamp(3)",
}
UPSERT_PERSON_KEYS = """
INSERT INTO ice_pipeline.person_keys (person_id, cedula, email, name_key, birth_date, phone_tail, student_number,
                                      person_updated_at)
SELECT person_id, cedula, email, name_key, birth_date, phone_tail, student_number, person_updated_at
FROM tmp_person_keys
ON CONFLICT (person_id) DO UPDATE
SET cedula = EXCLUDED.cedula, email = EXCLUDED.email, name_key = EXCLUDED.name_key, birth_date = EXCLUDED.birth_date,
    phone_tail = EXCLUDED.phone_tail, student_number = EXCLUDED.student_number,
    person_updated_at = EXCLUDED.person_updated_at
"""
# An existing person this run gives a student (number) without changing the person itself.
SET_STUDENT_NUMBERS = """
UPDATE ice_pipeline.person_keys k SET student_number = t.student_number
FROM tmp_student_numbers t
WHERE k.person_id = t.person_id AND k.student_number IS DISTINCT FROM t.student_number
"""
ADVANCE_KEYS_MARK = """
INSERT INTO ice_pipeline.watermarks (staging_table, high_updated_at, high_id, run_id)
VALUES (%(mark)s, %(since)s::timestamp AT TIME ZONE 'UTC', 0, %(run_id)s)
ON CONFLICT (staging_table) DO UPDATE SET high_updated_at = EXCLUDED.high_updated_at, run_id = EXCLUDED.run_id,
    updated_at = now()
"""

# --- identifying values ----------------------------------------------------------------------

# Values carried by more than %(cap)s persons (as survivors or through their rows) identify nobody:
# shared outright, without reading those persons.
READ_CROWDED_VALUES = """
SELECT kind, value FROM (
    SELECT 'email' AS kind, email AS value, person_id FROM ice_pipeline.person_keys
     WHERE email IN (SELECT email FROM tmp_keys WHERE email IS NOT NULL)
    UNION SELECT 'email', email, person_id FROM ice_pipeline.row_keys
     WHERE email IN (SELECT email FROM tmp_keys WHERE email IS NOT NULL)
    UNION SELECT 'cedula', cedula, person_id FROM ice_pipeline.person_keys
     WHERE cedula IN (SELECT cedula FROM tmp_keys WHERE cedula IS NOT NULL)
    UNION SELECT 'cedula', cedula, person_id FROM ice_pipeline.row_keys
     WHERE cedula IN (SELECT cedula FROM tmp_keys WHERE cedula IS NOT NULL)
    UNION SELECT 'mobile', phone_tail, person_id FROM ice_pipeline.person_keys
     WHERE phone_tail IN (SELECT phone_tail FROM tmp_keys WHERE phone_tail IS NOT NULL)
    UNION SELECT 'mobile', phone_tail, person_id FROM ice_pipeline.row_keys
     WHERE phone_tail IN (SELECT phone_tail FROM tmp_keys WHERE phone_tail IS NOT NULL)
) carriers
GROUP BY kind, value HAVING count(DISTINCT person_id) > %(cap)s
"""
# Values an earlier run found shared (clearly different people carry them): once shared, always.
READ_KNOWN_SHARED = """
SELECT s.kind, s.value FROM ice_pipeline.shared_values s
WHERE (s.kind = 'email' AND s.value IN (SELECT email FROM tmp_keys WHERE email IS NOT NULL))
   OR (s.kind = 'cedula' AND s.value IN (SELECT cedula FROM tmp_keys WHERE cedula IS NOT NULL))
   OR (s.kind = 'mobile' AND s.value IN (SELECT phone_tail FROM tmp_keys WHERE phone_tail IS NOT NULL))
"""
SHARED_COLUMNS = {"kind": "text", "value": "text", "reason": "text"}
# The batch's unique values as they came, before masking: whoever holds one must be read (not to
# match on it, but so that survivorship never gives a held e-mail or cédula to another person).
KEEP_UNIQUE_VALUES = """
CREATE TEMP TABLE tmp_unique_values ON COMMIT DROP AS
SELECT DISTINCT email, cedula FROM tmp_keys WHERE email IS NOT NULL OR cedula IS NOT NULL
"""
# The batch's keys without the values that identify nobody (they stay data on the rows).
MASK_SHARED_KEYS = """
UPDATE tmp_keys k SET
    email = CASE WHEN k.email IN (SELECT value FROM tmp_shared WHERE kind = 'email') THEN NULL ELSE k.email END,
    cedula = CASE WHEN k.cedula IN (SELECT value FROM tmp_shared WHERE kind = 'cedula') THEN NULL ELSE k.cedula END,
    phone_tail = CASE WHEN k.phone_tail IN (SELECT value FROM tmp_shared WHERE kind = 'mobile')
                      THEN NULL ELSE k.phone_tail END
"""
INSERT_SHARED = """
INSERT INTO ice_pipeline.shared_values (kind, value, reason, run_id)
SELECT kind, value, reason, %(run_id)s FROM tmp_new_shared
ON CONFLICT (kind, value) DO NOTHING
"""

# --- candidates ------------------------------------------------------------------------------

# Existing persons sharing any match key with the batch -- as survivors (person_keys) or through
# any row ever linked to them (row_keys) -- or linked to its rows before, or chosen by a decision.
FIND_CANDIDATES = (
    """
CREATE TEMP TABLE tmp_candidates ON COMMIT DROP AS
    SELECT s2.person_id FROM students s2
      JOIN (SELECT DISTINCT student_number FROM tmp_keys WHERE student_number IS NOT NULL) t
        ON t.student_number = s2.student_number
    UNION
    SELECT k.person_id FROM ice_pipeline.person_keys k
      JOIN (SELECT DISTINCT cedula FROM tmp_keys WHERE cedula IS NOT NULL) t ON t.cedula = k.cedula
    UNION
    SELECT k.person_id FROM ice_pipeline.person_keys k
      JOIN (SELECT DISTINCT email FROM tmp_keys WHERE email IS NOT NULL) t ON t.email = k.email
    UNION
    SELECT k.person_id FROM ice_pipeline.person_keys k
      JOIN (SELECT DISTINCT name_key, birth_date FROM tmp_keys WHERE name_key IS NOT NULL AND birth_date IS NOT NULL) t
        ON t.name_key = k.name_key AND t.birth_date = k.birth_date
    UNION
    SELECT k.person_id FROM ice_pipeline.person_keys k
      JOIN (SELECT DISTINCT phone_tail FROM tmp_keys WHERE phone_tail IS NOT NULL) t ON t.phone_tail = k.phone_tail
    UNION
    SELECT r.person_id FROM ice_pipeline.row_keys r
      JOIN (SELECT DISTINCT cedula FROM tmp_keys WHERE cedula IS NOT NULL) t ON t.cedula = r.cedula
    UNION
    SELECT r.person_id FROM ice_pipeline.row_keys r
      JOIN (SELECT DISTINCT email FROM tmp_keys WHERE email IS NOT NULL) t ON t.email = r.email
    UNION
    SELECT r.person_id FROM ice_pipeline.row_keys r
      JOIN (SELECT DISTINCT name_key, birth_date FROM tmp_keys WHERE name_key IS NOT NULL AND birth_date IS NOT NULL) t
        ON t.name_key = r.name_key AND t.birth_date = r.birth_date
    UNION
    SELECT r.person_id FROM ice_pipeline.row_keys r
      JOIN (SELECT DISTINCT phone_tail FROM tmp_keys WHERE phone_tail IS NOT NULL) t ON t.phone_tail = r.phone_tail
    UNION
    SELECT entity_id FROM ice_pipeline.source_links l
      JOIN tmp_keys k ON k.staging_table = l.staging_table AND k.staging_id = l.staging_id
     WHERE l.entity = 'person'
    UNION
    SELECT k.person_id FROM ice_pipeline.person_keys k
      JOIN (SELECT DISTINCT email FROM tmp_unique_values WHERE email IS NOT NULL) t ON t.email = k.email
    UNION
    SELECT k.person_id FROM ice_pipeline.person_keys k
      JOIN (SELECT DISTINCT cedula FROM tmp_unique_values WHERE cedula IS NOT NULL) t ON t.cedula = k.cedula
    UNION
    SELECT l.person_id FROM leads l
      JOIN tmp_keys t ON l.source_file = t.source_file AND l.source_row = t.source_row
                     AND l.source_sheet IS NOT DISTINCT FROM t.source_sheet
      JOIN ice_pipeline.person_keys k ON k.person_id = l.person_id AND k.name_key = t.name_key
    UNION
"""  # noqa: S608 - constants joined at import
    + DECIDED_MERGE_TARGETS
)
# Persons matching a key that only a *cluster* has: an existing person's name key with the birth
# date or mobile a batch row brings (see cluster_name_keys). Added to tmp_candidates; returns the new ones.
FIND_MORE_CANDIDATES = """
INSERT INTO tmp_candidates (person_id)
SELECT DISTINCT k.person_id FROM ice_pipeline.person_keys k
JOIN tmp_cluster_keys t ON t.name_key = k.name_key
     AND ((t.birth_date IS NOT NULL AND t.birth_date = k.birth_date)
          OR (t.phone_tail IS NOT NULL AND t.phone_tail = k.phone_tail))
WHERE k.person_id NOT IN (SELECT person_id FROM tmp_candidates)
RETURNING person_id::text
"""
CLUSTER_KEY_COLUMNS = {"name_key": "text", "birth_date": "date", "phone_tail": "text"}
READ_CANDIDATES = """
SELECT p.id::text AS person_id, p.full_name, p.email, p.phone, p.cedula, p.birth_date::text AS birth_date,
       p.address, p.city, p.country, p.data_source, p.original_name, p.csv_enriched,
       upper(btrim(s.student_number)) AS student_number,
       EXISTS (SELECT 1 FROM ice_pipeline.source_links n WHERE n.entity = 'person' AND n.entity_id = p.id
               AND n.matched_by = 'new') AS pipeline_created
FROM persons p
LEFT JOIN students s ON s.person_id = p.id
WHERE p.id IN (SELECT person_id FROM tmp_candidates WHERE person_id = ANY(%(only)s::uuid[]) OR %(only)s IS NULL)
ORDER BY p.id
"""
# The evidence of the candidates: every row linked to them before, except the batch's own rows
# (their new version is in the batch). Arrival order as one batch would have them.
READ_HISTORY = """
SELECT r.staging_table, r.staging_id, r.person_id::text AS owner_person_id, r.cedula, r.email, r.name_key,
       r.birth_date::text AS birth_date, r.phone_tail AS mobile, r.student_number,
       r.arrival::text AS updated_at
FROM ice_pipeline.row_keys r
WHERE r.person_id IN (SELECT person_id FROM tmp_candidates
                      WHERE person_id = ANY(%(only)s::uuid[]) OR %(only)s IS NULL)
  AND NOT EXISTS (SELECT 1 FROM tmp_keys k WHERE k.staging_table = r.staging_table AND k.staging_id = r.staging_id)
"""
# Persons waiting for a false-merge decision: nothing more joins them until a person decides.
READ_FLAGGED = """
SELECT DISTINCT person_id::text AS person_id FROM ice_pipeline.review_queue
WHERE kind = 'possible_false_merge' AND status IN ('open', 'resolved')
  AND person_id IN (SELECT person_id FROM tmp_candidates)
"""
# Pairs of candidates a person already answered about (not the same, or split apart): not asked again.
READ_DECIDED_PAIRS = (
    "SELECT low::text AS low, high::text AS high FROM ("  # noqa: S608 - constants joined at import
    + DECIDED_PAIRS
    + ") d WHERE low IN (SELECT person_id FROM tmp_candidates) OR high IN (SELECT person_id FROM tmp_candidates)"
)
# Persons a person decided to be one -- kept together after a false-merge question, or the
# survivor of a merge: their rows falling apart under the rules is not asked again.
READ_ACCEPTED = """
SELECT DISTINCT person_id::text AS person_id FROM ice_pipeline.review_queue
WHERE kind = 'possible_false_merge' AND decision_kind = 'keep_together' AND status IN ('resolved', 'applied')
  AND person_id IN (SELECT person_id FROM tmp_candidates)
UNION
SELECT DISTINCT to_person_id::text FROM ice_pipeline.person_moves
WHERE kind = 'merge' AND to_person_id IN (SELECT person_id FROM tmp_candidates)
"""

# --- writes ----------------------------------------------------------------------------------

NEW_PERSON_COLUMNS = {
    "person_id": "uuid",
    "full_name": "text",
    "email": "text",
    "phone": "text",
    "cedula": "text",
    "birth_date": "date",
    "address": "text",
    "city": "text",
    "country": "text",
    "data_source": "text",
    "original_name": "text",
    "csv_enriched": "boolean",
}
INSERT_PERSONS = """
INSERT INTO persons (id, full_name, email, phone, cedula, birth_date, address, city, country,
                     data_source, original_name, csv_enriched, created_at, updated_at)
SELECT person_id, full_name, email, phone, cedula, birth_date, address, city, country,
       data_source, original_name, csv_enriched, %(now)s, %(now)s
FROM tmp_new_persons
WHERE _row >= %(lo)s AND _row < %(hi)s  -- db.write_isolating: a refused row costs that row
"""
# Fill NULLs only: COALESCE keeps whatever is stored, even if it changed since we read it.
# The one exception is the name of a person the pipeline created (see survivorship).
FILL_PERSONS = """
UPDATE persons p SET
    full_name = coalesce(f.full_name, p.full_name),  -- set only for a better-written spelling of the same name
    email = coalesce(p.email, f.email),
    phone = coalesce(p.phone, f.phone),
    cedula = coalesce(p.cedula, f.cedula),
    birth_date = coalesce(p.birth_date, f.birth_date),
    address = coalesce(p.address, f.address),
    city = coalesce(p.city, f.city),
    country = coalesce(p.country, f.country),
    original_name = coalesce(p.original_name, f.original_name),
    data_source = coalesce(f.data_source, p.data_source),
    csv_enriched = p.csv_enriched OR f.csv_enriched,
    updated_at = %(now)s
FROM tmp_person_fills f
WHERE p.id = f.person_id AND f._row >= %(lo)s AND f._row < %(hi)s  -- db.write_isolating
"""
ROW_KEY_COLUMNS = {
    "staging_table": "text",
    "staging_id": "bigint",
    "person_id": "uuid",
    "cedula": "text",
    "email": "text",
    "name_key": "text",
    "birth_date": "date",
    "phone_tail": "text",
    "student_number": "text",
    "arrival": "timestamptz",
    "evidence": "jsonb",
}
# The keys of every row linked this run: the evidence later runs re-resolve its person with.
UPSERT_ROW_KEYS = """
INSERT INTO ice_pipeline.row_keys (staging_table, staging_id, person_id, cedula, email, name_key, birth_date,
                                   phone_tail, student_number, arrival, evidence, run_id)
SELECT staging_table, staging_id, person_id, cedula, email, name_key, birth_date, phone_tail, student_number,
       arrival, coalesce(evidence, '{}'), %(run_id)s
FROM tmp_row_keys
ON CONFLICT (staging_table, staging_id) DO UPDATE
SET person_id = EXCLUDED.person_id, cedula = EXCLUDED.cedula, email = EXCLUDED.email, name_key = EXCLUDED.name_key,
    birth_date = EXCLUDED.birth_date, phone_tail = EXCLUDED.phone_tail, student_number = EXCLUDED.student_number,
    arrival = EXCLUDED.arrival, evidence = EXCLUDED.evidence, run_id = EXCLUDED.run_id
WHERE (ice_pipeline.row_keys.person_id, ice_pipeline.row_keys.cedula, ice_pipeline.row_keys.email,
       ice_pipeline.row_keys.name_key, ice_pipeline.row_keys.birth_date, ice_pipeline.row_keys.phone_tail,
       ice_pipeline.row_keys.student_number, ice_pipeline.row_keys.evidence)
      IS DISTINCT FROM (EXCLUDED.person_id, EXCLUDED.cedula, EXCLUDED.email, EXCLUDED.name_key, EXCLUDED.birth_date,
                        EXCLUDED.phone_tail, EXCLUDED.student_number, EXCLUDED.evidence)
"""
FIELD_SOURCE_COLUMNS = {"person_id": "uuid", "field": "text", "staging_table": "text", "staging_id": "bigint"}
# Which row brought each value the pipeline set (a value set once keeps its first source).
INSERT_FIELD_SOURCES = """
INSERT INTO ice_pipeline.field_sources (person_id, field, staging_table, staging_id, run_id)
SELECT person_id, field, staging_table, staging_id, %(run_id)s FROM tmp_field_sources
ON CONFLICT (person_id, field) DO NOTHING
"""
