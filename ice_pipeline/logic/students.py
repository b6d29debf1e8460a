"""Student matching and survivorship: student number, else person; one student per person."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ice_pipeline.logic.survivorship import union_of_tokens

NUMBER_TAKEN = "student number belongs to another person's student"


@dataclass
class StudentPlan:
    links: pd.DataFrame  # staging_id, student_id, matched_by, warnings
    new_students: pd.DataFrame  # student_id, person_id, student_number, program, data_source, csv_enriched
    updates: pd.DataFrame  # student_id + fills (NA = keep), data_source, csv_enriched
    reviews: pd.DataFrame  # kind, staging_id, person_id, field, existing_value, incoming_value, reason


def students_with_persons(students: pd.DataFrame, persons: pd.DataFrame) -> pd.DataFrame:
    """The batch's student rows resolved to a person (`persons`: resolved_persons' staging row -> person)."""
    persons = persons[persons["staging_table"] == "staging_student"][["staging_id", "person_id"]]
    return students.merge(persons, on="staging_id", how="inner")


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
    reviews = rows[taken].assign(
        kind="identity_conflict",
        field="student_number",
        reason=NUMBER_TAKEN,
        incoming_value=rows.loc[taken, "student_number"],
        existing_value=pd.NA,
    )
    ok = rows[~taken]

    by_person = existing.drop_duplicates("person_id").set_index("person_id")
    persons = ok["person_id"].drop_duplicates()
    new_persons = persons[~persons.isin(by_person.index)]
    student_of = pd.concat(
        [
            by_person["student_id"],
            pd.Series([str(uuid.uuid4()) for _ in range(len(new_persons))], index=new_persons.to_numpy()),
        ]
    )
    ok = ok.assign(student_id=ok["person_id"].map(student_of).astype("string"))
    is_new = ok["person_id"].isin(new_persons)
    first_row = ~ok.duplicated("person_id")
    number_hit = ok["student_number"].notna() & ok["student_number"].isin(owner_existing.index)
    matched_by = np.select([is_new & first_row, number_hit], ["new", "student_number"], "person")
    links = pd.DataFrame(
        {
            "staging_id": ok["staging_id"],
            "student_id": ok["student_id"],
            "matched_by": matched_by,
            "warnings": ok.get("warnings"),
        }
    )

    stored = (
        by_person.set_index("student_id")
        if len(by_person)
        else pd.DataFrame(columns=["person_id", "student_number", "program", "data_source", "csv_enriched"])
    )
    chosen: dict[str, pd.Series] = {}
    field_reviews = []
    for field in ("student_number", "program"):
        present = ok.dropna(subset=[field])
        first = present.drop_duplicates("student_id").set_index("student_id")[field]
        final = stored[field].reindex(first.index.union(stored.index)).fillna(first) if len(stored) else first
        chosen[field] = final
        kept = present["student_id"].map(final)
        differs = present[(present[field] != kept).fillna(False)]
        field_reviews.append(
            differs.assign(
                kind="field_conflict",
                field=field,
                existing_value=kept[differs.index],
                incoming_value=differs[field],
                reason="differs from the value kept",
            )
        )
    sources = union_of_tokens(ok["student_id"], ok["data_source"])
    csv_any = ok.groupby("student_id")["csv_enriched"].any()

    fresh = ok[is_new & first_row]
    new_students = pd.DataFrame(
        {
            "student_id": fresh["student_id"].to_numpy(),
            "person_id": fresh["person_id"].to_numpy(),
            "student_number": chosen["student_number"].reindex(fresh["student_id"]).to_numpy(),
            "program": chosen["program"].reindex(fresh["student_id"]).to_numpy(),
            "data_source": sources.reindex(fresh["student_id"]).to_numpy(),
            "csv_enriched": csv_any.reindex(fresh["student_id"]).fillna(False).to_numpy(dtype=bool),
        }
    )

    # Existing students: fill NULLs, add the sources, set csv_enriched; written only when something changes.
    touched = pd.Index(ok["student_id"].unique()).intersection(stored.index)
    current = stored.loc[touched]
    fill_number = chosen["student_number"].reindex(touched).where(current["student_number"].isna())
    fill_program = chosen["program"].reindex(touched).where(current["program"].isna())
    stored_source = current["data_source"].astype("string")
    present = ok[ok["student_id"].isin(touched)]
    source = union_of_tokens(
        np.concatenate([touched.to_numpy(), present["student_id"].to_numpy()]),
        pd.concat([stored_source, present["data_source"].astype("string")]),
    ).reindex(touched)
    stored_csv = current["csv_enriched"].astype("string").str.lower().isin(["true", "t"]).astype(bool)
    csv_flag = stored_csv | csv_any.reindex(touched).fillna(False).astype(bool)
    changed = (
        fill_number.notna()
        | fill_program.notna()
        | (source.fillna("\x00") != stored_source.fillna("\x00"))
        | (csv_flag != stored_csv)
    )
    updates_frame = pd.DataFrame(
        {
            "student_id": touched.to_numpy(),
            "student_number": fill_number.to_numpy(),
            "program": fill_program.to_numpy(),
            "data_source": source.to_numpy(),
            "csv_enriched": csv_flag.to_numpy(dtype=bool),
        }
    )[changed.to_numpy()]
    all_reviews = pd.concat([reviews, *field_reviews], ignore_index=True)
    review_columns = [
        "kind",
        "staging_id",
        "person_id",
        "field",
        "existing_value",
        "incoming_value",
        "reason",
    ]
    return StudentPlan(links, new_students, updates_frame, all_reviews.reindex(columns=review_columns))
