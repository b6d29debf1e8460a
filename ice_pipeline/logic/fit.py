"""Fitting values to the production columns they are written to (DESIGN §4: a bad value costs its row).

Production's widths and types are read at run start (`store/columns.py`), never
assumed: a real ICE bot database may be narrower than the baseline. Every frame
is fitted *before* it is planned and written, by a per-column policy:

- `cut`: free text whose prefix keeps its meaning (notes, addresses) is cut to
  the column's width, ending in `…` so a reader sees it was cut;
- `drop`: a descriptive value (program, city, status, data source) that does
  not fit is left out; the row loads without it;
- `reject`: an identifying value (student number, a service's name) cannot be
  cut or dropped without changing who or what the row is: the row is rejected.

Every change is reported per row as a warning (for lineage) or a rejection
reason, naming the column and the limit, never the value. Pure: no database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

CUT_MARK = "…"


class Policy(StrEnum):
    CUT = "cut"
    DROP = "drop"
    REJECT = "reject"


@dataclass(frozen=True)
class Column:
    """A production column as information_schema.columns describes it."""

    data_type: str  # 'character varying', 'text', 'integer', 'uuid', ...
    max_length: int | None = None  # character_maximum_length (characters, not bytes)


Limits = Mapping[str, Mapping[str, Column]]  # table -> column -> Column


@dataclass(frozen=True)
class Rule:
    """How one frame column is fitted: the production column it is written to, and the policy.

    `companions`: frame columns derived from this one (match keys) that must be
    blanked with it when it is dropped.
    """

    column: str
    policy: Policy
    companions: tuple[str, ...] = ()


@dataclass
class Fitted:
    frame: pd.DataFrame  # the input, values cut or dropped (rejected rows still present)
    warnings: pd.Series  # per row: what was cut or dropped ('; '-joined), NA when nothing
    rejected: pd.Series  # per row: why the row cannot be written, NA when it can

    @property
    def loadable(self) -> pd.DataFrame:
        """The rows that can be written, these warnings appended to their `warnings` ('; '-joined, for lineage)."""
        frame = self.frame.assign(warnings=join_warnings(self.frame.get("warnings"), self.warnings))
        return frame[self.rejected.isna().to_numpy()]


INTEGER_RANGES = {
    "smallint": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}

# The staging-row columns of each production write, and how each is fitted.
STUDENT_RULES: dict[str, Rule] = {
    "student_number": Rule("student_number", Policy.REJECT),
    "program": Rule("program", Policy.DROP),
    "data_source": Rule("data_source", Policy.DROP),
}
LEAD_RULES: dict[str, Rule] = {
    "lead_status": Rule("lead_status", Policy.DROP),
    "notes": Rule("notes", Policy.CUT),
    "program_type": Rule("program_type", Policy.DROP),
    "source_file": Rule("source_file", Policy.DROP),
    "source_sheet": Rule("source_sheet", Policy.DROP),
    "source_row": Rule("source_row", Policy.DROP),
}
SERVICE_RULES: dict[str, Rule] = {
    "name": Rule("name", Policy.REJECT),
    "description": Rule("description", Policy.CUT),
}
EVENT_RULES: dict[str, Rule] = {
    "name": Rule("name", Policy.REJECT),
    "location": Rule("location", Policy.DROP),
}
# For resolved_persons (the staging-row columns of logic/people.prepare_person_rows). Cédula and
# e-mail are dropped, not rejected: a value wider than the column is no valid cédula or e-mail,
# and the row still names a person. Keys derived from a dropped value are blanked with it.
PERSON_RULES: dict[str, Rule] = {
    "display_name": Rule("full_name", Policy.REJECT),
    "original_name": Rule("original_name", Policy.CUT),
    "email": Rule("email", Policy.DROP),
    "phone": Rule("phone", Policy.DROP, ("mobile",)),
    "cedula": Rule("cedula", Policy.DROP),
    "address": Rule("address", Policy.CUT),
    "city": Rule("city", Policy.DROP, ("city_key",)),
    "country": Rule("country", Policy.DROP, ("country_key",)),
}
# Values a plan computes (unions of sources): fitted again after planning, never rejected.
PERSON_PLAN_RULES: dict[str, Rule] = {"data_source": Rule("data_source", Policy.DROP)}
STUDENT_PLAN_RULES: dict[str, Rule] = {"data_source": Rule("data_source", Policy.DROP)}


def join_warnings(*parts: pd.Series | None) -> pd.Series:
    """'; '-join per row, skipping missing parts; NA when a row has none."""
    present = [p.astype("string") for p in parts if p is not None]
    if not present:
        return pd.Series(dtype="string")
    out = present[0].fillna("")
    for part in present[1:]:
        part = part.reindex(out.index).fillna("")
        out = out + np.where((out != "") & (part != ""), "; ", "") + part
    return out.replace("", pd.NA).astype("string")


def _too_wide(values: pd.Series, column: Column) -> tuple[pd.Series, str] | None:
    """(rows whose value cannot be stored, what is wrong) for one column; None when any value fits."""
    present = values.notna()
    if column.max_length is not None:
        text = values.astype("string")
        return (text.str.len() > column.max_length).fillna(
            False
        ) & present, f"longer than {column.max_length} characters"
    bounds = INTEGER_RANGES.get(column.data_type)
    if bounds is not None:
        numbers = pd.to_numeric(values.astype("string"), errors="coerce")
        return present & ~numbers.between(*bounds).fillna(False), f"out of range for {column.data_type}"
    return None


def cut(values: pd.Series, width: int) -> pd.Series:
    """Values cut to `width` characters, the last one `…` so that a reader sees the cut."""
    text = values.astype("string")
    if width <= 1:
        return text.str.slice(0, width)
    return text.str.slice(0, width - 1).str.rstrip() + CUT_MARK


def fit(frame: pd.DataFrame, table: str, rules: Mapping[str, Rule], limits: Limits) -> Fitted:
    """Fit the columns of `frame` named in `rules` to production table `table` as `limits` describe it.

    Columns absent from the frame or from production are left alone (the write
    itself would say what is missing); the isolating writer (db.write_isolating)
    catches whatever no rule foresaw.
    """
    out = frame.copy()
    warnings: list[pd.Series] = []
    rejected = pd.Series(pd.NA, index=frame.index, dtype="string")
    described = limits.get(table, {})
    for name, rule in rules.items():
        column = described.get(rule.column)
        if name not in out or column is None:
            continue
        found = _too_wide(out[name], column)
        if found is None:
            continue
        bad, problem = found
        bad = pd.Series(np.asarray(bad, dtype=bool), index=out.index)
        if not bad.any():
            continue
        what = f"{rule.column} {problem}"
        if rule.policy is Policy.CUT and column.max_length is not None:
            out[name] = out[name].astype("string").mask(bad, cut(out[name], column.max_length))
            warnings.append(pd.Series(np.where(bad, f"{what}: cut", ""), index=out.index))
        elif rule.policy is Policy.REJECT:
            rejected = rejected.mask(bad & rejected.isna(), what)
        else:  # DROP (and CUT of a value that has no width, e.g. an integer out of range)
            out[name] = out[name].mask(bad)
            for companion in rule.companions:
                if companion in out:
                    out[companion] = out[companion].mask(bad)
            warnings.append(pd.Series(np.where(bad, f"{what}: dropped", ""), index=out.index))
    joined = join_warnings(*warnings) if warnings else pd.Series(pd.NA, index=frame.index, dtype="string")
    return Fitted(out, joined.reindex(frame.index), rejected)


REJECTION_COLUMNS = ["staging_table", "staging_id", "reason", "details", "retryable"]


def rejections(
    staging_table: str, staging_ids: pd.Series, reasons: pd.Series, details: pd.Series | None = None
) -> pd.DataFrame:
    """Rows for ice_pipeline.rejected_rows (db.write_rejections): not retryable, a new value is a new row version."""
    ids = pd.Series(staging_ids).reset_index(drop=True)
    why = pd.Series(reasons).reset_index(drop=True).astype("string")
    detail = (
        pd.Series(details).reset_index(drop=True) if details is not None else pd.Series(["{}"] * len(ids))
    )
    frame = pd.DataFrame(
        {
            "staging_table": staging_table,
            "staging_id": ids.astype("int64"),
            "reason": why,
            "details": detail.fillna("{}").astype("string"),
            "retryable": False,
        }
    )
    return frame.reindex(columns=REJECTION_COLUMNS)


def refused_ids(frame: pd.DataFrame, id_column: str, refused: pd.DataFrame) -> pd.DataFrame:
    """entity_id, reason, details of the rows of `frame` that production refused (`refused`: position, reason,
    details, as db.write_isolating returns them)."""
    positions = refused["position"].to_numpy(dtype=np.int64)
    return pd.DataFrame(
        {
            "entity_id": frame[id_column].to_numpy()[positions],
            "reason": refused["reason"].to_numpy(),
            "details": refused["details"].to_numpy(),
        }
    )


def settle_refused(
    links: pd.DataFrame, id_column: str, refused: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(links kept, links lost + reason, details) once production refused some entities.

    Every staging row planned onto a refused entity (`refused`: entity_id, reason,
    details) is not linked to it; the caller rejects it (unless it was linked
    before, in which case its earlier link stands). The lost rows keep every
    column of `links` (staging_table, staging_id, ...).
    """
    if refused.empty:
        return links, links.iloc[:0].assign(
            reason=pd.Series(dtype="string"), details=pd.Series(dtype="string")
        )
    first = refused.drop_duplicates("entity_id").set_index("entity_id")
    hit = links[id_column].isin(first.index).to_numpy()
    lost = links[hit]
    return links[~hit], lost.assign(
        reason=lost[id_column].map(first["reason"]), details=lost[id_column].map(first["details"])
    )


