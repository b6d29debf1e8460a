"""Unattended operation (issue: sensor, increments, killed runs, concurrent runs, changed rows).

Real PostgreSQL and S3 (the session's embedded services). The sensor is
evaluated with `build_sensor_context`; runs go through the same code path as
`ice-pipeline migrate` (in process, or as a real subprocess where a process
must be killed or two must race).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import psycopg2
import pytest
from dagster import RunRequest, SkipReason, build_sensor_context

from ice_pipeline.dev import demo_data as demo
from ice_pipeline.dev import local
from ice_pipeline.jobs import MIGRATION_JOB, SERIAL_TAG, migrate_to_production
from ice_pipeline.locks import MIGRATION_LOCK_KEY
from ice_pipeline.resources import ProductionDatabase, StagingDatabase
from ice_pipeline.sensors import new_staging_rows, run_key_for, staging_high_water_marks

if TYPE_CHECKING:
    from conftest import DagsterHome

CLI = str(Path(sys.executable).parent / "ice-pipeline")
# Enough rows that the window between resolved_persons' commit and prod_students'
# commit (the blocking person checks run in between) is wide enough to hit by polling.
KILL_PERSONS = 3000
KILL_SEED = 4242


# --- helpers ----------------------------------------------------------------


@dataclass
class Databases:
    """A staging + production database pair cloned from the session templates (like the `pipeline` fixture)."""

    staging_url: str
    production_url: str
    env: dict[str, str]
    files_root: Path
    _connections: list = field(default_factory=list)

    def connect(self, which: str = "production") -> psycopg2.extensions.connection:
        conn = psycopg2.connect(self.production_url if which == "production" else self.staging_url)
        conn.autocommit = True
        self._connections.append(conn)
        return conn

    def query(self, sql: str, params=None, *, db: str = "production") -> list[tuple]:
        with closing(
            psycopg2.connect(self.production_url if db == "production" else self.staging_url)
        ) as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []

    def scalar(self, sql: str, params=None, *, db: str = "production"):
        rows = self.query(sql, params, db=db)
        return rows[0][0] if rows else None

    def close(self) -> None:
        for conn in self._connections:
            conn.close()


@pytest.fixture
def make_databases(services: local.LocalServices, scratch_databases, tmp_path: Path) -> Iterator:
    """Factory of extra database pairs (dropped at teardown), for reference runs next to `pipeline`."""
    created: list[Databases] = []

    def make() -> Databases:
        tag = uuid.uuid4().hex[:10]
        staging_url = scratch_databases(f"stg_u_{tag}", "tpl_staging")
        production_url = scratch_databases(f"prod_u_{tag}", "tpl_production")
        files_root = tmp_path / f"files_{tag}"
        files_root.mkdir()
        home = tmp_path / f"dagster_home_{tag}"
        home.mkdir()
        env = services.env()
        env.update(
            {
                "STAGING_DATABASE_URL": staging_url,
                "DATABASE_URL": production_url,
                "MINIO_BUCKET": f"docs-{tag}",
                "STAGING_FILES_ROOT": str(files_root),
                "DAGSTER_HOME": str(home),
            }
        )
        dbs = Databases(staging_url, production_url, env, files_root)
        created.append(dbs)
        return dbs

    yield make
    for dbs in created:
        dbs.close()


def as_databases(pipeline) -> Databases:
    return Databases(pipeline.staging_url, pipeline.production_url, pipeline.env, pipeline.files_root)


def load_staging(dbs: Databases, data: demo.DemoData) -> demo.LoadResult:
    with closing(psycopg2.connect(dbs.staging_url)) as conn:
        return demo.load(conn, data, dbs.files_root)


def split(data: demo.DemoData, parts: int) -> list[demo.DemoData]:
    """The same staging rows in `parts` consecutive slices (reference data with the first one)."""

    def chunk(frame: pd.DataFrame, i: int) -> pd.DataFrame:
        n = len(frame)
        return frame.iloc[n * i // parts : n * (i + 1) // parts].reset_index(drop=True)

    assert data.documents.empty, "split() keeps documents out: their student_row would not line up"
    return [
        demo.DemoData(
            students=chunk(data.students, i),
            leads=chunk(data.leads, i),
            documents=data.documents,
            reference_data=data.reference_data if i == 0 else data.reference_data.iloc[0:0],
            lead_failures=chunk(data.lead_failures, i),
        )
        for i in range(parts)
    ]


@pytest.fixture
def use_env(monkeypatch: pytest.MonkeyPatch):
    """Point the process environment (read by the job's resources at run time) at a database pair.

    In-process runs use an ephemeral Dagster instance (no DAGSTER_HOME): Dagster's default SQLite event
    log costs ~10 s of fsyncs per run on this disk, and what is under test is the production database.
    """

    def use(dbs: Databases) -> None:
        for name, value in dbs.env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("DAGSTER_HOME", raising=False)
        monkeypatch.delenv(
            "DAGSTER_PG_URL", raising=False
        )  # else a PostgreSQL instance in ./.ice/dagster_home

    return use


def migrate(dbs: Databases, use_env, **options) -> dict:
    from ice_pipeline.cli import run_migration

    use_env(dbs)
    summary = run_migration(**options)
    assert summary["success"], summary["error"]
    assert summary["checks_failed"] == 0, summary["failed_checks"]
    return summary


def _sortable(rows: list[tuple]) -> list[tuple]:
    return sorted(rows, key=lambda row: tuple((value is None, str(value)) for value in row))


PERSON = (
    "p.full_name, p.email, p.phone, p.cedula, p.birth_date::text, p.address, p.city, p.country, "
    "p.data_source, p.original_name, p.csv_enriched"
)


def production_state(dbs: Databases) -> dict[str, list[tuple]]:
    """Persons, students, leads (and where each staging row ended) as id-free tuples."""
    return {
        "persons": _sortable(dbs.query(f"SELECT {PERSON} FROM persons p")),
        "students": _sortable(
            dbs.query(
                f"SELECT {PERSON}, s.student_number, s.program, s.status, s.data_source, s.csv_enriched "
                "FROM students s JOIN persons p ON p.id = s.person_id"
            )
        ),
        "leads": _sortable(
            dbs.query(
                f"SELECT {PERSON}, sv.name, ev.name, l.program_type, l.lead_status, l.notes, l.source_file, "
                "l.source_sheet, l.source_row FROM leads l JOIN persons p ON p.id = l.person_id "
                "LEFT JOIN services sv ON sv.id = l.service_id LEFT JOIN events ev ON ev.id = l.event_id"
            )
        ),
        # Staging ids line up between pairs: same template, rows loaded in the same order.
        "person_links": _sortable(
            dbs.query(
                f"SELECT l.staging_table, l.staging_id, {PERSON} FROM ice_pipeline.source_links l "
                "JOIN persons p ON p.id = l.entity_id WHERE l.entity = 'person'"
            )
        ),
        "rejected": _sortable(
            dbs.query("SELECT staging_table, staging_id, reason FROM ice_pipeline.rejected_rows")
        ),
        "open_review": _sortable(
            dbs.query(
                "SELECT kind, staging_table, staging_id, field, existing_value, incoming_value "
                "FROM ice_pipeline.review_queue WHERE status = 'open'"
            )
        ),
    }


def assert_same_state(actual: dict, expected: dict) -> None:
    for name in ("persons", "students", "leads", "person_links", "rejected", "open_review"):
        missing = [row for row in expected[name] if row not in set(actual[name])]
        extra = [row for row in actual[name] if row not in set(expected[name])]
        assert actual[name] == expected[name], (
            f"{name}: {len(actual[name])} rows vs {len(expected[name])} expected; "
            f"missing {missing[:3]}, extra {extra[:3]}"
        )


def flagged_identifiers(dbs: Databases) -> set[str]:
    """E-mails and cédulas of the persons named by open possible_duplicate items: two persons created
    before a later row showed they are one. The pipeline flags them and never merges production
    persons by itself, so increments differ from one batch exactly there."""
    rows = dbs.query(
        "SELECT p.email, p.cedula FROM ice_pipeline.review_queue q JOIN persons p "
        "ON p.id IN (q.person_id, q.candidate_person_id) "
        "WHERE q.kind = 'possible_duplicate' AND q.status = 'open'"
    )
    return {value for row in rows for value in row if value}


def without_flagged(state: dict, flagged: set[str]) -> dict:
    """The state minus every row about a flagged person (email at index 1, cédula at 3 of PERSON)."""

    def about_flagged(row: tuple, offset: int) -> bool:
        return bool({row[offset + 1], row[offset + 3]} & flagged)

    offsets = {"persons": 0, "students": 0, "leads": 0, "person_links": 2}
    result = {
        name: [r for r in rows if not about_flagged(r, offsets[name])] if name in offsets else rows
        for name, rows in state.items()
    }
    tying_rows = {(r[1], r[2]) for r in state["open_review"] if r[0] == "possible_duplicate"}
    # the row that tied them is flagged, and its values held by the other person are noted
    result["open_review"] = [r for r in state["open_review"] if (r[1], r[2]) not in tying_rows]
    return result


def assert_same_state_but_flagged(incremental: Databases, once: Databases) -> None:
    """Increments equal one batch, except persons a later row tied together: there the batch has one
    person, the increments two persons flagged as possible_duplicate (never a silent duplicate)."""
    flagged = flagged_identifiers(incremental)
    actual, expected = production_state(incremental), production_state(once)
    assert_same_state(without_flagged(actual, flagged), without_flagged(expected, flagged))
    extra = len(actual["persons"]) - len(expected["persons"])
    pairs = incremental.scalar(
        "SELECT count(*) FROM ice_pipeline.review_queue WHERE kind = 'possible_duplicate' AND status = 'open'"
    )
    assert 0 <= extra <= pairs, (extra, pairs)


def assert_no_duplicates(dbs: Databases) -> None:
    assert dbs.scalar("SELECT count(*) - count(DISTINCT cedula) FROM persons WHERE cedula IS NOT NULL") == 0
    assert (
        dbs.scalar("SELECT count(*) - count(DISTINCT lower(email)) FROM persons WHERE email IS NOT NULL") == 0
    )
    assert dbs.scalar("SELECT count(*) - count(DISTINCT person_id) FROM students") == 0
    assert (
        dbs.scalar(
            "SELECT count(*) FROM (SELECT staging_table, staging_id FROM ice_pipeline.source_links "
            "GROUP BY staging_table, staging_id, entity HAVING count(DISTINCT entity_id) > 1) d"
        )
        == 0
    )


def sensor_context(dbs: Databases, cursor: str | None = None, instance=None):
    return build_sensor_context(
        cursor=cursor,
        instance=instance,
        resources={
            "staging_db": StagingDatabase(url=dbs.staging_url),
            "production_db": ProductionDatabase(url=dbs.production_url),
        },
    )


def cli_env(dbs: Databases, home: DagsterHome) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(dbs.env)
    env.update({"DAGSTER_HOME": str(home.path), "DAGSTER_PG_URL": home.pg_url})
    return env


def start_cli(dbs: Databases, home: DagsterHome, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [CLI, "migrate", "--json", *args],
        env=cli_env(dbs, home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def student_row(**values) -> dict:
    row = {
        "full_name": "Ana María Pérez Gómez",
        "email": "ana.perez@example.com",
        "phone": None,
        "cedula": "1.020.345.678",
        "birth_date": "15/03/1995",
        "city": "Bogotá",
        "country": "Colombia",
        "program": None,
        "student_number": "ST-1001",
        "source": "directory+csv",
        "csv_enriched": True,
    }
    row.update(values)
    return row


# --- sensor -------------------------------------------------------------------


def test_sensor_skips_with_reason_when_nothing_is_new(pipeline, use_env):
    dbs = as_databases(pipeline)
    result = new_staging_rows(sensor_context(dbs))
    assert isinstance(result, SkipReason)
    assert "empty" in result.skip_message

    pipeline.insert("staging_student", [student_row()])
    migrate(dbs, use_env)
    tick = new_staging_rows.evaluate_tick(sensor_context(dbs))
    assert not tick.run_requests
    assert "No new or changed staging rows" in tick.skip_message
    assert tick.cursor is None  # nothing launched: the cursor is not touched


def test_sensor_requests_one_run_with_a_stable_key_and_never_twice(pipeline, use_env):
    dbs = as_databases(pipeline)
    pipeline.insert("staging_student", [student_row()])
    pipeline.insert("staging_lead", [{"full_name": "Carlos Ruiz", "email": "carlos@example.com"}])

    first = new_staging_rows.evaluate_tick(sensor_context(dbs))
    assert len(first.run_requests) == 1
    request = first.run_requests[0]
    assert isinstance(request, RunRequest)
    assert request.job_name == MIGRATION_JOB == migrate_to_production.name
    assert request.run_key == run_key_for(staging_high_water_marks(StagingDatabase(url=dbs.staging_url)))
    assert request.tags["ice_pipeline/trigger"] == "new_staging_rows"
    assert first.cursor == request.run_key

    # Stable: a fresh evaluation (cursor lost, or another daemon) derives the same key.
    again = new_staging_rows.evaluate_tick(sensor_context(dbs))
    assert again.run_requests[0].run_key == request.run_key

    # Same state, cursor saved by the first tick: no second run, and it says why.
    same = new_staging_rows.evaluate_tick(sensor_context(dbs, cursor=first.cursor))
    assert not same.run_requests
    assert request.run_key in same.skip_message and "already requested" in same.skip_message

    # New rows: a new state, a new key.
    pipeline.insert("staging_lead", [{"full_name": "Diana Torres", "email": "diana@example.com"}])
    newer = new_staging_rows.evaluate_tick(sensor_context(dbs, cursor=first.cursor))
    assert len(newer.run_requests) == 1 and newer.run_requests[0].run_key != request.run_key

    # After a successful run: skip, whatever the cursor.
    migrate(dbs, use_env)
    for cursor in (None, first.cursor, newer.cursor):
        done = new_staging_rows.evaluate_tick(sensor_context(dbs, cursor=cursor))
        assert not done.run_requests and "watermarks are up to date" in done.skip_message


def test_sensor_sees_changed_rows_and_polls_cheaply(pipeline, use_env):
    dbs = as_databases(pipeline)
    (sid,) = pipeline.insert("staging_student", [student_row()])
    migrate(dbs, use_env)
    assert isinstance(new_staging_rows(sensor_context(dbs)), SkipReason)

    # V3 re-ingests the row: same id, updated_at moved.
    pipeline.query(
        "UPDATE staging_student SET phone = '300 123 4567', updated_at = now() WHERE id = %s",
        (sid,),
        db="staging",
    )
    result = new_staging_rows(sensor_context(dbs))
    assert isinstance(result, RunRequest)

    # The polling query is an index scan reading one row, not a scan of the table.
    plan = pipeline.query(
        "EXPLAIN (FORMAT JSON) SELECT updated_at, id FROM staging_student "
        "ORDER BY updated_at DESC, id DESC LIMIT 1",
        db="staging",
    )[0][0]
    text = json.dumps(plan)
    assert "Index" in text and "Seq Scan" not in text and "Sort" not in text


def test_sensor_launches_for_review_decisions_waiting_for_a_run(pipeline, use_env):
    """An operator's answer to an identity question is work too: the next run applies it."""
    dbs = as_databases(pipeline)
    (sid,) = pipeline.insert("staging_lead", [{"full_name": "Carlos Ruiz", "email": "carlos@example.com"}])
    migrate(dbs, use_env)
    idle = new_staging_rows.evaluate_tick(sensor_context(dbs))
    assert not idle.run_requests

    pipeline.query(
        "INSERT INTO ice_pipeline.review_queue (kind, staging_table, staging_id, status, decision_kind, "
        "resolved_at) VALUES ('identity_conflict', 'staging_lead', %s, 'resolved', 'new_person', now())",
        (sid,),
    )
    tick = new_staging_rows.evaluate_tick(sensor_context(dbs))
    assert len(tick.run_requests) == 1
    staging_only = run_key_for(staging_high_water_marks(StagingDatabase(url=dbs.staging_url)))
    assert tick.run_requests[0].run_key != staging_only  # a new state, though staging did not change
    again = new_staging_rows.evaluate_tick(sensor_context(dbs, cursor=tick.cursor))
    assert not again.run_requests and "already requested" in again.skip_message


def test_job_is_serialised_by_tag_and_scheduled_daily():
    from ice_pipeline.definitions import defs

    assert migrate_to_production.tags.items() >= SERIAL_TAG.items()
    schedule = defs.resolve_schedule_def("daily_migration")
    assert schedule.cron_schedule == "0 2 * * *" and schedule.execution_timezone == "America/Bogota"
    assert schedule.job_name == MIGRATION_JOB
    sensor_def = defs.resolve_sensor_def("new_staging_rows")
    assert sensor_def.job_name == MIGRATION_JOB and sensor_def.minimum_interval_seconds >= 30


def test_sensor_and_schedule_never_run_two_migrations_at_once_nor_one_for_nothing(
    pipeline, use_env, pg_dagster_home, monkeypatch
):
    """Both are on by default and both ask the same questions of a real instance (the repo's dagster.yaml,
    PostgreSQL run storage): is there work, and is a migration already queued or running?"""
    from dagster import (
        DagsterInstance,
        DagsterRunStatus,
        DefaultScheduleStatus,
        DefaultSensorStatus,
        build_schedule_context,
    )
    from dagster._core.instance.ref import InstanceRef

    from ice_pipeline.definitions import defs

    schedule = defs.resolve_schedule_def("daily_migration")
    assert schedule.default_status == DefaultScheduleStatus.RUNNING
    assert defs.resolve_sensor_def("new_staging_rows").default_status == DefaultSensorStatus.RUNNING
    dbs = as_databases(pipeline)
    resources = {
        "staging_db": StagingDatabase(url=dbs.staging_url),
        "production_db": ProductionDatabase(url=dbs.production_url),
    }
    monkeypatch.setenv("DAGSTER_PG_URL", pg_dagster_home.pg_url)
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(pg_dagster_home.path))) as instance:

        def schedule_tick():
            return schedule.evaluate_tick(build_schedule_context(instance=instance, resources=resources))

        def sensor_tick(cursor: str | None = None):
            return new_staging_rows.evaluate_tick(sensor_context(dbs, cursor=cursor, instance=instance))

        # Nothing in staging: neither launches.
        idle = schedule_tick()
        assert not idle.run_requests and "Nothing to migrate" in idle.skip_message
        assert not sensor_tick().run_requests

        # V3 writes rows: the sensor asks for a run (the daemon starts it; a queued run counts the same).
        pipeline.insert("staging_student", [student_row()])
        tick = sensor_tick()
        (request,) = tick.run_requests
        job = defs.resolve_job_def(MIGRATION_JOB)
        queued = instance.create_run_for_job(
            job_def=job, status=DagsterRunStatus.NOT_STARTED, tags={**job.tags, **request.tags}
        )
        # While it waits or runs: the 02:00 schedule does not add a second one, nor does the sensor,
        # even with its cursor lost.
        for status in (DagsterRunStatus.STARTING, DagsterRunStatus.STARTED):
            instance.run_storage.handle_run_event(queued.run_id, _status_event(queued, status))
            busy = schedule_tick()
            assert not busy.run_requests and queued.run_id in busy.skip_message
            again = sensor_tick()
            assert not again.run_requests and queued.run_id in again.skip_message

        # The run does the work (here in process, on the same databases) and ends.
        migrate(dbs, use_env)
        monkeypatch.setenv("DAGSTER_PG_URL", pg_dagster_home.pg_url)  # migrate() ran on an ephemeral instance
        instance.report_run_failed(queued)  # ended; how does not matter here
        for cursor in (None, tick.cursor):
            assert not sensor_tick(cursor).run_requests
        done = schedule_tick()
        assert not done.run_requests and "Nothing to migrate" in done.skip_message

        # New rows and no migration in flight: the schedule launches one (the sensor would too).
        pipeline.insert("staging_lead", [{"full_name": "Carlos Ruiz", "email": "carlos@example.com"}])
        (scheduled,) = schedule_tick().run_requests
        assert scheduled.tags["ice_pipeline/trigger"] == "daily_migration"


