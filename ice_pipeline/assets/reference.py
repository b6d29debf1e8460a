"""prod_services_events: services and events from reference data, created when missing.

Read (store.reference) -> match by normalized name, type-check the attributes
and fit to production's columns (logic.reference, logic.fit) -> write
(store.reference; an item production refuses costs that item) -> metadata.
A rejected item is recorded in ice_pipeline.rejected_rows as a
`staging_reference_data` row; leads naming it load without it, with a warning.
"""

import datetime as dt
import json
from dataclasses import dataclass

import pandas as pd
from dagster import AssetExecutionContext, AssetIn, Output, asset
from psycopg2.extensions import cursor as Cursor

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
from ice_pipeline.store.columns import Limits, column_limits
from ice_pipeline.store.reference import (
    clear_reference_rejections,
    insert_events,
    insert_services,
    read_events,
    read_services,
)

SERVICE_DESCRIPTION = "From V3 reference data"


@dataclass
class Created:
    """One kind of reference item after the writes: every known name -> id, the new items, those refused."""

    known: pd.DataFrame  # normalized name/alias -> id (refused items taken out)
    new: pd.DataFrame  # the items this run tried to create (with their warnings)
    refused: pd.DataFrame  # id, reference_id, reason, details
    warnings: pd.Series  # the warnings of their attributes and of fitting them to production's columns

    @property
    def created(self) -> int:
        return len(self.new) - len(self.refused)


def create_services(cur: Cursor, reference: pd.DataFrame, limits: Limits, now: dt.datetime) -> Created:
    """The reference data's services, created in production when missing."""
    services, new = match_reference(reference[reference["category"] == "service"], read_services(cur))
    fitted = fit(new.assign(description=SERVICE_DESCRIPTION), "services", SERVICE_RULES, limits)
    kept = fitted.frame[fitted.rejected.isna().to_numpy()]
    refused = not_created(
        new, fitted.rejected, refused_ids(kept, "id", insert_services(cur, kept, now).refused)
    )
    return Created(without_ids(services, set(refused["id"])), new, refused, new["warnings"])


def create_events(
    cur: Cursor, reference: pd.DataFrame, services: pd.DataFrame, limits: Limits, now: dt.datetime
) -> Created:
    """The reference data's events, created in production when missing (with their service's id)."""
    events, new = match_reference(reference[reference["category"] == "event"], read_events(cur))
    new = event_fields(new, services)
    fitted = fit(new, "events", EVENT_RULES, limits)
    kept = fitted.frame[fitted.rejected.isna().to_numpy()]
    refused = not_created(
        new, fitted.rejected, refused_ids(kept, "id", insert_events(cur, kept, now).refused)
    )
    warnings = pd.concat([fitted.warnings, new["warnings"]])
    return Created(without_ids(events, set(refused["id"])), new, refused, warnings)


def reject_refused(cur: Cursor, services: Created, events: Created, run_id: str) -> pd.DataFrame:
    """Record the items production refused as rejected `staging_reference_data` rows (and forget the
    rejections of items created now); returns them."""
    refused = pd.concat([services.refused, events.refused], ignore_index=True).dropna(subset=["reference_id"])
    clear_reference_rejections(cur, refused["reference_id"].astype("int64").tolist())
    write_rejections(
        cur,
        rejections("staging_reference_data", refused["reference_id"], refused["reason"], refused["details"]),
        run_id,
    )
    return refused


def reference_metadata(
    reference: pd.DataFrame, services: Created, events: Created, refused: pd.DataFrame
) -> dict[str, object]:
    """Counts, reasons and warnings; the new names (first 50, cut at 100 characters) are programs, not people."""
    warnings = pd.concat([services.warnings, events.warnings]).dropna()
    new_names = pd.concat([services.new["name"], events.new["name"]]).astype(str)
    return {
        "services_created": services.created,
        "events_created": events.created,
        "service_names_known": len(services.known),
        "event_names_known": len(events.known),
        "programs": int((reference["category"] == "program").sum()),
        "items_rejected": len(refused),
        "rejection_reasons": markdown_counts("reason", refused["reason"].value_counts()),
        "attribute_warnings": markdown_counts("warning", warnings.str.split("; ").explode().value_counts()),
        "new_names": json.dumps(sorted(name[:100] for name in new_names)[:50]),
    }


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
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with production_db.connection() as conn, writer_transaction(conn, options) as cur:
        limits = column_limits(cur, context.op_execution_context.run_id)
        services = create_services(cur, staging_reference_data, limits, now)
        events = create_events(cur, staging_reference_data, services.known, limits, now)
        refused = reject_refused(cur, services, events, context.op_execution_context.run_id)
    context.log.info(
        f"reference: {services.created} services and {events.created} events created, "
        f"{len(refused)} items rejected"
    )
    return Output(
        {"service": services.known, "event": events.known},
        metadata={
            "dry_run": options.dry_run,
            **reference_metadata(staging_reference_data, services, events, refused),
        },
    )
