"""person_candidates: every run, the persons it created or touched against their neighbours in production.

Exact keys decide identity; this asset puts what they cannot decide in front of a person: pairs of
production persons that look like one (a name typo, a dropped surname, a cédula one digit off, day and
month swapped) are queued as `possible_duplicate` with a score and the evidence. Nothing is merged.
"""

import os
import time

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetIn,
    Failure,
    MetadataValue,
    Output,
    asset,
    asset_check,
)

from ice_pipeline.assets.common import GROUP_PRODUCTION, OWNERS, MigrationOptions, writer_transaction
from ice_pipeline.db import record_run
from ice_pipeline.logic.candidates import DEFAULT_MAX_BLOCK, find_candidates, neighbour_keys
from ice_pipeline.resources import ProductionDatabase
from ice_pipeline.store.candidates import (
    OPEN_REVIEW_AGES,
    queue_candidates,
    read_all_persons,
    read_focus,
    read_neighbours,
)
from ice_pipeline.summary import CANDIDATES_QUEUED

# Above this many persons in a run, every person is read instead of looking the neighbours up by key.
FOCUS_LOOKUP_LIMIT = 20_000


def run_candidates(cur, person_ids: list[str], run_id: str) -> dict[str, int]:
    """Compare `person_ids` with their blocking neighbours and queue the candidates; returns counts only."""
    focus_ids = sorted(set(person_ids))
    if not focus_ids:
        return {
            "persons_checked": 0,
            "neighbours_read": 0,
            "candidates_found": 0,
            "candidates_queued": 0,
            "blocks_skipped": 0,
            "pairs_compared": 0,
        }
    if len(focus_ids) > FOCUS_LOOKUP_LIMIT:
        # A large run (a first load, a backfill): one read of every person beats ~200 cédula
        # variants per person looked up; the comparison still only pairs the run's persons.
        persons = read_all_persons(cur)
        checked = int(persons["person_id"].isin(focus_ids).sum())
    else:
        focus = read_focus(cur, focus_ids)
        persons = read_neighbours(cur, focus_ids, neighbour_keys(focus))
        checked = len(focus)
    result = find_candidates(persons, focus=persons["person_id"].isin(focus_ids).to_numpy())
    queued = queue_candidates(cur, result.pairs, run_id)
    return {
        "persons_checked": checked,
        "neighbours_read": len(persons) - checked,
        "candidates_found": len(result.pairs),
        "candidates_queued": queued,
        "blocks_skipped": result.stats["blocks_skipped"],
        "pairs_compared": result.stats["pairs_compared"],
    }


@asset(
    ins={"resolved_persons": AssetIn()},
    group_name=GROUP_PRODUCTION,
    owners=OWNERS,
    kinds={"postgres"},
    description="Fuzzy duplicate candidates: the persons this run created or touched, compared with their "
    "blocking neighbours in production (birth date incl. day/month swapped, name, cédula one edit away, "
    "mobile, e-mail). Pairs that look like one person go to the review queue as possible_duplicate with a "
    "score and the evidence; never merged. Metadata: counts only.",
)
def person_candidates(
    context: AssetExecutionContext,
    resolved_persons: pd.DataFrame,
    production_db: ProductionDatabase,
    options: MigrationOptions,
) -> Output[None]:
    started = time.monotonic()
    person_ids = resolved_persons["person_id"].dropna().astype(str).unique().tolist()
    with production_db.connection() as conn, writer_transaction(conn, options) as cur:
        figures = run_candidates(cur, person_ids, context.op_execution_context.run_id)
        record_run(
            cur,
            context.op_execution_context.run_id,
            {CANDIDATES_QUEUED.stats_key: figures["candidates_queued"]},
        )
    context.log.info(
        f"candidates: {figures['persons_checked']} persons checked, "
        f"{figures['candidates_found']} candidate pairs, {figures['candidates_queued']} newly queued"
    )
    metadata = {
        "dry_run": MetadataValue.bool(options.dry_run),
        **figures,
        "seconds": round(time.monotonic() - started, 2),
    }
    return Output(None, metadata=metadata)


