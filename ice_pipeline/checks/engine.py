"""Running a rule in a scope: the one code path of the asset checks and `ice-pipeline report`.

No Dagster here: a scope is a run id (or None for the whole database) and a
label that says which, for the check's metadata and the report.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from ice_pipeline.checks.accounting import WATERMARK
from ice_pipeline.checks.rules import PRODUCTION, STAGING_IDS_OF_RUN, Rule
from ice_pipeline.db import read_frame

MAX_LISTED = 50
THIS_RUN = "this run"
LATEST_RUN = "run of the latest materialization"
WHOLE_DATABASE = "whole database"


@dataclass(frozen=True)
class Scope:
    """What a check looks at: the rows one run linked (`run_id`), or everything (`run_id` None)."""

    kind: str  # THIS_RUN | LATEST_RUN | WHOLE_DATABASE
    run_id: str | None = None
    why: str = ""  # one sentence for the metadata: why this scope

    def label_for(self, rule: Rule) -> str:
        """The scope a rule actually used (rules with scope "table" always read the whole table)."""
        if rule.scope == "table":
            return "whole table"
        return self.kind


EVERYTHING = Scope(WHOLE_DATABASE, None, "every row of the database")


def staging_ids(production_conn, table: str, run_id: str | None) -> list[int]:
    """Staging ids of `table` that run `run_id` took (linked, rejected, in review); every run's when None."""
    with production_conn.cursor() as cur:
        ids = read_frame(
            cur, STAGING_IDS_OF_RUN, {"table": table, "run_id": run_id}, types={"staging_id": pa.int64()}
        )
    production_conn.rollback()
    return ids["staging_id"].tolist()


def watermark(production_conn, table: str) -> tuple:
    """(updated_at, id) up to which `table` has been processed; the beginning when never."""
    with production_conn.cursor() as cur:
        cur.execute(WATERMARK, {"table": table})
        mark = cur.fetchone() or ("-infinity", 0)
    production_conn.rollback()
    return mark


def find_violations(rule: Rule, production_conn, staging_conn, scope: Scope) -> pd.DataFrame:
    """One row per offending group or row: `ids` (comma-separated ids, never names) and `n`."""
    run_id = None if rule.scope == "table" else scope.run_id
    params: dict = {"run_id": run_id, "ids": None, "since_at": "infinity", "since_id": 0}
    if rule.database != PRODUCTION and rule.staging_table and (rule.scope == "lineage" or run_id is not None):
        params["ids"] = staging_ids(production_conn, rule.staging_table, run_id)
        if scope.kind == THIS_RUN and rule.scope == "run":
            params["since_at"], params["since_id"] = watermark(production_conn, rule.staging_table)
    conn = production_conn if rule.database == PRODUCTION else staging_conn
    with conn.cursor() as cur:
        found = read_frame(cur, rule.query, params, types={"n": pa.int64()})
    conn.rollback()
    return found


def offending_ids(found: pd.DataFrame, limit: int = MAX_LISTED) -> list[str]:
    """The first `limit` offending ids, one per entry (groups flattened)."""
    return [i for ids in found["ids"] for i in str(ids).split(",")][:limit]
