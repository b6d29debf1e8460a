"""`ice-pipeline report` (issue 15): the checks' rules over the whole database, and the plan's verification
figures (persons by data_source, csv_enriched, students by program, leads by status and service, usage of
the indexes the migration adds), as JSON and as text."""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import psycopg2

from ice_pipeline.checks import RULES
from ice_pipeline.dev import demo_data as demo
from ice_pipeline.reporting import build_report, migration_indexes, verification_metadata

CLI = str(Path(sys.executable).parent / "ice-pipeline")


def test_report_gives_the_verification_figures_in_json_and_text(pipeline):
    data = demo.generate(80, seed=5, documents=False)
    with closing(psycopg2.connect(pipeline.staging_url)) as conn:
        demo.load(conn, data, pipeline.files_root)
    assert pipeline.run()["success"]

    report = build_report(pipeline.staging, pipeline.production)
    assert set(report["rules"]) == {rule.name for rule in RULES}
    check = report["verification"]
    totals = report["totals"]
    assert sum(r["n"] for r in check["persons_by_data_source"]) == totals["persons"] > 0
    assert {r["data_source"]: r["n"] for r in check["persons_by_data_source"]} == dict(
        pipeline.query("SELECT coalesce(data_source, '(none)'), count(*) FROM persons GROUP BY 1")
    )
    assert check["csv_enriched"]["persons"] == pipeline.scalar(
        "SELECT count(*) FROM persons WHERE csv_enriched"
    )
    assert check["csv_enriched"]["students"] == pipeline.scalar(
        "SELECT count(*) FROM students WHERE csv_enriched"
    )
    assert sum(r["n"] for r in check["students_by_program"]) == totals["students"] > 0
    assert sum(r["n"] for r in check["leads_by_status_and_service"]) == totals["leads"] > 0
    assert any(r["service"] != "(none)" for r in check["leads_by_status_and_service"])
    # every index of the migration exists and is reported, the pipeline's two on leads included
    names = migration_indexes()
    assert {"leads_ice_person_program_idx", "leads_ice_source_row_idx", "persons_cedula_key"} <= set(names)
    assert sorted(r["index_name"] for r in check["index_usage"]) == sorted(names)
    assert all(r["scans"] >= 0 and r["size_bytes"] > 0 for r in check["index_usage"])

    metadata = verification_metadata(pipeline.production)
    assert metadata["persons_csv_enriched"] == check["csv_enriched"]["persons"]
    assert "leads_ice_source_row_idx" in metadata["migration_index_usage"].value

    # The command, JSON and text. No personal data: categories, counts and ids only.
    as_json = subprocess.run(
        [CLI, "report", "--json"], env=pipeline.env, capture_output=True, text=True, timeout=300
    )
    assert as_json.returncode == 0, as_json.stderr[-2000:]
    printed = json.loads(as_json.stdout)
    assert printed["verification"]["csv_enriched"] == check["csv_enriched"]
    assert printed["duplicates"]["persons_unique_cedula"] == 0 and printed["healthy"] == report["healthy"]
    as_text = subprocess.run(
        [CLI, "report"], env={**pipeline.env, "COLUMNS": "200"}, capture_output=True, text=True, timeout=300
    )
    assert as_text.returncode == 0, as_text.stderr[-2000:]
    for heading in (
        "persons by data_source",
        "csv_enriched:",
        "students by program",
        "leads by status and service",
        "index usage",
        "leads_ice_source_row_idx",
        "healthy",
    ):
        assert heading in as_text.stdout, heading
    for name in [n for n in data.students["full_name"].head(20) if isinstance(n, str) and len(n.strip()) > 3]:
        assert name not in as_text.stdout and name not in as_json.stdout


def test_report_says_not_healthy_on_an_error_rule_and_lists_ids(pipeline):
    pipeline.insert("staging_lead", [{"full_name": "Carlos Ruiz", "email": "carlos@example.com"}])
    assert pipeline.run()["success"]
    (person,) = pipeline.query("SELECT id::text FROM persons")[0]
    pipeline.query("DELETE FROM leads")
    pipeline.query("DELETE FROM persons")
    report = build_report(pipeline.staging, pipeline.production)
    assert not report["healthy"]
    assert report["orphans"]["persons_no_orphans"] == 1
    assert report["rules"]["persons_no_orphans"]["offending_ids"] == [person]
