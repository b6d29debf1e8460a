"""Student matching and survivorship: student number, else person; one student per person."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
import pandas as pd

NUMBER_TAKEN = "student number belongs to another person's student"


@dataclass
class StudentPlan:
    links: pd.DataFrame        # staging_id, student_id, matched_by, warnings
    new_students: pd.DataFrame  # student_id, person_id, student_number, program, data_source, csv_enriched
    updates: pd.DataFrame      # student_id + fills (NA = keep), data_source, csv_enriched
    reviews: pd.DataFrame      # kind, staging_id, person_id, field, existing_value, incoming_value, reason


def merge_sources(values: list[str | None]) -> str | None:
    """Set of staging sources: ['csv_only', 'directory+csv', 'csv_only'] -> 'csv_only,directory+csv'."""
    tokens = {t.strip() for v in values if isinstance(v, str) for t in v.split(",") if t.strip()}
    return ",".join(sorted(tokens)) if tokens else None


def plan_students(rows: pd.DataFrame, existing: pd.DataFrame) -> StudentPlan:
    """`rows`: staging students with a person, in arrival order (staging_id, person_id,
    student_number, program, data_source, csv_enriched, warnings). `existing`: production
    students of those persons or numbers (student_id, person_id, student_number, program,
    data_source, csv_enriched)."""
    rows = rows.reset_index(drop=True).assign(order=lambda f: np.arange(len(f)))
    owner_existing = existing.dropna(subset=["student_number"]).set_index("student_number")["person_id"]
    claims = rows.dropna(subset=["student_number"])
    first_claim = claims.drop_duplicates("student_number").set_index("student_number")["person_id"]
    owner = owner_existing.reindex(first_claim.index).fillna(first_claim)
    owner = pd.concat([owner, owner_existing[~owner_existing.index.isin(owner.index)]])
    row_owner = rows["student_number"].map(owner).astype("string")
    taken = rows["student_number"].notna() & (row_owner != rows["person_id"]).fillna(False)
    reviews = rows[taken].assign(kind="identity_conflict", field="student_number", reason=NUMBER_TAKEN,
                                 incoming_value=rows.loc[taken, "student_number"], existing_value=pd.NA)
    ok = rows[~taken]

    by_person = existing.drop_duplicates("person_id").set_index("person_id")
    persons = ok["person_id"].drop_duplicates()
    new_persons = persons[~persons.isin(by_person.index)]
    student_of = pd.concat([by_person["student_id"],
                            pd.Series([str(uuid.uuid4()) for _ in range(len(new_persons))], index=new_persons.to_numpy())])
    ok = ok.assign(student_id=ok["person_id"].map(student_of).astype("string"))
    is_new = ok["person_id"].isin(new_persons)
    first_row = ~ok.duplicated("person_id")
    number_hit = ok["student_number"].notna() & ok["student_number"].isin(owner_existing.index)
    matched_by = np.select([is_new & first_row, number_hit], ["new", "student_number"], "person")
    links = pd.DataFrame({"staging_id": ok["staging_id"], "student_id": ok["student_id"],
                          "matched_by": matched_by, "warnings": ok.get("warnings")})

    stored = by_person.set_index("student_id") if len(by_person) else pd.DataFrame(
        columns=["person_id", "student_number", "program", "data_source", "csv_enriched"])
    chosen: dict[str, pd.Series] = {}
    field_reviews = []
    for field in ("student_number", "program"):
        present = ok.dropna(subset=[field])
        first = present.drop_duplicates("student_id").set_index("student_id")[field]
        final = stored[field].reindex(first.index.union(stored.index)).fillna(first) if len(stored) else first
        chosen[field] = final
        kept = present["student_id"].map(final)
        differs = present[(present[field] != kept).fillna(False)]
        field_reviews.append(differs.assign(kind="field_conflict", field=field, existing_value=kept[differs.index],
                                            incoming_value=differs[field], reason="differs from the value kept"))
    sources = ok.groupby("student_id")["data_source"].agg(list)
    csv_any = ok.groupby("student_id")["csv_enriched"].any()

    fresh = ok[is_new & first_row]
    new_students = pd.DataFrame({
        "student_id": fresh["student_id"].to_numpy(), "person_id": fresh["person_id"].to_numpy(),
        "student_number": chosen["student_number"].reindex(fresh["student_id"]).to_numpy(),
        "program": chosen["program"].reindex(fresh["student_id"]).to_numpy(),
        "data_source": [merge_sources(sources.get(s, [])) for s in fresh["student_id"]],
        "csv_enriched": csv_any.reindex(fresh["student_id"]).fillna(False).to_numpy(dtype=bool),
    })

    touched = [s for s in ok["student_id"].unique() if s in stored.index]
    updates = []
    for student_id in touched:
        current = stored.loc[student_id]
        fill_number = chosen["student_number"].get(student_id) if pd.isna(current["student_number"]) else None
        fill_program = chosen["program"].get(student_id) if pd.isna(current["program"]) else None
        fill_number = None if pd.isna(fill_number) else fill_number  # NA from .get is "nothing to fill"
        fill_program = None if pd.isna(fill_program) else fill_program
        stored_source = current["data_source"] if isinstance(current["data_source"], str) else None
        source = merge_sources([stored_source, *sources.get(student_id, [])])
        stored_csv = current["csv_enriched"] in (True, "t", "true")
        csv_flag = stored_csv or bool(csv_any.get(student_id, False))
        if fill_number is not None or fill_program is not None or source != stored_source or csv_flag != stored_csv:
            updates.append({"student_id": student_id, "student_number": fill_number, "program": fill_program,
                            "data_source": source, "csv_enriched": csv_flag})
    updates_frame = pd.DataFrame(updates, columns=["student_id", "student_number", "program", "data_source", "csv_enriched"])
    all_reviews = pd.concat([reviews, *field_reviews], ignore_index=True)
    review_columns = ["kind", "staging_id", "person_id", "field", "existing_value", "incoming_value", "reason"]
    return StudentPlan(links, new_students, updates_frame, all_reviews.reindex(columns=review_columns))