def _status_event(run, status):
    """The run-storage event that moves `run` to `status` (what the daemon and the run worker record)."""
    from dagster import DagsterEvent, DagsterEventType

    kind = {"STARTING": DagsterEventType.RUN_STARTING, "STARTED": DagsterEventType.RUN_START}[status.value]
    return DagsterEvent(kind.value, job_name=run.job_name)


# --- increments -----------------------------------------------------------------


def test_three_batches_with_runs_in_between_equal_one_batch(pipeline, make_databases, use_env):
    data = demo.generate(400, seed=7, documents=False)
    batches = split(data, 3)

    incremental = as_databases(pipeline)
    for batch in batches:
        load_staging(incremental, batch)
        migrate(incremental, use_env)
        assert isinstance(new_staging_rows(sensor_context(incremental)), SkipReason)

    once = make_databases()
    for batch in batches:  # the same rows, in the same order, arriving before one run
        load_staging(once, batch)
    migrate(once, use_env)

    assert_same_state_but_flagged(incremental, once)
    assert_no_duplicates(incremental)
    # And a run with nothing new changes nothing.
    before = production_state(incremental)
    summary = migrate(incremental, use_env)
    assert summary["persons_created"] == summary["students_created"] == summary["leads_created"] == 0
    assert production_state(incremental) == before


