"""The migration job and its daily schedule; the verification job and its daily schedule."""

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    in_process_executor,
    schedule,
)

from ice_pipeline.checks.scope import WHOLE_DATABASE_TAG
from ice_pipeline.resources import ProductionDatabase, StagingDatabase

MIGRATION_JOB = "migrate_to_production"
VERIFICATION_JOB = "verify_production"
# dagster.yaml limits runs with this tag to one at a time.
SERIAL_TAG = {"ice_pipeline/serial": "migration"}

migrate_to_production = define_asset_job(
    MIGRATION_JOB,
    selection=AssetSelection.all(),
    description="Staging -> production: persons, students, leads, documents, with their checks. Incremental: "
    "only rows new or changed since the last successful run.",
    # One process for the whole run: steps share nothing but the database, and a
    # step-per-process executor would only add start-up time.
    executor_def=in_process_executor,
    tags={**SERIAL_TAG, "dagster/retry_strategy": "ALL_STEPS"},
)


@schedule(
    name="daily_migration",
    job=migrate_to_production,
    cron_schedule="0 2 * * *",
    execution_timezone="America/Bogota",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Every day at 02:00 Bogotá time, after the nightly V3 ingestion: an incremental migration -- "
    "unless there is nothing to do (no new or changed staging row, no review decision to apply, no rejected "
    "row to retry) or a migration run is already queued or running (the sensor's): it skips, saying why.",
)
def daily_migration(
    context: ScheduleEvaluationContext, staging_db: StagingDatabase, production_db: ProductionDatabase
):
    from ice_pipeline import sensors  # sensors imports this module

    busy = sensors.migration_in_flight(context)
    if busy:
        return SkipReason(f"Migration run {busy} is queued or running: one migration at a time.")
    latest, marks, decisions = sensors.poll(staging_db, production_db)
    work = sensors.pending_work(latest, marks)
    retries = sensors.retryable_rows(production_db)
    if not work and not decisions[0] and not retries:
        return SkipReason(
            "Nothing to migrate: no new or changed staging rows since the last migration, no review "
            "decision to apply, no rejected row to retry."
        )
    return RunRequest(
        tags={
            "ice_pipeline/trigger": "daily_migration",
            "ice_pipeline/staging_state": sensors.run_key_for(latest, decisions, marks),
        }
    )


# Every asset check, no asset: reads only, so it needs no migration slot. The run tag makes each check
# look at the whole database (ice_pipeline/checks/scope.py) -- the rules `ice-pipeline report` runs.
verify_production = define_asset_job(
    VERIFICATION_JOB,
    selection=AssetSelection.all_asset_checks(),
    description="Every asset check over the whole database (staging, production and the bucket): duplicates, "
    "orphans, accounting, objects present. Catches what the bot or a person wrote since the last migration.",
    executor_def=in_process_executor,
    tags=WHOLE_DATABASE_TAG,
)

daily_verification = ScheduleDefinition(
    name="daily_verification",
    job=verify_production,
    cron_schedule="0 6 * * *",
    execution_timezone="America/Bogota",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Every day at 06:00 Bogotá time (after the 02:00 migration): every check over the whole database.",
)
