"""The Dagster code location: assets, checks, job, schedule, sensor and resources."""


from dagster import Definitions, EnvVar

from ice_pipeline.assets.common import MigrationOptions
from ice_pipeline.assets.documents import prod_documents
from ice_pipeline.assets.leads import prod_leads
from ice_pipeline.assets.persons import resolved_persons
from ice_pipeline.assets.reference import prod_services_events
from ice_pipeline.assets.staging import staging_tables
from ice_pipeline.assets.students import prod_students
from ice_pipeline.checks import build_checks
from ice_pipeline.jobs import daily_migration, daily_verification, migrate_to_production, verify_production
from ice_pipeline.resources import DocumentStore, MigrationLock, ProductionDatabase, StagingDatabase
from ice_pipeline.sensors import new_staging_rows
from ice_pipeline.settings import apply_environment

# With no variables set, use the embedded services of `ice-pipeline local up`.
apply_environment()


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
    }


defs = Definitions(
    assets=[staging_tables, resolved_persons, prod_services_events, prod_students, prod_leads, prod_documents],
    asset_checks=build_checks(),  # every check, the document checks included (ice_pipeline/checks/)
    jobs=[migrate_to_production, verify_production],
    schedules=[daily_migration, daily_verification],
    sensors=[new_staging_rows],
    resources=build_resources(),
)