# The smallest increments that must still equal one batch (DESIGN §4 property).
INCREMENT_CASES = {
    # Two earlier rows share nothing; a later row carries the cédula of one and the e-mail of the other.
    "row_bridging_two_earlier_persons": [
        [
            (
                "staging_lead",
                {"full_name": "Johana Rodríguez Ortiz", "cedula": "1145375514", "birth_date": "17/06/1993"},
            ),
            ("staging_lead", {"full_name": "Johana Rodríguez Ortiz", "email": "jrodriguez697@hotmail.com"}),
        ],
        [
            (
                "staging_student",
                {
                    "full_name": "Johana Rodríguez Ortiz",
                    "cedula": "1145375514",
                    "email": "jrodriguez697@hotmail.com",
                    "student_number": "ST-2001",
                },
            )
        ],
    ],
    # The same person written without, then with, accents.
    "better_written_name_arrives_later": [
        [("staging_lead", {"full_name": "Nicolas Sanchez Gonzalez", "cedula": "76935615"})],
        [
            (
                "staging_lead",
                {
                    "full_name": "Nicolás Sánchez González",
                    "cedula": "76935615",
                    "email": "nicolassanchez1045@gmail.com",
                },
            )
        ],
    ],
}


def insert_rows(dbs: Databases, rows: list[tuple[str, dict]]) -> None:
    with closing(psycopg2.connect(dbs.staging_url)) as conn:
        conn.autocommit = True  # one transaction per row: arrival order = updated_at order
        with conn.cursor() as cur:
            for table, row in rows:
                cur.execute(
                    f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join(['%s'] * len(row))})",
                    list(row.values()),
                )


