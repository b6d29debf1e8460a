"""The integrity rules, each defined once (issue 10): the asset checks and `ice-pipeline report` run these.

A rule is one named SQL query returning one row per offending group or row:
`ids` (the offending ids, comma-separated — never names or other values) and
`n` (how many rows the group holds). Every query takes the same parameters and
the *scope* decides what it looks at:

- production rules take `%(run_id)s`: the rows that run linked (ice_pipeline.source_links),
  or, when it is NULL, the whole database. psycopg2 binds values client-side, so
  PostgreSQL plans `NULL::text IS NULL OR ...` as the plain whole-table query and a
  run id as the run-scoped one (index source_links_run_idx);
- staging rules take `%(ids)s`: the staging ids that run took (linked, rejected or
  sent to review, read from production), or NULL for every staging row;
- rules with scope "table" look at the whole table whatever the scope (small tables
  without a run id, or checks that always did).

Duplicate rules flag a group when at least one of its members is in scope, so a
run is told about a duplicate it joined even when the older member predates it.
"""

from __future__ import annotations

from dataclasses import dataclass

ERROR = "ERROR"
WARN = "WARN"
DUPLICATES = "duplicates"
ORPHANS = "orphans"
PRODUCTION = "production"
STAGING = "staging"


@dataclass(frozen=True)
class Rule:
    """One integrity rule: where it applies, how bad a violation is, and its query."""

    name: str  # also the asset check's name
    asset: str  # the asset of the design card it guards
    kind: str  # duplicates | orphans
    database: str  # production | staging
    query: str  # rows (ids, n); parameters %(run_id)s / %(ids)s (see the module docstring)
    description: str
    severity: str = ERROR  # ERROR | WARN
    blocking: bool = False  # an ERROR stops the run (downstream assets are not materialized)
    scope: str = "run"  # run | table | lineage (staging ids from production even for the whole database)
    staging_table: str | None = None  # staging rules: the table whose ids %(ids)s holds


# --- the scope, spelled once --------------------------------------------------------------------------------
# Ids of the entities the scoped run linked. Used inside `(%(run_id)s::text IS NULL OR <id> IN (...))`.


def _linked_by_run(entity: str) -> str:
    """The run-scope subquery for one entity: its ids linked by run %(run_id)s."""
    return (
        f"SELECT entity_id FROM ice_pipeline.source_links WHERE entity = '{entity}' "  # noqa: S608
        "AND run_id = %(run_id)s"
    )


LINKED_PERSONS = _linked_by_run("person")
LINKED_STUDENTS = _linked_by_run("student")
LINKED_LEADS = _linked_by_run("lead")
# Staging rows a run took: linked, rejected or sent to review (read from production, then %(ids)s in staging).
# Every run's when %(run_id)s is NULL (scope "lineage" only: the other staging rules then read every row).
STAGING_IDS_OF_RUN = """
SELECT staging_id FROM ice_pipeline.source_links
WHERE staging_table = %(table)s AND (%(run_id)s::text IS NULL OR run_id = %(run_id)s)
UNION
SELECT staging_id FROM ice_pipeline.rejected_rows
WHERE staging_table = %(table)s AND (%(run_id)s::text IS NULL OR run_id = %(run_id)s)
UNION
SELECT staging_id FROM ice_pipeline.review_queue
WHERE staging_table = %(table)s AND (%(run_id)s::text IS NULL OR run_id = %(run_id)s)
"""
# A staging row is in a run's scope when production attributes it to that run, or -- for the run in progress,
# whose writes may not have happened yet when a staging check runs -- when it lies beyond the watermark
# (%(since_at)s, %(since_id)s; 'infinity' for a finished run).
IN_STAGING_SCOPE = """(%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s::bigint[])
      OR (updated_at, id) > (%(since_at)s::timestamptz, %(since_id)s::bigint))"""

# --- resolved_persons ---------------------------------------------------------------------------------------
# ice_pipeline.person_keys holds the match keys of every person, computed by the pipeline from the stored values
# (also for persons the bot wrote: refreshed at the start of every run).

