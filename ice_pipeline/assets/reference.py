"""prod_services_events: services and events from reference data, created when missing.

Read (store.reference) -> match by normalized name, type-check the attributes
and fit to production's columns (logic.reference, logic.fit) -> write
(store.reference; an item production refuses costs that item) -> metadata.
A rejected item is recorded in ice_pipeline.rejected_rows as a
`staging_reference_data` row; leads naming it load without it, with a warning.
"""

import datetime as dt
import json

import pandas as pd
from dagster import AssetExecutionContext, AssetIn, Output, asset

from ice_pipeline.assets.common import (
    GROUP_PRODUCTION,
    OWNERS,
    MigrationOptions,
    markdown_counts,
    writer_transaction,
)
from ice_pipeline.db import write_rejections
from ice_pipeline.logic.fit import EVENT_RULES, SERVICE_RULES, fit, refused_ids, rejections
from ice_pipeline.logic.reference import event_fields, match_reference, not_created, without_ids
from ice_pipeline.resources import ProductionDatabase
from ice_pipeline.store.columns import column_limits
from ice_pipeline.store.reference import (
    clear_reference_rejections,
    insert_events,
    insert_services,
    read_events,
    read_services,
)

SERVICE_DESCRIPTION = "From V3 reference data"


@asset(
    ins={"staging_reference_data": AssetIn()},
    group_name=GROUP_PRODUCTION,
    owners=OWNERS,
    kinds={"postgres"},
    description="Programs, services and events: services and events of the reference data are created in "
    "production when missing. Attributes that are not a JSON object, or values of the wrong type, are ignored "
    "with a warning; an item production refuses is rejected, never the run. Output: normalized name/alias -> "
    "service id and event id.",
)
def prod_services_events(
    context: AssetExecutionContext,
    staging_reference_data: pd.DataFrame,
    production_db: ProductionDatabase,
    options: MigrationOptions,
) -> Output[dict]:
    reference = staging_reference_data
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with production_db.connection() as conn, writer_transaction(conn, options) as cur:
        limits = column_limits(cur, context.run.run_id)
        services, new_services = match_reference(
            reference[reference["category"] == "service"], read_services(cur)
        )
        service_fit = fit(
            new_services.assign(description=SERVICE_DESCRIPTION), "services", SERVICE_RULES, limits
        )
        inserted = insert_services(cur, service_fit.frame[service_fit.rejected.isna().to_numpy()], now)
        refused_services = not_created(
            new_services,
            service_fit.rejected,
            refused_ids(service_fit.frame[service_fit.rejected.isna().to_numpy()], "id", inserted.refused),
        )
        services = without_ids(services, set(refused_services["id"]))

        events, new_events = match_reference(reference[reference["category"] == "event"], read_events(cur))
        new_events = event_fields(new_events, services)
        event_fit = fit(new_events, "events", EVENT_RULES, limits)
        kept_events = event_fit.frame[event_fit.rejected.isna().to_numpy()]
        refused_events = not_created(
            new_events,
            event_fit.rejected,
            refused_ids(kept_events, "id", insert_events(cur, kept_events, now).refused),
        )
        events = without_ids(events, set(refused_events["id"]))

        refused = pd.concat([refused_services, refused_events], ignore_index=True).dropna(
            subset=["reference_id"]
        )
        clear_reference_rejections(cur, refused["reference_id"].astype("int64").tolist())
        write_rejections(
            cur,
            rejections(
                "staging_reference_data", refused["reference_id"], refused["reason"], refused["details"]
            ),
            context.run.run_id,
        )
    warnings = pd.concat([new_services["warnings"], event_fit.warnings, new_events["warnings"]]).dropna()
    created_services, created_events = (
        len(new_services) - len(refused_services),
        len(new_events) - len(refused_events),
    )
    context.log.info(
        f"reference: {created_services} services and {created_events} events created, "
        f"{len(refused)} items rejected"
    )
    return Output(
        {"service": services, "event": events},
        metadata={
            "dry_run": options.dry_run,
            "services_created": created_services,
            "events_created": created_events,
            "service_names_known": len(services),
            "event_names_known": len(events),
            "programs": int((reference["category"] == "program").sum()),
            "items_rejected": len(refused),
            "rejection_reasons": markdown_counts("reason", refused["reason"].value_counts()),
            "attribute_warnings": markdown_counts(
                "warning", warnings.str.split("; ").explode().value_counts()
            ),
            "new_names": json.dumps(
                sorted(
                    name[:100] for name in pd.concat([new_services["name"], new_events["name"]]).astype(str)
                )[:50]
            ),
        },
    )
