"""Sensor `new_staging_rows`: launch the migration when V3 wrote new or changed rows.

Cheap by design: per staging table one index-backed
`ORDER BY updated_at DESC, id DESC LIMIT 1` (index `(updated_at, id)`, see
staging_schema.sql: a backward index scan reading one row, never a full scan),
compared with the watermarks committed in production with the data.

- Nothing beyond the watermarks (and no identity decision from review
  waiting to be applied): skip, saying so.
- Work pending: one RunRequest whose `run_key` is a hash of the staging
  high-water marks (latest `(updated_at, id)` of every watched table), so the
  same staging state is never launched twice (Dagster drops a repeated
  run_key; the cursor makes the sensor say so instead of asking again).
- A migration run already queued or running (the daily schedule's, a
  retry's, an operator's): skip, saying which -- never two migrations at once.
- The cursor only decides whether to launch: what was processed is the
  watermark, so a failed or killed run is picked up by the next run (a
  retry, the daily schedule, or the sensor as soon as V3 writes again).

On by default (DefaultSensorStatus.RUNNING). The daily schedule (jobs.py) asks
the same questions, so the two together never launch a run for nothing.
"""

import hashlib
import json

import psycopg2
from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)
from dagster._core.errors import DagsterInvariantViolationError
from psycopg2 import errors

from ice_pipeline.jobs import SERIAL_TAG, migrate_to_production
from ice_pipeline.resources import ProductionDatabase, StagingDatabase
from ice_pipeline.store.review import PENDING_DECISIONS
from ice_pipeline.store.staging import SET_UTC_TIME_ZONE

SENSOR_NAME = "new_staging_rows"
MINIMUM_INTERVAL_SECONDS = 60
WATCHED_TABLES = ("staging_student", "staging_lead", "staging_document", "staging_lead_failures")
# Fixed strings per table (no identifiers built from data).
LATEST_ROW = {
    "staging_student": "SELECT updated_at, id FROM staging_student ORDER BY updated_at DESC, id DESC LIMIT 1",
    "staging_lead": "SELECT updated_at, id FROM staging_lead ORDER BY updated_at DESC, id DESC LIMIT 1",
    "staging_document": "SELECT updated_at, id FROM staging_document ORDER BY updated_at DESC, id DESC LIMIT 1",
    # Written once, never updated: its order (and watermark) is (created_at, id). A small table, no index.
    "staging_lead_failures": "SELECT created_at, id FROM staging_lead_failures "
    "ORDER BY created_at DESC, id DESC LIMIT 1",
}
WATERMARKS = "SELECT staging_table, high_updated_at, high_id FROM ice_pipeline.watermarks"
# Decisions an operator recorded (`ice-pipeline review`) that no run has applied yet: the next run
# applies them (applied_review_decisions) and re-reads the rows they are about (store/staging.py).
DECISIONS = PENDING_DECISIONS


# Rows an earlier run could not load yet (a document waiting for its file or its student): the daily run
# retries them (assets/staging.py reads them again whatever the watermark).
RETRYABLE = "SELECT count(*) FROM ice_pipeline.rejected_rows WHERE retryable"
IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]


class SensorSetupError(RuntimeError):
    """A database the sensor polls lacks its tables; the message says which command fixes it."""


def staging_high_water_marks(staging_db: StagingDatabase) -> dict[str, tuple]:
    """Latest (updated_at, id) of each watched staging table that has rows."""
    with staging_db.connection() as conn:
        try:
            with conn.cursor() as cur:
                cur.execute(SET_UTC_TIME_ZONE)  # stable isoformat, hence stable run keys
                latest = {}
                for table in WATCHED_TABLES:
                    cur.execute(LATEST_ROW[table])
                    row = cur.fetchone()
                    if row:
                        latest[table] = (row[0], int(row[1]))
        except errors.UndefinedTable:
            raise SensorSetupError(
                "The staging database (STAGING_DATABASE_URL) has no staging_student/staging_lead/"
                "staging_document tables: point it at V3's leads_project database (or run `ice-pipeline db init`)."
            ) from None
        finally:
            conn.rollback()
    return latest


def production_progress(production_db: ProductionDatabase) -> tuple[dict[str, tuple], tuple[int, int | None]]:
    """(high_updated_at, high_id) per staging table, as committed with the data; and the
    identity decisions waiting for a run, as (how many, highest review item id)."""
    with production_db.connection() as conn:
        try:
            with conn.cursor() as cur:
                cur.execute(WATERMARKS)
                marks = {table: (ts, int(high_id)) for table, ts, high_id in cur.fetchall()}
                try:
                    cur.execute(DECISIONS)
                    count, high = cur.fetchone()
                except errors.UndefinedColumn:  # a schema from before review decisions
                    conn.rollback()
                    count, high = 0, None
                return marks, (int(count), high)
        except (errors.UndefinedTable, errors.InvalidSchemaName):
            raise SensorSetupError(
                "The production database (DATABASE_URL) has no ice_pipeline schema (watermarks, review_queue): run "
                "`ice-pipeline db migrate` once before enabling the sensor."
            ) from None
        finally:
            conn.rollback()


