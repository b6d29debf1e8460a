"""`ice-pipeline undo RUN_ID` and `migrate --backup DIR` on real PostgreSQL and a real S3 server (issue 15).

Every test runs the real migration job, then the real CLI command (typer's
runner, in process), and reads production and the bucket back.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from ice_pipeline.dev import demo_data

PRODUCTION_TABLES = ("persons", "students", "leads", "services", "events", "student_documents")
PIPELINE_TABLES = (
    "ice_pipeline.source_links",
    "ice_pipeline.rejected_rows",
    "ice_pipeline.review_queue",
    "ice_pipeline.watermarks",
    "ice_pipeline.person_keys",
)
COUNT_KEYS = (
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
)


def data_dump(pipeline) -> list[str]:
    """pg_dump --data-only of production and ice_pipeline tables (change log and runs excepted), as sorted lines.

    Sorted because a restored row is a new tuple (COPY follows physical order); sequence
    positions dropped (they advance even in rolled-back transactions, and are not data).
    """
    command = [
        "pg_dump",
        "--data-only",
        "--dbname",
        pipeline.production_url,
        "--exclude-table",
        "ice_pipeline.change_log",
        "--exclude-table",
        "ice_pipeline.runs",
    ]
    for table in (*PRODUCTION_TABLES, *PIPELINE_TABLES):
        command += ["--table", table if "." in table else f"public.{table}"]
    text = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return sorted(
        line
        for line in text.splitlines()
        if not line.startswith(("\\restrict", "\\unrestrict", "SELECT pg_catalog.setval", "--"))
    )


def snapshot(pipeline) -> tuple[dict, list[str]]:
    tables = {
        **pipeline.dump(),
        "ice_pipeline.person_keys": pipeline.query("SELECT * FROM ice_pipeline.person_keys ORDER BY 1"),
    }
    return tables, data_dump(pipeline)


def bucket_objects(pipeline) -> list[str]:
    client = pipeline.minio
    if not client.bucket_exists(pipeline.bucket):
        return []
    return sorted(o.object_name for o in client.list_objects(pipeline.bucket, recursive=True))


def table_counts(pipeline) -> dict[str, int]:
    return {t: pipeline.scalar(f"SELECT count(*) FROM {t}") for t in (*PRODUCTION_TABLES, *PIPELINE_TABLES)}


def load_demo(pipeline, persons: int, seed: int, documents: bool = True):
    data = demo_data.generate(persons, seed=seed, documents=documents)
    conn = pipeline.connect("staging")
    conn.autocommit = False
    return demo_data.load(conn, data, pipeline.files_root)


def created_person(pipeline, run_id: str) -> str:
    return pipeline.scalar(
        "SELECT entity_id::text FROM ice_pipeline.source_links WHERE run_id = %s "
        "AND entity = 'person' AND matched_by = 'new' ORDER BY 1 LIMIT 1",
        (run_id,),
    )


# --- the tests -----------------------------------------------------------------------


def test_undo_restores_production_byte_for_byte_and_a_new_run_gives_the_same_result(pipeline):
    load_demo(pipeline, 60, seed=11)
    before_tables, before_dump = snapshot(pipeline)
    first = pipeline.run()
    assert first["success"] and first["persons_created"] > 0 and first["documents_uploaded"] > 0
    after_first = table_counts(pipeline)
    objects_first = bucket_objects(pipeline)
    assert len(objects_first) == first["documents_uploaded"]

    result = pipeline.cli("undo", first["run_id"], "--json")
    report = json.loads(result.stdout)
    assert report["undone"] and not report["blockers"]
    assert report["objects"] == len(objects_first)

    after_tables, after_dump = snapshot(pipeline)
    assert after_tables == before_tables
    assert after_dump == before_dump
    assert bucket_objects(pipeline) == []
    assert (
        pipeline.scalar("SELECT status FROM ice_pipeline.runs WHERE run_id = %s", (first["run_id"],))
        == "undone"
    )

    again = pipeline.run()
    assert again["success"]
    assert {k: again[k] for k in COUNT_KEYS} == {k: first[k] for k in COUNT_KEYS}
    assert table_counts(pipeline) == after_first
    assert len(bucket_objects(pipeline)) == len(objects_first)
    # Undone once, it cannot be undone twice.
    twice = pipeline.cli("undo", first["run_id"], code=2)
    assert "already undone" in twice.output


def test_undo_of_an_earlier_run_is_refused_while_a_later_run_depends_on_it(pipeline):
    empty_tables, empty_dump = snapshot(pipeline)
    load_demo(pipeline, 40, seed=21, documents=False)
    first = pipeline.run()
    load_demo(pipeline, 40, seed=22, documents=False)
    second = pipeline.run()
    assert first["success"] and second["success"] and second["persons_created"] > 0

    refused = pipeline.cli("undo", first["run_id"], code=1)
    assert "refused" in refused.output
    # The staging watermarks moved by both runs: the later run is named as the blocker.
    assert re.search(
        rf"ice_pipeline\.watermarks staging_\w+: a later run changed it too \({second['run_id']}\)",
        refused.output,
    ), refused.output
    assert (
        pipeline.scalar("SELECT status FROM ice_pipeline.runs WHERE run_id = %s", (first["run_id"],))
        != "undone"
    )

    # Undone in reverse order, both go, and production is as it was before either.
    pipeline.cli("undo", second["run_id"])
    pipeline.cli("undo", first["run_id"])
    assert snapshot(pipeline) == (empty_tables, empty_dump)


def test_a_later_runs_link_to_a_person_the_run_created_blocks_its_undo(pipeline):
    pipeline.insert(
        "staging_student",
        [
            {
                "full_name": "Ana Maria Perez Test",
                "email": "ana.test@example.com",
                "cedula": "1020345678",
                "student_number": "T-0001",
                "source": "csv_only",
            }
        ],
    )
    first = pipeline.run()
    person = created_person(pipeline, first["run_id"])
    pipeline.insert(
        "staging_lead",
        [
            {
                "full_name": "ANA MARIA PEREZ TEST",
                "cedula": "1.020.345.678",
                "source_file": "leads.csv",
                "source_row": 2,
            }
        ],
    )
    second = pipeline.run()
    assert second["persons_created"] == 0 and second["leads_created"] == 1

    refused = pipeline.cli("undo", first["run_id"], "--json", code=1)
    reasons = {b["reason"] for b in json.loads(refused.stdout)["blockers"]}
    assert (
        f"a later run ({second['run_id']}) linked it to public.persons {person}, which this run created"
        in reasons
    )


def test_undo_is_refused_after_a_bot_edit_or_a_bot_row_referencing_the_run(pipeline):
    load_demo(pipeline, 30, seed=31, documents=False)
    run = pipeline.run()
    person = created_person(pipeline, run["run_id"])
    untouched = snapshot(pipeline)

    # The bot creates a lead for a person the run created: deleting the person would break it.
    lead = str(uuid.uuid4())
    pipeline.query(
        "INSERT INTO leads (id, person_id, lead_status, updated_at) VALUES (%s, %s, 'NEW', now())",
        (lead, person),
    )
    refused = pipeline.cli("undo", run["run_id"], "--json", code=1)
    blockers = json.loads(refused.stdout)["blockers"]
    assert {
        "table_name": "public.leads",
        "row_id": lead,
        "row_key": lead,
        "reason": f"references public.persons {person}, which the run created",
    } in blockers
    pipeline.query("DELETE FROM leads WHERE id = %s", (lead,))

    # The bot edits a person the run created (as Prisma does: a field and updated_at).
    pipeline.query("UPDATE persons SET city = 'Cali', updated_at = now() WHERE id = %s", (person,))
    refused = pipeline.cli("undo", run["run_id"], "--json", code=1)
    blockers = json.loads(refused.stdout)["blockers"]
    assert [b["reason"] for b in blockers if b["row_id"] == person] == [
        "changed after the run, outside the pipeline (a bot or manual edit)"
    ]
    assert snapshot(pipeline)[0]["ice_pipeline.person_keys"] == untouched[0]["ice_pipeline.person_keys"]
    assert (
        pipeline.scalar("SELECT count(*) FROM ice_pipeline.source_links WHERE run_id = %s", (run["run_id"],))
        > 0
    )


def test_undo_dry_run_changes_nothing_and_says_what_it_would_do(pipeline):
    load_demo(pipeline, 30, seed=41)
    run = pipeline.run()
    objects = bucket_objects(pipeline)
    before = snapshot(pipeline)

    dry = pipeline.cli("undo", run["run_id"], "--dry-run", "--json")
    plan = json.loads(dry.stdout)
    assert plan["dry_run"] and not plan["undone"] and not plan["blockers"]
    per_table = {row["table_name"]: row for row in plan["tables"]}
    assert per_table["public.persons"]["delete_created"] == run["persons_created"]
    assert per_table["public.student_documents"]["delete_created"] == run["documents_uploaded"]
    assert plan["objects"] == len(objects) > 0
    assert {mark["staging_table"] for mark in plan["watermarks"]} >= {"staging_student", "staging_lead"}

    text = pipeline.cli("undo", run["run_id"], "--dry-run")
    assert "would move back" in text.output and "would remove" in text.output

    assert snapshot(pipeline) == before
    assert bucket_objects(pipeline) == objects
    assert (
        pipeline.scalar("SELECT status FROM ice_pipeline.runs WHERE run_id = %s", (run["run_id"],))
        == "succeeded"
    )


def test_undo_of_an_unknown_run_is_a_clear_error(pipeline):
    result = pipeline.cli("undo", "no-such-run", code=2)
    assert "unknown run no-such-run" in result.output


def test_migrate_backup_writes_a_dump_pg_restore_reads_and_that_restores_production(pipeline, tmp_path: Path):
    load_demo(pipeline, 20, seed=51, documents=False)
    before = snapshot(pipeline)
    result = pipeline.cli("migrate", "--backup", str(tmp_path / "backups"), "--json")
    assert json.loads(result.stdout)["persons_created"] > 0
    dumps = list((tmp_path / "backups").glob("ice-production-*.dump"))
    assert len(dumps) == 1
    listing = subprocess.run(
        ["pg_restore", "--list", str(dumps[0])], capture_output=True, text=True, check=True
    )
    assert "TABLE DATA public persons" in listing.stdout
    assert "TABLE DATA ice_pipeline watermarks" in listing.stdout
    command = re.search(r"^.*(pg_restore .*\.dump)$", result.stderr, re.MULTILINE)
    assert command, result.stderr
    assert '"$DATABASE_URL"' in command.group(1)

    # The printed command, as an operator runs it, puts production back as it was before the run.
    subprocess.run(
        command.group(1),
        shell=True,
        check=True,
        capture_output=True,
        env={"DATABASE_URL": pipeline.production_url, "PATH": "/usr/bin:/bin"},
    )
    assert snapshot(pipeline) == before


@pytest.mark.parametrize("table", ["persons", "ice_pipeline.watermarks"])
def test_writes_outside_a_run_are_not_logged(pipeline, table):
    """The bot's writes (no run id in the session) leave nothing in the change log."""
    if table == "persons":
        pipeline.query(
            "INSERT INTO persons (id, full_name, email, updated_at) VALUES (%s, 'X', NULL, now())",
            (str(uuid.uuid4()),),
        )
    else:
        pipeline.query(
            "INSERT INTO ice_pipeline.watermarks (staging_table, high_updated_at, high_id, run_id) "
            "VALUES ('staging_lead', now(), 1, 'manual')"
        )
    assert pipeline.scalar("SELECT count(*) FROM ice_pipeline.change_log") == 0
