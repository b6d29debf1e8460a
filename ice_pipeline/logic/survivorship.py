"""Survivorship: what a person's fields become once its rows are known (DESIGN §4).

Fill NULLs only. An existing person's non-null value is never overwritten; a
new person takes, per field, the first non-null value in arrival order (the
name: the best-written one). An incoming value that differs from the value
kept becomes a *field conflict* for review. `data_source` is a set of tokens,
never `CSV,CSV,CSV`. Unique identifiers (e-mail, cédula) are only filled when
no other person holds them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

# (person column, value column on the node frame, comparison key column)
PERSON_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("full_name", "display_name", "name_key"),
    ("email", "email", "email"),
    ("phone", "phone", "phone"),
    ("cedula", "cedula", "cedula"),
    ("birth_date", "birth_date", "birth_date"),
    ("address", "address", "address_key"),
    ("city", "city", "city_key"),
    ("country", "country", "country_key"),
)
UNIQUE_FIELDS = ("email", "cedula")
STORED_COLUMNS = tuple(
    f"stored_{c}"
    for c in (
        *(f for f, _, _ in PERSON_FIELDS),
        "data_source",
        "csv_enriched",
        "original_name",
        "pipeline_created",
    )
)


@dataclass
class PersonPlan:
    """What resolved_persons writes: new persons, fills, links and review items."""

    assignment: pd.DataFrame  # staging nodes: staging_table, staging_id, person_id, matched_by, is_new_person
    new_persons: pd.DataFrame  # person_id + PERSON_FIELDS columns + data_source, original_name, csv_enriched
    updates: pd.DataFrame  # person_id + fills (NA = keep) + data_source, csv_enriched
    field_conflicts: (
        pd.DataFrame
    )  # staging_table, staging_id, person_id, field, existing_value, incoming_value, reason
    person_of_anchor: dict[int, str]  # cluster anchor node -> person id (existing or new)
    keys: pd.DataFrame  # person_id, cedula, email, name_key, birth_date, phone_tail, student_number
    # of written persons
    # person_id, student_number: existing persons not written whose cluster brings their first student number
    student_numbers: pd.DataFrame
    # person_id, field, staging_table, staging_id: the row each value this plan sets comes from
    sources: pd.DataFrame


def union_of_tokens(owner: pd.Series | np.ndarray, values: pd.Series | np.ndarray) -> pd.Series:
    """Per owner, the sorted set of the comma-separated tokens of its values, sorted and
    comma-joined ('csv_only' + 'directory+csv,csv_only' -> 'csv_only,directory+csv'); vectorised.
    Owners whose values hold no token are absent."""
    tokens = pd.DataFrame(
        {
            "owner": np.asarray(owner, dtype=object),
            "token": pd.Series(values, dtype="string").str.split(",").to_numpy(),
        }
    ).explode("token")
    tokens["token"] = tokens["token"].astype("string").str.strip()
    tokens = tokens[tokens["token"].fillna("").ne("")].drop_duplicates().sort_values(["owner", "token"])
    several = tokens["owner"].duplicated(keep=False).to_numpy()
    single = tokens[~several].set_index("owner")["token"]
    joined = tokens[several].groupby("owner", sort=False)["token"].agg(",".join)
    return pd.concat([single, joined]).astype("string")


def better_spelling(existing: pd.DataFrame, incoming: pd.DataFrame, anchors: pd.Index) -> pd.Series:
    """Names to replace: persons the pipeline created, for which an incoming row spells the *same*
    name (same key) better ('Nicolás Sánchez' for 'Nicolas Sanchez'). This keeps k increments equal
    to one batch; a name the bot or a person wrote is never replaced."""
    made = (
        existing["stored_pipeline_created"]
        .isin(["t", True])
        .reindex(anchors)
        .fillna(False)
        .to_numpy(dtype=bool)
    )
    mine = existing.loc[anchors[made]]
    if mine.empty:
        return pd.Series(dtype="string")
    rows = incoming[incoming["anchor"].isin(mine.index)]
    stored_key = _as_text(mine["name_key"]).reindex(rows["anchor"]).to_numpy(dtype=object, na_value=None)
    rows = rows[
        (_as_text(rows["name_key"]).to_numpy(dtype=object, na_value=None) == stored_key)
        & (rows["name_rank"].to_numpy() < mine["name_rank"].reindex(rows["anchor"]).to_numpy())
    ]
    best = rows.sort_values(["anchor", "name_rank", "order"]).drop_duplicates("anchor").set_index("anchor")
    return _as_text(best["display_name"])


def names_compatible(a: str | None, b: str | None) -> bool:
    """One name key's tokens contain the other's (a partly written name)."""
    if not a or not b:
        return True
    ta, tb = set(a.split()), set(b.split())
    return ta <= tb or tb <= ta


def new_person_ids(anchors: np.ndarray) -> dict[int, str]:
    return {int(a): str(uuid.uuid4()) for a in anchors}


def _as_text(values: pd.Series) -> pd.Series:
    return values.astype("string")


@dataclass
class Clusters:
    """The resolved nodes survivorship works on: those not in review, by cluster anchor."""

    live: pd.DataFrame  # the nodes not in review, with anchor, matched_by and arrival `order`
    existing: pd.DataFrame  # the existing persons among them, indexed by anchor
    staging: pd.DataFrame  # their rows (this batch's and the evidence linked before)
    anchors: np.ndarray  # the clusters with a row
    new_anchors: np.ndarray  # those with no existing person: persons to create
    ids: dict[int, str]  # anchor -> person id (existing, or a new uuid)

    @cached_property
    def existing_anchors(self) -> pd.Index:
        """The existing persons with a row: the persons to fill."""
        return self.existing.index[self.existing.index.isin(self.anchors)]

    def person_ids(self, anchors: np.ndarray | pd.Index | pd.Series) -> list[str]:
        return [self.ids[int(a)] for a in anchors]


@dataclass
class FieldOutcome:
    """What one person field becomes, per cluster."""

    value: pd.Series  # anchor -> the value the person keeps (stored, else the first to arrive)
    key: pd.Series  # anchor -> its comparison key
    fill: pd.Series  # existing anchor -> value to write (its stored value is NULL, or a better spelling)
    sources: pd.DataFrame  # anchor, field, staging_table, staging_id: the row each value set comes from
    conflicts: pd.DataFrame  # FIELD_CONFLICT_COLUMNS: rows whose value differs from the value kept
    first: pd.DataFrame  # the first row with a value, per anchor (indexed by anchor)


FIELD_CONFLICT_COLUMNS = [
    "staging_table",
    "staging_id",
    "person_id",
    "field",
    "existing_value",
    "incoming_value",
    "reason",
]


def plan_persons(
    nodes: pd.DataFrame, anchor: np.ndarray, matched_by: np.ndarray, in_review: np.ndarray
) -> PersonPlan:
    """Apply survivorship to resolved clusters.

    `nodes` is the frame given to resolve_persons plus value columns
    (PERSON_FIELDS), for existing persons `person_id` and the raw
    `stored_<column>` values (PERSON_FIELDS, data_source, csv_enriched,
    original_name), for staging rows `staging_table`,
    `staging_id`, `name_rank` (lower = better written name), `source_kind`
    (CSV | DIRECTORY for staging rows) and `original_name`.
    """
    clusters = group_clusters(nodes, anchor, matched_by, in_review)
    fields = {
        column: survive_field(clusters, column, value_col, key_col)
        for column, value_col, key_col in PERSON_FIELDS
    }
    brought, csv_any = sources_brought(clusters.staging)
    originals = (
        clusters.staging[clusters.staging["original_name"].notna()]
        .sort_values(["anchor", "order"])
        .drop_duplicates("anchor")
        .set_index("anchor")["original_name"]
    )
    new_persons = new_person_rows(clusters, fields, brought, csv_any, originals)
    updates = person_updates(clusters, fields, brought, csv_any, originals)
    keys, student_numbers = written_keys(
        clusters, fields, np.concatenate([clusters.new_anchors, updates.index.to_numpy()])
    )
    sources = pd.concat([f.sources for f in fields.values()], ignore_index=True)
    sources = pd.DataFrame(
        {
            "person_id": clusters.person_ids(sources["anchor"]),
            "field": sources["field"].to_numpy(),
            "staging_table": sources["staging_table"].to_numpy(),
            "staging_id": sources["staging_id"].to_numpy(),
        }
    )
    conflicts = [f.conflicts for f in fields.values() if len(f.conflicts)]
    field_conflicts = (
        pd.concat(conflicts, ignore_index=True) if conflicts else pd.DataFrame(columns=FIELD_CONFLICT_COLUMNS)
    )
    return PersonPlan(
        row_assignment(clusters),
        new_persons.reset_index(drop=True),
        updates.reset_index(drop=True),
        field_conflicts,
        clusters.ids,
        keys,
        student_numbers,
        sources,
    )


def group_clusters(
    nodes: pd.DataFrame, anchor: np.ndarray, matched_by: np.ndarray, in_review: np.ndarray
) -> Clusters:
    """The nodes not in review by cluster, and the person id of each cluster (a new uuid for a new person)."""
    frame = nodes.assign(
        anchor=anchor, matched_by=matched_by, in_review=in_review, order=np.arange(len(nodes))
    )
    for column in STORED_COLUMNS:
        if column not in frame:
            frame[column] = pd.NA
    live = frame[~frame["in_review"]]
    existing = live[live["is_existing"]].set_index("anchor")
    staging = live[~live["is_existing"]]
    anchors = np.unique(staging["anchor"].to_numpy())
    new_anchors = anchors[~np.isin(anchors, existing.index.to_numpy())]
    ids = {int(a): str(pid) for a, pid in existing["person_id"].items()}
    ids.update(new_person_ids(new_anchors))
    return Clusters(live, existing, staging, anchors, new_anchors, ids)


def row_assignment(clusters: Clusters) -> pd.DataFrame:
    """Each row -> its person: staging_table, staging_id, person_id, matched_by, is_new_person."""
    staging = clusters.staging
    return pd.DataFrame(
        {
            "staging_table": staging["staging_table"].to_numpy(),
            "staging_id": staging["staging_id"].to_numpy(),
            "person_id": staging["anchor"].map(clusters.ids).to_numpy(),
            "matched_by": staging["matched_by"].to_numpy(),
            "is_new_person": np.isin(staging["anchor"].to_numpy(), clusters.new_anchors),
        }
    )


def first_values(present: pd.DataFrame, column: str, key_col: str) -> pd.DataFrame:
    """Per cluster, the row whose value the person takes: the first to arrive; for the name, the first
    name to arrive in its best-written spelling -- the rule a later increment applies (better_spelling),
    so that k increments give the name of one batch."""
    if column == "full_name":
        arrival_key = (
            present.sort_values(["anchor", "order"]).drop_duplicates("anchor").set_index("anchor")[key_col]
        )
        own = _as_text(present[key_col]).to_numpy(dtype=object, na_value=None)
        first_key = _as_text(arrival_key).reindex(present["anchor"]).to_numpy(dtype=object, na_value=None)
        present = present.assign(spelling_of_first=np.where(own == first_key, 0, 1))
        sort_cols = ["anchor", "spelling_of_first", "name_rank", "order"]
    else:
        sort_cols = ["anchor", "order"]
    return present.sort_values(sort_cols).drop_duplicates("anchor").set_index("anchor")


def held_by_others(
    stored_key: pd.Series, present: pd.DataFrame, incoming_key: pd.Series, key_col: str
) -> tuple[np.ndarray, set]:
    """A unique value several clusters hold or bring (a family e-mail) goes to one of them -- the person
    who already stores it, else the cluster whose row brought it first -- and is a conflict for the others.
    Returns which incoming values are blocked, and the values held by several clusters."""
    holders = pd.concat(
        [
            stored_key.dropna().rename("key").reset_index().assign(order=-1),
            present[["anchor", key_col, "order"]].rename(columns={key_col: "key"}),
        ]
    ).drop_duplicates(["anchor", "key"])
    shared = holders.groupby("key")["anchor"].nunique()
    shared_keys = set(shared.index[shared.to_numpy() > 1])
    owner = holders.sort_values(["order", "anchor"]).drop_duplicates("key").set_index("key")["anchor"]
    owned_by = owner.reindex(incoming_key.to_numpy()).to_numpy()
    blocked = incoming_key.isin(shared_keys).to_numpy() & (owned_by != incoming_key.index.to_numpy())
    return blocked, shared_keys


def survive_field(clusters: Clusters, column: str, value_col: str, key_col: str) -> FieldOutcome:
    """Fill NULLs only: the stored value stays; else the first row's value (first_values) is taken, and
    every row bringing another value is a field conflict."""
    existing, anchors = clusters.existing, clusters.anchors
    # only the columns this field needs: each filter and sort copies every column it carries
    needed = dict.fromkeys(
        [
            "anchor",
            "order",
            "staging_table",
            "staging_id",
            "name_rank",
            value_col,
            key_col,
            *(["mobile"] if column == "phone" else []),
        ]
    )
    present = clusters.staging.loc[clusters.staging[value_col].notna(), list(needed)]
    first = first_values(present, column, key_col)
    incoming_value, incoming_key = first[value_col], first[key_col]
    # The stored value as the bot or an earlier run wrote it (may be unnormalized),
    # and its key: fill only where the stored value is NULL.
    stored_key, stored_value = existing[key_col], existing[f"stored_{column}"]
    shared_keys: set = set()
    if column in UNIQUE_FIELDS:
        blocked, shared_keys = held_by_others(stored_key, present, incoming_key, key_col)
        incoming_value, incoming_key = incoming_value[~blocked], incoming_key[~blocked]
    final_key = _as_text(stored_key).reindex(anchors).fillna(_as_text(incoming_key).reindex(anchors))
    final_value = _as_text(stored_value).reindex(anchors).fillna(_as_text(incoming_value).reindex(anchors))

    exist_anchors = clusters.existing_anchors
    needs = _as_text(stored_value).reindex(exist_anchors).isna()
    fill = _as_text(incoming_value).reindex(exist_anchors)[needs.to_numpy()].dropna()
    new_anchors = clusters.new_anchors
    set_here = np.concatenate(
        [new_anchors[_as_text(incoming_value).reindex(new_anchors).notna().to_numpy()], fill.index.to_numpy()]
    )
    sources = pd.DataFrame(
        {
            "anchor": set_here,
            "field": column,
            "staging_table": first["staging_table"].reindex(set_here).to_numpy(),
            "staging_id": first["staging_id"].reindex(set_here).to_numpy(),
        }
    )
    if column == "full_name":
        upgrade = better_spelling(existing, present, exist_anchors)
        if len(upgrade):
            fill = pd.concat([fill, upgrade])
            final_value = final_value.copy()
            final_value.loc[upgrade.index] = upgrade.to_numpy()
    conflicts = differing_values(
        clusters, present, column, value_col, key_col, final_key, final_value, shared_keys
    )
    return FieldOutcome(final_value, final_key, fill, sources, conflicts, first)


def differing_values(
    clusters: Clusters,
    present: pd.DataFrame,
    column: str,
    value_col: str,
    key_col: str,
    final_key: pd.Series,
    final_value: pd.Series,
    shared_keys: set,
) -> pd.DataFrame:
    """The field conflicts: rows whose value differs from the value kept, or whose unique value another
    person holds (said even when nothing was kept)."""
    kept_key = final_key.reindex(present["anchor"]).to_numpy(dtype=object, na_value=None)
    own_key = _as_text(present[key_col]).to_numpy(dtype=object, na_value=None)
    differs = (kept_key != None) & (own_key != None) & (own_key != kept_key)  # noqa: E711
    if column in UNIQUE_FIELDS:
        differs |= (kept_key == None) & pd.Series(own_key).isin(shared_keys).to_numpy()  # noqa: E711
    if column == "full_name":
        # 'Sara Ramírez' and 'Sara Ramírez Gómez' are the same name, partly written: not a conflict.
        differs &= np.array(
            [
                not names_compatible(a, b) if d else False
                for a, b, d in zip(own_key, kept_key, differs, strict=True)
            ],
            dtype=bool,
        )
    differing = present[differs]
    held_elsewhere = differing[key_col].isin(shared_keys).to_numpy()
    return pd.DataFrame(
        {
            "staging_table": differing["staging_table"].to_numpy(),
            "staging_id": differing["staging_id"].to_numpy(),
            "person_id": differing["anchor"].map(clusters.ids).to_numpy(),
            "field": column,
            "existing_value": final_value.reindex(differing["anchor"]).to_numpy(),
            "incoming_value": _as_text(differing[value_col]).to_numpy(),
            "reason": np.where(held_elsewhere, "value held by another person", "differs from the value kept"),
        },
        columns=FIELD_CONFLICT_COLUMNS,
    )


def sources_brought(staging: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """The sources this batch brings to each cluster, spelled as data_source spells them
    ('CSV', 'DIRECTORY', 'CSV,DIRECTORY'), and whether a CSV row is among them."""
    by_anchor = staging.assign(
        csv=staging["source_kind"].eq("CSV"), directory=staging["source_kind"].eq("DIRECTORY")
    ).groupby("anchor")
    csv_any, directory_any = by_anchor["csv"].any(), by_anchor["directory"].any()
    brought = pd.Series(
        np.select(
            [
                csv_any.to_numpy(dtype=bool) & directory_any.to_numpy(dtype=bool),
                csv_any.to_numpy(dtype=bool),
                directory_any.to_numpy(dtype=bool),
            ],
            ["CSV,DIRECTORY", "CSV", "DIRECTORY"],
            None,
        ),
        index=csv_any.index,
        dtype="string",
    )
    return brought, csv_any


def new_person_rows(
    clusters: Clusters,
    fields: dict[str, FieldOutcome],
    brought: pd.Series,
    csv_any: pd.Series,
    originals: pd.Series,
) -> pd.DataFrame:
    """The persons to create, indexed by anchor: person_id, PERSON_FIELDS, data_source, csv_enriched, original_name."""
    new_anchors = clusters.new_anchors
    new_persons = pd.DataFrame({"person_id": clusters.person_ids(new_anchors)}, index=new_anchors)
    for column, outcome in fields.items():
        new_persons[column] = outcome.value.reindex(new_anchors).to_numpy()
    new_persons["data_source"] = brought.reindex(new_anchors).to_numpy(dtype=object, na_value=None)
    new_persons["csv_enriched"] = csv_any.reindex(new_anchors).fillna(False).to_numpy(dtype=bool)
    new_persons["original_name"] = originals.reindex(new_anchors).to_numpy()
    return new_persons


def person_updates(
    clusters: Clusters,
    fields: dict[str, FieldOutcome],
    brought: pd.Series,
    csv_any: pd.Series,
    originals: pd.Series,
) -> pd.DataFrame:
    """The existing persons that change, indexed by anchor: fills (NA = keep), data_source (the union of
    tokens), csv_enriched (once true, true) and original_name (if none is stored)."""
    existing, exist_anchors = clusters.existing, clusters.existing_anchors
    updates = pd.DataFrame(
        {"person_id": existing.loc[exist_anchors, "person_id"].to_numpy()}, index=exist_anchors
    )
    changed = np.zeros(len(updates), dtype=bool)
    for column, outcome in fields.items():
        fill = outcome.fill.reindex(exist_anchors)
        updates[column] = fill.to_numpy()
        changed |= fill.notna().to_numpy()
    old_source = _as_text(existing.loc[exist_anchors, "stored_data_source"])
    new_source = union_of_tokens(
        np.concatenate([exist_anchors, exist_anchors]),
        pd.concat([old_source, brought.reindex(exist_anchors)]),
    ).reindex(exist_anchors)
    updates["data_source"] = new_source.to_numpy()
    changed |= (new_source.fillna("\x00") != old_source.fillna("\x00")).to_numpy()
    old_csv = (
        existing.loc[exist_anchors, "stored_csv_enriched"].isin(["t", "true", True]).to_numpy(dtype=bool)
    )
    new_csv = old_csv | csv_any.reindex(exist_anchors).fillna(False).to_numpy(dtype=bool)
    updates["csv_enriched"] = new_csv
    changed |= new_csv != old_csv
    fill_original = originals.reindex(exist_anchors).where(
        existing.loc[exist_anchors, "stored_original_name"].isna().to_numpy()
    )
    updates["original_name"] = fill_original.to_numpy()
    changed |= fill_original.notna().to_numpy()
    return updates[changed]


def written_keys(
    clusters: Clusters, fields: dict[str, FieldOutcome], written: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The match keys of the persons written (person_keys), and the existing persons not written whose
    cluster brings their first student number. The cluster's student number (the existing person's
    first) is a key the checks compare, as resolution does."""
    existing, anchors = clusters.existing, clusters.anchors
    numbered = (
        clusters.live[clusters.live["student_number"].notna()].sort_values("order").drop_duplicates("anchor")
    )
    cluster_number = _as_text(numbered.set_index("anchor")["student_number"])
    gaining = cluster_number.index.isin(
        existing.index[existing["student_number"].isna()]
    ) & ~cluster_number.index.isin(written)
    # the kept phone identifies only if it is a mobile
    stored_phone = _as_text(existing["stored_phone"]).reindex(anchors)
    kept_mobile = (
        _as_text(existing["mobile"])
        .reindex(anchors)
        .where(stored_phone.notna(), _as_text(fields["phone"].first["mobile"]).reindex(anchors))
    )
    keys = pd.DataFrame(
        {
            "person_id": clusters.person_ids(written),
            "cedula": fields["cedula"].key.reindex(written).to_numpy(),
            "email": fields["email"].key.reindex(written).to_numpy(),
            "name_key": fields["full_name"].key.reindex(written).to_numpy(),
            "birth_date": fields["birth_date"].key.reindex(written).to_numpy(),
            "phone_tail": kept_mobile.reindex(written).str.slice(-10).to_numpy(),
            "student_number": cluster_number.reindex(written).to_numpy(),
        }
    )
    student_numbers = pd.DataFrame(
        {
            "person_id": clusters.person_ids(cluster_number.index[gaining]),
            "student_number": cluster_number[gaining].to_numpy(),
        }
    )
    return keys, student_numbers
