"""Applying the schemas and checking that a production database has what we need.

The SQL lives in `ice_pipeline/sql/`; each file is safe to apply twice.
"""

from __future__ import annotations

from importlib import resources

from psycopg2.extensions import connection as Connection

from ice_pipeline.locks import SCHEMA_LOCK_KEY

STAGING_SCHEMA = "staging_schema.sql"
PRODUCTION_BASELINE = "production_baseline.sql"
PRODUCTION_MIGRATION = "20251105_add_staging_fields.sql"
PIPELINE_SCHEMA = "ice_pipeline_schema.sql"
REVIEW_DECISIONS_UPGRADE = "ice_pipeline_review_decisions.sql"  # old decision text -> decision columns
PIPELINE_CHANGES = "ice_pipeline_changes.sql"  # the change log that `undo` reads (ice_pipeline/undo.py)

# What the pipeline writes or reads in production, by table (DESIGN §3.2/§3.3).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "persons": (
        "id",
        "full_name",
        "email",
        "phone",
        "city",
        "address",
        "cedula",
        "birth_date",
        "country",
        "data_source",
        "original_name",
        "csv_enriched",
        "created_at",
        "updated_at",
    ),
    "students": (
        "id",
        "person_id",
        "student_number",
        "program",
        "status",
        "data_source",
        "csv_enriched",
        "created_at",
        "updated_at",
    ),
    "services": ("id", "name", "created_at", "updated_at"),
    "events": ("id", "name", "event_date", "location", "service_id", "created_at", "updated_at"),
    "leads": (
        "id",
        "person_id",
        "service_id",
        "event_id",
        "lead_date",
        "lead_status",
        "notes",
        "program_type",
        "source_file",
        "source_sheet",
        "source_row",
        "created_at",
        "updated_at",
    ),
    "student_documents": (
        "id",
        "student_id",
        "document_type",
        "file_name",
        "object_key",
        "bucket",
        "file_size",
        "mime_type",
        "checksum",
        "original_file_path",
        "storage_provider",
        "status",
        "created_at",
        "updated_at",
    ),
}
REQUIRED_PIPELINE_COLUMNS: dict[str, tuple[str, ...]] = {
    "source_links": (
        "staging_table",
        "staging_id",
        "entity",
        "entity_id",
        "matched_by",
        "run_id",
        "warnings",
    ),
    "rejected_rows": ("staging_table", "staging_id", "reason", "details", "retryable", "run_id"),
    "review_queue": (
        "id",
        "kind",
        "staging_table",
        "staging_id",
        "person_id",
        "candidate_person_id",
        "field",
        "existing_value",
        "incoming_value",
        "score",
        "status",
        "decision",
    ),
    "watermarks": ("staging_table", "high_updated_at", "high_id", "run_id"),
    "runs": ("run_id",),
}
STAGING_TABLES = (
    "staging_student",
    "staging_lead",
    "staging_document",
    "staging_reference_data",
    "staging_lead_failures",
)


class SchemaError(RuntimeError):
    """A database lacks tables or columns the pipeline needs; the message names them."""


def sql_file(name: str) -> str:
    return resources.files("ice_pipeline.sql").joinpath(name).read_text(encoding="utf-8")


def _apply(conn: Connection, names: tuple[str, ...]) -> None:
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
        for name in names:
            cur.execute(sql_file(name))


def init_staging(conn: Connection) -> None:
    """Create the V3 staging tables (dev/test: V3 owns them in real life)."""
    _apply(conn, (STAGING_SCHEMA,))


def init_production(conn: Connection, *, baseline: bool) -> None:
    """Production migration + ice_pipeline schema; with `baseline`, the Prisma baseline first."""
    names = (PRODUCTION_BASELINE,) if baseline else ()
    if not baseline:
        missing_tables = [t for t in REQUIRED_COLUMNS if t not in _existing_columns(conn)]
        if missing_tables:
            raise SchemaError(
                "The production database lacks the ICE bot's tables "
                f"({', '.join(missing_tables)}): apply the bot's Prisma migrations first, "
                "or use `ice-pipeline db init` for a development database."
            )
    _apply(conn, names + (PRODUCTION_MIGRATION, PIPELINE_SCHEMA, REVIEW_DECISIONS_UPGRADE, PIPELINE_CHANGES))


def _existing_columns(conn: Connection, schema: str = "public") -> dict[str, set[str]]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = %s",
            (schema,),
        )
        rows = cur.fetchall()
    found: dict[str, set[str]] = {}
    for table, column in rows:
        found.setdefault(table, set()).add(column)
    return found


def missing_production_objects(conn: Connection) -> list[str]:
    """Every required table/column the production database lacks, as `table.column` names."""
    missing: list[str] = []
    for schema, required, prefix in (
        ("public", REQUIRED_COLUMNS, ""),
        ("ice_pipeline", REQUIRED_PIPELINE_COLUMNS, "ice_pipeline."),
    ):
        existing = _existing_columns(conn, schema)
        for table, columns in required.items():
            if table not in existing:
                missing.append(f"{prefix}{table}")
                continue
            missing.extend(f"{prefix}{table}.{c}" for c in columns if c not in existing[table])
    return missing


def check_production_schema(conn: Connection) -> None:
    """Stop before writing if production lacks anything we need, naming what."""
    missing = missing_production_objects(conn)
    if missing:
        raise SchemaError(
            "The production database is missing "
            + ", ".join(missing)
            + ": run `ice-pipeline db migrate` (or apply prisma/migrations/20251105_add_staging_fields)."
        )


def check_staging_schema(conn: Connection) -> None:
    """Stop with a clear message when the staging database lacks the V3 tables."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
            "AND table_name = ANY(%s)",
            (list(STAGING_TABLES),),
        )
        present = {row[0] for row in cur.fetchall()}
    missing = [t for t in STAGING_TABLES if t not in present]
    if missing:
        raise SchemaError(
            "The staging database has no "
            + ", ".join(missing)
            + ": check STAGING_DATABASE_URL points at the V3 database (leads_project), "
            "or run `ice-pipeline db init` for a development one."
        )
