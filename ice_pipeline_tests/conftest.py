"""Shared fixtures: real PostgreSQL and a real S3 server (moto over HTTP), per DESIGN §6.

One embedded cluster + S3 server per test session (`ice_pipeline.dev.local.up`
on a private directory); every test gets fresh databases cloned from
templates that already hold the schemas, its own bucket and files root.

The helpers the tests share live here, and only here, as methods of `Pipeline`
(run and assert success, read and write the databases, insert a person as the
bot writes it, look up a row's lineage, assert the accounting, run the CLI):
each acts on one test's databases, which the `pipeline` fixture owns and every
such test already takes. So there is one place to look, and no helper module to
import (pytest advises against importing conftest).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import pytest
from click.testing import Result
from minio import Minio

from ice_pipeline.dev import local
from ice_pipeline.schema import init_production, init_staging

_counter = itertools.count()
STAGING_TEMPLATE = "tpl_staging"
PRODUCTION_TEMPLATE = "tpl_production"
# The staging tables the accounting checks cover, and the entity a row of each ends in when it is linked.
# Written out here, not imported: the recount in `Pipeline.assert_accounted` shares no code with the product's.
FINAL_ENTITY = {"staging_student": "student", "staging_lead": "lead", "staging_lead_failures": "lead"}
# When the bot wrote the persons a test puts in production: before any run, the same in every test.
BOT_WROTE_AT = dt.datetime(2024, 1, 1)


def _admin(services: local.LocalServices) -> psycopg2.extensions.connection:
    conn = psycopg2.connect(host="127.0.0.1", port=services.pg_port, user="postgres", dbname="postgres")
    conn.autocommit = True
    return conn


def _url(services: local.LocalServices, database: str) -> str:
    return f"postgresql://postgres@127.0.0.1:{services.pg_port}/{database}"


@contextmanager
def _database(services: local.LocalServices, name: str, template: str | None = None) -> Iterator[str]:
    """A database on the session cluster (a copy of `template`), dropped on exit; yields its URL."""
    with closing(_admin(services)) as admin, admin.cursor() as cur:
        cur.execute(
            f'CREATE DATABASE "{name}" TEMPLATE "{template}"' if template else f'CREATE DATABASE "{name}"'
        )
    try:
        yield _url(services, name)
    finally:
        with closing(_admin(services)) as admin, admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def services() -> Iterator[local.LocalServices]:
    """The session's PostgreSQL cluster and S3 server, with template databases holding the schemas."""
    root = Path(tempfile.mkdtemp(prefix="ice-tests-", dir="/var/tmp"))
    started = local.up(root)
    try:
        with closing(_admin(started)) as admin, admin.cursor() as cur:
            for name in (STAGING_TEMPLATE, PRODUCTION_TEMPLATE):
                cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
                cur.execute(f'CREATE DATABASE "{name}"')
        with closing(psycopg2.connect(_url(started, STAGING_TEMPLATE))) as conn:
            init_staging(conn)
        with closing(psycopg2.connect(_url(started, PRODUCTION_TEMPLATE))) as conn:
            init_production(conn, baseline=True)
        yield started
    finally:
        # Read before `down`: a root postgres cannot reach (mkdtemp makes it 0700) puts the
        # cluster under /var/tmp/ice-pipeline/, which removing the root does not remove.
        pg_dir = (
            json.loads((root / "state.json").read_text()).get("pg_dir")
            if (root / "state.json").exists()
            else None
        )
        local.down(root)
        shutil.rmtree(root, ignore_errors=True)
        if pg_dir and not Path(pg_dir).is_relative_to(root):
            shutil.rmtree(pg_dir, ignore_errors=True)


