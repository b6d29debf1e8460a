"""Foundation: schemas, the command line's contract (DESIGN §3, §6) and the deployment files.

Real PostgreSQL and S3 (the `services` / `pipeline` fixtures of conftest.py);
the command line is exercised as a user runs it: `.venv/bin/ice-pipeline` in
a subprocess, with the fixture's environment.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import psycopg2
import pytest
import yaml
from psycopg2 import errors
from sqlalchemy.engine import make_url

from ice_pipeline.schema import SchemaError, check_production_schema, init_production, init_staging

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # .venv/bin when run as `.venv/bin/python -m pytest`
ICE = BIN / "ice-pipeline"
DAGSTER = BIN / "dagster"

# DESIGN §3: every variable the pipeline reads.
DESIGN_VARIABLES = (
    "STAGING_DATABASE_URL",
    "DATABASE_URL",
    "MINIO_ENDPOINT",
    "MINIO_ACCESS_KEY",
    "MINIO_SECRET_KEY",
    "MINIO_BUCKET",
    "MINIO_SECURE",
    "STAGING_FILES_ROOT",
    "DAGSTER_HOME",
    "DAGSTER_PG_URL",
)
# DESIGN §6: the keys `ice-pipeline migrate --json` prints at least.
SUMMARY_KEYS = (
    "persons_created",
    "persons_updated",
    "students_created",
    "students_updated",
    "leads_created",
    "leads_updated",
    "documents_uploaded",
    "documents_skipped",
    "rows_rejected",
    "rows_in_review",
    "checks_failed",
)
PRISMA_TABLES = ("agencies", "persons", "students", "services", "events", "leads", "student_documents")
PASSWORD = "s3cret-PW"


# --- helpers ------------------------------------------------------------------


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def admin(services) -> psycopg2.extensions.connection:
    conn = psycopg2.connect(host="127.0.0.1", port=services.pg_port, user="postgres", dbname="postgres")
    conn.autocommit = True
    return conn


@contextmanager
def scratch_database(services) -> Iterator[str]:
    """An empty database (no table at all); yields its URL."""
    name = f"empty_{uuid.uuid4().hex[:10]}"
    with closing(admin(services)) as conn, conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:{services.pg_port}/{name}"
    finally:
        with closing(admin(services)) as conn, conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cli_env(pipeline, tmp_path: Path, **overrides: str) -> dict[str, str]:
    """The fixture's environment; nothing may fall back to other embedded services."""
    env = {**os.environ, **pipeline.env, "ICE_LOCAL_DIR": str(tmp_path / "no-embedded-services")}
    env.pop("ICE_PIPELINE_VERBOSE", None)
    env.update(overrides)
    return env


def ephemeral_dagster_env(pipeline, tmp_path: Path, **overrides: str) -> dict[str, str]:
    """As cli_env, with an ephemeral Dagster instance (no DAGSTER_HOME, no DAGSTER_PG_URL): for runs
    expected to fail at once, where a real instance would only add seconds.
    (A real instance in an empty DAGSTER_HOME: test_demo_data_then_migrate_json_then_report.)"""
    env = cli_env(pipeline, tmp_path, **overrides)
    env.pop("DAGSTER_HOME", None)
    env.pop("DAGSTER_PG_URL", None)
    return env


