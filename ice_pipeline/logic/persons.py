"""The planner of `resolved_persons`: from a batch, its evidence and the candidate persons to a plan.

Pure (no Dagster, no database): the asset reads the batch's evidence through `store/persons.py`,
calls `plan_resolution`, and writes what it returns. One batch and k increments go through the
same code: the nodes are the candidate production persons, every row ever linked to them
(their evidence, `ice_pipeline.row_keys`) and the batch's rows, resolved under one batch's rules
(`resolve_persons`, where rows of two persons never join) and mapped onto persons
(`assign_persons`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ice_pipeline.logic.identifiers import SHARED_KINDS, shared_values
from ice_pipeline.logic.identity import (
    FLAGGED_PERSON,
    Assignment,
    Resolution,
    assign_persons,
    resolve_persons,
)
from ice_pipeline.logic.people import prepare_person_rows
from ice_pipeline.logic.survivorship import PERSON_FIELDS, PersonPlan, plan_persons

KEY_FIELDS = ("cedula", "student_number", "email", "name_key", "birth_date", "mobile")
# The staging columns a node carries into resolution and survivorship (PERSON_FIELDS and keys).
NODE_COLUMNS = (
    "staging_table",
    "staging_id",
    "display_name",
    "name_key",
    "name_rank",
    "original_name",
    "email",
    "cedula",
    "phone",
    "mobile",
    "birth_date",
    "address",
    "address_key",
    "city",
    "city_key",
    "country",
    "country_key",
    "student_number",
    "source_kind",
    "warnings",
    "updated_at",
)
ARRIVAL_RANK = {"staging_student": 0, "staging_lead": 1, "staging_lead_failures": 2}
CANDIDATE_EXTRAS = ("student_number", "pipeline_created", "data_source", "csv_enriched", "original_name")
# Above this many persons carrying one value, the value is shared without reading them.
CROWDED_VALUE_PERSONS = 20
KIND_OF_COLUMN = {"email": "email", "cedula": "cedula", "mobile": "mobile"}


def phone_tail(values: pd.Series) -> pd.Series:
    """A mobile's match key: its last ten digits (a Colombian mobile's national number)."""
    return values.astype("string").str.slice(-10)


def incoming_rows(students: pd.DataFrame, leads: pd.DataFrame) -> pd.DataFrame:
    """Students and leads in arrival order: (updated_at, table, id)."""
    rows = pd.concat([students, leads], ignore_index=True)
    for column in ("student_number", "source_file", "source_sheet", "source_row"):
        if column not in rows:  # a batch without students or without leads
            rows[column] = pd.NA
    rows["arrival"] = rows["staging_table"].map(ARRIVAL_RANK)
    return rows.sort_values(["updated_at", "arrival", "staging_id"], kind="stable").reset_index(drop=True)


def person_rejections(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows that cannot be a person (no name...), with their reason."""
    bad = rows[rows["reject_reason"].notna()]
    return pd.DataFrame(
        {
            "staging_table": bad["staging_table"],
            "staging_id": bad["staging_id"],
            "reason": bad["reject_reason"],
            "details": [json.dumps({"warnings": w}) if isinstance(w, str) else "{}" for w in bad["warnings"]],
            "retryable": False,
        }
    )


def person_key_frame(prepared: pd.DataFrame) -> pd.DataFrame:
    """The person_keys columns of prepared person rows (only mobiles identify by phone)."""
    return pd.DataFrame(
        {
            "cedula": prepared["cedula"],
            "email": prepared["email"],
            "name_key": prepared["name_key"],
            "birth_date": prepared["birth_date"],
            "phone_tail": phone_tail(prepared["mobile"]),
        }
    )


