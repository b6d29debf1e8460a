"""prod_leads: (person, service, event) where both resolve, else (person, program type)."""


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
    rate,
    writer_transaction,
)
from ice_pipeline.db import advance_watermark, copy_into_temp, read_frame, record_run, write_links
from ice_pipeline.logic.leads import FILL_FIELDS, plan_leads
from ice_pipeline.resources import MigrationLock, ProductionDatabase

# Rows re-processed (V3 changed them) keep the lead they were linked to.
READ_LINKED_LEADS = """
SELECT l.staging_id, l.entity_id::text AS linked_lead_id
FROM ice_pipeline.source_links l JOIN tmp_lead_rows t ON t.staging_id = l.staging_id
WHERE l.staging_table = 'staging_lead' AND l.entity = 'lead'
"""
READ_LEADS = """
SELECT l.id::text AS lead_id, l.person_id::text AS person_id, l.lead_status, l.notes, l.lead_date::text AS lead_date,
       l.program_type, l.service_id::text AS service_id, l.event_id::text AS event_id,
       l.source_file, l.source_sheet, l.source_row
FROM leads l
WHERE l.person_id IN (SELECT person_id FROM tmp_lead_persons)
ORDER BY l.created_at, l.source_file NULLS LAST, l.source_sheet NULLS LAST, l.source_row NULLS LAST, l.id
"""
LEAD_COLUMNS = {"lead_id": "uuid", "person_id": "uuid", "lead_status": "text", "notes": "text",
                "lead_date": "timestamptz", "program_type": "text", "service_id": "uuid", "event_id": "uuid",
                "source_file": "text", "source_sheet": "text", "source_row": "integer"}
INSERT_LEADS = """
INSERT INTO leads (id, person_id, lead_status, notes, lead_date, program_type, service_id, event_id,
                   source_file, source_sheet, source_row, created_at, updated_at)
SELECT lead_id, person_id, lead_status, notes, lead_date AT TIME ZONE 'UTC', program_type, service_id, event_id,
       source_file, source_sheet, source_row, %(now)s, %(now)s
FROM tmp_new_leads
"""
FILL_LEADS = """
UPDATE leads l SET
    lead_status = coalesce(l.lead_status, f.lead_status),
    notes = coalesce(l.notes, f.notes),
    lead_date = coalesce(l.lead_date, f.lead_date AT TIME ZONE 'UTC'),
    program_type = coalesce(l.program_type, f.program_type),
    service_id = coalesce(l.service_id, f.service_id),
    event_id = coalesce(l.event_id, f.event_id),
    source_file = coalesce(l.source_file, f.source_file),
    source_sheet = coalesce(l.source_sheet, f.source_sheet),
    source_row = coalesce(l.source_row, f.source_row),
    updated_at = %(now)s
FROM tmp_lead_fills f
WHERE l.id = f.lead_id
"""


def resolve_service_event(rows: pd.DataFrame, names: dict) -> pd.DataFrame:
    """Attach service_id / event_id through the reference names; warn on unknown names."""
    rows = rows.assign(service_id=rows["service_key"].map(names["service"]),
                       event_id=rows["event_key"].map(names["event"]))
    unknown_service = rows["service_key"].notna() & rows["service_id"].isna()
    unknown_event = rows["event_key"].notna() & rows["event_id"].isna()
    extra = (unknown_service.map({True: "service not in reference data; ", False: ""})
             + unknown_event.map({True: "event not in reference data; ", False: ""}))
    warnings = (rows["warnings"].fillna("") + "; " + extra.str.rstrip("; ")).str.strip("; ")
    return rows.assign(warnings=warnings.replace("", pd.NA), unknown_service=unknown_service, unknown_event=unknown_event)


@asset(
    ins={"staging_leads": AssetIn(), "resolved_persons": AssetIn(), "prod_services_events": AssetIn()},
    deps=["prod_students"],  # the design card's order: students, then leads
    group_name=GROUP_PRODUCTION,
    owners=OWNERS,
    kinds={"postgres"},
    description="Creates or enriches `leads`: one per (person, service, event), else (person, program type); "
    "a later sighting fills NULLs, never duplicates. Advances the staging_lead watermark with its writes.",
)
def prod_leads(context: AssetExecutionContext, staging_leads: StagingBatch, resolved_persons: pd.DataFrame,
               prod_services_events: dict, production_db: ProductionDatabase,
               migration_lock: MigrationLock,
               options: MigrationOptions) -> Output[pd.DataFrame]:
    started = time.monotonic()
    persons = resolved_persons[resolved_persons["staging_table"] == "staging_lead"][["staging_id", "person_id"]]
    rows = resolve_service_event(staging_leads.rows.merge(persons, on="staging_id", how="inner"), prod_services_events)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with production_db.connection() as conn, writer_transaction(conn, options) as cur:
        copy_into_temp(cur, "tmp_lead_persons", {"person_id": "uuid"}, rows[["person_id"]].drop_duplicates())
        cur.execute("ANALYZE tmp_lead_persons")
        existing = read_frame(cur, READ_LEADS)
        copy_into_temp(cur, "tmp_lead_rows", {"staging_id": "bigint"}, rows[["staging_id"]])
        linked = read_frame(cur, READ_LINKED_LEADS).astype({"staging_id": "int64"})
        rows = rows.merge(linked, on="staging_id", how="left")
        plan = plan_leads(rows[["staging_id", "person_id", *FILL_FIELDS, "warnings", "linked_lead_id"]], existing)
        # A dry run predicts from the plan: the persons it would create were
        # rolled back, so inserting rows that reference them cannot even be tried.
        if not options.dry_run:
            copy_into_temp(cur, "tmp_new_leads", LEAD_COLUMNS, plan.new_leads)
            cur.execute(INSERT_LEADS, {"now": now})
            copy_into_temp(cur, "tmp_lead_fills", LEAD_COLUMNS, plan.updates.assign(person_id=pd.NA))
            cur.execute(FILL_LEADS, {"now": now})
        links = plan.links.assign(staging_table="staging_lead", entity="lead", entity_id=plan.links["lead_id"])
        write_links(cur, links, context.run_id)
        advance_watermark(cur, "staging_lead", staging_leads.high, context.run_id)
        record_run(cur, context.run_id, {"leads_created": len(plan.new_leads), "leads_updated": len(plan.updates)})
    metadata = {
        "dry_run": options.dry_run,
        "leads_created": len(plan.new_leads),
        "leads_updated": len(plan.updates),
        "rows_linked": len(plan.links),
        "lead_capture_rate": rate(len(plan.links), len(staging_leads)),
        "unknown_service_rows": int(rows["unknown_service"].sum()),
        "unknown_event_rows": int(rows["unknown_event"].sum()),
        "matched_by": markdown_counts("matched by", plan.links["matched_by"].value_counts()),
        "seconds": round(time.monotonic() - started, 2),
    }
    context.log.info(f"leads: {len(plan.new_leads)} created, {len(plan.updates)} enriched")
    return Output(plan.links[["staging_id", "lead_id"]], metadata=metadata)
