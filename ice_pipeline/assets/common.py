"""What every asset of the migration shares: run options, the writer lock, metadata helpers."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pandas as pd
import psycopg2
from dagster import ConfigurableResource, Failure, MetadataValue
from psycopg2 import errors
from psycopg2.extensions import connection as Connection
from psycopg2.extensions import cursor as Cursor
from pydantic import Field

from ice_pipeline.locks import MIGRATION_LOCK_KEY
from ice_pipeline.schema import check_production_schema
from ice_pipeline.settings import DEFAULT_BATCH_ROWS

GROUP_STAGING = "staging"
GROUP_PRODUCTION = "production"
OWNERS = ["team:ice-data-ops"]


class MigrationOptions(ConfigurableResource):
    """Run options, also settable in the Dagster launchpad (resources.options.config)."""

    dry_run: bool = Field(
        default=False, description="Compute everything, write nothing (production and bucket untouched)."
    )
    limit: int = Field(
        default=DEFAULT_BATCH_ROWS,
        description=(
            "At most this many new/changed student and lead rows in this run, taken together in arrival order, and "
            "at most this many documents (0 = all). A larger backlog is taken in several runs: the sensor launches "
            "the next at once and `ice-pipeline migrate` loops. Bounds the run's memory."
        ),
    )
    full_refresh: bool = Field(
        default=False, description="Re-read every staging row, ignoring the watermarks."
    )
    lock_wait_seconds: int = Field(
        default=600, description="How long to wait for another migration to finish writing."
    )


@dataclass
class StagingBatch:
    """The rows of one staging table to process in this run, and how far they reach."""

    table: str
    rows: pd.DataFrame
    high: tuple[str, int] | None  # (updated_at, id) of the last row read, for the watermark
    retried: int = 0  # rows read again because an earlier run could not load them yet
    limited: bool = False  # the batch limit cut it short: more rows wait for the next run
    # staging_leads only: the lead failures (staging_lead_failures) read with it. The recovered ones are
    # among `rows` (staging_table 'staging_lead_failures'); the rest wait in `failures_rejected` for
    # prod_leads, which writes them and moves the failures' own watermark to `failures_high`.
    failures_read: int = 0
    failures_high: tuple[str, int] | None = None
    failures_rejected: pd.DataFrame | None = None

    def __len__(self) -> int:
        return len(self.rows)


# --- undo (ice_pipeline/undo.py) ---------------------------------------------------
def current_run_id() -> str:
    """The Dagster run writing now ('' outside a run): its changes are logged so that it can be undone."""
    from dagster import DagsterInvariantViolationError, OpExecutionContext

    try:
        return OpExecutionContext.get().run_id
    except DagsterInvariantViolationError:
        return ""


# --- end undo -------------------------------------------------------------------------


@contextmanager
def writer_transaction(conn: Connection, options: MigrationOptions) -> Iterator[Cursor]:
    """One transaction per asset, holding the migration lock; rolled back on dry runs.

    The plan is computed inside this transaction, after the lock, so a second
    migration that waited sees what the first one wrote and duplicates nothing.
    """
    try:
        with conn.cursor() as cur:
            cur.execute("SET LOCAL lock_timeout = %s", (f"{options.lock_wait_seconds}s",))
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
            cur.execute("SET LOCAL lock_timeout = 0")
            cur.execute(
                "SELECT set_config('ice_pipeline.run_id', %s, true)", (current_run_id(),)
            )  # undo's change log
            check_production_schema(conn)
            yield cur
        if options.dry_run:
            conn.rollback()
        else:
            conn.commit()
    except errors.LockNotAvailable:
        conn.rollback()
        raise Failure(
            description=f"Another migration kept the production lock for more than {options.lock_wait_seconds} s; "
            "this run stopped without writing. It will be picked up by the next run."
        ) from None
    except psycopg2.Error as error:
        conn.rollback()
        # The server's DETAIL line can quote the row (personal data): report the
        # primary message and the constraint only.
        diag = error.diag
        where = f" (constraint {diag.constraint_name})" if diag.constraint_name else ""
        raise Failure(
            description=f"Production write failed and was rolled back: "
            f"{diag.message_primary or type(error).__name__}{where}."
        ) from None
    except BaseException:
        conn.rollback()
        raise


def markdown_counts(title: str, counts: pd.Series | dict[str, int]) -> MetadataValue:
    """A small two-column markdown table (reason -> rows) for the UI."""
    items = counts.items() if isinstance(counts, dict) else counts.to_dict().items()
    lines = [f"| {title} | rows |", "|---|---:|"]
    lines += [f"| {key} | {int(value)} |" for key, value in sorted(items, key=lambda kv: -kv[1])]
    if len(lines) == 2:
        lines.append("| (none) | 0 |")
    return MetadataValue.md("\n".join(lines))


def rate(numerator: float, denominator: float) -> float:
    return round(float(numerator) / float(denominator), 4) if denominator else 0.0