PERSONS_SAME_CEDULA = f"""
SELECT string_agg(k.person_id::text, ',' ORDER BY k.person_id) AS ids, count(*) AS n
FROM ice_pipeline.person_keys k JOIN persons p ON p.id = k.person_id
WHERE k.cedula IS NOT NULL
  AND (%(run_id)s::text IS NULL OR k.cedula IN (
        SELECT cedula FROM ice_pipeline.person_keys WHERE cedula IS NOT NULL AND person_id IN ({LINKED_PERSONS})))
GROUP BY k.cedula HAVING count(*) > 1
"""  # noqa: S608 - built from this module's constants
PERSONS_SAME_EMAIL = f"""
SELECT string_agg(k.person_id::text, ',' ORDER BY k.person_id) AS ids, count(*) AS n
FROM ice_pipeline.person_keys k JOIN persons p ON p.id = k.person_id
WHERE k.email IS NOT NULL
  AND (%(run_id)s::text IS NULL OR k.email IN (
        SELECT email FROM ice_pipeline.person_keys WHERE email IS NOT NULL AND person_id IN ({LINKED_PERSONS})))
GROUP BY k.email HAVING count(*) > 1
"""  # noqa: S608 - built from this module's constants
PERSONS_SAME_NAME_BIRTH_DATE = f"""
SELECT string_agg(k.person_id::text, ',' ORDER BY k.person_id) AS ids, count(*) AS n
FROM ice_pipeline.person_keys k JOIN persons p ON p.id = k.person_id
WHERE k.birth_date IS NOT NULL AND k.name_key IS NOT NULL
  AND k.person_id NOT IN (
        SELECT person_id FROM ice_pipeline.review_queue
        WHERE kind = 'possible_duplicate' AND (status = 'open' OR decision_kind = 'not_same')
          AND person_id IS NOT NULL
        UNION ALL
        SELECT candidate_person_id FROM ice_pipeline.review_queue
        WHERE kind = 'possible_duplicate' AND (status = 'open' OR decision_kind = 'not_same')
          AND candidate_person_id IS NOT NULL)
  AND (%(run_id)s::text IS NULL OR (k.name_key, k.birth_date) IN (
        SELECT name_key, birth_date FROM ice_pipeline.person_keys
        WHERE birth_date IS NOT NULL AND person_id IN ({LINKED_PERSONS})))
GROUP BY k.name_key, k.birth_date
HAVING count(*) > 1 AND count(DISTINCT k.cedula) <= 1 AND count(DISTINCT k.email) <= 1
       AND count(DISTINCT k.student_number) <= 1
"""  # noqa: S608 - built from this module's constants
# Lineage pointing at a person that is gone (deleted after the pipeline linked it).
PERSON_LINKS_WITHOUT_PERSON = f"""
SELECT l.entity_id::text AS ids, count(*) AS n
FROM ice_pipeline.source_links l LEFT JOIN persons p ON p.id = l.entity_id
WHERE l.entity = 'person' AND p.id IS NULL
  AND (%(run_id)s::text IS NULL OR l.entity_id IN ({LINKED_PERSONS}))
GROUP BY l.entity_id
"""  # noqa: S608 - built from this module's constants

# --- prod_students / prod_leads -----------------------------------------------------------------------------

