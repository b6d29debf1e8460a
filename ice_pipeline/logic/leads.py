"""Lead matching and survivorship: (person, service, event) where both resolve, else
(person, program type). A later sighting enriches the lead, never duplicates it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ice_pipeline.logic.normalize import label_key

FILL_FIELDS = ("lead_status", "notes", "lead_date", "program_type", "service_id", "event_id",
               "source_file", "source_sheet", "source_row")


@dataclass
class LeadPlan:
    links: pd.DataFrame      # staging_id, lead_id, matched_by, warnings
    new_leads: pd.DataFrame  # lead_id, person_id + FILL_FIELDS
    updates: pd.DataFrame    # lead_id + FILL_FIELDS to fill (NA = keep)


def lead_key(frame: pd.DataFrame) -> pd.Series:
    """The identity of a lead: 'se|person|service|event' or 'pt|person|program'."""
    both = frame["service_id"].notna() & frame["event_id"].notna()
    se = "se|" + frame["person_id"].astype("string") + "|" + frame["service_id"].astype("string") + "|" + \
        frame["event_id"].astype("string")
    return se.where(both, program_key(frame))


def program_key(frame: pd.DataFrame) -> pd.Series:
    """(person, program) key; 'Work and Travel' and 'work-and-travel' are one program."""
    return "pt|" + frame["person_id"].astype("string") + "|" + label_key(frame["program_type"]).fillna("")


def plan_leads(rows: pd.DataFrame, existing: pd.DataFrame) -> LeadPlan:
    """`rows`: staging leads with a person, in arrival order (staging_id, person_id,
    FILL_FIELDS, warnings). `existing`: production leads of those persons (lead_id,
    person_id, FILL_FIELDS), oldest first."""
    rows = rows.reset_index(drop=True)
    rows["key"] = lead_key(rows)
    known: dict[str, str] = {}
    if len(existing):
        ex = existing.assign(key=lead_key(existing))
        # an existing lead answers to its (person, program) key as well
        for keys in (ex["key"], program_key(ex)):
            for key, lead_id in zip(keys, ex["lead_id"], strict=True):
                known.setdefault(key, lead_id)
    existing_id = rows["key"].map(known).astype("string")
    new_keys = rows.loc[existing_id.isna(), "key"].drop_duplicates()
    new_ids = pd.Series([str(uuid.uuid4()) for _ in range(len(new_keys))], index=new_keys.to_numpy())
    rows["lead_id"] = existing_id.fillna(rows["key"].map(new_ids).astype("string"))
    first_row = ~rows.duplicated("key")
    is_new = existing_id.isna()
    by_service = rows["service_id"].notna() & rows["event_id"].notna()
    matched_by = np.select([is_new & first_row, by_service], ["new", "person_service_event"], "person_program")
    links = pd.DataFrame({"staging_id": rows["staging_id"], "lead_id": rows["lead_id"], "matched_by": matched_by,
                          "warnings": rows.get("warnings")})

    firsts = {f: rows.dropna(subset=[f]).drop_duplicates("lead_id").set_index("lead_id")[f] for f in FILL_FIELDS}
    fresh = rows[is_new & first_row]
    new_leads = pd.DataFrame({"lead_id": fresh["lead_id"].to_numpy(), "person_id": fresh["person_id"].to_numpy()})
    for field in FILL_FIELDS:
        new_leads[field] = firsts[field].reindex(fresh["lead_id"]).to_numpy()

    updates = pd.DataFrame(columns=["lead_id", *FILL_FIELDS])
    if len(existing):
        stored = existing.drop_duplicates("lead_id").set_index("lead_id")
        touched = pd.Index(rows.loc[~is_new, "lead_id"].unique())
        if len(touched):
            fills = pd.DataFrame(index=touched)
            for field in FILL_FIELDS:
                fills[field] = firsts[field].reindex(touched).where(stored[field].reindex(touched).isna())
            changed = fills.notna().any(axis=1)
            updates = fills[changed].rename_axis("lead_id").reset_index()
    return LeadPlan(links, new_leads, updates)