@dataclass
class Pipeline:
    """One isolated staging DB + production DB + bucket + files root, and the job to run on them."""

    services: local.LocalServices
    staging_url: str
    production_url: str
    bucket: str
    files_root: Path
    env: dict[str, str]
    _connections: list = field(default_factory=list)
    _sessions: dict = field(default_factory=dict)

    def connect(self, which: str) -> psycopg2.extensions.connection:
        """A connection of its own (autocommit), closed at teardown: for a session the test controls."""
        conn = psycopg2.connect(self.staging_url if which == "staging" else self.production_url)
        conn.autocommit = True
        self._connections.append(conn)
        return conn

    def session(self, db: str = "production") -> psycopg2.extensions.connection:
        """The one autocommit session per database that `query`, `scalar` and `insert` share for the whole test.

        A connection per call costs ~10 ms and piles up over a hypothesis test's examples. Session
        settings (`SET ...`) made through `query` stay for the test's later calls: take `connect()`
        for a session of your own.
        """
        if db not in self._sessions:
            self._sessions[db] = self.connect(db)
        return self._sessions[db]

    @property
    def staging(self) -> psycopg2.extensions.connection:
        return self.connect("staging")

    @property
    def production(self) -> psycopg2.extensions.connection:
        return self.connect("production")

    @property
    def minio(self) -> Minio:
        env = self.env
        return Minio(
            env["MINIO_ENDPOINT"],
            access_key=env["MINIO_ACCESS_KEY"],
            secret_key=env["MINIO_SECRET_KEY"],
            secure=False,
        )

    def run(self, **options) -> dict:
        """Run migrate_to_production in process (as `ice-pipeline migrate --json`); returns its summary."""
        from ice_pipeline.cli import run_migration

        return run_migration(**options)

    def run_ok(self, **options) -> dict:
        """`run(**options)`, asserting the run succeeded and no check failed; returns its summary."""
        summary = self.run(**options)
        assert summary["success"], summary["error"]
        assert summary["checks_failed"] == 0, summary["failed_checks"]
        return summary

    def cli(self, *args: object, code: int = 0) -> Result:
        """`ice-pipeline ARGS` in process (typer's runner) against this test's databases, asserting its exit code.

        Exceptions are not caught: a crash fails the test instead of passing for an expected exit code 1.
        `.output` is what a terminal shows (stdout and stderr), `.stdout` alone is the JSON.
        """
        from typer.testing import CliRunner

        from ice_pipeline.cli import app

        result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == code, (args, result.exit_code, result.output)
        return result

    def query(self, sql: str, params=None, *, db: str = "production") -> list[tuple]:
        with self.session(db).cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def scalar(self, sql: str, params=None, *, db: str = "production"):
        rows = self.query(sql, params, db=db)
        return rows[0][0] if rows else None

    def insert(self, table: str, rows: list[dict]) -> list[int]:
        """Insert staging rows (table: staging_student | staging_lead | ...); returns their ids."""
        ids = []
        with self.session("staging").cursor() as cur:
            for row in rows:
                columns = list(row)
                placeholders = ", ".join(["%s"] * len(columns))
                cur.execute(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders}) RETURNING id",
                    [row[c] for c in columns],
                )
                ids.append(cur.fetchone()[0])
        return ids

    def insert_bot_person(self, *, refresh_keys: bool = False, **fields) -> str:
        """A person as the ICE bot (Prisma) writes it: client-side id, created_at (BOT_WROTE_AT unless given) and
        updated_at (created_at unless given), values as given, not normalized; returns its id.

        refresh_keys: also compute its keys as the pipeline does for persons it did not write (the refresh
        every run starts with), for checks run on their own, with no run to do it.
        """
        person_id = str(uuid.uuid4())
        values = {"id": person_id, "created_at": BOT_WROTE_AT, **fields}
        values.setdefault("updated_at", values["created_at"])
        self.query(
            f"INSERT INTO persons ({', '.join(values)}) VALUES ({', '.join(['%s'] * len(values))})",
            list(values.values()),
        )
        if refresh_keys:
            import pandas as pd

            from ice_pipeline.assets.persons import refresh_person_keys

            reference = pd.DataFrame({"category": [], "code": [], "label": [], "aliases": []})
            with closing(psycopg2.connect(self.production_url)) as conn:  # one transaction, as a run's
                with conn.cursor() as cur:
                    assert refresh_person_keys(cur, reference, "bot") >= 1
                conn.commit()
        return person_id

    def linked(self, table: str, staging_id: int, entity: str = "person") -> str | None:
        """The id of the `entity` a staging row is linked to (its lineage in source_links), or None."""
        return self.scalar(
            "SELECT entity_id::text FROM ice_pipeline.source_links WHERE staging_table = %s "
            "AND staging_id = %s AND entity = %s",
            (table, staging_id, entity),
        )

    def assert_accounted(self, tables: tuple[str, ...] = tuple(FINAL_ENTITY)) -> dict[str, dict[str, int]]:
        """Nothing lost (DESIGN §3.4), once runs took every row: each staging row is linked to its student or
        lead, rejected with a reason, or waiting in review, in exactly one of those places.

        Asserted twice: with the product's `accounting` (what the accounting checks report) and with a
        recount here that shares none of its code, so a mistake in `accounting` cannot hide a lost row.
        Returns `accounting`'s figures by table, for a test's own expectations.
        """
        from ice_pipeline.checks import accounting

        figures_by_table = {}
        for table in tables:
            figures = accounting(self.session("staging"), self.session("production"), table)
            assert figures["unaccounted"] == 0 and figures["in_two_places"] == 0, (table, figures)
            assert figures["not_processed_yet"] == 0, (table, figures)
            assert (
                figures["staging_rows"] == figures["linked"] + figures["rejected"] + figures["in_review"]
            ), (table, figures)
            recount = {
                "staging": self.scalar(f"SELECT count(*) FROM {table}", db="staging"),
                "linked": self.scalar(
                    "SELECT count(DISTINCT staging_id) FROM ice_pipeline.source_links "
                    "WHERE staging_table = %s AND entity = %s",
                    (table, FINAL_ENTITY[table]),
                ),
                "rejected": self.scalar(
                    "SELECT count(DISTINCT staging_id) FROM ice_pipeline.rejected_rows "
                    "WHERE staging_table = %s",
                    (table,),
                ),
                "review": self.scalar(
                    "SELECT count(DISTINCT staging_id) FROM ice_pipeline.review_queue "
                    "WHERE staging_table = %s AND kind = 'identity_conflict' AND status = 'open'",
                    (table,),
                ),
            }
            assert recount["staging"] == recount["linked"] + recount["rejected"] + recount["review"], (
                table,
                recount,
            )
            figures_by_table[table] = figures
        return figures_by_table

    def reset(self) -> None:
        """Empty both databases (ids restart at 1), keeping the schemas: a fresh start for each hypothesis
        example (the function-scoped fixture is built once per test)."""
        self.query(
            "TRUNCATE staging_document, staging_student, staging_lead, staging_lead_failures, "
            "staging_reference_data RESTART IDENTITY CASCADE",
            db="staging",
        )
        tables = [
            t
            for (t,) in self.query(
                "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
                "WHERE schemaname IN ('public', 'ice_pipeline') AND tablename NOT LIKE '%migration%' "
                "AND tablename NOT LIKE '%schema_version%'"
            )
        ]
        self.query(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")

    def dump(self) -> dict[str, list[tuple]]:
        """The production tables' full contents, for byte-for-byte comparisons."""
        tables = [
            "persons",
            "students",
            "leads",
            "services",
            "events",
            "student_documents",
            "ice_pipeline.source_links",
            "ice_pipeline.rejected_rows",
            "ice_pipeline.review_queue",
            "ice_pipeline.watermarks",
        ]
        return {t: self.query(f"SELECT * FROM {t} ORDER BY 1, 2, 3") for t in tables}

    def close(self) -> None:
        for conn in self._connections:
            conn.close()


@pytest.fixture
def pipeline(
    services: local.LocalServices, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Pipeline]:
    """Fresh databases from the templates, a fresh bucket name and files root, env pointing at them."""
    n = next(_counter)
    tag = f"{os.getpid()}_{n}"
    databases = ExitStack()
    staging_url = databases.enter_context(_database(services, f"stg_{tag}", STAGING_TEMPLATE))
    production_url = databases.enter_context(_database(services, f"prod_{tag}", PRODUCTION_TEMPLATE))
    files_root = tmp_path / "staging_files"
    files_root.mkdir()
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    env = services.env()
    bucket = f"docs-{uuid.uuid4().hex[:12]}"
    env.update(
        {
            "STAGING_DATABASE_URL": staging_url,
            "DATABASE_URL": production_url,
            "MINIO_BUCKET": bucket,
            "STAGING_FILES_ROOT": str(files_root),
            "DAGSTER_HOME": str(dagster_home),
        }
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # In-process runs use an ephemeral Dagster instance: a SQLite event log in
    # a fresh DAGSTER_HOME costs seconds per run, and with DAGSTER_PG_URL alone the
    # instance would live in ./.ice/dagster_home. The CLI tests cover a real one.
    monkeypatch.delenv("DAGSTER_HOME")
    monkeypatch.delenv("DAGSTER_PG_URL")
    result = Pipeline(services, env["STAGING_DATABASE_URL"], env["DATABASE_URL"], bucket, files_root, env)
    try:
        yield result
    finally:
        result.close()
        databases.close()


@pytest.fixture
def scratch_databases(services: local.LocalServices) -> Iterator[Callable[..., str]]:
    """Factory: scratch_databases(name, template=None) -> URL of a new database, dropped at teardown."""
    with ExitStack() as stack:
        yield lambda name, template=None: stack.enter_context(_database(services, name, template))


@dataclass
class DagsterHome:
    """A DAGSTER_HOME with the repo's dagster.yaml, Dagster's storage in a database of its own."""

    path: Path
    pg_url: str


@pytest.fixture
def pg_dagster_home(scratch_databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DagsterHome:
    """For `dagster dev` and `ice-pipeline` subprocesses: a real instance on PostgreSQL, tables created."""
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    url = scratch_databases(f"dagster_{uuid.uuid4().hex[:10]}").replace(
        "postgresql://", "postgresql+psycopg2://", 1
    )
    home = tmp_path / "dagster_home_pg"
    home.mkdir()
    shutil.copyfile(Path(__file__).resolve().parents[1] / "dagster.yaml", home / "dagster.yaml")
    # Create Dagster's tables once, up front: two processes starting on an empty
    # database at the same instant would race on the schema migration.
    with monkeypatch.context() as patch:
        patch.setenv("DAGSTER_PG_URL", url)
        with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))):
            pass
    return DagsterHome(home, url)
