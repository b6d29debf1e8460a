"""Asset checks: duplicates, orphans and the accounting identity (DESIGN §2, §3.4).

Each check is a named SQL query returning the offending ids (never names).
Every SQL check is scoped to what *this run* linked: historical data written
by the bot cannot block the pipeline forever, and a check costs what the run
costs, not what production holds; `ice-pipeline report` shows the whole
database.
"""


from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    MetadataValue,
    asset_check,
)

from ice_pipeline.db import read_frame
from ice_pipeline.resources import ProductionDatabase, StagingDatabase


@dataclass(frozen=True)
class SqlCheck:
    asset: str
    name: str
    description: str
    query: str                  # returns one row per offending item: (id, detail)
    blocking: bool = False
    severity: AssetCheckSeverity = AssetCheckSeverity.ERROR
    scoped_to_run: bool = False  # the query takes %(run_id)s


# Persons this run linked, and their match keys (ice_pipeline.person_keys holds
# the keys of every person, computed by the pipeline from the stored values).
SQL_CHECKS: tuple[SqlCheck, ...] = (
    SqlCheck("resolved_persons", "persons_unique_cedula",
             "No two persons share a cédula (digits only). A failure means identity resolution created a "
             "duplicate: the run stops before students and leads; inspect the listed person ids.",
             """SELECT string_agg(k.person_id::text, ',' ORDER BY k.person_id) AS ids, count(*) AS n
                FROM ice_pipeline.person_keys k JOIN persons p ON p.id = k.person_id
                WHERE k.cedula IN (SELECT cedula FROM ice_pipeline.person_keys WHERE cedula IS NOT NULL AND person_id IN (
                    SELECT entity_id FROM ice_pipeline.source_links WHERE entity = 'person' AND run_id = %(run_id)s))
                GROUP BY k.cedula HAVING count(*) > 1""",
             blocking=True, scoped_to_run=True),
    SqlCheck("resolved_persons", "persons_unique_email",
             "No two persons share an e-mail (trimmed, lower-cased). Blocking: a failure stops the run.",
             """SELECT string_agg(k.person_id::text, ',' ORDER BY k.person_id) AS ids, count(*) AS n
                FROM ice_pipeline.person_keys k JOIN persons p ON p.id = k.person_id
                WHERE k.email IN (SELECT email FROM ice_pipeline.person_keys WHERE email IS NOT NULL AND person_id IN (
                    SELECT entity_id FROM ice_pipeline.source_links WHERE entity = 'person' AND run_id = %(run_id)s))
                GROUP BY k.email HAVING count(*) > 1""",
             blocking=True, scoped_to_run=True),
    SqlCheck("resolved_persons", "persons_unique_name_birth_date",
             "No two persons share name key and birth date unless a cédula, e-mail or student number tells them "
             "apart (those are vetoed on purpose), or a row showed them to be one and they wait in review as a "
             "possible_duplicate (the pipeline never merges two production persons itself). Blocking: a failure "
             "stops the run.",
             """SELECT string_agg(k.person_id::text, ',' ORDER BY k.person_id) AS ids, count(*) AS n
                FROM ice_pipeline.person_keys k JOIN persons p ON p.id = k.person_id
                WHERE k.person_id NOT IN (
                    SELECT person_id FROM ice_pipeline.review_queue WHERE kind = 'possible_duplicate' AND status = 'open'
                    UNION ALL
                    SELECT candidate_person_id FROM ice_pipeline.review_queue
                    WHERE kind = 'possible_duplicate' AND status = 'open' AND candidate_person_id IS NOT NULL)
                  AND (k.name_key, k.birth_date) IN (
                    SELECT name_key, birth_date FROM ice_pipeline.person_keys WHERE birth_date IS NOT NULL AND person_id IN (
                        SELECT entity_id FROM ice_pipeline.source_links WHERE entity = 'person' AND run_id = %(run_id)s))
                GROUP BY k.name_key, k.birth_date
                HAVING count(*) > 1 AND count(DISTINCT k.cedula) <= 1 AND count(DISTINCT k.email) <= 1
                       AND count(DISTINCT k.student_number) <= 1""",
             blocking=True, scoped_to_run=True),
    SqlCheck("prod_students", "students_unique_per_person",
             "At most one student per person and per student number, among the persons and numbers of students "
             "this run linked (`ice-pipeline report` checks the whole table).",
             """SELECT s.person_id::text AS ids, count(*) AS n FROM students s
                WHERE s.person_id IN (SELECT person_id FROM students WHERE id IN (
                    SELECT entity_id FROM ice_pipeline.source_links WHERE entity = 'student' AND run_id = %(run_id)s))
                GROUP BY s.person_id HAVING count(*) > 1
                UNION ALL
                SELECT string_agg(s.id::text, ','), count(*) FROM students s
                WHERE s.student_number IN (SELECT student_number FROM students WHERE id IN (
                    SELECT entity_id FROM ice_pipeline.source_links WHERE entity = 'student' AND run_id = %(run_id)s))
                GROUP BY s.student_number HAVING count(*) > 1""",
             scoped_to_run=True),
    SqlCheck("prod_students", "students_no_orphans",
             "Every student this run linked belongs to an existing person.",
             """SELECT s.id::text AS ids, 1 AS n FROM students s LEFT JOIN persons p ON p.id = s.person_id
                WHERE p.id IS NULL AND s.id IN (
                    SELECT entity_id FROM ice_pipeline.source_links WHERE entity = 'student' AND run_id = %(run_id)s)""",
             scoped_to_run=True),
    SqlCheck("prod_leads", "leads_unique_per_key",
             "At most one lead per (person, service, event) and per (person, program type) among leads "
             "this run linked. A failure means a sighting was duplicated instead of enriching its lead.",
             """SELECT string_agg(l.id::text, ',' ORDER BY l.id) AS ids, count(*) AS n FROM leads l
                WHERE l.person_id IN (SELECT person_id FROM leads WHERE id IN (
                    SELECT entity_id FROM ice_pipeline.source_links WHERE entity = 'lead' AND run_id = %(run_id)s))
                GROUP BY l.person_id,
                         CASE WHEN l.service_id IS NOT NULL AND l.event_id IS NOT NULL
                              THEN l.service_id::text || '|' || l.event_id::text
                              ELSE 'program:' || coalesce(l.program_type, '') END
                HAVING count(*) > 1""",
             scoped_to_run=True),
    SqlCheck("prod_leads", "leads_no_orphans",
             "Every lead this run linked has its person, and its service/event when it names one.",
             """SELECT l.id::text AS ids, 1 AS n FROM leads l
                LEFT JOIN persons p ON p.id = l.person_id
                LEFT JOIN services s ON s.id = l.service_id
                LEFT JOIN events e ON e.id = l.event_id
                WHERE (p.id IS NULL OR (l.service_id IS NOT NULL AND s.id IS NULL)
                       OR (l.event_id IS NOT NULL AND e.id IS NULL))
                  AND l.id IN (
                    SELECT entity_id FROM ice_pipeline.source_links WHERE entity = 'lead' AND run_id = %(run_id)s)""",
             scoped_to_run=True),
)