def full_scan(conn, run_id: str, *, dry_run: bool = False, max_block: int = DEFAULT_MAX_BLOCK) -> dict:
    """`ice-pipeline candidates --full`: every production person against its blocking neighbours.

    One read of all persons' keys, blocking (never all pairs), the candidates queued once per pair in
    one transaction (rolled back on a dry run). Returns counts only, no personal values.
    """
    started = time.monotonic()
    try:
        with conn.cursor() as cur:
            persons = read_all_persons(cur)
            read_seconds = time.monotonic() - started
            result = find_candidates(persons, max_block=max_block)
            queued = queue_candidates(cur, result.pairs, run_id)
        if dry_run:
            conn.rollback()
        else:
            conn.commit()
    except BaseException:
        conn.rollback()
        raise
    stats = result.stats
    return {
        "run_id": run_id,
        "dry_run": dry_run,
        "persons": len(persons),
        "pairs_blocked": stats["pairs_blocked"],
        "pairs_compared": stats["pairs_compared"],
        "candidates_found": len(result.pairs),
        "candidates_queued": queued,
        "already_asked": len(result.pairs) - queued,
        "blocks_skipped": stats["blocks_skipped"],
        "persons_in_skipped_blocks": stats["persons_in_skipped_blocks"],
        "blocks_skipped_by_key": {
            k.removeprefix("blocks_skipped_"): v for k, v in stats.items() if k.startswith("blocks_skipped_")
        },
        "read_seconds": round(read_seconds, 2),
        "seconds": round(time.monotonic() - started, 2),
    }


# --- the review queue in the Dagster UI -----------------------------------------------------------------------

REVIEW_MAX_AGE_VARIABLE = "ICE_REVIEW_MAX_AGE_DAYS"
DEFAULT_REVIEW_MAX_AGE_DAYS = 14
AGE_BUCKETS = ("under_1_day", "days_1_to_7", "days_7_to_30", "over_30_days")


def review_max_age_days() -> int:
    """ICE_REVIEW_MAX_AGE_DAYS (default 14): how long an item may wait before the check warns."""
    raw = os.environ.get(REVIEW_MAX_AGE_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_REVIEW_MAX_AGE_DAYS
    try:
        value = int(raw)
    except ValueError:
        raise Failure(
            description=f"{REVIEW_MAX_AGE_VARIABLE} must be a whole number of days, got '{raw}'."
        ) from None
    if value < 0:
        raise Failure(description=f"{REVIEW_MAX_AGE_VARIABLE} must not be negative.")
    return value


def review_queue_figures(conn, max_age_days: int) -> dict:
    """Open review items by kind and by age bucket, the oldest's age in days: counts only."""
    with conn.cursor() as cur:
        cur.execute(OPEN_REVIEW_AGES, {"max_age_days": max_age_days})
        names = [d.name for d in cur.description]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    conn.rollback()
    return {
        "open_items": sum(r["open_items"] for r in rows),
        "by_kind": {r["kind"]: int(r["open_items"]) for r in rows},
        "by_age": {bucket: sum(int(r[bucket]) for r in rows) for bucket in AGE_BUCKETS},
        "by_kind_and_age": {r["kind"]: {bucket: int(r[bucket]) for bucket in AGE_BUCKETS} for r in rows},
        "older_than_max": sum(int(r["older_than_max"]) for r in rows),
        "oldest_days": round(max((float(r["oldest_days"]) for r in rows), default=0.0), 1),
        "max_age_days": max_age_days,
    }


def _age_table(figures: dict) -> MetadataValue:
    lines = ["| kind | open | < 1 day | 1–7 days | 7–30 days | > 30 days |", "|---|---:|---:|---:|---:|---:|"]
    for kind, ages in sorted(figures["by_kind_and_age"].items()):
        lines.append(
            f"| {kind} | {figures['by_kind'][kind]} | " + " | ".join(str(ages[b]) for b in AGE_BUCKETS) + " |"
        )
    if len(lines) == 2:
        lines.append("| (none) | 0 | 0 | 0 | 0 | 0 |")
    return MetadataValue.md("\n".join(lines))


@asset_check(
    asset="resolved_persons",
    name="review_queue_age",
    description="The review queue waits for people: open items by kind and by age (counts only, no "
    "personal values). WARN when an item has waited longer than ICE_REVIEW_MAX_AGE_DAYS (default 14) "
    "days: answer it with `ice-pipeline review`.",
)
def review_queue_age(production_db: ProductionDatabase) -> AssetCheckResult:
    max_age = review_max_age_days()
    with production_db.connection() as conn:
        figures = review_queue_figures(conn, max_age)
    return AssetCheckResult(
        passed=figures["older_than_max"] == 0,
        severity=AssetCheckSeverity.WARN,
        description=(
            f"{figures['older_than_max']} open review items waited more than {max_age} days"
            if figures["older_than_max"]
            else f"no open review item older than {max_age} days"
        ),
        metadata={
            "open_items": figures["open_items"],
            "older_than_max_age": figures["older_than_max"],
            "oldest_open_days": figures["oldest_days"],
            "max_age_days": max_age,
            "open_by_kind_and_age": _age_table(figures),
            "open_by_age": MetadataValue.json(figures["by_age"]),
            "open_by_kind": MetadataValue.json(figures["by_kind"]),
        },
    )
