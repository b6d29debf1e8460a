"""The guard against V3's open write transactions, under the read-only staging role `.env.example` recommends.

`updated_at` defaults to now(), the start of V3's transaction: a transaction
that began before rows committed meanwhile, and commits after a run read
them, brings rows older than that run's watermark. A real non-superuser role
(LOGIN, SELECT only) reads staging here; V3's transaction is a second
connection as the table owner, held open across a run, committed after it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import closing

import psycopg2
import pytest
from sqlalchemy.engine import make_url

from ice_pipeline.resources import connect
from ice_pipeline.store.staging import OpenWriterNotVisible, open_writer_cap


def student(number: str, cedula: str) -> dict:
    return {
        "full_name": f"Estudiante {number}",
        "cedula": cedula,
        "student_number": number,
        "source": "directory+csv",
        "csv_enriched": True,
    }


def insert(conn: psycopg2.extensions.connection, row: dict) -> None:
    with conn.cursor() as cur:
        columns = list(row)
        cur.execute(
            f"INSERT INTO staging_student ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})",
            [row[c] for c in columns],
        )


@pytest.fixture
def reader(pipeline, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A LOGIN role with SELECT on the staging tables and nothing else; STAGING_DATABASE_URL uses it."""
    role = f"ice_reader_{uuid.uuid4().hex[:8]}"
    admin = pipeline.staging  # the superuser that owns the staging tables
    with admin.cursor() as cur:
        cur.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
        cur.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    monkeypatch.setenv(
        "STAGING_DATABASE_URL",
        make_url(pipeline.staging_url).set(username=role).render_as_string(hide_password=False),
    )
    try:
        yield role
    finally:
        with closing(psycopg2.connect(pipeline.staging_url)) as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f"DROP OWNED BY {role}")
                cur.execute(f"DROP ROLE {role}")


def students(pipeline) -> list[str]:
    return [row[0] for row in pipeline.query("SELECT student_number FROM students ORDER BY 1")]


def test_reader_role_is_really_unprivileged(pipeline, reader):
    """The premise: this role cannot see when another role's transaction began, nor write staging."""
    v3 = psycopg2.connect(pipeline.staging_url)
    try:
        insert(v3, student("ST-OPEN", "52123456"))
        with (
            closing(
                psycopg2.connect(
                    make_url(pipeline.staging_url).set(username=reader).render_as_string(hide_password=False)
                )
            ) as conn,
            conn.cursor() as cur,
        ):
            cur.execute(
                "SELECT count(*), count(xact_start) FROM pg_stat_activity "
                "WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()"
            )
            assert cur.fetchone() == (1, 0)
            cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            assert cur.fetchone() == (False,)
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("INSERT INTO staging_student (full_name) VALUES ('x')")
    finally:
        v3.close()


def test_open_v3_transaction_hidden_from_the_role_stops_the_run_then_nothing_is_skipped(pipeline, reader):
    """Without pg_read_all_stats the run cannot know where V3's open transaction began: it stops before
    reading, naming the GRANT; after V3 commits, the next run loads every row, the late one included."""
    pipeline.insert("staging_student", [student("ST-EARLY", "1020345678")])
    v3 = psycopg2.connect(pipeline.staging_url)  # V3's long ingestion: begins, writes, stays open
    try:
        insert(v3, student("ST-LATE", "52123456"))
        pipeline.insert("staging_student", [student("ST-QUICK", "79456123")])  # committed meanwhile
        first = pipeline.run()
        assert not first["success"]
        assert f'GRANT pg_read_all_stats TO "{reader}";' in first["error"]
        assert students(pipeline) == []  # stopped before reading: no watermark moved past the late row
        assert pipeline.query("SELECT * FROM ice_pipeline.watermarks") == []
        v3.commit()
    finally:
        v3.close()
    second = pipeline.run()
    assert second["success"], second["error"]
    assert students(pipeline) == ["ST-EARLY", "ST-LATE", "ST-QUICK"]
    assert pipeline.run()["persons_created"] == 0  # and nothing is left over


def test_with_pg_read_all_stats_the_run_reads_below_the_open_transaction_then_the_rest(pipeline, reader):
    """With the grant the run takes what committed before V3's open transaction began; the rows from
    then on (the quick one committed meanwhile) wait, and the run after V3's commit loads them all."""
    pipeline.query(f"GRANT pg_read_all_stats TO {reader}", db="staging")
    pipeline.insert("staging_student", [student("ST-EARLY", "1020345678")])
    v3 = psycopg2.connect(pipeline.staging_url)
    try:
        insert(v3, student("ST-LATE", "52123456"))
        pipeline.insert("staging_student", [student("ST-QUICK", "79456123")])
        first = pipeline.run()
        assert first["success"], first["error"]
        assert students(pipeline) == ["ST-EARLY"]
        v3.commit()
    finally:
        v3.close()
    second = pipeline.run()
    assert second["success"], second["error"]
    assert students(pipeline) == ["ST-EARLY", "ST-LATE", "ST-QUICK"]


def test_cap_ignores_readers_and_writers_of_other_tables(pipeline, reader):
    """Only transactions writing the watermarked staging tables hold the read back; a hidden reader or a
    writer of staging_reference_data (read whole every run, no watermark) does not stop the run. Without any,
    the cap is the check's moment."""
    other = psycopg2.connect(pipeline.staging_url)
    try:
        with other.cursor() as cur:
            cur.execute("SELECT count(*) FROM staging_student")
            cur.execute(
                "INSERT INTO staging_reference_data (source_file, category, code, label) "
                "VALUES ('test.csv', 'city', 'TEST', 'Test')"
            )
        conn = connect(
            make_url(pipeline.staging_url).set(username=reader).render_as_string(hide_password=False),
            "STAGING_DATABASE_URL",
            read_only=True,
        )
        with closing(conn):
            cap, writers = open_writer_cap(conn)
            assert writers == 0
            with conn.cursor() as cur:
                cur.execute("SELECT now()")
                assert cap == cur.fetchone()[0]  # same transaction: now() is the moment of the check
            conn.rollback()
            insert(other, student("ST-OPEN", "52123456"))
            with pytest.raises(OpenWriterNotVisible, match="1 open V3 write transaction"):
                open_writer_cap(conn)
    finally:
        other.close()
