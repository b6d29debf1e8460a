"""The Dagster code location: assets, checks, job, schedule, sensor and resources.

Importing it has no side effect (no `.env`, no environment writes, no probing
of the embedded services): `ice-pipeline` and the launcher set the
environment before Dagster loads this module.
"""

from dagster import Definitions, EnvVar, in_process_executor

# --- candidates (issue 13): fuzzy duplicate candidates, queued for review every run ---
from ice_pipeline.assets.candidates import person_candidates, review_queue_age

# --- end candidates ---
from ice_pipeline.assets.common import MigrationOptions
from ice_pipeline.assets.documents import prod_documents
from ice_pipeline.assets.leads import prod_leads
from ice_pipeline.assets.persons import resolved_persons
from ice_pipeline.assets.reference import prod_services_events
from ice_pipeline.assets.review import applied_review_decisions
from ice_pipeline.assets.staging import staging_tables
from ice_pipeline.assets.students import prod_students
from ice_pipeline.batches import in_memory_batches
from ice_pipeline.checks import build_checks
from ice_pipeline.jobs import daily_migration, daily_verification, migrate_to_production, verify_production
from ice_pipeline.resources import DocumentStore, MigrationLock, ProductionDatabase, StagingDatabase
from ice_pipeline.sensors import new_staging_rows


def build_resources() -> dict:
    """Resources from the environment (DESIGN §3); secrets only through EnvVar."""
    return {
        "staging_db": StagingDatabase(url=EnvVar("STAGING_DATABASE_URL")),
        "production_db": ProductionDatabase(url=EnvVar("DATABASE_URL")),
        "migration_lock": MigrationLock(url=EnvVar("DATABASE_URL")),
        "document_store": DocumentStore(
            endpoint=EnvVar("MINIO_ENDPOINT"),
            access_key=EnvVar("MINIO_ACCESS_KEY"),
            secret_key=EnvVar("MINIO_SECRET_KEY"),
            bucket=EnvVar("MINIO_BUCKET"),
            secure=EnvVar("MINIO_SECURE"),
            files_root=EnvVar("STAGING_FILES_ROOT"),
        ),
        "options": MigrationOptions(),
        # Batches between assets stay in the run's memory, never pickled on disk (batches.py).
        "io_manager": in_memory_batches,
    }


defs = Definitions(
    assets=[
        applied_review_decisions,
        staging_tables,
        resolved_persons,
        prod_services_events,
        prod_students,
        prod_leads,
        prod_documents,
        person_candidates,
    ],  # person_candidates: issue 13
    asset_checks=[
        *build_checks(),
        review_queue_age,
    ],  # every check (ice_pipeline/checks/); review age: issue 13
    jobs=[migrate_to_production, verify_production],
    schedules=[daily_migration, daily_verification],
    sensors=[new_staging_rows],
    resources=build_resources(),
    # Every launch path in one process ("Materialize all" = __ASSET_JOB, single assets,
    # schedule, sensor, CLI): the in-memory batches need it, and it is the fast path.
    executor=in_process_executor,
)
