"""Asset checks: duplicates, orphans and the accounting identity (DESIGN §2, §3.4).

Each check is a named SQL query returning the offending ids (never names).
Duplicate checks are scoped to what *this run* linked, so historical data
written by the bot cannot block the pipeline forever; `ice-pipeline report`
shows the whole database.
"""


from dataclasses import dataclass

import numpy as np
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
             "apart (those are vetoed on purpose). Blocking: a failure stops the run.",
             """SELECT string_agg(k.person_id::text, ',' ORDER BY k.person_id) AS ids, count(*) AS n
                FROM ice_pipeline.person_keys k JOIN persons p ON p.id = k.person_id
                WHERE (k.name_key, k.birth_date) IN (
                    SELECT name_key, birth_date FROM ice_pipeline.person_keys WHERE birth_date IS NOT NULL AND person_id IN (
                        SELECT entity_id FROM ice_pipeline.source_links WHERE entity = 'person' AND run_id = %(run_id)s))
                GROUP BY k.name_key, k.birth_date
                HAVING count(*) > 1 AND count(DISTINCT k.cedula) <= 1 AND count(DISTINCT k.email) <= 1
                       AND count(DISTINCT k.student_number) <= 1""",
             blocking=True, scoped_to_run=True),
    SqlCheck("prod_students", "students_unique_per_person",
             "At most one student per person and per student number.",
             """SELECT person_id::text AS ids, count(*) AS n FROM students GROUP BY person_id HAVING count(*) > 1
                UNION ALL
                SELECT string_agg(id::text, ','), count(*) FROM students WHERE student_number IS NOT NULL
                GROUP BY student_number HAVING count(*) > 1"""),
    SqlCheck("prod_students", "students_no_orphans",
             "Every student belongs to an existing person.",
             """SELECT s.id::text AS ids, 1 AS n FROM students s LEFT JOIN persons p ON p.id = s.person_id
                WHERE p.id IS NULL"""),
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
             "Every lead has its person, and its service/event when it names one.",
             """SELECT l.id::text AS ids, 1 AS n FROM leads l
                LEFT JOIN persons p ON p.id = l.person_id
                LEFT JOIN services s ON s.id = l.service_id
                LEFT JOIN events e ON e.id = l.event_id
                WHERE p.id IS NULL OR (l.service_id IS NOT NULL AND s.id IS NULL)
                   OR (l.event_id IS NOT NULL AND e.id IS NULL)"""),
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

FINAL_ENTITY = {"staging_student": "student", "staging_lead": "lead", "staging_document": "document"}
ACCOUNTED_IDS = """
SELECT 'linked' AS place, staging_id FROM ice_pipeline.source_links WHERE staging_table = %(table)s AND entity = %(entity)s
UNION ALL
SELECT 'rejected', staging_id FROM ice_pipeline.rejected_rows WHERE staging_table = %(table)s
UNION ALL
SELECT DISTINCT 'in_review', q.staging_id FROM ice_pipeline.review_queue q
 WHERE q.staging_table = %(table)s AND q.kind = 'identity_conflict' AND q.status IN ('open', 'resolved')
   AND NOT EXISTS (SELECT 1 FROM ice_pipeline.source_links l WHERE l.staging_table = q.staging_table
                   AND l.staging_id = q.staging_id AND l.entity = %(entity)s)
"""
WATERMARK = "SELECT high_updated_at, high_id FROM ice_pipeline.watermarks WHERE staging_table = %(table)s"
STAGING_IDS = {
    "staging_student": "SELECT id, (updated_at, id) > (%(ts)s, %(id)s) AS pending FROM staging_student",
    "staging_lead": "SELECT id, (updated_at, id) > (%(ts)s, %(id)s) AS pending FROM staging_lead",
    "staging_document": "SELECT id, (updated_at, id) > (%(ts)s, %(id)s) AS pending FROM staging_document",
}


def accounting(staging_conn, production_conn, table: str) -> dict[str, int]:
    """staging rows = linked + rejected + in review (+ not processed yet), each row in exactly one place."""
    with production_conn.cursor() as cur:
        places = read_frame(cur, ACCOUNTED_IDS, {"table": table, "entity": FINAL_ENTITY[table]})
        cur.execute(WATERMARK, {"table": table})
        mark = cur.fetchone() or ("-infinity", 0)
    with staging_conn.cursor() as cur:
        staged = read_frame(cur, STAGING_IDS[table], {"ts": mark[0], "id": mark[1]})
    staging_conn.rollback()
    production_conn.rollback()
    ids = {place: np.unique(places.loc[places["place"] == place, "staging_id"].astype("int64").to_numpy())
           for place in ("linked", "rejected", "in_review")}
    all_ids = staged["id"].astype("int64").to_numpy()
    pending = staged["id"][staged["pending"] == "t"].astype("int64").to_numpy()
    accounted = np.unique(np.concatenate(list(ids.values())))
    in_two_places = sum(len(ids[a]) for a in ids) - len(accounted)
    lost = np.setdiff1d(np.setdiff1d(all_ids, accounted), pending)
    return {
        "staging_rows": len(all_ids), "linked": len(ids["linked"]), "rejected": len(ids["rejected"]),
        "in_review": len(ids["in_review"]),
        "not_processed_yet": len(np.setdiff1d(pending, accounted)),
        "in_two_places": int(in_two_places), "unaccounted": len(lost),
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
    return checks