def run(
    command: list[str], env: dict[str, str], cwd: Path, timeout: float = 240
) -> subprocess.CompletedProcess:
    # cwd: a directory without .env, so only `env` configures the command.
    return subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def ice(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return run([str(ICE), *args], env, cwd)


def final_message(result: subprocess.CompletedProcess) -> str:
    """The CLI's own closing sentence on stderr (`error: ...` / `migration failed: ...`)."""
    text = flat(result.stderr)
    start = max(text.rfind("error:"), text.rfind("migration failed:"))
    assert start >= 0, f"no error sentence on stderr:\n{result.stderr[-3000:]}"
    return text[start:]


def assert_clean_failure(result: subprocess.CompletedProcess, variable: str) -> str:
    """Non-zero exit, one sentence naming `variable`, no traceback, no password anywhere."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert PASSWORD not in output
    message = final_message(result)
    assert re.search(rf"(?<![A-Z_]){variable}\b", message), message
    return message


def snapshot(url: str, schemas: tuple[str, ...]) -> dict[str, list[tuple]]:
    """Tables, columns, indexes, constraints, functions and enums of `schemas`."""
    queries = {
        "tables": """SELECT table_schema, table_name, table_type FROM information_schema.tables
                     WHERE table_schema = ANY(%(s)s)""",
        "columns": """SELECT table_schema, table_name, column_name, ordinal_position, data_type, udt_name,
                             character_maximum_length, is_nullable, column_default
                      FROM information_schema.columns WHERE table_schema = ANY(%(s)s)""",
        "indexes": "SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = ANY(%(s)s)",
        "constraints": """SELECT n.nspname, c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
                          FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
                          WHERE n.nspname = ANY(%(s)s)""",
        "functions": """SELECT n.nspname, p.proname, pg_get_functiondef(p.oid) FROM pg_proc p
                        JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = ANY(%(s)s)""",
        "enums": """SELECT t.typname, e.enumlabel, e.enumsortorder FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
                    JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = ANY(%(s)s)""",
    }
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        result = {}
        for name, query in queries.items():
            cur.execute(query, {"s": list(schemas)})
            result[name] = sorted(cur.fetchall(), key=repr)
    return result


# --- schemas ------------------------------------------------------------------


def test_schemas_apply_twice_without_change(pipeline) -> None:
    """The templates applied every schema once; applying again changes no table, column or index."""
    staging_before = snapshot(pipeline.staging_url, ("public",))
    production_before = snapshot(pipeline.production_url, ("public", "ice_pipeline"))
    # The comparison must have something to compare.
    assert ("public", "staging_document", "BASE TABLE") in staging_before["tables"]
    assert any(c[1:3] == ("persons", "cedula") for c in production_before["columns"])
    assert any(i[2] == "student_documents_student_id_checksum_key" for i in production_before["indexes"])
    assert any(t[:2] == ("ice_pipeline", "source_links") for t in production_before["tables"])

    for _ in range(2):
        with closing(psycopg2.connect(pipeline.staging_url)) as conn:
            init_staging(conn)
        with closing(psycopg2.connect(pipeline.production_url)) as conn:
            init_production(conn, baseline=True)  # `ice-pipeline db init`
        with closing(psycopg2.connect(pipeline.production_url)) as conn:
            init_production(conn, baseline=False)  # `ice-pipeline db migrate`

    assert snapshot(pipeline.staging_url, ("public",)) == staging_before
    assert snapshot(pipeline.production_url, ("public", "ice_pipeline")) == production_before


@pytest.mark.parametrize("table", PRISMA_TABLES)
def test_baseline_ids_and_updated_at_have_no_database_default(pipeline, table: str) -> None:
    """As Prisma generates them: uuid id and updated_at NOT NULL without default, created_at defaulted."""
    rows = pipeline.query(
        """SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns
           WHERE table_schema = 'public' AND table_name = %s AND column_name IN ('id', 'created_at', 'updated_at')""",
        (table,),
    )
    columns = {name: (kind, nullable, default) for name, kind, nullable, default in rows}
    assert columns["id"] == ("uuid", "NO", None)
    assert columns["updated_at"] == ("timestamp without time zone", "NO", None)
    assert columns["created_at"] == ("timestamp without time zone", "NO", "CURRENT_TIMESTAMP")


def test_baseline_rejects_persons_without_id_or_updated_at(pipeline) -> None:
    conn = pipeline.production
    with conn.cursor() as cur:
        with pytest.raises(errors.NotNullViolation) as missing_id:
            cur.execute(
                "INSERT INTO persons (full_name, email, updated_at) VALUES ('Ana', 'ana@example.com', now())"
            )
        assert missing_id.value.diag.column_name == "id"
        with pytest.raises(errors.NotNullViolation) as missing_updated_at:
            cur.execute(
                "INSERT INTO persons (id, full_name, email) VALUES (gen_random_uuid(), 'Ana', 'ana@example.com')"
            )
        assert missing_updated_at.value.diag.column_name == "updated_at"
        # With both, as the pipeline writes: accepted; e-mail may be NULL since 20251105.
        cur.execute(
            "INSERT INTO persons (id, full_name, updated_at) VALUES (gen_random_uuid(), 'Ana', now()) "
            "RETURNING created_at IS NOT NULL, csv_enriched"
        )
        assert cur.fetchone() == (True, False)


def test_missing_production_column_is_named_and_stops_migrate(pipeline, tmp_path: Path) -> None:
    pipeline.insert(
        "staging_student",
        [
            {
                "full_name": "Ana María Pérez",
                "email": "ana.perez@example.com",
                "cedula": "1.020.345.678",
                "source": "csv_only",
            }
        ],
    )
    pipeline.query("ALTER TABLE persons DROP COLUMN cedula")
    with closing(psycopg2.connect(pipeline.production_url)) as conn:
        with pytest.raises(SchemaError) as excinfo:
            check_production_schema(conn)
    assert "persons.cedula" in str(excinfo.value)

    env = ephemeral_dagster_env(pipeline, tmp_path)
    result = ice(["migrate"], env, tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]
    assert "persons.cedula" in final_message(result)
    assert pipeline.scalar("SELECT count(*) FROM persons") == 0

    # The message's advice works: `db migrate` restores the column.
    repaired = ice(["db", "migrate"], env, tmp_path)
    assert repaired.returncode == 0, repaired.stderr[-3000:]
    with closing(psycopg2.connect(pipeline.production_url)) as conn:
        check_production_schema(conn)


def test_db_migrate_refuses_a_database_without_the_bots_tables(services, pipeline, tmp_path: Path) -> None:
    with scratch_database(services) as url:
        result = ice(["db", "migrate"], ephemeral_dagster_env(pipeline, tmp_path, DATABASE_URL=url), tmp_path)
        output = result.stdout + result.stderr
        assert result.returncode != 0
        assert "Traceback" not in output, output[-3000:]
        message = final_message(result)
        assert "persons" in message and "Prisma" in message, message
        with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'ice_pipeline'")
            assert cur.fetchone()[0] == 0, "nothing may be created in a database that is not the bot's"


def test_db_migrate_upgrades_an_older_ice_pipeline_schema(pipeline, tmp_path: Path) -> None:
    """A database set up by an earlier release (review_queue without `decision`, no 'applied' status)."""
    pipeline.query("""
        ALTER TABLE ice_pipeline.review_queue DROP COLUMN decision;
        ALTER TABLE ice_pipeline.review_queue DROP CONSTRAINT review_queue_status_check;
        ALTER TABLE ice_pipeline.review_queue ADD CONSTRAINT review_queue_status_check
            CHECK (status IN ('open', 'resolved', 'dismissed', 'superseded'))""")
    result = ice(["db", "migrate"], cli_env(pipeline, tmp_path), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    pipeline.query("""INSERT INTO ice_pipeline.review_queue (kind, staging_table, staging_id, status, decision)
                      VALUES ('identity_conflict', 'staging_lead', 1, 'applied', 'new')""")


# --- the command line on bad input ------------------------------------------------


def _unreachable(variable: str) -> str:
    return f"postgresql://ice:{PASSWORD}@127.0.0.1:{closed_port()}/{'leads_project' if 'STAGING' in variable else 'ice_bot'}"


BAD_URLS = {
    "unreachable": _unreachable,
    "not-a-url": lambda variable: "not-a-url",
    "bad-port": lambda variable: f"postgresql://ice:{PASSWORD}@127.0.0.1:notaport/ice_bot",
}


# `db migrate` fails before Dagster starts; `migrate` fails inside the job run
# (one case there: the three reach the resource the same way).
@pytest.mark.parametrize(
    ("case", "command"),
    [(case, ["db", "migrate"]) for case in BAD_URLS] + [("unreachable", ["migrate", "--json"])],
    ids=[f"{case}-db-migrate" for case in BAD_URLS] + ["unreachable-migrate"],
)
def test_bad_database_url_gives_one_sentence(pipeline, tmp_path: Path, case: str, command: list[str]) -> None:
    env = ephemeral_dagster_env(pipeline, tmp_path, DATABASE_URL=BAD_URLS[case]("DATABASE_URL"))
    assert_clean_failure(ice(command, env, tmp_path), "DATABASE_URL")


def test_unreachable_staging_database_gives_one_sentence(pipeline, tmp_path: Path) -> None:
    env = ephemeral_dagster_env(pipeline, tmp_path, STAGING_DATABASE_URL=_unreachable("STAGING_DATABASE_URL"))
    assert_clean_failure(ice(["migrate"], env, tmp_path), "STAGING_DATABASE_URL")


@pytest.mark.parametrize("command", [["migrate"], ["report", "--json"]], ids=["migrate", "report"])
def test_staging_database_without_staging_tables_is_named(
    services, pipeline, tmp_path: Path, command: list[str]
) -> None:
    with scratch_database(services) as url:
        env = ephemeral_dagster_env(pipeline, tmp_path, STAGING_DATABASE_URL=url)
        message = assert_clean_failure(ice(command, env, tmp_path), "STAGING_DATABASE_URL")
    for table in ("staging_student", "staging_lead", "staging_document"):
        assert table in message, message


# --- Dagster and the embedded services ------------------------------------------------


def test_dagster_definitions_validate(pipeline, tmp_path: Path) -> None:
    dagster_home = tmp_path / "empty_dagster_home"
    dagster_home.mkdir()
    env = cli_env(pipeline, tmp_path, DAGSTER_HOME=str(dagster_home))
    result = run([str(DAGSTER), "definitions", "validate", "-m", "ice_pipeline.definitions"], env, tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "Validation successful" in result.stdout + result.stderr


def test_local_env_exports_every_design_variable(services, tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "ICE_LOCAL_DIR": str(services.root),
    }
    result = ice(["local", "env"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    exported = {}
    for line in filter(str.strip, result.stdout.splitlines()):
        keyword, assignment = shlex.split(line)
        assert keyword == "export", line
        name, _, value = assignment.partition("=")
        exported[name] = value
    assert set(DESIGN_VARIABLES) <= set(exported)
    assert {name: exported[name] for name in DESIGN_VARIABLES} == {
        name: services.env()[name] for name in DESIGN_VARIABLES
    }


# --- end to end through the command line ----------------------------------------------


def test_demo_data_then_migrate_json_then_report(pipeline, tmp_path: Path) -> None:
    env = cli_env(pipeline, tmp_path)
    loaded = ice(["demo-data", "--persons", "200", "--seed", "7"], env, tmp_path)
    assert loaded.returncode == 0, loaded.stderr[-3000:]

    migrated = ice(["migrate", "--json"], env, tmp_path)
    assert migrated.returncode == 0, (migrated.stdout + migrated.stderr)[-3000:]
    lines = [line for line in migrated.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, migrated.stdout
    summary = json.loads(lines[0])
    assert isinstance(summary, dict)
    missing = [key for key in SUMMARY_KEYS if key not in summary]
    assert not missing, missing
    assert all(isinstance(summary[key], int) for key in SUMMARY_KEYS), summary
    assert summary["persons_created"] > 0
    assert summary["checks_failed"] == 0

    reported = ice(["report", "--json"], env, tmp_path)
    assert reported.returncode == 0, (reported.stdout + reported.stderr)[-3000:]
    accounting = json.loads(reported.stdout)["accounting"]
    assert {"staging_student", "staging_lead", "staging_document"} <= set(accounting)
    assert {table: figures["unaccounted"] for table, figures in accounting.items()} == dict.fromkeys(
        accounting, 0
    )


# --- deployment files ---------------------------------------------------------------


def _dotenv(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def test_env_example_documents_every_variable_with_placeholders() -> None:
    example = _dotenv(REPO / ".env.example")
    assert set(DESIGN_VARIABLES) <= set(example)
    for name in ("STAGING_DATABASE_URL", "DATABASE_URL", "DAGSTER_PG_URL"):
        assert make_url(example[name]).password == "change-me", name
    for name, value in example.items():
        if re.search(r"PASSWORD|SECRET", name):
            assert value == "change-me", name
    text = (REPO / ".env.example").read_text()
    assert "REAL V3 staging database" in text and "REAL ICE-Visa-Rescheduler-Bot" in text


def test_docker_compose_wiring() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "minio", "dagster-code", "dagster-webserver", "dagster-daemon"} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:15.")  # pinned: test_deploy.py
    assert services["dagster-webserver"]["command"] == [
        "dagster-webserver",
        "-h",
        "0.0.0.0",
        "-p",
        "3000",
        "-w",
        "workspace.yaml",
    ]
    assert services["dagster-daemon"]["command"][:2] == ["dagster-daemon", "run"]
    assert services["dagster-code"]["command"] == [
        "dagster",
        "code-server",
        "start",
        "-h",
        "0.0.0.0",
        "-p",
        "4000",
        "-m",
        "ice_pipeline.definitions",
    ]
    for name, service in services.items():
        assert service.get("restart"), f"{name}: no restart policy"
        if name not in ("minio-setup", "minio-data-owner"):  # one-shots
            assert service.get("healthcheck"), f"{name}: no healthcheck"
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|KEY|URL|USER", key):
                assert re.fullmatch(r"\$\{[A-Z_]+(:\?[^}]*)?\}", str(value)), f"{name}: literal {key}"
    for name in ("dagster-code", "dagster-webserver", "dagster-daemon"):
        assert "env_file" not in services[name]  # only their own variables: test_deploy.py
        assert "DAGSTER_PG_URL" in services[name]["environment"]
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"

    # The staged files: read-only, where .env.example's STAGING_FILES_ROOT says.
    files_root = _dotenv(REPO / ".env.example")["STAGING_FILES_ROOT"]
    mounts = [v for v in services["dagster-code"]["volumes"] if v.split(":")[-2:] == [files_root, "ro"]]
    assert len(mounts) == 1, services["dagster-code"]["volumes"]

    # Webserver and daemon reach the code server through deploy/workspace.docker.yaml.
    workspace = yaml.safe_load((REPO / "deploy" / "workspace.docker.yaml").read_text())
    server = workspace["load_from"][0]["grpc_server"]
    assert (server["host"], server["port"]) == ("dagster-code", 4000)
    for name in ("dagster-webserver", "dagster-daemon"):
        assert (
            "./deploy/workspace.docker.yaml:/opt/dagster/dagster_home/workspace.yaml:ro"
            in services[name]["volumes"]
        )

    # postgres creates the `dagster` database with the init script.
    assert "./deploy/postgres/initdb:/docker-entrypoint-initdb.d:ro" in services["postgres"]["volumes"]
    init_script = REPO / "deploy" / "postgres" / "initdb" / "10-dagster-database.sh"
    assert init_script.stat().st_mode & stat.S_IXUSR
    assert "CREATE DATABASE dagster" in init_script.read_text()

    dockerfile = (REPO / "Dockerfile").read_text()
    assert "ARG PYTHON_IMAGE=python:3.11." in dockerfile
    assert "pip install -c constraints.txt ." in dockerfile
    assert "DAGSTER_HOME=/opt/dagster/dagster_home" in dockerfile
    assert "COPY --chown=dagster:dagster dagster.yaml workspace.yaml ${DAGSTER_HOME}/" in dockerfile
    assert re.search(r"^USER dagster", dockerfile, re.M)
    assert ".env" in (REPO / ".dockerignore").read_text().splitlines()


# --- prisma/schema.prisma mirrors the SQL ----------------------------------------------

PRISMA_TYPES = {
    "String": ("text", None),
    "DateTime": ("timestamp without time zone", None),
    "Int": ("integer", None),
    "Float": ("double precision", None),
    "Boolean": ("boolean", None),
    "Json": ("jsonb", None),
    "StorageProvider": ("USER-DEFINED", None),
}
NATIVE_TYPES = {"Uuid": "uuid", "Date": "date", "VarChar": "character varying"}


def _prisma_models(text: str) -> dict[str, dict]:
    """{table: {"columns": {column: (data_type, length, nullable, has_default)}, "indexes": {...}, "fks": {...}}}."""
    models = {}
    for body in re.findall(r"^model \w+ \{\n(.*?)^\}", text, re.M | re.S):
        table = re.search(r'@@map\("(\w+)"\)', body).group(1)
        columns, indexes, fks = {}, set(), set()
        for line in body.splitlines():
            line = line.split("//")[0].strip()
            if not line:
                continue
            if line.startswith("@@"):
                indexes.update(re.findall(r'^@@(?:unique|index)\(.*map: "(\w+)"', line))
                continue
            name, kind = line.split()[:2]
            base = kind.rstrip("?[]")
            fks.update(re.findall(r'@relation\(.*map: "(\w+)"', line))
            if base not in PRISMA_TYPES:
                continue  # a relation field: no column
            column = (re.search(r'@map\("(\w+)"\)', line) or re.match(r"(\w+)", name)).group(1)
            data_type, length = PRISMA_TYPES[base]
            native = re.search(r"@db\.(\w+)(?:\((\d+)\))?", line)
            if native:
                data_type, length = (
                    NATIVE_TYPES[native.group(1)],
                    int(native.group(2)) if native.group(2) else None,
                )
            has_default = bool(re.search(r"@default\((?!uuid\(\))", line))
            columns[column] = (data_type, length, kind.endswith("?"), has_default)
            indexes.update(re.findall(r'@unique\(map: "(\w+)"\)', line))
        models[table] = {"columns": columns, "indexes": indexes, "fks": fks}
    return models


def test_prisma_schema_matches_the_production_tables(pipeline) -> None:
    models = _prisma_models((REPO / "prisma" / "schema.prisma").read_text())
    assert set(models) == set(PRISMA_TABLES)
    for table, model in models.items():
        rows = pipeline.query(
            """SELECT column_name, data_type, character_maximum_length, is_nullable = 'YES', column_default IS NOT NULL
               FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s""",
            (table,),
        )
        assert model["columns"] == {r[0]: tuple(r[1:]) for r in rows}, table
        # Every index, the pipeline's own (`*_ice_*`) included: schema.prisma declares them (no Prisma drift).
        indexes = {
            r[0]
            for r in pipeline.query(
                "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND tablename = %s", (table,)
            )
        }
        assert model["indexes"] == {i for i in indexes if not i.endswith("_pkey")}, table
        fks = {
            r[0]
            for r in pipeline.query(
                "SELECT conname FROM pg_constraint WHERE contype = 'f' AND conrelid = %s::regclass", (table,)
            )
        }
        assert model["fks"] == fks, table
    assert re.search(
        r"enum StorageProvider \{\s*MINIO\s+S3\s+LOCAL\s*\}", (REPO / "prisma" / "schema.prisma").read_text()
    )
