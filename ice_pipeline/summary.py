"""The run summary of DESIGN §6: one contract for `migrate --json` and `ice_pipeline.runs.stats`.

Each count of a run is a `Figure`: the asset that reports it, the key of that asset's
materialization metadata, and the key under which the asset adds it to its run's row in
`ice_pipeline.runs.stats` (`db.record_run`). The assets take their `record_run` keys from
these constants and `RunSummary.from_assets` reads the metadata through them, so the
summary the CLI prints and the figures kept in the database name the same things.

The stats keys are per asset (`person_rows_rejected`, `student_rows_rejected`, ...) because
the row's JSON is merged with `||`: one shared `rows_rejected` key would keep only the last
asset's count. A figure with `stats_key=None` is reported in the metadata only.

No Dagster or database imports: the CLI hands over the metadata it read from the run's events.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class Figure(NamedTuple):
    """One count of a run: who reports it, under which metadata key, under which runs.stats key."""

    asset: str
    metadata_key: str
    stats_key: str | None


PERSONS_CREATED = Figure("resolved_persons", "persons_created", "persons_created")
PERSONS_UPDATED = Figure("resolved_persons", "persons_updated", "persons_updated")
PERSON_ROWS_IN_REVIEW = Figure("resolved_persons", "rows_in_review", "person_rows_in_review")
PERSON_ROWS_REJECTED = Figure("resolved_persons", "rows_rejected", "person_rows_rejected")
STUDENTS_CREATED = Figure("prod_students", "students_created", "students_created")
STUDENTS_UPDATED = Figure("prod_students", "students_updated", "students_updated")
STUDENT_ROWS_IN_REVIEW = Figure("prod_students", "rows_in_review", None)
STUDENT_ROWS_REJECTED = Figure("prod_students", "rows_rejected", "student_rows_rejected")
LEADS_CREATED = Figure("prod_leads", "leads_created", "leads_created")
LEADS_UPDATED = Figure("prod_leads", "leads_updated", "leads_updated")
LEAD_ROWS_REJECTED = Figure("prod_leads", "rows_rejected", "lead_rows_rejected")
# Rows of staging_lead_failures (issue 15): recovered as leads, or rejected (not in rows_rejected above).
FAILURES_RECOVERED = Figure("prod_leads", "failures_recovered", "failures_recovered")
FAILURES_UNRECOVERABLE = Figure("prod_leads", "failures_unrecoverable", "failures_unrecoverable")
DOCUMENTS_UPLOADED = Figure("prod_documents", "documents_uploaded", "documents_uploaded")
DOCUMENTS_SKIPPED = Figure("prod_documents", "documents_skipped", None)
DOCUMENT_ROWS_REJECTED = Figure("prod_documents", "documents_rejected", None)
BYTES_UPLOADED = Figure("prod_documents", "bytes_uploaded", "bytes_uploaded")
CANDIDATES_QUEUED = Figure("person_candidates", "candidates_queued", "candidates_queued")
# applied_review_decisions records all its figures (review.apply.ApplyResult.as_metadata) under their own names.
REVIEW_DECISIONS_APPLIED = Figure(
    "applied_review_decisions", "review_decisions_applied", "review_decisions_applied"
)

# The counts of the summary (DESIGN §6, in this order) and the figures summed into each.
SOURCES: dict[str, tuple[Figure, ...]] = {
    "persons_created": (PERSONS_CREATED,),
    "persons_updated": (PERSONS_UPDATED,),
    "students_created": (STUDENTS_CREATED,),
    "students_updated": (STUDENTS_UPDATED,),
    "leads_created": (LEADS_CREATED,),
    "leads_updated": (LEADS_UPDATED,),
    "documents_uploaded": (DOCUMENTS_UPLOADED,),
    "documents_skipped": (DOCUMENTS_SKIPPED,),
    "rows_rejected": (
        PERSON_ROWS_REJECTED,
        STUDENT_ROWS_REJECTED,
        LEAD_ROWS_REJECTED,
        DOCUMENT_ROWS_REJECTED,
    ),
    "rows_in_review": (PERSON_ROWS_IN_REVIEW, STUDENT_ROWS_IN_REVIEW),
}
# The fixed figures of `migrate` (table and --json), DESIGN §6.
SUMMARY_KEYS = (*SOURCES, "checks_failed")
# Every count that is summed over the runs of one `migrate`.
SUMMED_KEYS = (*SUMMARY_KEYS, "checks_warned", "checks_passed", "review_decisions_applied")
STAGING_ASSETS = {"students": "staging_students", "leads": "staging_leads", "documents": "staging_documents"}


@dataclass
class RunSummary:
    """What `migrate` reports. Field names and order are the keys of `migrate --json` (a fixed interface)."""

    persons_created: int = 0
    persons_updated: int = 0
    students_created: int = 0
    students_updated: int = 0
    leads_created: int = 0
    leads_updated: int = 0
    documents_uploaded: int = 0
    documents_skipped: int = 0
    rows_rejected: int = 0
    rows_in_review: int = 0
    checks_failed: int = 0
    checks_warned: int = 0
    checks_passed: int = 0
    review_decisions_applied: int = 0
    staging_rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGING_ASSETS, 0))
    success: bool = True
    dry_run: bool = False
    run_id: str = ""
    run_ids: list[str] = field(default_factory=list)
    runs: int = 1
    more_pending: bool = False
    seconds: float = 0.0
    asset_seconds: dict[str, float] = field(default_factory=dict)
    failed_checks: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @classmethod
    def from_assets(
        cls,
        assets: dict[str, dict[str, Any]],
        checks: list[dict[str, Any]],
        *,
        success: bool,
        dry_run: bool,
        run_id: str,
        seconds: float,
        error: str | None,
    ) -> RunSummary:
        """The summary of one run from its materializations' metadata (asset name -> key -> value)
        and its check evaluations ({asset, check, passed, severity})."""
        counts = {
            key: sum(assets.get(f.asset, {}).get(f.metadata_key, 0) for f in figures)
            for key, figures in SOURCES.items()
        }
        failed = [c for c in checks if not c["passed"]]
        return cls(
            **counts,
            checks_failed=sum(1 for c in failed if c["severity"] == "ERROR"),
            checks_warned=sum(1 for c in failed if c["severity"] == "WARN"),
            checks_passed=len(checks) - len(failed),
            review_decisions_applied=assets.get(REVIEW_DECISIONS_APPLIED.asset, {}).get(
                REVIEW_DECISIONS_APPLIED.metadata_key, 0
            ),
            staging_rows={
                table: assets.get(name, {}).get("rows", 0) for table, name in STAGING_ASSETS.items()
            },
            success=success,
            dry_run=dry_run,
            run_id=run_id,
            run_ids=[run_id],
            runs=1,
            more_pending=any(
                assets.get(name, {}).get("more_pending", False) for name in STAGING_ASSETS.values()
            ),
            seconds=seconds,
            asset_seconds={name: meta["seconds"] for name, meta in assets.items() if "seconds" in meta},
            failed_checks=failed,
            error=error,
        )

    def as_dict(self) -> dict[str, Any]:
        """The `migrate --json` object (keys in field order)."""
        return dataclasses.asdict(self)


def combine_summaries(runs: list[RunSummary]) -> RunSummary:
    """One summary for several runs of one `migrate`: counts summed, the last run's outcome."""
    if len(runs) == 1:
        return runs[0]
    last = runs[-1]
    return dataclasses.replace(
        last,
        **{key: sum(getattr(run, key) for run in runs) for key in SUMMED_KEYS},
        staging_rows={table: sum(run.staging_rows[table] for run in runs) for table in runs[0].staging_rows},
        seconds=round(sum(run.seconds for run in runs), 2),
        asset_seconds={
            name: round(sum(run.asset_seconds.get(name, 0) for run in runs), 2) for name in last.asset_seconds
        },
        failed_checks=[check for run in runs for check in run.failed_checks],
        run_ids=[run.run_id for run in runs],
        runs=len(runs),
    )
