"""prod_leads: (person, service, event) where both resolve, else (person, program type).

Read (store.leads) -> fit to production's columns and plan (logic.fit,
logic.leads) -> write (store.leads; a row production refuses costs that row)
-> lineage, rejections, metadata.
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
    rate,
    writer_transaction,
)
from ice_pipeline.db import advance_watermark, record_run, write_links, write_rejections
from ice_pipeline.logic.failures import TABLE as FAILURES
from ice_pipeline.logic.fit import LEAD_RULES, Fitted, fit, refused_ids, row_rejections, settle_refused
from ice_pipeline.logic.leads import (
    FILL_FIELDS,
    LeadPlan,
    from_row_key,
    leads_with_persons,
    plan_leads,
    row_key,
)
from ice_pipeline.resources import ProductionDatabase
from ice_pipeline.store.columns import column_limits
from ice_pipeline.store.leads import fill_leads, insert_leads, read_leads, read_linked_leads
from ice_pipeline.summary import (
    FAILURES_RECOVERED,
    FAILURES_UNRECOVERABLE,
    LEAD_ROWS_REJECTED,
    LEADS_CREATED,
    LEADS_UPDATED,
)


def leads_linked_before(cur: Cursor, rows: pd.DataFrame) -> pd.DataFrame:
    """staging_id (`row_key`), linked_lead_id of the rows an earlier run linked to a lead: a re-processed
    row keeps its lead."""
    linked = read_linked_leads(cur, from_row_key(rows[["staging_id"]]))
    return linked.assign(staging_id=row_key(linked))[["staging_id", "linked_lead_id"]]


def unrecoverable_failures(batch: StagingBatch) -> pd.DataFrame:
    """The lead failures read with the batch that no lead can be recovered from: rejected by prod_leads."""
    unrecoverable = batch.failures_rejected
    return unrecoverable if unrecoverable is not None else pd.DataFrame(columns=["staging_id", "reason"])


@dataclass
class WrittenLeads:
    """What prod_leads wrote: the figures of its metadata and of ice_pipeline.runs."""

    links: pd.DataFrame  # staging_table, staging_id, lead_id, matched_by, warnings; refused leads out
    rejected: pd.DataFrame  # the batch's rows rejected (REJECTION_COLUMNS), unrecoverable failures aside
    unrecoverable: pd.DataFrame  # lead failures no lead can be recovered from (staging_id, reason)
    created: int
    updated: int
    recovered: int  # rows recovered from staging_lead_failures, linked to a lead


def write_leads(
    cur: Cursor,
    batch: StagingBatch,
    fitted: Fitted,
    linked: pd.DataFrame,
    plan: LeadPlan,
    *,
    now: dt.datetime,
    run_id: str,
    dry_run: bool,
) -> WrittenLeads:
    """New leads and fills, then the batch's links, rejections and both watermarks, and the run's figures."""
    refused = pd.DataFrame(columns=["entity_id", "reason", "details"])
    # A dry run predicts from the plan: the persons it would create were
    # rolled back, so inserting rows that reference them cannot even be tried.
    if not dry_run:
        refused = pd.concat(
            [
                refused_ids(plan.new_leads, "lead_id", insert_leads(cur, plan.new_leads, now).refused),
                refused_ids(plan.updates, "lead_id", fill_leads(cur, plan.updates, now).refused),
            ]
        )
    links, lost = settle_refused(plan.links, "lead_id", refused)
    rejected = row_rejections("staging_lead", fitted, lost)
    # A row an earlier run linked to its lead keeps that link; its new values are not applied.
    rejected = from_row_key(rejected[~rejected["staging_id"].isin(linked["staging_id"])])
    created = len(plan.new_leads) - int(plan.new_leads["lead_id"].isin(refused["entity_id"]).sum())
    updated = len(plan.updates) - int(plan.updates["lead_id"].isin(refused["entity_id"]).sum())
    links = from_row_key(links)
    unrecoverable = unrecoverable_failures(batch)
    write_links(cur, links.assign(entity="lead", entity_id=links["lead_id"]), run_id)
    write_rejections(cur, pd.concat([rejected, unrecoverable], ignore_index=True), run_id)
    advance_watermark(cur, "staging_lead", batch.high, run_id)
    advance_watermark(cur, FAILURES, batch.failures_high, run_id)
    recovered = int((links["staging_table"] == FAILURES).sum())
    record_run(
        cur,
        run_id,
        {
            LEADS_CREATED.stats_key: created,
            LEADS_UPDATED.stats_key: updated,
            LEAD_ROWS_REJECTED.stats_key: len(rejected),
            FAILURES_RECOVERED.stats_key: recovered,
            FAILURES_UNRECOVERABLE.stats_key: len(unrecoverable),
        },
    )
    return WrittenLeads(links, rejected, unrecoverable, created, updated, recovered)


def leads_metadata(
    batch: StagingBatch, rows: pd.DataFrame, fitted: Fitted, written: WrittenLeads
) -> dict[str, object]:
    """The asset's metadata: counts and small tables only, no personal data."""
    links, rejected = written.links, written.rejected
    fitted_warnings = fitted.warnings.dropna().str.split("; ").explode()
    return {
        "leads_created": written.created,
        "leads_updated": written.updated,
        "rows_linked": len(links),
        "rows_rejected": len(rejected),
        # (leads from staging_lead + recovered failures) / (staging_lead rows + failures read)
        "lead_capture_rate": rate(
            len(links), int((batch.rows["staging_table"] == "staging_lead").sum()) + batch.failures_read
        ),
        "failures_read": batch.failures_read,
        "failures_recovered": written.recovered,
        "failures_unrecoverable": len(written.unrecoverable),
        "unknown_service_rows": int(rows["unknown_service"].sum()),
        "unknown_event_rows": int(rows["unknown_event"].sum()),
        "matched_by": markdown_counts("matched by", links["matched_by"].value_counts()),
        "rejection_reasons": markdown_counts("reason", rejected["reason"].value_counts()),
        "values_fitted": markdown_counts("value cut or dropped", fitted_warnings.value_counts()),
    }