STUDENTS_SAME_PERSON_OR_NUMBER = f"""
SELECT string_agg(s.id::text, ',' ORDER BY s.id) AS ids, count(*) AS n FROM students s
WHERE %(run_id)s::text IS NULL OR s.person_id IN (SELECT person_id FROM students WHERE id IN ({LINKED_STUDENTS}))
GROUP BY s.person_id HAVING count(*) > 1
UNION ALL
SELECT string_agg(s.id::text, ',' ORDER BY s.id), count(*) FROM students s
WHERE s.student_number IS NOT NULL
  AND (%(run_id)s::text IS NULL
       OR s.student_number IN (SELECT student_number FROM students WHERE id IN ({LINKED_STUDENTS})))
GROUP BY s.student_number HAVING count(*) > 1
"""  # noqa: S608 - built from this module's constants
STUDENTS_WITHOUT_PERSON = f"""
SELECT s.id::text AS ids, 1 AS n FROM students s LEFT JOIN persons p ON p.id = s.person_id
WHERE p.id IS NULL AND (%(run_id)s::text IS NULL OR s.id IN ({LINKED_STUDENTS}))
"""  # noqa: S608 - built from this module's constants
LEADS_SAME_KEY = f"""
SELECT string_agg(l.id::text, ',' ORDER BY l.id) AS ids, count(*) AS n FROM leads l
WHERE %(run_id)s::text IS NULL OR l.person_id IN (SELECT person_id FROM leads WHERE id IN ({LINKED_LEADS}))
GROUP BY l.person_id,
         CASE WHEN l.service_id IS NOT NULL AND l.event_id IS NOT NULL
              THEN l.service_id::text || '|' || l.event_id::text
              ELSE 'program:' || coalesce(l.program_type, '') END
HAVING count(*) > 1
"""  # noqa: S608 - built from this module's constants
LEADS_WITHOUT_PERSON_SERVICE_OR_EVENT = f"""
SELECT l.id::text AS ids, 1 AS n FROM leads l
LEFT JOIN persons p ON p.id = l.person_id
LEFT JOIN services s ON s.id = l.service_id
LEFT JOIN events e ON e.id = l.event_id
WHERE (p.id IS NULL OR (l.service_id IS NOT NULL AND s.id IS NULL) OR (l.event_id IS NOT NULL AND e.id IS NULL))
  AND (%(run_id)s::text IS NULL OR l.id IN ({LINKED_LEADS}))
"""  # noqa: S608 - built from this module's constants

# --- prod_services_events (small tables, no run id: always the whole table) ---------------------------------
# Names are compared trimmed and case-folded: the pipeline matches reference items by a folded key, so two
# services or two events that fold alike make that match ambiguous.
SERVICES_EVENTS_SAME_NAME = """
SELECT string_agg(id::text, ',' ORDER BY id) AS ids, count(*) AS n FROM services
GROUP BY lower(btrim(name)) HAVING count(*) > 1
UNION ALL
SELECT string_agg(id::text, ',' ORDER BY id), count(*) FROM events
GROUP BY lower(btrim(name)), service_id HAVING count(*) > 1
"""
EVENTS_WITHOUT_SERVICE = """
SELECT e.id::text AS ids, 1 AS n FROM events e LEFT JOIN services s ON s.id = e.service_id
WHERE e.service_id IS NOT NULL AND s.id IS NULL
"""

# --- prod_documents (whole table, as these checks always were) ----------------------------------------------

DOCUMENTS_SAME_STUDENT_CHECKSUM = """
SELECT string_agg(id::text, ',' ORDER BY id) AS ids, count(*) AS n FROM student_documents
WHERE checksum IS NOT NULL GROUP BY student_id, checksum HAVING count(*) > 1
"""
DOCUMENTS_WITHOUT_STUDENT = """
SELECT d.id::text AS ids, 1 AS n FROM student_documents d
LEFT JOIN students s ON s.id = d.student_id WHERE s.id IS NULL
"""
# Links to a document row deleted since (the bot may delete documents): reported, not a failure.
DOCUMENT_LINKS_WITHOUT_DOCUMENT = """
SELECT count(*) FROM ice_pipeline.source_links l
LEFT JOIN student_documents d ON d.id = l.entity_id WHERE l.entity = 'document' AND d.id IS NULL
"""

