"""prod_students: one student per person; matched by student number, else by person.

Read (store.students) -> fit to production's columns and plan (logic.fit,
logic.students) -> write (store.students; a row production refuses costs that
row) -> lineage, rejections, metadata.
"""


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
    linked_ids,
    record_run,
    write_links,
    write_rejections,
    write_reviews,
)
from ice_pipeline.logic.fit import (
    STUDENT_PLAN_RULES,
    STUDENT_RULES,
    entity_warnings,
    fit,
    refused_ids,
    row_rejections,
    settle_refused,
)
from ice_pipeline.logic.students import plan_students
from ice_pipeline.resources import ProductionDatabase
from ice_pipeline.store.columns import column_limits
from ice_pipeline.store.students import fill_students, insert_students, read_students
from ice_pipeline.summary import STUDENT_ROWS_REJECTED, STUDENTS_CREATED, STUDENTS_UPDATED


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
def prod_students(context: AssetExecutionContext, staging_students: StagingBatch, resolved_persons: pd.DataFrame,
                  production_db: ProductionDatabase, options: MigrationOptions) -> Output[pd.DataFrame]:
    started = time.monotonic()
    persons = resolved_persons[resolved_persons["staging_table"] == "staging_student"][["staging_id", "person_id"]]
    rows = staging_students.rows.merge(persons, on="staging_id", how="inner")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with production_db.connection() as conn, writer_transaction(conn, options) as cur:
        limits = column_limits(cur, context.run_id)
        fitted = fit(rows, "students", STUDENT_RULES, limits)
        plan = plan_students(fitted.loadable, read_students(cur, fitted.loadable))
        new = fit(plan.new_students, "students", STUDENT_PLAN_RULES, limits)
        fills = fit(plan.updates, "students", STUDENT_PLAN_RULES, limits)
        refused = pd.DataFrame(columns=["entity_id", "reason", "details"])
        # A dry run predicts from the plan: the persons it would create were
        # rolled back, so inserting rows that reference them cannot even be tried.
        if not options.dry_run:
            refused = pd.concat([refused_ids(new.frame, "student_id", insert_students(cur, new.frame, now).refused),
                                 refused_ids(fills.frame, "student_id", fill_students(cur, fills.frame, now).refused)])
        links, lost = settle_refused(entity_warnings(plan.links, "student_id", new, fills), "student_id", refused)
        rejected = row_rejections("staging_student", fitted, lost)
        # A row an earlier run linked to its student keeps that link; its new values are not applied.
        rejected = rejected[~rejected["staging_id"].isin(
            linked_ids(cur, "staging_student", "student", rejected["staging_id"].tolist()))]
        reviews = plan.reviews[~plan.reviews["staging_id"].isin(rejected["staging_id"])]
        created = len(plan.new_students) - int(plan.new_students["student_id"].isin(refused["entity_id"]).sum())
        updated = len(plan.updates) - int(plan.updates["student_id"].isin(refused["entity_id"]).sum())
        write_links(cur, links.assign(staging_table="staging_student", entity="student", entity_id=links["student_id"]),
                    context.run_id)
        write_reviews(cur, reviews.assign(staging_table="staging_student"), context.run_id)
        write_rejections(cur, rejected, context.run_id)
        advance_watermark(cur, "staging_student", staging_students.high, context.run_id)
        record_run(cur, context.run_id, {STUDENTS_CREATED.stats_key: created, STUDENTS_UPDATED.stats_key: updated,
                                         STUDENT_ROWS_REJECTED.stats_key: len(rejected)})
    in_review = int((reviews["kind"] == "identity_conflict").sum())
    warnings = pd.concat([fitted.warnings, new.warnings, fills.warnings]).dropna().str.split("; ").explode()
    metadata = {
        "dry_run": options.dry_run,
        "students_created": created,
        "students_updated": updated,
        "rows_linked": len(links),
        "rows_in_review": in_review,
        "rows_rejected": len(rejected),
        "field_conflicts": int((reviews["kind"] == "field_conflict").sum()),
        "matched_by": markdown_counts("matched by", links["matched_by"].value_counts()),
        "rejection_reasons": markdown_counts("reason", rejected["reason"].value_counts()),
        "values_fitted": markdown_counts("value cut or dropped", warnings.value_counts()),
        "seconds": round(time.monotonic() - started, 2),
    }
    context.log.info(f"students: {created} created, {updated} enriched, {in_review} to review, "
                     f"{len(rejected)} rejected")
    return Output(links[["staging_id", "student_id"]], metadata=metadata)
