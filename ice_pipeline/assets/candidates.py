"""person_candidates: every run, the persons it created or touched against their neighbours in production.

Exact keys decide identity; this asset puts what they cannot decide in front of a person: pairs of
production persons that look like one (a name typo, a dropped surname, a cédula one digit off, day and
month swapped) are queued as `possible_duplicate` with a score and the evidence. Nothing is merged.
"""

import time

import pandas as pd
from dagster import AssetExecutionContext, AssetIn, MetadataValue, Output, asset

from ice_pipeline.assets.common import GROUP_PRODUCTION, OWNERS, MigrationOptions, writer_transaction
from ice_pipeline.db import record_run
from ice_pipeline.logic.candidates import DEFAULT_MAX_BLOCK, find_candidates, neighbour_keys
from ice_pipeline.resources import ProductionDatabase
from ice_pipeline.store.candidates import queue_candidates, read_all_persons, read_focus, read_neighbours


def run_candidates(cur, person_ids: list[str], run_id: str) -> dict[str, int]:
    """Compare `person_ids` with their blocking neighbours and queue the candidates; returns counts only."""
    focus_ids = sorted(set(person_ids))
    if not focus_ids:
        return {"persons_checked": 0, "neighbours_read": 0, "candidates_found": 0, "candidates_queued": 0,
                "blocks_skipped": 0, "pairs_compared": 0}
    focus = read_focus(cur, focus_ids)
    persons = read_neighbours(cur, focus_ids, neighbour_keys(focus))
    result = find_candidates(persons, focus=persons["person_id"].isin(focus_ids).to_numpy())
    queued = queue_candidates(cur, result.pairs, run_id)
    return {"persons_checked": len(focus), "neighbours_read": len(persons) - len(focus),
            "candidates_found": len(result.pairs), "candidates_queued": queued,
            "blocks_skipped": result.stats["blocks_skipped"], "pairs_compared": result.stats["pairs_compared"]}


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
def person_candidates(context: AssetExecutionContext, resolved_persons: pd.DataFrame,
                      production_db: ProductionDatabase, options: MigrationOptions) -> Output[None]:
    started = time.monotonic()
    person_ids = resolved_persons["person_id"].dropna().astype(str).unique().tolist()
    with production_db.connection() as conn, writer_transaction(conn, options) as cur:
        figures = run_candidates(cur, person_ids, context.run_id)
        record_run(cur, context.run_id, {"candidates_queued": figures["candidates_queued"]})
    context.log.info(f"candidates: {figures['persons_checked']} persons checked, "
                     f"{figures['candidates_found']} candidate pairs, {figures['candidates_queued']} newly queued")
    metadata = {"dry_run": MetadataValue.bool(options.dry_run), **figures,
                "seconds": round(time.monotonic() - started, 2)}
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
    return {"run_id": run_id, "dry_run": dry_run, "persons": len(persons), "pairs_blocked": stats["pairs_blocked"],
            "pairs_compared": stats["pairs_compared"], "candidates_found": len(result.pairs),
            "candidates_queued": queued, "already_asked": len(result.pairs) - queued,
            "blocks_skipped": stats["blocks_skipped"],
            "persons_in_skipped_blocks": stats["persons_in_skipped_blocks"],
            "blocks_skipped_by_key": {k.removeprefix("blocks_skipped_"): v for k, v in stats.items()
                                      if k.startswith("blocks_skipped_")},
            "read_seconds": round(read_seconds, 2), "seconds": round(time.monotonic() - started, 2)}