# --- staging (what V3 wrote; V3's responsibility: warnings) --------------------------------------------------
# "Ingested twice" means the same *source row* twice, not the same person from two sources (V3 merges
# directory and CSV sightings into one row; the pipeline resolves the rest):
#   students  - the same student number (trimmed, upper-cased) on two rows; or, without a student number,
#               the same name (trimmed, spaces collapsed, lower-cased), cédula (digits), e-mail (trimmed,
#               lower-cased) and birth date on two rows that carry a cédula or an e-mail;
#   leads     - the same (source_file, source_sheet, source_row) on two rows;
#   documents - the same (student_id, staging_file_path) on two rows.

STAGING_STUDENTS_TWICE = f"""
SELECT string_agg(id::text, ',' ORDER BY id) AS ids, count(*) AS n FROM staging_student
WHERE nullif(btrim(student_number), '') IS NOT NULL
GROUP BY upper(btrim(student_number))
HAVING count(*) > 1 AND bool_or({IN_STAGING_SCOPE})
UNION ALL
SELECT string_agg(id::text, ',' ORDER BY id), count(*) FROM staging_student
WHERE nullif(btrim(student_number), '') IS NULL
  AND (nullif(regexp_replace(cedula, '[^0-9]', '', 'g'), '') IS NOT NULL OR nullif(btrim(email), '') IS NOT NULL)
GROUP BY lower(regexp_replace(btrim(full_name), '\\s+', ' ', 'g')), regexp_replace(cedula, '[^0-9]', '', 'g'),
         lower(btrim(email)), btrim(birth_date)
HAVING count(*) > 1 AND bool_or({IN_STAGING_SCOPE})
"""  # noqa: S608 - built from this module's constants
STAGING_LEADS_TWICE = f"""
SELECT string_agg(id::text, ',' ORDER BY id) AS ids, count(*) AS n FROM staging_lead
WHERE source_file IS NOT NULL AND source_row IS NOT NULL
GROUP BY source_file, source_sheet, source_row
HAVING count(*) > 1 AND bool_or({IN_STAGING_SCOPE})
"""  # noqa: S608 - built from this module's constants
STAGING_DOCUMENTS_TWICE = f"""
SELECT string_agg(id::text, ',' ORDER BY id) AS ids, count(*) AS n FROM staging_document
GROUP BY student_id, staging_file_path
HAVING count(*) > 1 AND bool_or({IN_STAGING_SCOPE})
"""  # noqa: S608 - built from this module's constants
STAGING_DOCUMENTS_WITHOUT_STUDENT = f"""
SELECT d.id::text AS ids, 1 AS n FROM staging_document d
WHERE NOT EXISTS (SELECT 1 FROM staging_student s WHERE s.id = d.student_id)
  AND {IN_STAGING_SCOPE}
"""  # noqa: S608 - built from this module's constants
# Staging rows the pipeline took (linked, rejected, in review) that V3 has deleted since: their lineage points
# at nothing. %(ids)s is always given (scope "lineage"): the ids production knows, of the run or of all runs.
STAGING_STUDENTS_GONE = """
SELECT x.id::text AS ids, 1 AS n FROM unnest(%(ids)s::bigint[]) AS x(id)
WHERE NOT EXISTS (SELECT 1 FROM staging_student s WHERE s.id = x.id)
"""
STAGING_LEADS_GONE = """
SELECT x.id::text AS ids, 1 AS n FROM unnest(%(ids)s::bigint[]) AS x(id)
WHERE NOT EXISTS (SELECT 1 FROM staging_lead s WHERE s.id = x.id)
"""
# Reference data is read whole by every run: always the whole table.
STAGING_REFERENCE_SAME_LABEL = """
SELECT string_agg(id::text, ',' ORDER BY id) AS ids, count(*) AS n FROM staging_reference_data
GROUP BY category, lower(btrim(label)) HAVING count(*) > 1
"""
STAGING_REFERENCE_EVENT_WITHOUT_SERVICE = """
SELECT e.id::text AS ids, 1 AS n FROM staging_reference_data e
WHERE e.category = 'event' AND nullif(btrim(e.attributes->>'service'), '') IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM staging_reference_data s WHERE s.category = 'service'
                  AND lower(btrim(e.attributes->>'service')) IN (lower(btrim(s.code)), lower(btrim(s.label))))
"""

