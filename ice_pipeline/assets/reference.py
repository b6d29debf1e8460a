"""prod_services_events: services and events from reference data, created when missing.

Matched by normalized name (accents, case and punctuation folded) against the
label, code and aliases of each reference item, so `Feria Bogotá 2024` and
`FERIA BOGOTA 2024` are one event.
"""


import datetime as dt
import json
import uuid

import pandas as pd
from dagster import AssetExecutionContext, AssetIn, Output, asset

from ice_pipeline.assets.common import GROUP_PRODUCTION, OWNERS, MigrationOptions, writer_transaction
from ice_pipeline.db import copy_into_temp, read_frame
from ice_pipeline.logic import normalize as nz
from ice_pipeline.resources import MigrationLock, ProductionDatabase

READ_SERVICES = "SELECT id::text AS id, name FROM services ORDER BY created_at, id"
READ_EVENTS = "SELECT id::text AS id, name FROM events ORDER BY created_at, id"
INSERT_SERVICES = """
INSERT INTO services (id, name, description, created_at, updated_at)
SELECT id, name, description, %(now)s, %(now)s FROM tmp_new_services
ON CONFLICT (name) DO NOTHING
"""
INSERT_EVENTS = """
INSERT INTO events (id, name, event_date, location, service_id, created_at, updated_at)
SELECT id, name, event_date, location, service_id, %(now)s, %(now)s FROM tmp_new_events
"""


def _keys(code: str, label: str, aliases: list[str] | None) -> list[str]:
    return list(nz.label_key(pd.Series([code, label, *(aliases or [])], dtype="string")).dropna().unique())


def match_reference(items: pd.DataFrame, existing: pd.DataFrame) -> tuple[dict[str, str], pd.DataFrame]:
    """Map every alias key of `items` to an existing id, or to a new id (returned as rows to create)."""
    by_key = dict(zip(nz.label_key(existing["name"].astype("string")), existing["id"], strict=True)) if len(existing) else {}
    mapping: dict[str, str] = dict(by_key)
    created = []
    for item in items.itertuples(index=False):
        keys = _keys(item.code, item.label, item.aliases)
        found = next((by_key[k] for k in keys if k in by_key), None)
        if found is None:
            found = str(uuid.uuid4())
            created.append({"id": found, "code": item.code, "name": item.label,
                            "attributes": item.attributes if isinstance(item.attributes, dict) else {}})
        for key in keys:
            mapping.setdefault(key, found)
    return mapping, pd.DataFrame(created, columns=["id", "code", "name", "attributes"])


@asset(
    ins={"staging_reference_data": AssetIn()},
    group_name=GROUP_PRODUCTION,
    owners=OWNERS,
    kinds={"postgres"},
    description="Programs, services and events: services and events of the reference data are created in "
    "production when missing. Output: normalized name/alias -> service id and event id.",
)
def prod_services_events(context: AssetExecutionContext, staging_reference_data: pd.DataFrame,
                         production_db: ProductionDatabase,
        migration_lock: MigrationLock, options: MigrationOptions) -> Output[dict]:
    reference = staging_reference_data
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with production_db.connection() as conn, writer_transaction(conn, options) as cur:
        services, new_services = match_reference(reference[reference["category"] == "service"], read_frame(cur, READ_SERVICES))
        copy_into_temp(cur, "tmp_new_services", {"id": "uuid", "name": "text", "description": "text"},
                       new_services.assign(description="From V3 reference data"))
        cur.execute(INSERT_SERVICES, {"now": now})
        code_to_service = {nz.label_key(pd.Series([c], dtype="string")).iloc[0]: services.get(
            nz.label_key(pd.Series([c], dtype="string")).iloc[0]) for c in reference.loc[reference["category"] == "service", "code"]}
        events, new_events = match_reference(reference[reference["category"] == "event"], read_frame(cur, READ_EVENTS))
        attributes = new_events["attributes"] if len(new_events) else pd.Series(dtype=object)
        new_events = new_events.assign(
            event_date=[pd.to_datetime(a.get("date"), errors="coerce") if a.get("date") else pd.NaT for a in attributes],
            location=[a.get("city") for a in attributes],
            service_id=[code_to_service.get(nz.label_key(pd.Series([a.get("service")], dtype="string")).iloc[0])
                        if a.get("service") else None for a in attributes],
        )
        copy_into_temp(cur, "tmp_new_events", {"id": "uuid", "name": "text", "event_date": "timestamp",
                                               "location": "text", "service_id": "uuid"}, new_events)
        cur.execute(INSERT_EVENTS, {"now": now})
    context.log.info(f"reference: {len(new_services)} services and {len(new_events)} events created")
    return Output({"service": services, "event": events}, metadata={
        "dry_run": options.dry_run,
        "services_created": len(new_services), "events_created": len(new_events),
        "service_names_known": len(services), "event_names_known": len(events),
        "programs": int((reference["category"] == "program").sum()),
        "new_names": json.dumps(sorted(new_services["name"].tolist() + new_events["name"].tolist())[:50]),
    })