def existing_nodes(candidates: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Production persons as nodes: keys computed exactly as for staging rows."""
    candidates = candidates.reindex(
        columns=[*candidates.columns, *(c for c in CANDIDATE_EXTRAS if c not in candidates.columns)]
    )
    keyed = prepare_person_rows(candidates, reference)
    nodes = keyed.assign(
        is_existing=True,
        is_history=False,
        person_id=candidates["person_id"],
        owner_person_id=candidates["person_id"],
        linked_person_id=candidates["person_id"],
        source_row_person_id=candidates["person_id"],
        student_number=candidates["student_number"],
        mobile=phone_tail(keyed["mobile"]),
        staging_table=pd.NA,
        staging_id=pd.NA,
        source_kind=pd.NA,
    )
    for column in [c for c, _, _ in PERSON_FIELDS] + [
        "data_source",
        "csv_enriched",
        "original_name",
        "pipeline_created",
    ]:
        nodes[f"stored_{column}"] = candidates[column]
    return nodes


def staging_nodes(batch: pd.DataFrame, linked: pd.DataFrame, same_row: pd.DataFrame) -> pd.DataFrame:
    """The batch's rows as nodes; a row linked before keeps its person as `owner_person_id`."""
    nodes = batch[[c for c in NODE_COLUMNS if c in batch]].copy()
    nodes["staging_id"] = nodes["staging_id"].astype("int64")
    nodes["mobile"] = phone_tail(nodes["mobile"])
    owners = linked.rename(columns={"linked_person_id": "owner_person_id"})
    nodes = (
        nodes.merge(owners, on=["staging_table", "staging_id"], how="left")
        if len(owners)
        else nodes.assign(owner_person_id=pd.NA)
    )
    nodes = (
        nodes.merge(same_row, on=["staging_table", "staging_id"], how="left")
        if len(same_row)
        else nodes.assign(source_row_person_id=pd.NA)
    )
    return nodes.assign(is_existing=False, is_history=False, person_id=pd.NA, linked_person_id=pd.NA)


def history_nodes(history: pd.DataFrame) -> pd.DataFrame:
    """Rows linked in earlier runs, as evidence: their keys only (they fill nothing again)."""
    frame = history.copy()
    frame["staging_id"] = frame["staging_id"].astype("int64")
    return frame.assign(
        is_existing=False,
        is_history=True,
        person_id=pd.NA,
        linked_person_id=pd.NA,
        source_row_person_id=pd.NA,
    )


def order_nodes(existing: pd.DataFrame, history: pd.DataFrame, batch: pd.DataFrame) -> pd.DataFrame:
    """Existing persons first, then every staging row (evidence and batch) in arrival order, and
    each row's `owner`: the node index of the person it is linked to (-1 when none)."""
    staged = pd.concat([history, batch], ignore_index=True)
    staged["_at"] = pd.to_datetime(staged["updated_at"], utc=True, format="ISO8601")
    staged["_rank"] = staged["staging_table"].map(ARRIVAL_RANK).fillna(2)
    # Rows linked before arrival times were recorded come first, as they did.
    staged = staged.sort_values(["_at", "_rank", "staging_id"], kind="stable", na_position="first").drop(
        columns=["_at", "_rank"]
    )
    nodes = pd.concat([existing, staged], ignore_index=True)
    nodes["is_existing"] = nodes["is_existing"].astype(bool)
    nodes["is_history"] = nodes["is_history"].astype(bool)
    index_of_person = pd.Series(
        np.flatnonzero(nodes["is_existing"].to_numpy()),
        index=nodes.loc[nodes["is_existing"], "person_id"].astype("string").to_numpy(),
    )
    owner = nodes["owner_person_id"].astype("string").map(index_of_person)
    nodes["owner"] = owner.fillna(-1).astype("int64").where(~nodes["is_existing"], -1)
    return nodes


def decision_keys(nodes: pd.DataFrame, decisions: pd.DataFrame) -> pd.DataFrame:
    """The match keys as resolution sees them, after a person's decisions.

    'merge into a person' links the row to that person; 'new person' makes it a person of its
    own: its keys are hidden from matching (its values still fill the person, except unique
    ones another person holds).
    """
    keys = nodes[["is_existing", "linked_person_id", "source_row_person_id", *KEY_FIELDS]].copy()
    if decisions.empty:
        return keys
    decided = nodes[["staging_table", "staging_id"]].merge(
        decisions, on=["staging_table", "staging_id"], how="left"
    )
    merge_into = decided["decided_person_id"].to_numpy()
    keys["linked_person_id"] = keys["linked_person_id"].where(pd.isna(merge_into), merge_into)
    pinned = decided["decided_new"].fillna("f").isin(["t", True]).to_numpy(dtype=bool)
    keys.loc[pinned, list(KEY_FIELDS)] = pd.NA
    return keys


def forget_evidenced(keys: pd.DataFrame, nodes: pd.DataFrame) -> pd.DataFrame:
    """A production person's keys without the values its own rows carry.

    The rows are the evidence; the stored person is what survivorship made of them, and would
    glue together rows that one batch keeps apart (a birth date from one row, a cédula from
    another). What is left on the person -- values the bot wrote -- still matches.
    """
    is_person = nodes["is_existing"].to_numpy(dtype=bool)
    owner = nodes["owner"].to_numpy(dtype=np.int64)
    rows = ~is_person & (owner >= 0)
    if not rows.any() or not is_person.any():
        return keys
    person_index = np.flatnonzero(is_person)
    forgotten = keys.copy()
    for column in KEY_FIELDS:
        carried = pd.DataFrame({"person": owner[rows], "value": keys[column].to_numpy()[rows]}).dropna()
        if carried.empty:
            continue
        mine = pd.DataFrame({"person": person_index, "value": keys[column].to_numpy()[is_person]})
        hit = mine.merge(carried.drop_duplicates(), on=["person", "value"], how="left", indicator=True)
        evidenced = person_index[(hit["_merge"] == "both").to_numpy()]
        forgotten.loc[evidenced, column] = pd.NA
    return forgotten


def mask_shared(keys: pd.DataFrame, shared: dict[str, dict[str, str]]) -> pd.DataFrame:
    """Keys without the values that identify nobody (they stay on the rows as data)."""
    masked = keys.copy()
    for column, kind in KIND_OF_COLUMN.items():
        values = shared.get(kind)
        if values:
            masked[column] = masked[column].mask(masked[column].astype("string").isin(list(values)))
    return masked


@dataclass
class PersonResolution:
    """What resolved_persons writes and reports, planned from one batch and its evidence."""

    nodes: pd.DataFrame
    resolution: Resolution
    assignment: Assignment
    plan: PersonPlan
    shared: dict[str, dict[str, str]]  # kind -> value -> reason (known before and found now)
    new_shared: pd.DataFrame  # kind, value, reason: found by this run
    reviews: pd.DataFrame  # identity_conflict, field_conflict, possible_duplicate, false merges
    row_keys: pd.DataFrame  # the evidence of every row linked this run
    stats: dict[str, int] = field(default_factory=dict)


def batch_rows(nodes: pd.DataFrame) -> np.ndarray:
    """Which nodes are this batch's staging rows (not existing persons, not their evidence rows)."""
    return ~nodes["is_existing"].to_numpy(dtype=bool) & ~nodes["is_history"].to_numpy(dtype=bool)


def _ref(nodes: pd.DataFrame, index: int) -> list:
    return [str(nodes.at[index, "staging_table"]), int(nodes.at[index, "staging_id"])]


def _review_frames(nodes: pd.DataFrame, assignment: Assignment, plan: PersonPlan) -> pd.DataFrame:
    waiting = np.flatnonzero(assignment.in_review & batch_rows(nodes))
    person_of_node = {int(i): str(p) for i, p in nodes.loc[nodes["is_existing"], "person_id"].items()}
    person_of_node.update(plan.person_of_anchor)
    identity = pd.DataFrame(
        {
            "kind": "identity_conflict",
            "staging_table": nodes["staging_table"].to_numpy()[waiting],
            "staging_id": nodes["staging_id"].to_numpy()[waiting],
            "candidate_person_id": [person_of_node.get(int(c)) for c in assignment.review_candidate[waiting]],
            "reason": assignment.review_reason[waiting],
        }
    )
    duplicates = pd.DataFrame(
        [
            {
                "kind": "possible_duplicate",
                "staging_table": nodes.at[w, "staging_table"] if w >= 0 else None,
                "staging_id": int(nodes.at[w, "staging_id"]) if w >= 0 else None,
                "person_id": nodes.at[a, "person_id"],
                "candidate_person_id": nodes.at[b, "person_id"],
                "reason": f"rows match both persons ({level.replace('_', ' + ')}): probably one person recorded twice",
                "details": json.dumps({"level": level, "witness": _ref(nodes, w) if w >= 0 else None}),
            }
            for a, b, w, level in assignment.possible_duplicates
        ]
    )
    false_merges = pd.DataFrame(
        [
            {
                "kind": "possible_false_merge",
                "staging_table": nodes.at[move[0], "staging_table"],
                "staging_id": int(nodes.at[move[0], "staging_id"]),
                "person_id": nodes.at[person, "person_id"],
                "reason": "this person holds rows the identity rules tell apart: split them, or keep them together",
                "details": json.dumps(
                    {"rows": {"stay": [_ref(nodes, i) for i in stay], "move": [_ref(nodes, i) for i in move]}}
                ),
            }
            for person, stay, moves in assignment.false_merges
            for move in moves
        ]
    )
    fields = plan.field_conflicts.assign(kind="field_conflict")
    return pd.concat([identity, fields, duplicates, false_merges], ignore_index=True)


def _row_keys(nodes: pd.DataFrame, plan: PersonPlan, shared: dict[str, dict[str, str]]) -> pd.DataFrame:
    """Each linked batch row's own keys (placeholders already dropped), its person and what was ignored."""
    batch = nodes[batch_rows(nodes)]
    linked = plan.assignment[["staging_table", "staging_id", "person_id", "matched_by"]].merge(
        batch[
            [
                "staging_table",
                "staging_id",
                "cedula",
                "email",
                "name_key",
                "birth_date",
                "mobile",
                "student_number",
                "updated_at",
            ]
        ],
        on=["staging_table", "staging_id"],
        how="left",
    )
    ignored = pd.Series([{} for _ in range(len(linked))], index=linked.index, dtype=object)
    for column, kind in KIND_OF_COLUMN.items():
        reasons = shared.get(kind) or {}
        if reasons:
            hit = linked[column].astype("string").map(reasons)
            for i in np.flatnonzero(hit.notna().to_numpy()):
                ignored.iat[i] = {**ignored.iat[i], kind: f"shared: {hit.iat[i]}"}
    evidence = [
        json.dumps({"matched_by": m, **({"not_used_to_match": g} if g else {})})
        for m, g in zip(linked["matched_by"], ignored, strict=True)
    ]
    return pd.DataFrame(
        {
            "staging_table": linked["staging_table"],
            "staging_id": linked["staging_id"],
            "person_id": linked["person_id"],
            "cedula": linked["cedula"],
            "email": linked["email"],
            "name_key": linked["name_key"],
            "birth_date": linked["birth_date"],
            "phone_tail": linked["mobile"],
            "student_number": linked["student_number"],
            "arrival": linked["updated_at"],
            "evidence": evidence,
        }
    )


def _person_nodes(nodes: pd.DataFrame, person_ids: set[str]) -> set[int]:
    is_person = nodes["is_existing"].to_numpy(dtype=bool)
    chosen = nodes["person_id"].astype("string").isin(list(person_ids)).to_numpy(dtype=bool)
    return set(np.flatnonzero(is_person & chosen).tolist())


@dataclass
class ResolvedNodes:
    """The clusters of a set of nodes, before survivorship: what finding more candidates needs."""

    shared: dict[str, dict[str, str]]  # kind -> value -> reason (known before and found now)
    new_shared: pd.DataFrame  # kind, value, reason: found now
    resolution: Resolution


def resolve_nodes(
    nodes: pd.DataFrame, decisions: pd.DataFrame, known_shared: dict[str, dict[str, str]]
) -> ResolvedNodes:
    """Resolve the nodes (see `order_nodes`) under one batch's rules.

    Shared values are found among the nodes (clearly different people carry them) and added to
    those known before; they are masked from the keys, never from the values -- and a shared
    cédula still vetoes (no chain joins two cédulas).
    """
    keys = forget_evidenced(decision_keys(nodes, decisions), nodes)
    found = shared_values(keys, SHARED_KINDS)
    shared = {kind: {**found.get(kind, {}), **known_shared.get(kind, {})} for kind in SHARED_KINDS}
    new_shared = pd.DataFrame(
        [
            {"kind": k, "value": v, "reason": r}
            for k, values in found.items()
            for v, r in values.items()
            if v not in known_shared.get(k, {})
        ],
        columns=["kind", "value", "reason"],
    )
    resolution = resolve_persons(
        mask_shared(keys, shared).assign(
            owner=nodes["owner"].to_numpy(), veto_cedula=keys["cedula"].to_numpy()
        )
    )
    return ResolvedNodes(shared, new_shared, resolution)


def plan_resolution(
    nodes: pd.DataFrame,
    decisions: pd.DataFrame,
    flagged_person_ids: set[str],
    known_shared: dict[str, dict[str, str]],
    accepted_person_ids: set[str] | None = None,
    decided_pairs: set[tuple[str, str]] | None = None,
    resolved: ResolvedNodes | None = None,
) -> PersonResolution:
    """Resolve the nodes (`resolve_nodes`, unless given) and plan the writes: persons, review
    items, the evidence of every row."""
    resolved = resolved or resolve_nodes(nodes, decisions, known_shared)
    shared, new_shared, resolution = resolved.shared, resolved.new_shared, resolved.resolution
    assignment = assign_persons(
        nodes,
        resolution,
        _person_nodes(nodes, flagged_person_ids),
        _person_nodes(nodes, set(accepted_person_ids or ())),
    )
    if decided_pairs:  # pairs a person already answered (or split apart) are not asked again
        person = nodes["person_id"].astype("string").to_numpy(dtype=object, na_value=None)
        assignment.possible_duplicates = [
            d
            for d in assignment.possible_duplicates
            if tuple(sorted((str(person[d[0]]), str(person[d[1]])))) not in decided_pairs
        ]
    plan = plan_persons(
        nodes,
        assignment.person_anchor,
        assignment.matched_by,
        assignment.in_review | nodes["is_history"].to_numpy(dtype=bool),
    )
    reviews = _review_frames(nodes, assignment, plan)
    stats = {
        "vetoed_joins": resolution.stats.get("vetoed_joins", 0),
        **{k: v for k, v in resolution.stats.items() if k.startswith("vetoed_at_")},
        **{f"shared_{kind}_values": len(shared.get(kind, {})) for kind in SHARED_KINDS},
        **{f"new_shared_{kind}_values": int(new_shared["kind"].eq(kind).sum()) for kind in SHARED_KINDS},
        "possible_duplicates": len(assignment.possible_duplicates),
        "possible_false_merges": sum(len(m) for _, _, m in assignment.false_merges),
        "rows_waiting_for_flagged_person": int(
            (assignment.review_reason[assignment.in_review] == FLAGGED_PERSON).sum()
        ),
        "evidence_rows": int(nodes["is_history"].sum()),
    }
    return PersonResolution(
        nodes,
        resolution,
        assignment,
        plan,
        shared,
        new_shared,
        reviews,
        _row_keys(nodes, plan, shared),
        stats,
    )
