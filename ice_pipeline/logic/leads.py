"""Lead matching and survivorship: (person, service, event) where both resolve, else
(person, program type). A later sighting enriches the lead, never duplicates it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ice_pipeline.logic.normalize import label_key

FILL_FIELDS = (
    "lead_status",
    "notes",
    "lead_date",
    "program_type",
    "service_id",
    "event_id",
    "source_file",
    "source_sheet",
    "source_row",
)
# Part of a lead's identity (its key): taken from the row that creates the lead, never filled
# later -- a (person, program) lead that gained a service and an event would collide with the
# (person, service, event) lead of the same sighting.
IDENTITY_FIELDS = ("service_id", "event_id")


@dataclass
class LeadPlan:
    links: pd.DataFrame  # staging_id, lead_id, matched_by, warnings
    new_leads: pd.DataFrame  # lead_id, person_id + FILL_FIELDS
    updates: pd.DataFrame  # lead_id + FILL_FIELDS to fill (NA = keep)


def lead_key(frame: pd.DataFrame) -> pd.Series:
    """The identity of a lead: 'se|person|service|event' or 'pt|person|program'."""
    both = frame["service_id"].notna() & frame["event_id"].notna()
    se = (
        "se|"
        + frame["person_id"].astype("string")
        + "|"
        + frame["service_id"].astype("string")
        + "|"
        + frame["event_id"].astype("string")
    )
    return se.where(both, program_key(frame))


def program_key(frame: pd.DataFrame) -> pd.Series:
    """(person, program) key; 'Work and Travel' and 'work-and-travel' are one program."""
    return "pt|" + frame["person_id"].astype("string") + "|" + label_key(frame["program_type"]).fillna("")


LEAD_TABLES = ("staging_lead", "staging_lead_failures")


def row_key(rows: pd.DataFrame) -> pd.Series:
    """One number per lead row across both lead tables (their ids overlap): a staging_lead row keeps its
    id, a row recovered from staging_lead_failures takes the negated id (ids are positive)."""
    ids = rows["staging_id"].astype("int64")
    return ids.where(rows["staging_table"].eq("staging_lead").to_numpy(), -ids)


def from_row_key(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` keyed by `row_key` in staging_id, with staging_table and staging_id restored."""
    keys = frame["staging_id"].astype("int64")
    return frame.assign(
        staging_table=np.where(keys.to_numpy() < 0, LEAD_TABLES[1], LEAD_TABLES[0]), staging_id=keys.abs()
    )


def resolve_service_event(rows: pd.DataFrame, names: dict[str, dict[str, str]]) -> pd.DataFrame:
    """Attach service_id / event_id through the reference names (`names`: {'service'|'event': name key -> id},
    what prod_services_events returns); a name no reference item answers to is a warning, not a failure."""
    rows = rows.assign(
        service_id=rows["service_key"].map(names["service"]).astype("string"),
        event_id=rows["event_key"].map(names["event"]).astype("string"),
    )
    unknown_service = rows["service_key"].notna() & rows["service_id"].isna()
    unknown_event = rows["event_key"].notna() & rows["event_id"].isna()
    extra = unknown_service.map({True: "service not in reference data; ", False: ""}) + unknown_event.map(
        {True: "event not in reference data; ", False: ""}
    )
    warnings = (rows["warnings"].fillna("") + "; " + extra.str.rstrip("; ")).str.strip("; ")
    return rows.assign(
        warnings=warnings.replace("", pd.NA), unknown_service=unknown_service, unknown_event=unknown_event
    )


def leads_with_persons(
    leads: pd.DataFrame, persons: pd.DataFrame, names: dict[str, dict[str, str]]
) -> pd.DataFrame:
    """The batch's lead rows resolved to a person (`persons`: resolved_persons' staging row -> person), with
    their service and event (`names`, see resolve_service_event), keyed by `row_key`: from here on a row is
    known by one number across both lead tables (their ids overlap)."""
    keys = ["staging_table", "staging_id"]
    persons = persons[persons["staging_table"].isin(LEAD_TABLES)][[*keys, "person_id"]]
    rows = resolve_service_event(leads.merge(persons, on=keys, how="inner"), names)
    return rows.assign(staging_id=row_key(rows))


def plan_leads(rows: pd.DataFrame, existing: pd.DataFrame) -> LeadPlan:
    """`rows`: staging leads with a person, in arrival order (staging_id, person_id,
    FILL_FIELDS, warnings, optional linked_lead_id of rows linked before). `existing`:
    production leads of those persons (lead_id, person_id, FILL_FIELDS), oldest first:
    when several answer to one key, the oldest wins."""
    rows = rows.reset_index(drop=True)
    rows = rows.assign(key=lead_key(rows))
    existing_id = existing_lead_ids(rows, existing)
    is_new = existing_id.isna()
    by_service = rows["service_id"].notna() & rows["event_id"].notna()
    lead_id, created = row_leads(rows, existing_id, by_service)
    rows = rows.assign(lead_id=lead_id)
    first_row = ~rows.duplicated("lead_id") & rows["lead_id"].isin(created)
    links = lead_links(rows, first_row, by_service)
    firsts = surviving_values(rows, first_row)
    new_leads = new_lead_rows(rows[first_row], firsts)
    updates = lead_updates(rows.loc[~is_new, "lead_id"], existing, firsts)
    return LeadPlan(links, new_leads, updates)