def _sql_check(spec: SqlCheck) -> AssetChecksDefinition:
    @asset_check(asset=spec.asset, name=spec.name, description=spec.description, blocking=spec.blocking)
    def _check(context: AssetCheckExecutionContext, production_db: ProductionDatabase) -> AssetCheckResult:
        with production_db.connection() as conn, conn.cursor() as cur:
            found = read_frame(cur, spec.query, {"run_id": context.run.run_id} if spec.scoped_to_run else None)
            conn.rollback()
        offending = found["ids"].head(50).tolist()
        return AssetCheckResult(
            passed=found.empty,
            severity=spec.severity,
            metadata={"violations": len(found), "offending_ids": MetadataValue.json(offending),
                      "scope": "rows linked by this run" if spec.scoped_to_run else "whole table"},
        )

    return _check


# --- accounting -----------------------------------------------------------

FINAL_ENTITY = {"staging_student": "student", "staging_lead": "lead", "staging_document": "document",
                "staging_lead_failures": "lead"}
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
PLACES = ("linked", "rejected", "in_review")   # the place codes of ACCOUNTED_IDS
WATERMARK = "SELECT high_updated_at, high_id FROM ice_pipeline.watermarks WHERE staging_table = %(table)s"
STAGING_IDS = {
    "staging_student": "SELECT id, ((updated_at, id) > (%(ts)s, %(id)s))::int AS pending FROM staging_student",
    "staging_lead": "SELECT id, ((updated_at, id) > (%(ts)s, %(id)s))::int AS pending FROM staging_lead",
    "staging_document": "SELECT id, ((updated_at, id) > (%(ts)s, %(id)s))::int AS pending FROM staging_document",
    # No updated_at: a raw row is written once; its watermark is (created_at, id).
    "staging_lead_failures": "SELECT id, ((created_at, id) > (%(ts)s, %(id)s))::int AS pending "
                             "FROM staging_lead_failures",
}
ID_TYPES = {"place": pa.int8(), "staging_id": pa.int64(), "id": pa.int64(), "pending": pa.int8()}


def accounting(staging_conn, production_conn, table: str) -> dict[str, int]:
    """staging rows = linked + rejected + in review (+ not processed yet), each row in exactly one place.

    Ids are counted on arrays indexed by staging id (one pass, no sorting): the check
    runs after every batch, over the whole table, so it must stay cheap at millions of rows.
    """
    with production_conn.cursor() as cur:
        places = read_frame(cur, ACCOUNTED_IDS, {"table": table, "entity": FINAL_ENTITY[table]}, types=ID_TYPES)
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
        "staging_rows": len(all_ids), "linked": count["linked"], "rejected": count["rejected"],
        "in_review": count["in_review"],
        "not_processed_yet": int((pending_mask & (places_of == 0)).sum()),
        "in_two_places": int((places_of - 1).clip(min=0).sum()), "unaccounted": len(lost),
        "unaccounted_ids": lost[:50].tolist(),
    }


def _accounting_check(asset: str, table: str) -> AssetChecksDefinition:
    @asset_check(asset=asset, name=f"accounting_{table}",
                 description=f"Every {table} row is linked, rejected with a reason, or waiting in review "
                 "(or beyond the watermark, not processed yet) — and in only one of those places. "
                 "A failure means rows were lost or double-counted: the listed staging ids say which.")
    def _check(staging_db: StagingDatabase, production_db: ProductionDatabase) -> AssetCheckResult:
        with staging_db.connection() as s, production_db.connection() as p:
            figures = accounting(s, p, table)
        passed = figures["unaccounted"] == 0 and figures["in_two_places"] == 0
        return AssetCheckResult(passed=passed, metadata={
            k: (MetadataValue.json(v) if isinstance(v, list) else v) for k, v in figures.items()})

    return _check


def build_checks() -> list[AssetChecksDefinition]:
    checks = [_sql_check(spec) for spec in SQL_CHECKS]
    checks.append(_accounting_check("prod_students", "staging_student"))
    checks.append(_accounting_check("prod_leads", "staging_lead"))
    checks.append(_accounting_check("prod_leads", "staging_lead_failures"))
    return checks

