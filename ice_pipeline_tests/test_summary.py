"""The run summary contract (ice_pipeline/summary.py): built from asset metadata, summed over runs."""

from __future__ import annotations

import json

from ice_pipeline import summary as s
from ice_pipeline.summary import RunSummary, combine_summaries

# `migrate --json` keys in their order: a fixed interface (DESIGN §6).
JSON_KEYS = [
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
    "checks_warned",
    "checks_passed",
    "review_decisions_applied",
    "staging_rows",
    "success",
    "dry_run",
    "run_id",
    "run_ids",
    "runs",
    "more_pending",
    "seconds",
    "asset_seconds",
    "failed_checks",
    "error",
]


def _run(run_id: str, scale: int, *, more_pending: bool, failed: bool = False) -> RunSummary:
    assets = {
        "staging_students": {"rows": 10 * scale, "more_pending": more_pending, "seconds": 0.111},
        "staging_leads": {"rows": 5 * scale, "more_pending": False},
        "staging_documents": {"rows": 2 * scale},
        "applied_review_decisions": {"review_decisions_applied": scale, "seconds": 0.5},
        "resolved_persons": {
            "persons_created": 3 * scale,
            "persons_updated": scale,
            "rows_rejected": 1,
            "rows_in_review": 2,
            "seconds": 1.25,
        },
        "prod_students": {
            "students_created": 4 * scale,
            "students_updated": 0,
            "rows_rejected": 2,
            "rows_in_review": 1,
        },
        "prod_leads": {"leads_created": 5 * scale, "leads_updated": 1, "rows_rejected": 3},
        "prod_documents": {
            "documents_uploaded": 2 * scale,
            "documents_skipped": 1,
            "documents_rejected": 4,
            "bytes_uploaded": 999,
        },
    }
    checks = [
        {"asset": "prod_students", "check": "accounting", "passed": not failed, "severity": "ERROR"},
        {"asset": "prod_leads", "check": "capture_rate", "passed": False, "severity": "WARN"},
        {"asset": "prod_leads", "check": "orphans", "passed": True, "severity": "ERROR"},
    ]
    return RunSummary.from_assets(
        assets,
        checks,
        success=not failed,
        dry_run=False,
        run_id=run_id,
        seconds=2.004,
        error="boom" if failed else None,
    )


def test_one_run_reads_each_figure_from_its_asset_and_keeps_the_json_interface():
    run = _run("r1", 1, more_pending=True)
    assert json.dumps(run.as_dict(), default=str) == json.dumps(
        {
            "persons_created": 3,
            "persons_updated": 1,
            "students_created": 4,
            "students_updated": 0,
            "leads_created": 5,
            "leads_updated": 1,
            "documents_uploaded": 2,
            "documents_skipped": 1,
            "rows_rejected": 1 + 2 + 3 + 4,
            "rows_in_review": 2 + 1,
            "checks_failed": 0,
            "checks_warned": 1,
            "checks_passed": 2,
            "review_decisions_applied": 1,
            "staging_rows": {"students": 10, "leads": 5, "documents": 2},
            "success": True,
            "dry_run": False,
            "run_id": "r1",
            "run_ids": ["r1"],
            "runs": 1,
            "more_pending": True,
            "seconds": 2.004,
            "asset_seconds": {
                "staging_students": 0.111,
                "applied_review_decisions": 0.5,
                "resolved_persons": 1.25,
            },
            "failed_checks": [
                {"asset": "prod_leads", "check": "capture_rate", "passed": False, "severity": "WARN"}
            ],
            "error": None,
        }
    )


def test_a_run_that_materialized_nothing_counts_zero():
    run = RunSummary.from_assets(
        {}, [], success=False, dry_run=True, run_id="r0", seconds=0.5, error="no database"
    )
    assert list(run.as_dict()) == JSON_KEYS
    assert all(getattr(run, key) == 0 for key in s.SUMMED_KEYS)
    assert run.staging_rows == {"students": 0, "leads": 0, "documents": 0} and not run.more_pending


def test_runs_are_summed_and_the_last_run_gives_the_outcome():
    first, second = _run("r1", 1, more_pending=True), _run("r2", 10, more_pending=False, failed=True)
    total = combine_summaries([first, second])
    assert list(total.as_dict()) == JSON_KEYS
    assert (total.persons_created, total.students_created, total.leads_created) == (33, 44, 55)
    assert total.rows_rejected == 20 and total.rows_in_review == 6 and total.review_decisions_applied == 11
    assert (total.checks_failed, total.checks_warned, total.checks_passed) == (1, 2, 3)
    assert total.staging_rows == {"students": 110, "leads": 55, "documents": 22}
    assert total.seconds == 4.01 and total.asset_seconds["staging_students"] == 0.22
    assert total.run_ids == ["r1", "r2"] and total.runs == 2 and total.run_id == "r2"
    assert not total.success and total.error == "boom" and not total.more_pending
    assert [c["check"] for c in total.failed_checks] == ["capture_rate", "accounting", "capture_rate"]
    assert first.run_ids == ["r1"] and first.persons_created == 3  # the runs themselves are left as they were
    assert combine_summaries([first]) is first


def test_runs_stats_keys_name_one_figure_each():
    figures = [value for value in vars(s).values() if isinstance(value, s.Figure)]
    keys = [f.stats_key for f in figures if f.stats_key is not None]
    assert len(keys) == len(set(keys)), keys  # runs.stats is merged with ||: a shared key would lose counts
    assert {f for sources in s.SOURCES.values() for f in sources} <= set(figures)
