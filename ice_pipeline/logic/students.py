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


REVIEW_COLUMNS = ["kind", "staging_id", "person_id", "field", "existing_value", "incoming_value", "reason"]


def plan_students(rows: pd.DataFrame, existing: pd.DataFrame) -> StudentPlan:
    """`rows`: staging students with a person, in arrival order (staging_id, person_id,
    student_number, program, data_source, csv_enriched, warnings). `existing`: production
    students of those persons or numbers (student_id, person_id, student_number, program,
    data_source, csv_enriched)."""
    rows = rows.reset_index(drop=True)
    taken = number_taken(rows, number_owners(rows, existing))
    ok, is_new = assign_students(rows[~taken], existing)
    fresh = is_new & ~ok.duplicated("person_id")
    links = student_links(ok, fresh, existing)
    stored = stored_students(existing)
    fields = {field: survive_student_field(ok, stored, field) for field in ("student_number", "program")}
    chosen = {field: final for field, (final, _) in fields.items()}
    sources = union_of_tokens(ok["student_id"], ok["data_source"])
    csv_any = ok.groupby("student_id")["csv_enriched"].any()
    new_students = new_student_rows(ok[fresh], chosen, sources, csv_any)
    updates = student_updates(ok, stored, chosen, csv_any)
    reviews = pd.concat(
        [number_taken_reviews(rows[taken]), *(differs for _, differs in fields.values())], ignore_index=True
    )
    return StudentPlan(links, new_students, updates, reviews.reindex(columns=REVIEW_COLUMNS))


def number_owners(rows: pd.DataFrame, existing: pd.DataFrame) -> pd.Series:
    """Student number -> the person who owns it: the person of the stored student that holds it,
    else the first row of the batch to claim it -- a number belongs to one student only."""
    owner_existing = existing.dropna(subset=["student_number"]).set_index("student_number")["person_id"]
    claims = rows.dropna(subset=["student_number"])
    first_claim = claims.drop_duplicates("student_number").set_index("student_number")["person_id"]
    owner = owner_existing.reindex(first_claim.index).fillna(first_claim)
    return pd.concat([owner, owner_existing[~owner_existing.index.isin(owner.index)]])


def number_taken(rows: pd.DataFrame, owner: pd.Series) -> pd.Series:
    """Rows whose student number another person owns: they go to review, not to a student."""
    row_owner = rows["student_number"].map(owner).astype("string")
    return rows["student_number"].notna() & (row_owner != rows["person_id"]).fillna(False)


def number_taken_reviews(taken: pd.DataFrame) -> pd.DataFrame:
    """The identity conflicts of the rows whose student number is taken (REVIEW_COLUMNS and more)."""
    return taken.assign(
        kind="identity_conflict",
        field="student_number",
        reason=NUMBER_TAKEN,
        incoming_value=taken["student_number"],
        existing_value=pd.NA,
    )


def assign_students(ok: pd.DataFrame, existing: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """`ok` with the student_id of each row -- the person's stored student, else a new uuid per
    person (one student per person) -- and which rows belong to a new student."""
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
    return ok, ok["person_id"].isin(new_persons)


def student_links(ok: pd.DataFrame, fresh: pd.Series, existing: pd.DataFrame) -> pd.DataFrame:
    """Each row -> its student, and how: the row that creates a student is 'new'; a row whose number a
    stored student holds matched by 'student_number'; any other by 'person'."""
    number_hit = ok["student_number"].notna() & ok["student_number"].isin(existing["student_number"].dropna())
    matched_by = np.select([fresh, number_hit], ["new", "student_number"], "person")
    return pd.DataFrame(
        {
            "staging_id": ok["staging_id"],
            "student_id": ok["student_id"],
            "matched_by": matched_by,
            "warnings": ok.get("warnings"),
        }
    )


def stored_students(existing: pd.DataFrame) -> pd.DataFrame:
    """The stored student of each person, by student_id (an empty frame with the columns if none)."""
    by_person = existing.drop_duplicates("person_id").set_index("person_id")
    if len(by_person):
        return by_person.set_index("student_id")
    return pd.DataFrame(columns=["person_id", "student_number", "program", "data_source", "csv_enriched"])


def survive_student_field(
    ok: pd.DataFrame, stored: pd.DataFrame, field: str
) -> tuple[pd.Series, pd.DataFrame]:
    """Fill NULLs only: per student the stored value stays, else the first row's value is taken; the
    rows that bring another value are field conflicts (REVIEW_COLUMNS and more)."""
    present = ok.dropna(subset=[field])
    first = present.drop_duplicates("student_id").set_index("student_id")[field]
    final = stored[field].reindex(first.index.union(stored.index)).fillna(first) if len(stored) else first
    kept = present["student_id"].map(final)
    differs = present[(present[field] != kept).fillna(False)]
    conflicts = differs.assign(
        kind="field_conflict",
        field=field,
        existing_value=kept[differs.index],
        incoming_value=differs[field],
        reason="differs from the value kept",
    )
    return final, conflicts


def new_student_rows(
    fresh: pd.DataFrame, chosen: dict[str, pd.Series], sources: pd.Series, csv_any: pd.Series
) -> pd.DataFrame:
    """The students to create, one per row that creates one, with the values that survived."""
    ids = fresh["student_id"]
    return pd.DataFrame(
        {
            "student_id": ids.to_numpy(),
            "person_id": fresh["person_id"].to_numpy(),
            "student_number": chosen["student_number"].reindex(ids).to_numpy(),
            "program": chosen["program"].reindex(ids).to_numpy(),
            "data_source": sources.reindex(ids).to_numpy(),
            "csv_enriched": csv_any.reindex(ids).fillna(False).to_numpy(dtype=bool),
        }
    )


def student_updates(
    ok: pd.DataFrame, stored: pd.DataFrame, chosen: dict[str, pd.Series], csv_any: pd.Series
) -> pd.DataFrame:
    """Existing students: fill NULLs, add the sources, set csv_enriched; written only when something changes."""
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
    return pd.DataFrame(
        {
            "student_id": touched.to_numpy(),
            "student_number": fill_number.to_numpy(),
            "program": fill_program.to_numpy(),
            "data_source": source.to_numpy(),
            "csv_enriched": csv_flag.to_numpy(dtype=bool),
        }
    )[changed.to_numpy()]