def existing_lead_ids(rows: pd.DataFrame, existing: pd.DataFrame) -> pd.Series:
    """Each row's existing lead, NA if none: a re-processed row keeps its lead; else the lead that answers
    to the row's key. An existing lead answers to its key and to its (person, program) key as well; the
    oldest lead wins a key, and a lead's own key wins over another's (person, program) key."""
    answers = pd.Series(
        np.concatenate([existing["lead_id"].to_numpy(), existing["lead_id"].to_numpy()]),
        index=pd.concat([lead_key(existing), program_key(existing)]).to_numpy(),
        dtype="string",
    )
    known = answers[~answers.index.duplicated()]
    existing_id = rows["key"].map(known).astype("string")
    if "linked_lead_id" in rows:
        existing_id = rows["linked_lead_id"].astype("string").fillna(existing_id)
    return existing_id


def row_leads(
    rows: pd.DataFrame, existing_id: pd.Series, by_service: pd.Series
) -> tuple[pd.Series, set[str]]:
    """Each row's lead, and the ids of the leads created. A (service, event) row creates one lead per key;
    a (person, program) row joins a lead of this batch (join_batch_leads), else creates one per key."""
    is_new = existing_id.isna()
    se_ids = new_lead_ids(rows.loc[is_new & by_service, "key"])
    lead_of_row = existing_id.fillna(rows["key"].where(by_service).map(se_ids).astype("string"))
    lead_of_row = join_batch_leads(rows, lead_of_row, is_new & ~by_service, by_service)
    pt_ids = new_lead_ids(rows.loc[lead_of_row.isna(), "key"])
    lead_id = lead_of_row.fillna(rows["key"].map(pt_ids).astype("string"))
    return lead_id, set(se_ids.to_numpy()) | set(pt_ids.to_numpy())


def new_lead_ids(keys: pd.Series) -> pd.Series:
    """A new uuid per distinct key, indexed by key: rows with one key make one lead."""
    keys = keys.drop_duplicates()
    return pd.Series([str(uuid.uuid4()) for _ in range(len(keys))], index=keys.to_numpy(), dtype="string")


def join_batch_leads(
    rows: pd.DataFrame, lead_of_row: pd.Series, joining: pd.Series, by_service: pd.Series
) -> pd.Series:
    """`lead_of_row` with each `joining` (person, program) row on the lead of the first row of its
    (person, program) when that row is a (service, event) one: the row joins the oldest lead with that
    (person, program) -- also one this batch created -- exactly as it would join that lead if it had
    been created by an earlier run."""
    program = program_key(rows)
    first_idx = pd.Series(np.arange(len(rows))).groupby(program.to_numpy()).transform("first").to_numpy()
    joins = joining.to_numpy() & by_service.to_numpy()[first_idx]
    return lead_of_row.mask(
        pd.Series(joins, index=rows.index),
        pd.Series(lead_of_row.to_numpy()[first_idx], index=rows.index),
    )


def lead_links(rows: pd.DataFrame, first_row: pd.Series, by_service: pd.Series) -> pd.DataFrame:
    """Each row -> its lead, and how: 'linked' (re-processed), 'new' (creates the lead), else by the key
    it matched on."""
    relinked = (
        rows["linked_lead_id"].notna().to_numpy() if "linked_lead_id" in rows else np.zeros(len(rows), bool)
    )
    matched_by = np.select(
        [relinked, first_row, by_service], ["linked", "new", "person_service_event"], "person_program"
    )
    return pd.DataFrame(
        {
            "staging_id": rows["staging_id"],
            "lead_id": rows["lead_id"],
            "matched_by": matched_by,
            "warnings": rows.get("warnings"),
        }
    )


def surviving_values(rows: pd.DataFrame, first_row: pd.Series) -> dict[str, pd.Series]:
    """Per lead, the value each of FILL_FIELDS takes: the first row's that has one -- but IDENTITY_FIELDS
    only from the row that creates the lead (they are its key)."""
    firsts = {
        f: rows.dropna(subset=[f]).drop_duplicates("lead_id").set_index("lead_id")[f] for f in FILL_FIELDS
    }
    creators = rows[first_row].set_index("lead_id")
    for field in IDENTITY_FIELDS:
        firsts[field] = creators[field].dropna()
    return firsts


def new_lead_rows(fresh: pd.DataFrame, firsts: dict[str, pd.Series]) -> pd.DataFrame:
    """The leads to create, one per row that creates one: lead_id, person_id + FILL_FIELDS."""
    new_leads = pd.DataFrame(
        {"lead_id": fresh["lead_id"].to_numpy(), "person_id": fresh["person_id"].to_numpy()}
    )
    for field in FILL_FIELDS:
        new_leads[field] = firsts[field].reindex(fresh["lead_id"]).to_numpy()
    return new_leads


def lead_updates(linked: pd.Series, existing: pd.DataFrame, firsts: dict[str, pd.Series]) -> pd.DataFrame:
    """Existing leads (`linked`: the lead of each row that found one): fill NULLs, never IDENTITY_FIELDS;
    written only when something is filled."""
    touched = pd.Index(linked.unique())
    if not len(existing) or not len(touched):
        return pd.DataFrame(columns=["lead_id", *FILL_FIELDS])
    stored = existing.drop_duplicates("lead_id").set_index("lead_id")
    fills = pd.DataFrame(index=touched)
    for field in FILL_FIELDS:
        fills[field] = firsts[field].reindex(touched).where(stored[field].reindex(touched).isna())
    for field in IDENTITY_FIELDS:
        fills[field] = pd.NA
    changed = fills.notna().any(axis=1)
    return fills[changed].rename_axis("lead_id").reset_index()
