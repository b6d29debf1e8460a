"""applied_review_decisions: the decisions people recorded in review, applied before identity resolution.

Field conflicts, duplicate pairs and false merges a person decided are applied here (merges and
splits of production persons happen only by such a decision), one transaction per item under
the migration lock, so that resolved_persons then resolves against the persons as decided.
Identity decisions are applied by resolved_persons itself, when it links the row.
"""

import time

from dagster import AssetExecutionContext, Failure, MetadataValue, Output, asset
from psycopg2 import errors

from ice_pipeline.assets.common import GROUP_PRODUCTION, OWNERS, MigrationOptions, markdown_counts
from ice_pipeline.db import record_run
from ice_pipeline.resources import ProductionDatabase
from ice_pipeline.review.apply import apply_decisions, pending_decisions
from ice_pipeline.schema import check_production_schema


@asset(
    group_name=GROUP_PRODUCTION,
    owners=OWNERS,
    kinds={"postgres"},
    description="Applies the review decisions people recorded (`ice-pipeline review resolve|import`): a value "
    "taken from the incoming row, two persons merged into one, a person split in two, or the question closed. "
    "Runs before identity resolution. Output: how many decisions of each kind were applied.",
)
def applied_review_decisions(
    context: AssetExecutionContext, production_db: ProductionDatabase, options: MigrationOptions
) -> Output[dict]:
    started = time.monotonic()
    with production_db.connection() as conn:
        check_production_schema(conn)
        try:
            figures, refused, by_kind = _apply(context, conn, options)
        except (errors.UndefinedColumn, errors.UndefinedTable):
            raise Failure(
                description="The production database lacks the review tables/columns of this release "
                "(review_queue.decision_kind, ice_pipeline.person_moves, ...): run "
                "`ice-pipeline db migrate`."
            ) from None
    for item_id, reason in refused.items():
        context.log.warning(f"review item {item_id}: decision not applied, back in the queue: {reason}")
    metadata = {
        **figures,
        "dry_run": MetadataValue.bool(options.dry_run),
        "applied_by_decision": markdown_counts("decision", by_kind),
        "seconds": round(time.monotonic() - started, 2),
    }
    return Output(figures, metadata=metadata)


def _apply(context: AssetExecutionContext, conn, options: MigrationOptions) -> tuple[dict, dict, dict]:
    """(figures, refused item -> reason, count by decision)."""
    if options.dry_run:
        # A dry run writes nothing: it says what the real run would apply.
        pending = pending_decisions(conn)
        figures = {
            "review_decisions_applied": sum(pending.values()),
            "review_decisions_refused": 0,
            **{f"review_{kind}": n for kind, n in sorted(pending.items())},
        }
        return figures, {}, pending
    result = apply_decisions(conn, context.op_execution_context.run_id)
    figures = result.as_metadata()
    with conn, conn.cursor() as cur:
        record_run(cur, context.op_execution_context.run_id, figures)
    return figures, result.refused, result.applied