def entity_warnings(links: pd.DataFrame, id_column: str, *fitted: Fitted) -> pd.DataFrame:
    """`links` with the warnings of fitted plan frames (keyed by `id_column`) appended to each row of that entity."""
    parts = [f.frame[[id_column]].assign(w=f.warnings.to_numpy()) for f in fitted if len(f.frame)]
    found = pd.concat(parts).dropna() if parts else pd.DataFrame(columns=[id_column, "w"])
    if found.empty:
        return links
    per_entity = found.drop_duplicates(id_column).set_index(id_column)["w"]
    return links.assign(warnings=join_warnings(links.get("warnings"), links[id_column].map(per_entity)))


def row_rejections(staging_table: str | None, fitted: Fitted, refused_rows: pd.DataFrame) -> pd.DataFrame:
    """Rejections of a write: rows a rule rejected, then rows whose entity production refused.

    `staging_table` None: each row names its own (a `staging_table` column, as resolved_persons' rows do).
    """
    ruled = fitted.rejected.notna().to_numpy()
    by_rule, by_db = fitted.frame[ruled], refused_rows
    if staging_table is None:
        parts = [
            rejections(
                table,
                by_rule.loc[by_rule["staging_table"] == table, "staging_id"],
                fitted.rejected[ruled][(by_rule["staging_table"] == table).to_numpy()],
            )
            for table in by_rule["staging_table"].unique()
        ]
        parts += [
            rejections(table, group["staging_id"], group["reason"], group["details"])
            for table, group in by_db.groupby("staging_table", sort=False)
        ]
    else:
        parts = [
            rejections(staging_table, by_rule["staging_id"], fitted.rejected[ruled]),
            rejections(staging_table, by_db["staging_id"], by_db["reason"], by_db["details"]),
        ]
    if not parts:
        return pd.DataFrame(columns=REJECTION_COLUMNS)
    return pd.concat(parts, ignore_index=True).drop_duplicates(["staging_table", "staging_id"])
