"""resolved_persons: identity resolution and the merge into `persons` (DESIGN §4).

Every loadable staging student and lead row ends linked to a person, in review, or rejected
with a reason. Each run re-resolves every person a new row touches with *all* of that
person's rows (their evidence), under one batch's rules: a run sees what one batch would see.
"""

import datetime as dt
import time
from dataclasses import dataclass

import pandas as pd
from dagster import AssetExecutionContext, AssetIn, MetadataValue, Output, asset
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
from ice_pipeline.db import (
    copy_into_temp,
    linked_ids,
    read_frame,
    record_run,
    write_isolating,
    write_links,
    write_rejections,
    write_reviews,
)
from ice_pipeline.logic import normalize as nz
from ice_pipeline.logic import persons as lp
from ice_pipeline.logic.fit import (
    PERSON_PLAN_RULES,
    PERSON_RULES,
    REJECTION_COLUMNS,
    fit,
    join_warnings,
    refused_ids,
    rejections,
    settle_refused,
)
from ice_pipeline.logic.identity import cluster_name_keys
from ice_pipeline.logic.people import prepare_person_rows
from ice_pipeline.resources import ProductionDatabase
from ice_pipeline.store import persons as sql
from ice_pipeline.store.columns import Limits, column_limits
from ice_pipeline.summary import PERSON_ROWS_IN_REVIEW, PERSON_ROWS_REJECTED, PERSONS_CREATED, PERSONS_UPDATED

# At most this many extra rounds of cluster-key candidates (rarely more than one, and small).
CANDIDATE_ROUNDS = 3


def refresh_person_keys(cur: Cursor, reference: pd.DataFrame, run_id: str) -> int:
    """Recompute the keys of persons changed outside the pipeline since the last run."""
    cur.execute(sql.READ_KEYS_SINCE, {"mark": sql.REFRESH_MARK})
    since, next_since = cur.fetchone()
    changed = read_frame(cur, sql.READ_CHANGED_PERSONS, {"since": since})
    if len(changed):
        keys = lp.person_key_frame(prepare_person_rows(changed, reference)).assign(
            person_id=changed["person_id"],
            person_updated_at=changed["person_updated_at"],
            student_number=changed["student_number"],
        )
        copy_into_temp(cur, "tmp_person_keys", sql.PERSON_KEY_COLUMNS, keys)
        cur.execute(sql.UPSERT_PERSON_KEYS)
        cur.execute("DROP TABLE tmp_person_keys")
        # Only an optimisation (unkeyed persons are always read): moved only when
        # there was something to refresh, so a run with nothing new writes nothing.
        cur.execute(sql.ADVANCE_KEYS_MARK, {"mark": sql.REFRESH_MARK, "since": next_since, "run_id": run_id})
    return len(changed)


def known_shared_values(cur: Cursor) -> dict[str, dict[str, str]]:
    """Values of the batch that identify nobody: found shared before, or carried by too many persons.
    Masked in `tmp_keys` so that they fetch no candidates."""
    known = read_frame(cur, sql.READ_KNOWN_SHARED).assign(reason="found shared by an earlier run")
    crowded = read_frame(cur, sql.READ_CROWDED_VALUES, {"cap": lp.CROWDED_VALUE_PERSONS}).assign(
        reason=f"carried by more than {lp.CROWDED_VALUE_PERSONS} persons"
    )
    found = pd.concat([known, crowded], ignore_index=True).drop_duplicates(["kind", "value"])
    copy_into_temp(cur, "tmp_shared", sql.SHARED_COLUMNS, found)
    cur.execute(sql.KEEP_UNIQUE_VALUES)
    cur.execute(sql.MASK_SHARED_KEYS)
    cur.execute("DROP TABLE tmp_shared")
    return {
        kind: dict(zip(group["value"], group["reason"], strict=True)) for kind, group in found.groupby("kind")
    }


