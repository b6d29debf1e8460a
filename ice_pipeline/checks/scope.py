"""Which rows a check looks at when it runs (issue 15: a check means something on its own).

- In a migration run (its asset materialized in the same run): the rows this run linked.
- Run on its own (an operator clicks *Execute* on the check, or a check-only run): the rows
  linked by the run of the asset's latest materialization, or the whole database when
  there is none on record.
- Run tag `ice_pipeline/check_scope=database` (the job verify_production sets it): the whole
  database, with the same rules `ice-pipeline report` uses.
"""

from __future__ import annotations

from dagster import AssetCheckExecutionContext, AssetKey

from ice_pipeline.checks.engine import EVERYTHING, LATEST_RUN, THIS_RUN, WHOLE_DATABASE, Scope

SCOPE_TAG = "ice_pipeline/check_scope"
WHOLE_DATABASE_TAG = {SCOPE_TAG: "database"}


def resolve_scope(context: AssetCheckExecutionContext, asset: str) -> Scope:
    """The scope of a check of `asset` in the current run (see the module docstring)."""
    run = context.run
    if run.tags.get(SCOPE_TAG) == "database":
        return Scope(WHOLE_DATABASE, None, f"run tag {SCOPE_TAG}=database (e.g. the job verify_production)")
    event = context.instance.get_latest_materialization_event(AssetKey(asset))
    if event is None:
        return Scope(
            WHOLE_DATABASE, None, f"the check ran without {asset}, which has no materialization on record"
        )
    if event.run_id == run.run_id:
        return Scope(THIS_RUN, run.run_id, f"{asset} was materialized in this run")
    return Scope(
        LATEST_RUN,
        event.run_id,
        f"the check ran without {asset}: the rows of its latest materialization's run",
    )


__all__ = ["EVERYTHING", "SCOPE_TAG", "WHOLE_DATABASE_TAG", "resolve_scope"]