def retryable_rows(production_db: ProductionDatabase) -> int:
    """Rejected rows that a later run may still load."""
    with production_db.connection() as conn:
        try:
            with conn.cursor() as cur:
                cur.execute(RETRYABLE)
                return int(cur.fetchone()[0])
        finally:
            conn.rollback()


def migration_in_flight(context) -> str | None:
    """Id of a migration run (tag ice_pipeline/serial=migration) queued or running on the instance, if any.

    None also when the context has no instance (unit evaluation without one)."""
    try:
        instance: DagsterInstance = context.instance
    except DagsterInvariantViolationError:
        return None
    runs = instance.get_runs(filters=RunsFilter(tags=SERIAL_TAG, statuses=IN_FLIGHT), limit=1)
    return runs[0].run_id if runs else None


def poll(
    staging_db: StagingDatabase, production_db: ProductionDatabase
) -> tuple[dict, dict, tuple[int, int | None]]:
    """(staging high-water marks, production watermarks, review decisions waiting), errors made safe to show."""
    try:
        latest = staging_high_water_marks(staging_db)
        marks, decisions = production_progress(production_db)
    except psycopg2.Error as error:
        # Never the server's DETAIL line (it can quote data): the primary message only.
        message = error.diag.message_primary or type(error).__name__
        raise SensorSetupError(f"Polling the staging/production databases failed: {message}.") from None
    return latest, marks, decisions


def _mark(value: tuple | None) -> list | None:
    return [value[0].isoformat(), value[1]] if value else None


def pending_work(latest: dict[str, tuple], marks: dict[str, tuple]) -> dict[str, dict]:
    """Per staging table with unprocessed rows: its latest (updated_at, id) and the watermark."""
    return {
        table: {"latest": _mark(row), "watermark": _mark(marks.get(table))}
        for table, row in latest.items()
        if table not in marks or row > marks[table]
    }


def run_key_for(
    latest: dict[str, tuple],
    decisions: tuple[int, int | None] = (0, None),
    marks: dict[str, tuple] | None = None,
) -> str:
    """Stable key of the staging high-water marks (all watched tables), the production watermarks
    and the review decisions waiting for a run: one state, one run. The watermarks are part of it
    so that a run that could only take part of the rows (a V3 transaction still open) is followed
    by another once it has committed, while a failed run (nothing moved) is not relaunched."""
    state: dict = {table: _mark(latest.get(table)) for table in WATCHED_TABLES}
    if marks:
        state["processed"] = {table: _mark(marks.get(table)) for table in WATCHED_TABLES}
    if decisions[0]:
        state["review_decisions"] = list(decisions)
    return "staging-" + hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:16]


def _describe(work: dict[str, dict], decisions: tuple[int, int | None]) -> str:
    parts = []
    for table, info in sorted(work.items()):
        since = (
            f"since id {info['watermark'][1]} @ {info['watermark'][0]}"
            if info["watermark"]
            else "never processed"
        )
        parts.append(f"{table} up to id {info['latest'][1]} @ {info['latest'][0]} ({since})")
    if decisions[0]:
        parts.append(f"{decisions[0]} identity decision(s) from review to apply")
    return "; ".join(parts)


@sensor(
    name=SENSOR_NAME,
    job=migrate_to_production,
    minimum_interval_seconds=MINIMUM_INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
    description="Launches migrate_to_production when the staging tables hold rows newer than the production "
    "watermarks (after a V3 ingestion, or V3 re-ingesting rows with updated_at moved). One run per staging "
    "state (run_key = hash of the staging high-water marks); skips, saying why, when there is nothing new or a "
    "migration run is already queued or running.",
)
def new_staging_rows(
    context: SensorEvaluationContext, staging_db: StagingDatabase, production_db: ProductionDatabase
):
    latest, marks, decisions = poll(staging_db, production_db)
    work = pending_work(latest, marks)
    if not latest:
        return SkipReason("The staging tables are empty: nothing to migrate.")
    if not work and not decisions[0]:
        return SkipReason(
            "No new or changed staging rows since the last migration "
            "(the production watermarks are up to date)."
        )
    key = run_key_for(latest, decisions, marks)
    if context.cursor == key:
        return SkipReason(
            f"Work is pending ({_describe(work, decisions)}), but run {key} was already requested for exactly "
            "this staging state: waiting for it. If it failed, it is retried by the run-retry policy, the daily "
            "schedule or the next V3 ingestion (or launch migrate_to_production by hand)."
        )
    busy = migration_in_flight(context)
    if busy:
        return SkipReason(
            f"Work is pending ({_describe(work, decisions)}), but migration run {busy} is queued or "
            "running: one migration at a time. The next tick looks again once it is done."
        )
    context.update_cursor(key)
    context.log.info(f"launching {migrate_to_production.name} ({key}): {_describe(work, decisions)}")
    return RunRequest(
        run_key=key,
        job_name=migrate_to_production.name,
        tags={"ice_pipeline/trigger": SENSOR_NAME, "ice_pipeline/staging_state": key},
    )