@asset(
    ins={"staging_leads": AssetIn(), "resolved_persons": AssetIn(), "prod_services_events": AssetIn()},
    deps=["prod_students"],  # the design card's order: students, then leads
    group_name=GROUP_PRODUCTION,
    owners=OWNERS,
    kinds={"postgres"},
    description="Creates or enriches `leads`: one per (person, service, event), else (person, program type); "
    "a later sighting fills NULLs, never duplicates. Notes wider than production's column are cut, other values "
    "dropped with a warning; a row production refuses is rejected with the error's class, never the run. "
    "Rows recovered from staging_lead_failures are leads like any other; the failures that cannot be are "
    "rejected here. Advances the staging_lead and staging_lead_failures watermarks with its writes.",
)
def prod_leads(
    context: AssetExecutionContext,
    staging_leads: StagingBatch,
    resolved_persons: pd.DataFrame,
    prod_services_events: dict,
    production_db: ProductionDatabase,
    options: MigrationOptions,
) -> Output[pd.DataFrame]:
    started = time.monotonic()
    rows = leads_with_persons(staging_leads.rows, resolved_persons, prod_services_events)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with production_db.connection() as conn, writer_transaction(conn, options) as cur:
        fitted = fit(rows, "leads", LEAD_RULES, column_limits(cur, context.op_execution_context.run_id))
        linked = leads_linked_before(cur, rows)
        loadable = fitted.loadable.merge(linked, on="staging_id", how="left")
        plan = plan_leads(
            loadable[["staging_id", "person_id", *FILL_FIELDS, "warnings", "linked_lead_id"]],
            read_leads(cur, loadable["person_id"]),
        )
        written = write_leads(
            cur,
            staging_leads,
            fitted,
            linked,
            plan,
            now=now,
            run_id=context.op_execution_context.run_id,
            dry_run=options.dry_run,
        )
    metadata = {
        "dry_run": options.dry_run,
        **leads_metadata(staging_leads, rows, fitted, written),
        "seconds": round(time.monotonic() - started, 2),
    }
    context.log.info(
        f"leads: {written.created} created, {written.updated} enriched, {len(written.rejected)} "
        f"rejected; lead failures: {written.recovered} recovered, {len(written.unrecoverable)} "
        "unrecoverable"
    )
    return Output(written.links[["staging_table", "staging_id", "lead_id"]], metadata=metadata)
