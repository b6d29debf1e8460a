"""Sensor `new_staging_rows`: launch the migration when V3 wrote new or changed rows.

Cheap by design: one index-backed `ORDER BY updated_at DESC, id DESC LIMIT 1`
per staging table, compared with the watermarks committed in production.
The cursor only remembers which state already launched a run; what was
processed is the watermark, so a failed or killed run is simply picked up
again by the next tick.
"""


import hashlib
import json

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason, sensor

from ice_pipeline.jobs import migrate_to_production
from ice_pipeline.resources import ProductionDatabase, StagingDatabase

WATCHED_TABLES = ("staging_student", "staging_lead", "staging_document")
LATEST_ROW = {
    "staging_student": "SELECT updated_at, id FROM staging_student ORDER BY updated_at DESC, id DESC LIMIT 1",
    "staging_lead": "SELECT updated_at, id FROM staging_lead ORDER BY updated_at DESC, id DESC LIMIT 1",
    "staging_document": "SELECT updated_at, id FROM staging_document ORDER BY updated_at DESC, id DESC LIMIT 1",
}
WATERMARKS = "SELECT staging_table, high_updated_at, high_id FROM ice_pipeline.watermarks"


def pending_work(staging_db: StagingDatabase, production_db: ProductionDatabase) -> dict[str, dict]:
    """Per staging table with unprocessed rows: its latest (updated_at, id) and the watermark."""
    with staging_db.connection() as conn, conn.cursor() as cur:
        latest = {}
        for table in WATCHED_TABLES:
            cur.execute(LATEST_ROW[table])
            row = cur.fetchone()
            if row:
                latest[table] = row
        conn.rollback()
    with production_db.connection() as conn, conn.cursor() as cur:
        cur.execute(WATERMARKS)
        marks = {table: (ts, high_id) for table, ts, high_id in cur.fetchall()}
        conn.rollback()
    return {
        table: {"latest": [row[0].isoformat(), row[1]],
                "watermark": [marks[table][0].isoformat(), marks[table][1]] if table in marks else None}
        for table, row in latest.items()
        if table not in marks or (row[0], row[1]) > marks[table]
    }


def run_key_for(work: dict[str, dict]) -> str:
    """Stable key of the staging high-water marks: the same batch is never launched twice."""
    latest = {table: info["latest"] for table, info in sorted(work.items())}
    return "staging-" + hashlib.sha256(json.dumps(latest, sort_keys=True).encode()).hexdigest()[:16]


@sensor(
    name="new_staging_rows",
    job=migrate_to_production,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.STOPPED,
    description="Launches migrate_to_production when the staging tables hold rows newer than the production "
    "watermarks (after a V3 ingestion). Skips, saying why, when there is nothing new.",
)
def new_staging_rows(context: SensorEvaluationContext, staging_db: StagingDatabase,
                     production_db: ProductionDatabase):
    work = pending_work(staging_db, production_db)
    if not work:
        return SkipReason("No new or changed staging rows since the last migration (watermarks are up to date).")
    key = run_key_for(work)
    if context.cursor == key:
        return SkipReason(f"Rows pending in {', '.join(sorted(work))}, but run {key} was already requested for "
                          "this state; waiting for it to finish.")
    context.update_cursor(key)
    pending = ", ".join(f"{t} up to id {info['latest'][1]}" for t, info in sorted(work.items()))
    return RunRequest(run_key=key, tags={"ice_pipeline/trigger": "new_staging_rows"},
                      run_config={}, job_name=migrate_to_production.name) if pending else None
