"""Services and events from V3 reference data: matching by normalized name, and what a new event carries.

Matched by normalized name (accents, case and punctuation folded) against the
label, code and aliases of each reference item, so `Feria Bogotá 2024` and
`FERIA BOGOTA 2024` are one event. `attributes` is free JSON typed by hand in
V3: only an object is read, and only values of the expected type are used;
anything else is left out with a warning (never a failed run). Pure.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pandas as pd

from ice_pipeline.logic import normalize as nz

CREATED_COLUMNS = ["id", "reference_id", "code", "name", "attributes", "warnings"]


def keys_of(code: object, label: object, aliases: object) -> list[str]:
    """Every normalized name an item answers to: its code, label and aliases (non-text aliases ignored)."""
    names = [code, label, *(aliases if isinstance(aliases, list | tuple | np.ndarray) else [])]
    texts = [n for n in names if isinstance(n, str)]
    return list(nz.label_key(pd.Series(texts, dtype="string")).dropna().unique())


def key_of(value: object) -> str | None:
    """The normalized name of one value, None for anything that is not text."""
    if not isinstance(value, str):
        return None
    key = nz.label_key(pd.Series([value], dtype="string")).iloc[0]
    return None if pd.isna(key) else key


def attributes_object(value: object) -> tuple[dict, str | None]:
    """(attributes, warning): a JSON object as is; anything else (array, string, number, null) as {}."""
    if isinstance(value, dict):
        return value, None
    if value is None or (isinstance(value, float) and np.isnan(value)) or value == {}:
        return {}, None
    return {}, f"attributes not a JSON object ({type(value).__name__}): ignored"


def match_reference(items: pd.DataFrame, existing: pd.DataFrame) -> tuple[dict[str, str], pd.DataFrame]:
    """Map every name key of `items` (id, code, label, aliases, attributes) to an existing id, or to a new id.

    `existing`: production rows (id, name). Returns the mapping and the rows to
    create (CREATED_COLUMNS; `attributes` always a dict, `warnings` what was ignored).
    """
    by_key = (
        dict(zip(nz.label_key(existing["name"].astype("string")), existing["id"], strict=True))
        if len(existing)
        else {}
    )
    mapping: dict[str, str] = dict(by_key)
    created = []
    for item in items.itertuples(index=False):
        keys = keys_of(item.code, item.label, item.aliases)
        if not keys:
            continue
        found = next((mapping[k] for k in keys if k in mapping), None)
        if found is None:
            found = str(uuid.uuid4())
            attributes, warning = attributes_object(getattr(item, "attributes", None))
            created.append(
                {
                    "id": found,
                    "reference_id": getattr(item, "id", None),
                    "code": item.code,
                    "name": item.label,
                    "attributes": attributes,
                    "warnings": warning,
                }
            )
        for key in keys:
            mapping.setdefault(key, found)
    return mapping, pd.DataFrame(created, columns=CREATED_COLUMNS)


def _event_date(value: Any) -> tuple[pd.Timestamp | None, str | None]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, None
    if not isinstance(value, str):
        return None, f"attributes.date not text ({type(value).__name__}): dropped"
    try:
        parsed = pd.to_datetime(value.strip(), errors="coerce", dayfirst=not value.strip()[:4].isdigit())
    except (ValueError, TypeError, OverflowError):
        parsed = pd.NaT
    if pd.isna(parsed):
        return None, "attributes.date unreadable: dropped"
    return (parsed.tz_convert("UTC").tz_localize(None) if parsed.tzinfo else parsed).as_unit("us"), None


def event_fields(events: pd.DataFrame, service_of_key: dict[str, str]) -> pd.DataFrame:
    """What new events carry from their attributes: event_date, location (city), service_id.

    `service_of_key`: normalized service name -> service id. A value of the
    wrong type or a date that cannot be read is dropped with a warning; a
    service name no service answers to leaves service_id empty, with a warning.
    """
    dates, locations, services, warnings = [], [], [], []
    for attributes, earlier in zip(events["attributes"], events["warnings"], strict=True):
        notes = [earlier] if isinstance(earlier, str) else []
        date, warning = _event_date(attributes.get("date"))
        dates.append(date)
        notes += [warning] if warning else []
        city = attributes.get("city")
        if city is not None and not isinstance(city, str):
            notes.append(f"attributes.city not text ({type(city).__name__}): dropped")
            city = None
        locations.append(nz.clean_text(pd.Series([city], dtype="string")).iloc[0] if city else None)
        service = attributes.get("service")
        if service is not None and not isinstance(service, str):
            notes.append(f"attributes.service not text ({type(service).__name__}): dropped")
            service = None
        service_id = service_of_key.get(key_of(service)) if service else None
        if service and service_id is None:
            notes.append("attributes.service not a known service: dropped")
        services.append(service_id)
        warnings.append("; ".join(notes) or None)
    return events.assign(
        event_date=pd.Series(dates, index=events.index, dtype="datetime64[us]"),
        location=pd.Series(locations, index=events.index, dtype="string"),
        service_id=pd.Series(services, index=events.index, dtype="string"),
        warnings=pd.Series(warnings, index=events.index, dtype="string"),
    )


def without_ids(mapping: dict[str, str], refused: set[str]) -> dict[str, str]:
    """The mapping without the ids production refused: rows naming them load without that reference."""
    return {key: value for key, value in mapping.items() if value not in refused} if refused else mapping


def not_created(created: pd.DataFrame, rejected: pd.Series, refused: pd.DataFrame) -> pd.DataFrame:
    """id, reference_id, reason, details of the new items (`created`, CREATED_COLUMNS) that were not created:
    rejected by a rule before the write (`rejected`, per row of `created`) or refused by production
    (`refused`: entity_id, reason, details)."""
    ruled = rejected.notna().to_numpy()
    by_rule = created.loc[ruled, ["id", "reference_id"]].assign(
        reason=rejected[ruled].to_numpy(), details="{}"
    )
    by_db = refused.rename(columns={"entity_id": "id"}).merge(created[["id", "reference_id"]], on="id")
    return pd.concat([by_rule, by_db], ignore_index=True).reindex(
        columns=["id", "reference_id", "reason", "details"]
    )
