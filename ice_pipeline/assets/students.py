"""prod_students: one student per person; matched by student number, else by person."""


import datetime as dt
import time

import pandas as pd
from dagster import AssetExecutionContext, AssetIn, Output, asset

from ice_pipeline.assets.common import (
    GROUP_PRODUCTION,
    OWNERS,
    MigrationOptions,
    StagingBatch,
    markdown_counts,
    writer_transaction,
)
from ice_pipeline.db import (
    advance_watermark,
    copy_into_temp,
    read_frame,
    record_run,
    write_links,
    write_reviews,
)
from ice_pipeline.logic.students import plan_students
from ice_pipeline.resources import MigrationLock, ProductionDatabase

READ_STUDENTS = """
SELECT s.id::text AS student_id, s.person_id::text AS person_id, s.student_number, s.program,
       s.data_source, s.csv_enriched
FROM students s
WHERE s.person_id IN (SELECT person_id FROM tmp_student_keys)
   OR s.student_number IN (SELECT student_number FROM tmp_student_keys WHERE student_number IS NOT NULL)
ORDER BY s.created_at, s.id
"""
STUDENT_COLUMNS = {"student_id": "uuid", "person_id": "uuid", "student_number": "text", "program": "text",
                   "data_source": "text", "csv_enriched": "boolean"}
INSERT_STUDENTS = """
INSERT INTO students (id, person_id, student_number, program, status, data_source, csv_enriched, created_at, updated_at)
SELECT student_id, person_id, student_number, program, 'ACTIVE', data_source, csv_enriched, %(now)s, %(now)s
FROM tmp_new_students
"""
FILL_STUDENTS = """
UPDATE students s SET
    student_number = coalesce(s.student_number, f.student_number),
    program = coalesce(s.program, f.program),
    data_source = coalesce(f.data_source, s.data_source),
    csv_enriched = s.csv_enriched OR f.csv_enriched,
    updated_at = %(now)s
FROM tmp_student_fills f
WHERE s.id = f.student_id
"""


@asset(
    ins={"staging_students": AssetIn(), "resolved_persons": AssetIn()},
    group_name=GROUP_PRODUCTION,
    owners=OWNERS,
    kinds={"postgres"},
    description="Creates or enriches `students` (student number, else person; fill NULLs only; data_source as a "
    "set). Advances the staging_student watermark with its writes. Output: staging student -> student.",
)
def prod_students(context: AssetExecutionContext, staging_students: StagingBatch, resolved_persons: pd.DataFrame,
                  production_db: ProductionDatabase,
        migration_lock: MigrationLock, options: MigrationOptions) -> Output[pd.DataFrame]:
    started = time.monotonic()
    persons = resolved_persons[resolved_persons["staging_table"] == "staging_student"][["staging_id", "person_id"]]
    rows = staging_students.rows.merge(persons, on="staging_id", how="inner")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with production_db.connection() as conn, writer_transaction(conn, options) as cur:
        copy_into_temp(cur, "tmp_student_keys", {"person_id": "uuid", "student_number": "text"}, rows)
        cur.execute("ANALYZE tmp_student_keys")
        existing = read_frame(cur, READ_STUDENTS)
        existing["csv_enriched"] = existing["csv_enriched"] == "t"
        plan = plan_students(rows, existing)
        # A dry run predicts from the plan: the persons it would create were
        # rolled back, so inserting rows that reference them cannot even be tried.
        if not options.dry_run:
            copy_into_temp(cur, "tmp_new_students", STUDENT_COLUMNS, plan.new_students)
            cur.execute(INSERT_STUDENTS, {"now": now})
            copy_into_temp(cur, "tmp_student_fills", STUDENT_COLUMNS,
                           plan.updates.assign(person_id=pd.NA))
            cur.execute(FILL_STUDENTS, {"now": now})
        links = plan.links.assign(staging_table="staging_student", entity="student", entity_id=plan.links["student_id"])
        write_links(cur, links, context.run_id)
        reviews = plan.reviews.assign(staging_table="staging_student")
        write_reviews(cur, reviews, context.run_id)
        advance_watermark(cur, "staging_student", staging_students.high, context.run_id)
        record_run(cur, context.run_id, {"students_created": len(plan.new_students),
                                         "students_updated": len(plan.updates)})
    in_review = int((plan.reviews["kind"] == "identity_conflict").sum())
    metadata = {
        "dry_run": options.dry_run,
        "students_created": len(plan.new_students),
        "students_updated": len(plan.updates),
        "rows_linked": len(plan.links),
        "rows_in_review": in_review,
        "field_conflicts": int((plan.reviews["kind"] == "field_conflict").sum()),
        "matched_by": markdown_counts("matched by", plan.links["matched_by"].value_counts()),
        "seconds": round(time.monotonic() - started, 2),
    }
    context.log.info(f"students: {len(plan.new_students)} created, {len(plan.updates)} enriched, {in_review} to review")
    return Output(plan.links[["staging_id", "student_id"]], metadata=metadata)