@pytest.mark.parametrize("case", sorted(INCREMENT_CASES))
def test_increments_equal_one_batch_small_cases(case, pipeline, make_databases, use_env):
    batches = INCREMENT_CASES[case]
    incremental, once = as_databases(pipeline), make_databases()
    for batch in batches:
        insert_rows(incremental, batch)
        migrate(incremental, use_env)
        insert_rows(once, batch)
    migrate(once, use_env)
    if case == "row_bridging_two_earlier_persons":
        # One batch: one person. Increments: the two persons of the first batch stay, and the row
        # that ties them is linked to one and flags both for a person to merge.
        assert len(production_state(once)["persons"]) == 1
        assert len(production_state(incremental)["persons"]) == 2
        flagged = incremental.query(
            "SELECT person_id, candidate_person_id FROM ice_pipeline.review_queue "
            "WHERE kind = 'possible_duplicate' AND status = 'open'"
        )
        assert len(flagged) == 1 and None not in flagged[0] and flagged[0][0] != flagged[0][1]
        assert_same_state_but_flagged(incremental, once)
        return
    assert_same_state(production_state(incremental), production_state(once))


# --- killed run -------------------------------------------------------------------


def test_run_killed_after_resolved_persons_then_rerun_equals_uninterrupted(
    pipeline, make_databases, use_env, pg_dagster_home
):
    data = demo.generate(KILL_PERSONS, seed=KILL_SEED, documents=False)
    killed = as_databases(pipeline)
    load_staging(killed, data)

    proc = start_cli(killed, pg_dagster_home)
    watch = killed.connect()
    hit = False
    try:
        with watch.cursor() as cur:
            while proc.poll() is None:
                cur.execute(
                    "SELECT (SELECT count(*) FROM ice_pipeline.source_links WHERE entity = 'person'), "
                    "(SELECT count(*) FROM students)"
                )
                persons_linked, students = cur.fetchone()
                if persons_linked and not students:
                    os.killpg(proc.pid, signal.SIGKILL)
                    hit = True
                    break
                if students:
                    break
                time.sleep(0.005)
    finally:
        if proc.poll() is None and not hit:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    assert hit, "the run finished prod_students before the poll saw resolved_persons committed alone"
    assert proc.returncode == -signal.SIGKILL

    # Killed between the two commits: persons and their links are there, nothing after them.
    assert killed.scalar("SELECT count(*) FROM persons") > 0
    assert killed.scalar("SELECT count(*) FROM students") == 0
    assert (
        killed.scalar("SELECT count(*) FROM ice_pipeline.watermarks WHERE staging_table = 'staging_student'")
        == 0
    )
    # The sensor still sees the work (the watermark did not move).
    assert isinstance(new_staging_rows(sensor_context(killed)), RunRequest)

    rerun = start_cli(killed, pg_dagster_home)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err[-2000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["persons_created"] == 0, "the killed run's persons were found again, not re-created"

    reference = make_databases()
    load_staging(reference, data)
    migrate(reference, use_env)

    assert_same_state(production_state(killed), production_state(reference))
    assert_no_duplicates(killed)
    assert isinstance(new_staging_rows(sensor_context(killed)), SkipReason)


# --- two runs at once ---------------------------------------------------------------


def test_two_runs_started_together_never_duplicate(pipeline, make_databases, use_env, pg_dagster_home):
    data = demo.generate(1500, seed=99, documents=False)
    shared = as_databases(pipeline)
    load_staging(shared, data)

    # Same DAGSTER_HOME (the repo's dagster.yaml), as two terminals or a cron job on one machine would have.
    procs = [start_cli(shared, pg_dagster_home) for _ in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        results.append((proc.returncode, out, err))
    codes = [code for code, _, _ in results]
    assert 0 in codes, [err[-1500:] for _, _, err in results]
    for code, _, err in results:
        if code != 0:  # the one that did not wait must say why
            assert "Another migration" in err or "lock" in err.lower(), err[-1500:]

    summaries = [json.loads(out.strip().splitlines()[-1]) for code, out, _ in results if code == 0]
    created = sum(s["persons_created"] for s in summaries)
    assert created == shared.scalar("SELECT count(*) FROM persons"), "persons were created by both runs"
    assert_no_duplicates(shared)

    reference = make_databases()
    load_staging(reference, data)
    migrate(reference, use_env)
    assert_same_state(production_state(shared), production_state(reference))


def test_second_run_waits_for_the_lock_then_writes_nothing_new(pipeline, use_env, pg_dagster_home):
    """The advisory lock as last line of defence: a run blocked by it waits, then finds the work done."""
    dbs = as_databases(pipeline)
    pipeline.insert("staging_student", [student_row()])
    holder = dbs.connect()
    holder.autocommit = False
    with holder.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
    proc = start_cli(dbs, pg_dagster_home)
    try:
        deadline = time.monotonic() + 60
        waiting = 0
        while time.monotonic() < deadline and proc.poll() is None and not waiting:
            waiting = dbs.scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            time.sleep(0.05)
        assert waiting, "the run did not wait for the migration lock"
        assert dbs.scalar("SELECT count(*) FROM persons") == 0
    finally:
        holder.rollback()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert dbs.scalar("SELECT count(*) FROM persons") == 1


def test_rows_committed_late_by_a_long_staging_transaction_are_not_lost(pipeline, use_env):
    """updated_at defaults to now(), the *start* of V3's transaction: a long ingestion can commit rows
    older than rows another transaction committed (and a run processed) meanwhile."""
    dbs = as_databases(pipeline)
    slow = psycopg2.connect(dbs.staging_url)  # V3's long ingestion transaction
    try:
        with slow.cursor() as cur:
            cur.execute(
                "INSERT INTO staging_student (full_name, cedula, student_number) "
                "VALUES ('Late Row Student', '52123456', 'ST-LATE')"
            )
        pipeline.insert("staging_student", [student_row()])  # a quick one, committed first
        migrate(dbs, use_env)
        slow.commit()
    finally:
        slow.close()
    # The late row is new work: the sensor must see it, and the next run must load it.
    assert isinstance(new_staging_rows(sensor_context(dbs)), RunRequest), (
        "the sensor does not see the late row"
    )
    migrate(dbs, use_env)
    assert dbs.scalar("SELECT count(*) FROM students WHERE student_number = 'ST-LATE'") == 1


# --- changed staging row --------------------------------------------------------------


def load_reference_data(dbs: Databases) -> None:
    data = demo.generate(1, seed=1, documents=False)
    load_staging(
        dbs,
        demo.DemoData(
            students=data.students.iloc[0:0],
            leads=data.leads.iloc[0:0],
            documents=data.documents,
            reference_data=data.reference_data,
            lead_failures=data.lead_failures.iloc[0:0],
        ),
    )


def test_reingested_unchanged_rows_change_nothing(pipeline, use_env):
    """V3 re-ingests every row unchanged (updated_at moved): re-processed, and production stays as it was."""
    dbs = as_databases(pipeline)
    load_staging(dbs, demo.generate(400, seed=21, documents=False))
    migrate(dbs, use_env)
    before = production_state(dbs)
    for table in ("staging_student", "staging_lead"):
        pipeline.query(f"UPDATE {table} SET updated_at = now()", db="staging")
    assert isinstance(new_staging_rows(sensor_context(dbs)), RunRequest)
    summary = migrate(dbs, use_env)
    assert summary["staging_rows"]["students"] > 0 and summary["staging_rows"]["leads"] > 0
    assert summary["persons_created"] == summary["students_created"] == summary["leads_created"] == 0
    assert_same_state(production_state(dbs), before)


def test_reingested_leads_keep_their_lead(pipeline, use_env):
    """Rows of one person: a (service, event) sighting, then two (program) sightings that join the
    oldest lead with that (person, program) -- in one batch as across runs. Re-processing the rows
    (V3 moved updated_at) must keep every row on its lead."""
    dbs = as_databases(pipeline)
    load_reference_data(dbs)
    for n in range(8):  # eight people: which lead wins an ambiguous key must not be left to chance
        person = {
            "full_name": f"Persona Prueba {chr(65 + n)}",
            "cedula": f"10203040{n:02d}",
            "interest_program": "Intercambio Académico",
            "source_file": "leads.csv",
        }
        pipeline.insert(
            "staging_lead",
            [
                {**person, "service": "Intercambio Académico", "event": "Charla Javeriana Work & Travel"},
                {**person, "service": "Intercambio Académico"},
                {**person, "event": "Webinar Au Pair Julio", "source_sheet": "Hoja1"},
            ],
        )
    migrate(dbs, use_env)
    before = production_state(dbs)
    assert len(before["leads"]) == 8
    pipeline.query("UPDATE staging_lead SET updated_at = now()", db="staging")
    migrate(dbs, use_env)
    assert_same_state(production_state(dbs), before)


def test_changed_staging_row_fills_null_and_sends_conflict_to_review(pipeline, use_env):
    dbs = as_databases(pipeline)
    (sid,) = pipeline.insert("staging_student", [student_row(phone=None, city="Bogotá")])
    migrate(dbs, use_env)
    person = dbs.query("SELECT id, phone, city FROM persons")
    assert len(person) == 1 and person[0][1] is None

    pipeline.query(
        "UPDATE staging_student SET phone = '300 123 4567', city = 'Medellín', updated_at = now() "
        "WHERE id = %s",
        (sid,),
        db="staging",
    )
    assert isinstance(new_staging_rows(sensor_context(dbs)), RunRequest)
    summary = migrate(dbs, use_env)
    assert summary["persons_created"] == 0 and summary["students_created"] == 0

    rows = dbs.query("SELECT id, phone, city FROM persons")
    assert len(rows) == 1 and rows[0][0] == person[0][0]
    assert rows[0][1] is not None and rows[0][1].replace(" ", "").endswith("3001234567"), rows  # NULL filled
    assert rows[0][2] == "Bogotá"  # a differing value is kept as is...
    conflicts = dbs.query(
        "SELECT staging_table, staging_id, field, existing_value, incoming_value, status "
        "FROM ice_pipeline.review_queue WHERE kind = 'field_conflict'"
    )
    assert (
        "staging_student",
        sid,
        "city",
        "Bogotá",
        "Medellín",
        "open",
    ) in conflicts  # ...and sent to review
    assert dbs.scalar("SELECT count(*) FROM students") == 1
    assert dbs.scalar("SELECT count(*) FROM ice_pipeline.source_links WHERE staging_id = %s", (sid,)) == 2
    assert_no_duplicates(dbs)
    assert isinstance(new_staging_rows(sensor_context(dbs)), SkipReason)

    # Re-processing the same change again adds nothing (no second review item, no duplicate).
    pipeline.query("UPDATE staging_student SET updated_at = now() WHERE id = %s", (sid,), db="staging")
    migrate(dbs, use_env)
    assert dbs.scalar("SELECT count(*) FROM ice_pipeline.review_queue WHERE kind = 'field_conflict'") == len(
        conflicts
    )
    assert dbs.scalar("SELECT count(*) FROM persons") == 1