def read_nodes(
    cur: Cursor, batch: pd.DataFrame, reference: pd.DataFrame, *, only: list[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Candidate persons (all in tmp_candidates, or `only` these) and their evidence rows, as nodes."""
    candidates = read_frame(cur, sql.READ_CANDIDATES, {"only": only})
    history = read_frame(cur, sql.READ_HISTORY, {"only": only})
    return lp.existing_nodes(candidates, reference), lp.history_nodes(history)


def gather_and_plan(
    cur: Cursor, context: AssetExecutionContext, loadable: pd.DataFrame, reference: pd.DataFrame
) -> lp.PersonResolution:
    """Read the batch's evidence and candidates, resolve, and fetch what a cluster's own keys
    find (persons matching a key only a cluster has), up to CANDIDATE_ROUNDS times; then plan
    the writes once, on the last resolution."""
    keys = loadable.assign(phone_tail=lp.phone_tail(loadable["mobile"]))
    copy_into_temp(cur, "tmp_keys", sql.KEY_COLUMNS, keys)
    cur.execute("ANALYZE tmp_keys")
    known_shared = known_shared_values(cur)
    linked = read_frame(cur, sql.READ_LINKED).astype({"staging_id": "int64"})
    decisions = read_frame(cur, sql.READ_DECISIONS).astype({"staging_id": "int64"})
    same_row = read_frame(cur, sql.READ_SAME_SOURCE_ROW).astype({"staging_id": "int64"})
    cur.execute(sql.FIND_CANDIDATES)
    existing, history = read_nodes(cur, loadable, reference)
    flagged = set(read_frame(cur, sql.READ_FLAGGED)["person_id"])
    accepted = set(read_frame(cur, sql.READ_ACCEPTED)["person_id"])
    decided_pairs = set(read_frame(cur, sql.READ_DECIDED_PAIRS).itertuples(index=False, name=None))
    batch = lp.staging_nodes(loadable, linked, same_row)
    context.log.info(
        f"resolving {len(loadable)} rows against {len(existing)} existing persons "
        f"and {len(history)} rows linked to them before"
    )
    for round_ in range(CANDIDATE_ROUNDS + 1):
        nodes = lp.order_nodes(existing, history, batch)
        resolved = lp.resolve_nodes(nodes, decisions, known_shared)
        if round_ == CANDIDATE_ROUNDS:
            break
        # A stored person can match a key only the cluster has (its stored name with a birth date
        # a row brings): read those too, or increments would miss what one batch finds.
        copy_into_temp(
            cur,
            "tmp_cluster_keys",
            sql.CLUSTER_KEY_COLUMNS,
            cluster_name_keys(nodes, resolved.resolution.anchor, resolved.resolution.in_review),
        )
        cur.execute(sql.FIND_MORE_CANDIDATES)
        more = [person_id for (person_id,) in cur.fetchall()]
        cur.execute("DROP TABLE tmp_cluster_keys")
        if not more:
            break
        more_existing, more_history = read_nodes(cur, loadable, reference, only=more)
        existing = pd.concat([existing, more_existing], ignore_index=True)
        history = pd.concat([history, more_history], ignore_index=True)
        flagged = set(read_frame(cur, sql.READ_FLAGGED)["person_id"])
        accepted = set(read_frame(cur, sql.READ_ACCEPTED)["person_id"])
        context.log.info(
            f"{len(more)} more existing persons share a key of a resolved cluster: resolving again"
        )
    return lp.plan_resolution(nodes, decisions, flagged, known_shared, accepted, decided_pairs, resolved)


def fit_person_rows(rows: pd.DataFrame, limits: Limits) -> pd.DataFrame:
    """The batch's person values fitted to the production columns: cut, dropped (with a warning) or the
    row rejected, so that a value wider than its column costs that value or that row, never the run."""
    fitted = fit(rows, "persons", PERSON_RULES, limits)
    return fitted.frame.assign(
        warnings=join_warnings(fitted.frame["warnings"], fitted.warnings),
        reject_reason=fitted.frame["reject_reason"].fillna(fitted.rejected),
        address_key=nz.label_key(fitted.frame["address"]),  # the address may have been cut
    )


def write_persons(
    cur: Cursor, planned: lp.PersonResolution, run_id: str, limits: Limits
) -> tuple[int, int, pd.DataFrame]:
    """New persons, fills, keys, evidence, field sources and shared values, in the caller's transaction.

    Returns the persons created and updated, and those production refused (entity_id, reason,
    details): nothing else about them is written, and the caller rejects their rows.
    """
    plan = planned.plan
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    now = now.replace(
        microsecond=now.microsecond // 1000 * 1000
    )  # timestamp(3): keys compare equal to persons
    new = fit(plan.new_persons, "persons", PERSON_PLAN_RULES, limits).frame
    fills = fit(plan.updates, "persons", PERSON_PLAN_RULES, limits).frame
    inserted = write_isolating(
        cur, "tmp_new_persons", sql.NEW_PERSON_COLUMNS, new, sql.INSERT_PERSONS, {"now": now}
    )
    filled = write_isolating(
        cur, "tmp_person_fills", sql.NEW_PERSON_COLUMNS, fills, sql.FILL_PERSONS, {"now": now}
    )
    refused = pd.concat(
        [refused_ids(new, "person_id", inserted.refused), refused_ids(fills, "person_id", filled.refused)],
        ignore_index=True,
    )
    gone = set(refused["entity_id"])

    def kept(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[~frame["person_id"].isin(gone)] if gone else frame

    copy_into_temp(
        cur, "tmp_person_keys", sql.PERSON_KEY_COLUMNS, kept(plan.keys).assign(person_updated_at=now)
    )
    cur.execute(sql.UPSERT_PERSON_KEYS)
    if len(plan.student_numbers):
        copy_into_temp(
            cur,
            "tmp_student_numbers",
            {"person_id": "uuid", "student_number": "text"},
            kept(plan.student_numbers),
        )
        cur.execute(sql.SET_STUDENT_NUMBERS)
    copy_into_temp(cur, "tmp_row_keys", sql.ROW_KEY_COLUMNS, kept(planned.row_keys))
    cur.execute(sql.UPSERT_ROW_KEYS, {"run_id": run_id})
    copy_into_temp(cur, "tmp_field_sources", sql.FIELD_SOURCE_COLUMNS, kept(plan.sources))
    cur.execute(sql.INSERT_FIELD_SOURCES, {"run_id": run_id})
    if len(planned.new_shared):
        copy_into_temp(cur, "tmp_new_shared", sql.SHARED_COLUMNS, planned.new_shared)
        cur.execute(sql.INSERT_SHARED, {"run_id": run_id})
    return inserted.written, filled.written, refused


def lost_row_rejections(cur: Cursor, lost: pd.DataFrame) -> pd.DataFrame:
    """Rows planned onto a person production refused: rejected with the database's reason, except rows
    linked before (their earlier link stands)."""
    parts = []
    for table, group in lost.groupby("staging_table", sort=True):
        before = linked_ids(cur, str(table), "person", group["staging_id"].tolist())
        group = group[~group["staging_id"].astype("int64").isin(before)]
        parts.append(rejections(str(table), group["staging_id"], group["reason"], group["details"]))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=REJECTION_COLUMNS)


def row_links(assignment: pd.DataFrame, planned: lp.PersonResolution) -> pd.DataFrame:
    """source_links rows of the batch's linked rows, with the warnings their values raised."""
    warnings = planned.nodes.loc[lp.batch_rows(planned.nodes), ["staging_table", "staging_id", "warnings"]]
    links = assignment.merge(warnings, on=["staging_table", "staging_id"], how="left")
    return links.assign(entity="person", entity_id=links["person_id"])


def reviews_of_written(reviews: pd.DataFrame, refused: pd.DataFrame) -> pd.DataFrame:
    """The review items, less those about a person production refused: nothing is asked about it."""
    if refused.empty:
        return reviews
    candidate = reviews.get("candidate_person_id", pd.Series(index=reviews.index, dtype=object))
    about = reviews["person_id"].isin(refused["entity_id"]) | candidate.isin(refused["entity_id"])
    return reviews[~about.to_numpy()]


@dataclass
class WrittenResolution:
    """What resolved_persons wrote: the figures of its metadata and of ice_pipeline.runs."""

    assignment: pd.DataFrame  # staging row -> person, for the rows linked (refused persons taken out)
    rejected: pd.DataFrame  # REJECTION_COLUMNS
    persons_created: int
    persons_updated: int
    rows_newly_linked: int
    rows_in_review: int
    review_items_added: int


def write_resolution(
    cur: Cursor, planned: lp.PersonResolution, rejected: pd.DataFrame, run_id: str, limits: Limits
) -> WrittenResolution:
    """Persons, then the links, review items and rejections of every row of the batch, and the run's figures."""
    created, updated, refused = write_persons(cur, planned, run_id, limits)
    assignment, lost = settle_refused(planned.plan.assignment, "person_id", refused)
    lost_rows = lost_row_rejections(cur, lost)
    if len(lost_rows):
        rejected = pd.concat([rejected, lost_rows], ignore_index=True)
    linked = write_links(cur, row_links(assignment, planned), run_id)
    reviews_added = write_reviews(cur, reviews_of_written(planned.reviews, refused), run_id)
    write_rejections(cur, rejected, run_id)
    in_review = int((planned.assignment.in_review & lp.batch_rows(planned.nodes)).sum())
    record_run(
        cur,
        run_id,
        {
            PERSONS_CREATED.stats_key: created,
            PERSONS_UPDATED.stats_key: updated,
            PERSON_ROWS_IN_REVIEW.stats_key: in_review,
            PERSON_ROWS_REJECTED.stats_key: len(rejected),
        },
    )
    return WrittenResolution(assignment, rejected, created, updated, linked, in_review, reviews_added)


def resolution_metadata(
    planned: lp.PersonResolution, written: WrittenResolution, staging_rows: int, refreshed: int
) -> dict[str, object]:
    """The asset's metadata: counts and small tables only, no personal data."""
    plan, stats, assignment = planned.plan, planned.stats, written.assignment
    matched_existing = assignment.loc[~assignment["is_new_person"], "person_id"].nunique()
    by_kind = planned.reviews["kind"].value_counts() if len(planned.reviews) else pd.Series(dtype=int)
    return {
        "staging_rows": staging_rows,
        "persons_created": written.persons_created,
        "persons_updated": written.persons_updated,
        "persons_unchanged": int(matched_existing - len(plan.updates)),
        "rows_linked": len(assignment),
        "rows_newly_linked": written.rows_newly_linked,
        "rows_in_review": written.rows_in_review,
        "rows_rejected": len(written.rejected),
        "field_conflicts": len(plan.field_conflicts),
        "review_items_added": written.review_items_added,
        "matched_by": markdown_counts("matched by", assignment["matched_by"].value_counts()),
        "rejection_reasons": markdown_counts("reason", written.rejected["reason"].value_counts()),
        "review_by_kind": markdown_counts("kind", by_kind),
        "field_conflicts_by_field": markdown_counts("field", plan.field_conflicts["field"].value_counts()),
        "vetoed_joins": stats["vetoed_joins"],
        "vetoed_joins_by_level": markdown_counts(
            "level", {k.removeprefix("vetoed_at_"): v for k, v in stats.items() if k.startswith("vetoed_at_")}
        ),
        "shared_values": markdown_counts("kind", {k: stats[f"shared_{k}_values"] for k in lp.KIND_OF_COLUMN}),
        "shared_values_found_now": sum(stats[f"new_shared_{k}_values"] for k in lp.KIND_OF_COLUMN),
        "possible_false_merges": stats["possible_false_merges"],
        "rows_waiting_for_flagged_person": stats["rows_waiting_for_flagged_person"],
        "evidence_rows_read": stats["evidence_rows"],
        "csv_enrichment_rate": rate(
            int(plan.new_persons["csv_enriched"].sum()) + len(plan.updates), assignment["person_id"].nunique()
        ),
        "failed_rows_rate": rate(len(written.rejected), staging_rows),
        "person_keys_refreshed": refreshed,
    }


@asset(
    ins={"staging_students": AssetIn(), "staging_leads": AssetIn(), "staging_reference_data": AssetIn()},
    deps=["applied_review_decisions"],  # a person's merges and splits are applied before new rows resolve
    group_name=GROUP_PRODUCTION,
    owners=OWNERS,
    kinds={"postgres"},
    description="Resolves who is who (cédula > e-mail > name+birth date > name+mobile, with vetoes; placeholders "
    "and shared values never match) and merges staging students and leads into `persons`: new persons "
    "created, existing ones filled (NULLs only), ambiguous rows and persons the evidence shows to hold two "
    "people sent to review. Output: staging row -> person.",
)
def resolved_persons(
    context: AssetExecutionContext,
    staging_students: StagingBatch,
    staging_leads: StagingBatch,
    staging_reference_data: pd.DataFrame,
    production_db: ProductionDatabase,
    options: MigrationOptions,
) -> Output[pd.DataFrame]:
    started = time.monotonic()
    run_id = context.op_execution_context.run_id
    incoming = lp.incoming_rows(staging_students.rows, staging_leads.rows)
    with production_db.connection() as conn, writer_transaction(conn, options) as cur:
        limits = column_limits(cur, run_id)
        rows = fit_person_rows(incoming, limits)
        loadable = rows[rows["reject_reason"].isna()].reset_index(drop=True)
        refreshed = refresh_person_keys(cur, staging_reference_data, run_id)
        planned = gather_and_plan(cur, context, loadable, staging_reference_data)
        written = write_resolution(cur, planned, lp.person_rejections(rows), run_id, limits)
    metadata = {
        "dry_run": MetadataValue.bool(options.dry_run),
        **resolution_metadata(planned, written, len(rows), refreshed),
        "seconds": round(time.monotonic() - started, 2),
    }
    context.log.info(
        f"persons: {written.persons_created} created, {written.persons_updated} enriched, "
        f"{written.rows_in_review} rows to review, {len(written.rejected)} rejected"
    )
    output = written.assignment[["staging_table", "staging_id", "person_id", "matched_by", "is_new_person"]]
    return Output(output, metadata=metadata)
