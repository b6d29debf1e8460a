"""prod_students: one student per person; matched by student number, else by person.

Read (store.students) -> fit to production's columns and plan (logic.fit,
logic.students) -> write (store.students; a row production refuses costs that
row) -> lineage, rejections, metadata.
"""

import datetime as dt
import time
from dataclasses import dataclass

import pandas as pd
from dagster import AssetExecutionContext, AssetIn, Output, asset
from psycopg2.extensions import cursor as Cursor

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
    linked_ids,
    record_run,
    write_links,
    write_rejections,
    write_reviews,
)
from ice_pipeline.logic.fit import (
    STUDENT_PLAN_RULES,
    STUDENT_RULES,
    Fitted,
    entity_warnings,
    fit,
    refused_ids,
    row_rejections,
    settle_refused,
)
from ice_pipeline.logic.students import StudentPlan, plan_students, students_with_persons
from ice_pipeline.resources import ProductionDatabase
from ice_pipeline.store.columns import column_limits
from ice_pipeline.store.students import fill_students, insert_students, read_students
from ice_pipeline.summary import STUDENT_ROWS_REJECTED, STUDENTS_CREATED, STUDENTS_UPDATED


@dataclass
class WrittenStudents:
    """What prod_students wrote: the figures of its metadata and of ice_pipeline.runs."""

    links: pd.DataFrame  # staging_id, student_id, matched_by, warnings; refused students out
    rejected: pd.DataFrame  # REJECTION_COLUMNS
    reviews: pd.DataFrame  # review items of the rows not rejected (plan.reviews' columns)
    created: int
    updated: int

    @property
    def rows_in_review(self) -> int:
        """Rows whose student number belongs to another person's student: a person decides."""
        return int((self.reviews["kind"] == "identity_conflict").sum())


def write_students(
    cur: Cursor,
    batch: StagingBatch,
    fitted: Fitted,
    plan: StudentPlan,
    new: Fitted,
    fills: Fitted,
    *,
    now: dt.datetime,
    run_id: str,
    dry_run: bool,
) -> WrittenStudents:
    """New students and fills (`new`, `fills`: the plan's, fitted), then the batch's links, review items,
    rejections and watermark, and the run's figures."""
    refused = pd.DataFrame(columns=["entity_id", "reason", "details"])
    # A dry run predicts from the plan: the persons it would create were
    # rolled back, so inserting rows that reference them cannot even be tried.
    if not dry_run:
        refused = pd.concat(
            [
                refused_ids(new.frame, "student_id", insert_students(cur, new.frame, now).refused),
                refused_ids(fills.frame, "student_id", fill_students(cur, fills.frame, now).refused),
            ]
        )
    links, lost = settle_refused(entity_warnings(plan.links, "student_id", new, fills), "student_id", refused)
    rejected = row_rejections("staging_student", fitted, lost)
    # A row an earlier run linked to its student keeps that link; its new values are not applied.
    rejected = rejected[
        ~rejected["staging_id"].isin(
            linked_ids(cur, "staging_student", "student", rejected["staging_id"].tolist())
        )
    ]
    reviews = plan.reviews[~plan.reviews["staging_id"].isin(rejected["staging_id"])]
    created = len(plan.new_students) - int(plan.new_students["student_id"].isin(refused["entity_id"]).sum())
    updated = len(plan.updates) - int(plan.updates["student_id"].isin(refused["entity_id"]).sum())
    write_links(
        cur,
        links.assign(staging_table="staging_student", entity="student", entity_id=links["student_id"]),
        run_id,
    )
    write_reviews(cur, reviews.assign(staging_table="staging_student"), run_id)
    write_rejections(cur, rejected, run_id)
    advance_watermark(cur, "staging_student", batch.high, run_id)
    record_run(
        cur,
        run_id,
        {
            STUDENTS_CREATED.stats_key: created,
            STUDENTS_UPDATED.stats_key: updated,
            STUDENT_ROWS_REJECTED.stats_key: len(rejected),
        },
    )
    return WrittenStudents(links, rejected, reviews, created, updated)


def students_metadata(written: WrittenStudents, *fitted: Fitted) -> dict[str, object]:
    """The asset's metadata: counts and small tables only, no personal data. `fitted`: every frame fitted to
    production's columns (the rows, the new students, the fills), for the values cut or dropped."""
    links, rejected, reviews = written.links, written.rejected, written.reviews
    warnings = pd.concat([f.warnings for f in fitted]).dropna().str.split("; ").explode()
    return {
        "students_created": written.created,
        "students_updated": written.updated,
        "rows_linked": len(links),
        "rows_in_review": written.rows_in_review,
        "rows_rejected": len(rejected),
        "field_conflicts": int((reviews["kind"] == "field_conflict").sum()),
        "matched_by": markdown_counts("matched by", links["matched_by"].value_counts()),
        "rejection_reasons": markdown_counts("reason", rejected["reason"].value_counts()),
        "values_fitted": markdown_counts("value cut or dropped", warnings.value_counts()),
    }


@asset(
    ins={"staging_students": AssetIn(), "resolved_persons": AssetIn()},
    group_name=GROUP_PRODUCTION,
    owners=OWNERS,
    kinds={"postgres"},
    description="Creates or enriches `students` (student number, else person; fill NULLs only; data_source as a "
    "set). Values wider than production's columns are dropped with a warning (a student number: the row is "
    "rejected); a row production refuses is rejected with the error's class, never the run. Advances the "
    "staging_student watermark with its writes. Output: staging student -> student.",
)
def prod_students(
    context: AssetExecutionContext,
    staging_students: StagingBatch,
    resolved_persons: pd.DataFrame,
    production_db: ProductionDatabase,
    options: MigrationOptions,
) -> Output[pd.DataFrame]:
    started = time.monotonic()
    rows = students_with_persons(staging_students.rows, resolved_persons)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with production_db.connection() as conn, writer_transaction(conn, options) as cur:
        limits = column_limits(cur, context.op_execution_context.run_id)
        fitted = fit(rows, "students", STUDENT_RULES, limits)
        plan = plan_students(fitted.loadable, read_students(cur, fitted.loadable))
        new = fit(plan.new_students, "students", STUDENT_PLAN_RULES, limits)
        fills = fit(plan.updates, "students", STUDENT_PLAN_RULES, limits)
        written = write_students(
            cur,
            staging_students,
            fitted,
            plan,
            new,
            fills,
            now=now,
            run_id=context.op_execution_context.run_id,
            dry_run=options.dry_run,
        )
    metadata = {
        "dry_run": options.dry_run,
        **students_metadata(written, fitted, new, fills),
        "seconds": round(time.monotonic() - started, 2),
    }
    context.log.info(
        f"students: {written.created} created, {written.updated} enriched, "
        f"{written.rows_in_review} to review, {len(written.rejected)} rejected"
    )
    return Output(written.links[["staging_id", "student_id"]], metadata=metadata)