_V3 = " V3's responsibility: a warning, the pipeline copes (it resolves identities itself)."

RULES: tuple[Rule, ...] = (
    # staging_students
    Rule(
        "staging_students_no_duplicates",
        "staging_students",
        DUPLICATES,
        STAGING,
        STAGING_STUDENTS_TWICE,
        "The same source row ingested twice by V3: two staging_student rows with the same student number "
        "(trimmed, upper-cased) or, without one, the same name, cédula, e-mail and birth date. Lists staging "
        "ids." + _V3,
        severity=WARN,
        staging_table="staging_student",
    ),
    Rule(
        "staging_students_no_orphans",
        "staging_students",
        ORPHANS,
        STAGING,
        STAGING_STUDENTS_GONE,
        "Every staging_student row the pipeline took (linked, rejected or in review) still exists in staging: "
        "a failure means V3 deleted rows whose lineage now points at nothing. Lists staging ids. (Documents "
        "pointing at missing students: staging_documents_no_orphans.)" + _V3,
        severity=WARN,
        scope="lineage",
        staging_table="staging_student",
    ),
    # staging_leads
    Rule(
        "staging_leads_no_duplicates",
        "staging_leads",
        DUPLICATES,
        STAGING,
        STAGING_LEADS_TWICE,
        "The same source row ingested twice by V3: two staging_lead rows with the same (source_file, "
        "source_sheet, source_row). Lists staging ids." + _V3,
        severity=WARN,
        staging_table="staging_lead",
    ),
    Rule(
        "staging_leads_no_orphans",
        "staging_leads",
        ORPHANS,
        STAGING,
        STAGING_LEADS_GONE,
        "Every staging_lead row the pipeline took (linked, rejected or in review) still exists in staging: "
        "a failure means V3 deleted rows whose lineage now points at nothing. Lists staging ids." + _V3,
        severity=WARN,
        scope="lineage",
        staging_table="staging_lead",
    ),
    # staging_documents
    Rule(
        "staging_documents_no_duplicates",
        "staging_documents",
        DUPLICATES,
        STAGING,
        STAGING_DOCUMENTS_TWICE,
        "The same file staged twice for one student: two staging_document rows with the same (student_id, "
        "staging_file_path). Lists staging ids." + _V3,
        severity=WARN,
        staging_table="staging_document",
    ),
    Rule(
        "staging_documents_no_orphans",
        "staging_documents",
        ORPHANS,
        STAGING,
        STAGING_DOCUMENTS_WITHOUT_STUDENT,
        "Every staging document points at an existing staging_student (its file cannot be loaded otherwise; "
        "the pipeline rejects it with a reason). Lists staging_document ids." + _V3,
        severity=WARN,
        staging_table="staging_document",
    ),
    # staging_reference_data
    Rule(
        "staging_reference_data_no_duplicates",
        "staging_reference_data",
        DUPLICATES,
        STAGING,
        STAGING_REFERENCE_SAME_LABEL,
        "No two reference items of one category share a label (trimmed, case-folded): the pipeline would map "
        "both to one service/event/program. Whole table (every run reads all of it). Lists ids." + _V3,
        severity=WARN,
        scope="table",
    ),
    Rule(
        "staging_reference_data_no_orphans",
        "staging_reference_data",
        ORPHANS,
        STAGING,
        STAGING_REFERENCE_EVENT_WITHOUT_SERVICE,
        "Every event item whose attributes name a service names a service item (by code or label): else the "
        "event is created without its service. Whole table. Lists ids." + _V3,
        severity=WARN,
        scope="table",
    ),
    # resolved_persons
    Rule(
        "persons_unique_cedula",
        "resolved_persons",
        DUPLICATES,
        PRODUCTION,
        PERSONS_SAME_CEDULA,
        "No two persons share a cédula (digits only). A failure means identity resolution created a "
        "duplicate: the run stops before students and leads; inspect the listed person ids.",
        blocking=True,
    ),
    Rule(
        "persons_unique_email",
        "resolved_persons",
        DUPLICATES,
        PRODUCTION,
        PERSONS_SAME_EMAIL,
        "No two persons share an e-mail (trimmed, lower-cased). Blocking: a failure stops the run.",
        blocking=True,
    ),
    Rule(
        "persons_unique_name_birth_date",
        "resolved_persons",
        DUPLICATES,
        PRODUCTION,
        PERSONS_SAME_NAME_BIRTH_DATE,
        "No two persons share name key and birth date unless a cédula, e-mail or student number tells them "
        "apart (those are vetoed on purpose), or a row showed them to be one and they wait in review as a "
        "possible_duplicate, or a person answered that they are not the same (the pipeline never merges two "
        "production persons itself). Blocking: a failure "
        "stops the run.",
        blocking=True,
    ),
    Rule(
        "persons_no_orphans",
        "resolved_persons",
        ORPHANS,
        PRODUCTION,
        PERSON_LINKS_WITHOUT_PERSON,
        "Every person the pipeline linked a staging row to still exists. A failure means a linked person was "
        "deleted (by the bot or by hand): its staging rows' lineage points nowhere. Lists the missing person "
        "ids.",
    ),
    # prod_services_events
    Rule(
        "services_events_no_duplicates",
        "prod_services_events",
        DUPLICATES,
        PRODUCTION,
        SERVICES_EVENTS_SAME_NAME,
        "No two services share a name, and no two events of one service share a name (trimmed, case-folded): "
        "leads would be matched to either. The bot writes these tables too: a warning. Whole tables. Lists "
        "service/event ids.",
        severity=WARN,
        scope="table",
    ),
    Rule(
        "services_events_no_orphans",
        "prod_services_events",
        ORPHANS,
        PRODUCTION,
        EVENTS_WITHOUT_SERVICE,
        "Every event that names a service points at an existing service. Whole table. Lists event ids.",
        scope="table",
    ),
    # prod_students
    Rule(
        "students_unique_per_person",
        "prod_students",
        DUPLICATES,
        PRODUCTION,
        STUDENTS_SAME_PERSON_OR_NUMBER,
        "At most one student per person and per student number, among the persons and numbers of students "
        "in scope. Lists student ids.",
    ),
    Rule(
        "students_no_orphans",
        "prod_students",
        ORPHANS,
        PRODUCTION,
        STUDENTS_WITHOUT_PERSON,
        "Every student in scope belongs to an existing person. Lists student ids.",
    ),
    # prod_leads
    Rule(
        "leads_unique_per_key",
        "prod_leads",
        DUPLICATES,
        PRODUCTION,
        LEADS_SAME_KEY,
        "At most one lead per (person, service, event) and per (person, program type) among the leads in scope. "
        "A failure means a sighting was duplicated instead of enriching its lead. Lists lead ids.",
    ),
    Rule(
        "leads_no_orphans",
        "prod_leads",
        ORPHANS,
        PRODUCTION,
        LEADS_WITHOUT_PERSON_SERVICE_OR_EVENT,
        "Every lead in scope has its person, and its service/event when it names one. Lists lead ids.",
    ),
    # prod_documents
    Rule(
        "documents_no_duplicates",
        "prod_documents",
        DUPLICATES,
        PRODUCTION,
        DOCUMENTS_SAME_STUDENT_CHECKSUM,
        "No two document rows share (student, SHA-256): a file is stored once per student. "
        "Lists the offending document ids.",
        scope="table",
    ),
    Rule(
        "documents_no_orphans",
        "prod_documents",
        ORPHANS,
        PRODUCTION,
        DOCUMENTS_WITHOUT_STUDENT,
        "Every document row belongs to an existing student. Lists the offending document ids; "
        "also counts document links whose row was deleted since (not a failure).",
        scope="table",
    ),
)
RULE = {rule.name: rule for rule in RULES}
