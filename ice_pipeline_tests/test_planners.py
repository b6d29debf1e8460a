"""The planners of the production writes, without a database: students, reference data, fitting values."""

from __future__ import annotations

import pandas as pd
import pytest

from ice_pipeline.logic.fit import (
    CUT_MARK,
    LEAD_RULES,
    PERSON_RULES,
    STUDENT_RULES,
    Column,
    Policy,
    Rule,
    entity_warnings,
    fit,
    join_warnings,
    refused_ids,
    row_rejections,
    settle_refused,
)
from ice_pipeline.logic.leads import resolve_service_event
from ice_pipeline.logic.reference import (
    attributes_object,
    event_fields,
    match_reference,
    not_created,
    without_ids,
)
from ice_pipeline.logic.students import NUMBER_TAKEN, plan_students

# --- students -------------------------------------------------------------------------------

STUDENT_FIELDS = ["student_id", "person_id", "student_number", "program", "data_source", "csv_enriched"]


def _students(*rows: dict) -> pd.DataFrame:
    base = {
        "student_number": None,
        "program": None,
        "data_source": "csv_only",
        "csv_enriched": True,
        "warnings": None,
    }
    return pd.DataFrame([base | {"staging_id": i + 1} | row for i, row in enumerate(rows)])


def _existing(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=STUDENT_FIELDS)


def test_one_student_per_person_first_values_win_and_sources_accumulate():
    plan = plan_students(
        _students(
            {"person_id": "P", "student_number": "S1", "program": "Au Pair"},
            {"person_id": "P", "program": "Camp", "data_source": "directory_only", "csv_enriched": False},
            {"person_id": "Q"},
        ),
        _existing(),
    )
    assert len(plan.new_students) == 2
    p = plan.new_students.set_index("person_id").loc["P"]
    assert (p["student_number"], p["program"], p["data_source"]) == (
        "S1",
        "Au Pair",
        "csv_only,directory_only",
    )
    assert plan.links["matched_by"].tolist() == ["new", "person", "new"]
    assert plan.links.loc[0, "student_id"] == plan.links.loc[1, "student_id"]
    conflict = plan.reviews[plan.reviews["kind"] == "field_conflict"]
    assert conflict[["staging_id", "field", "existing_value", "incoming_value"]].values.tolist() == [
        [2, "program", "Au Pair", "Camp"]
    ]
    assert plan.updates.empty


def test_existing_student_is_filled_never_overwritten():
    existing = _existing(
        {
            "student_id": "T",
            "person_id": "P",
            "student_number": "S1",
            "program": None,
            "data_source": "directory_only",
            "csv_enriched": False,
        }
    )
    plan = plan_students(_students({"person_id": "P", "student_number": "S1", "program": "Camp"}), existing)
    assert plan.new_students.empty
    assert plan.links[["student_id", "matched_by"]].values.tolist() == [["T", "student_number"]]
    update = plan.updates.iloc[0]
    assert (update["student_id"], update["program"], update["data_source"], bool(update["csv_enriched"])) == (
        "T",
        "Camp",
        "csv_only,directory_only",
        True,
    )
    assert pd.isna(update["student_number"])  # stored already: nothing to fill


def test_unchanged_student_is_not_written_again():
    existing = _existing(
        {
            "student_id": "T",
            "person_id": "P",
            "student_number": "S1",
            "program": "Camp",
            "data_source": "csv_only",
            "csv_enriched": True,
        }
    )
    plan = plan_students(_students({"person_id": "P", "student_number": "S1", "program": "Camp"}), existing)
    assert plan.updates.empty and plan.new_students.empty and len(plan.links) == 1


def test_a_student_number_of_another_persons_student_goes_to_review():
    existing = _existing(
        {
            "student_id": "T",
            "person_id": "P",
            "student_number": "S1",
            "program": None,
            "data_source": None,
            "csv_enriched": False,
        }
    )
    plan = plan_students(
        _students(
            {"person_id": "Q", "student_number": "S1"},
            {"person_id": "R", "student_number": "S2"},
            {"person_id": "Q2", "student_number": "S2"},
        ),
        existing,
    )
    review = plan.reviews[plan.reviews["kind"] == "identity_conflict"]
    assert sorted(review["staging_id"]) == [1, 3]  # S1 is P's; S2 was claimed first by R in this batch
    assert set(review["reason"]) == {NUMBER_TAKEN}
    assert plan.links["staging_id"].tolist() == [2]


# --- reference data -------------------------------------------------------------------------


def _items(*rows: dict) -> pd.DataFrame:
    base = {"aliases": [], "attributes": {}}
    return pd.DataFrame([base | {"id": i + 1} | row for i, row in enumerate(rows)])


def test_match_reference_folds_accents_case_and_aliases_onto_existing_names():
    existing = pd.DataFrame({"id": ["S-old"], "name": ["Feria Bogotá 2024"]})
    mapping, created = match_reference(
        _items(
            {"code": "FB24", "label": "FERIA BOGOTA 2024", "aliases": ["feria-bta"]},
            {"code": "MED", "label": "Feria Medellín", "aliases": ["Feria Medellin", 7]},
            {
                "code": "MED2",
                "label": "FERIA MEDELLIN",
            },  # another item with the same name: one entity, not two
        ),
        existing,
    )
    assert (
        mapping["feriabogota2024"] == "S-old"
        and mapping["feriabta"] == "S-old"
        and mapping["fb24"] == "S-old"
    )
    assert created[["reference_id", "code", "name"]].values.tolist() == [[2, "MED", "Feria Medellín"]]
    assert mapping["med2"] == mapping["feriamedellin"] == created.loc[0, "id"]


@pytest.mark.parametrize(
    ("value", "warned"),
    [
        ({"date": "2024-03-15"}, False),
        ({}, False),
        (None, False),
        ([1, 2], True),
        ("text", True),
        (42, True),
        (True, True),
    ],
)
def test_attributes_other_than_a_json_object_are_ignored_with_a_warning(value, warned):
    attributes, warning = attributes_object(value)
    assert attributes == (value if isinstance(value, dict) else {})
    assert (warning is not None) == warned
    if warned:
        assert str(value) not in warning.replace(type(value).__name__, "")


def test_event_fields_type_check_every_attribute():
    _, created = match_reference(
        _items(
            {
                "code": "A",
                "label": "Feria A",
                "attributes": {"date": "2024-03-15", "city": " Bogotá ", "service": "wat"},
            },
            {
                "code": "B",
                "label": "Feria B",
                "attributes": {"date": 20240315, "city": ["x"], "service": {"a": 1}},
            },
            {"code": "C", "label": "Feria C", "attributes": {"date": "15/03/2024", "service": "nope"}},
            {"code": "D", "label": "Feria D", "attributes": {"date": "31/02/2024"}},
            {"code": "E", "label": "Feria E", "attributes": ["not", "an", "object"]},
            {"code": "F", "label": "Feria F", "attributes": {"date": "9999-12-31T10:00:00+05:00"}},
        ),
        pd.DataFrame(columns=["id", "name"]),
    )
    events = event_fields(created, {"wat": "SVC"}).set_index("code")
    assert events.loc["A", "event_date"] == pd.Timestamp("2024-03-15")
    assert events.loc["A", "location"] == "Bogotá" and events.loc["A", "service_id"] == "SVC"
    assert pd.isna(events.loc["A", "warnings"])
    assert pd.isna(events.loc["B", ["event_date", "location", "service_id"]]).all()
    assert events.loc["B", "warnings"].split("; ") == [
        "attributes.date not text (int): dropped",
        "attributes.city not text (list): dropped",
        "attributes.service not text (dict): dropped",
    ]
    assert events.loc["C", "event_date"] == pd.Timestamp("2024-03-15")  # day first
    assert events.loc["C", "warnings"] == "attributes.service not a known service: dropped"
    assert (
        pd.isna(events.loc["D", "event_date"])
        and events.loc["D", "warnings"] == "attributes.date unreadable: dropped"
    )
    assert events.loc["E", "warnings"] == "attributes not a JSON object (list): ignored"
    assert events.loc["F", "event_date"] == pd.Timestamp("9999-12-31T05:00:00")  # beyond pandas' nanoseconds


def test_refused_items_leave_the_mapping_and_are_reported_once():
    _, created = match_reference(
        _items(
            {"code": "A", "label": "Alpha"}, {"code": "B", "label": "Beta"}, {"code": "C", "label": "Gamma"}
        ),
        pd.DataFrame(columns=["id", "name"]),
    )
    ids = created["id"].tolist()
    rejected = pd.Series([pd.NA, "name longer than 3 characters", pd.NA], dtype="string")
    refused = pd.DataFrame({"entity_id": [ids[2]], "reason": ["refused: CheckViolation"], "details": ["{}"]})
    gone = not_created(created, rejected, refused)
    assert gone[["reference_id", "reason"]].values.tolist() == [
        [2, "name longer than 3 characters"],
        [3, "refused: CheckViolation"],
    ]
    mapping = without_ids({"alpha": ids[0], "a": ids[0], "beta": ids[1], "gamma": ids[2]}, set(gone["id"]))
    assert mapping == {"alpha": ids[0], "a": ids[0]}


def test_leads_naming_unknown_services_or_events_load_with_a_warning():
    rows = pd.DataFrame(
        {
            "staging_id": [1, 2, 3],
            "service_key": ["wat", "nope", None],
            "event_key": ["feria", "feria", "gone"],
            "warnings": [None, "phone not recognised", None],
        }
    )
    out = resolve_service_event(rows, {"service": {"wat": "S"}, "event": {"feria": "E"}})
    assert out.loc[0, "service_id"] == "S" and pd.isna(out.loc[1, "service_id"])
    assert out.loc[0, "event_id"] == "E" and pd.isna(out.loc[0, "warnings"])
    assert out.loc[1, "warnings"] == "phone not recognised; service not in reference data"
    assert out.loc[2, "warnings"] == "event not in reference data"
    assert out["unknown_service"].tolist() == [False, True, False]


# --- fitting values to production's columns ----------------------------------------------------

LIMITS = {
    "students": {
        "student_number": Column("character varying", 8),
        "program": Column("character varying", 10),
        "data_source": Column("character varying", 50),
    },
    "leads": {
        "notes": Column("character varying", 12),
        "lead_status": Column("text"),
        "source_row": Column("integer"),
        "program_type": Column("character varying", 100),
    },
    "persons": {
        "city": Column("character varying", 5),
        "address": Column("character varying", 10),
        "full_name": Column("text"),
    },
}


def test_fit_applies_each_columns_policy_and_names_the_column_never_the_value():
    rows = pd.DataFrame(
        {
            "staging_id": [1, 2, 3, 4],
            "student_number": ["12345678", "123456789", None, "1"],
            "program": ["Au Pair", "Work and Travel USA", "Camp", None],
            "data_source": ["csv_only", "csv_only", "x" * 51, None],
            "warnings": ["cédula old-style (6-7 digits)", None, None, None],
        }
    )
    fitted = fit(rows, "students", STUDENT_RULES, LIMITS)
    assert pd.isna(fitted.rejected.iloc[0])
    assert fitted.rejected.iloc[1] == "student_number longer than 8 characters"
    assert fitted.frame["program"].isna().tolist() == [False, True, False, True]
    assert pd.isna(fitted.frame.loc[2, "data_source"])
    assert fitted.warnings.iloc[1] == "program longer than 10 characters: dropped"
    assert fitted.warnings.iloc[2] == "data_source longer than 50 characters: dropped"
    loadable = fitted.loadable
    assert loadable["staging_id"].tolist() == [1, 3, 4]
    assert loadable.loc[0, "warnings"] == "cédula old-style (6-7 digits)"
    assert loadable.loc[2, "warnings"] == "data_source longer than 50 characters: dropped"
    assert "Work" not in "".join(fitted.warnings.dropna()) and "123456789" not in fitted.rejected.iloc[1]


def test_fit_cuts_free_text_marking_the_cut_and_drops_integers_out_of_range():
    rows = pd.DataFrame(
        {
            "staging_id": [1, 2, 3],
            "notes": ["corto", "llamar despues del lunes", "exactamente!"],
            "lead_status": ["NEW" * 100, None, None],
            "source_row": pd.array([7, 2**31, None], dtype="Int64"),
        }
    )
    fitted = fit(rows, "leads", LEAD_RULES, LIMITS)
    assert fitted.frame["notes"].tolist() == ["corto", "llamar desp" + CUT_MARK, "exactamente!"]
    assert fitted.frame["lead_status"].iloc[0] == "NEW" * 100  # text: no width, nothing to do
    assert fitted.frame["source_row"].tolist()[0] == 7 and pd.isna(fitted.frame["source_row"].iloc[1])
    assert fitted.warnings.iloc[1] == (
        "notes longer than 12 characters: cut; source_row out of range for integer: dropped"
    )
    assert fitted.rejected.isna().all()


def test_fit_blanks_the_keys_of_a_dropped_value_and_leaves_unknown_columns_alone():
    rows = pd.DataFrame(
        {
            "staging_id": [1, 2],
            "city": ["Bogotá D.C.", "Cali"],
            "city_key": ["bogota d c", "cali"],
            "address": ["Calle 1 # 2-3 apto 401", None],
            "display_name": ["Ana", "Luis"],
        }
    )
    fitted = fit(rows, "persons", PERSON_RULES, LIMITS)
    assert fitted.frame["city"].isna().tolist() == [True, False]
    assert fitted.frame["city_key"].isna().tolist() == [True, False]
    assert fitted.frame["address"].iloc[0] == "Calle 1 #" + CUT_MARK
    assert fitted.rejected.isna().all()
    # a table production does not describe: nothing is changed
    assert fit(rows, "elsewhere", PERSON_RULES, LIMITS).frame.equals(rows)


def test_custom_rule_policies():
    rows = pd.DataFrame({"staging_id": [1], "v": ["abcdef"]})
    limits = {"t": {"col": Column("character", 3)}}
    cut = fit(rows, "t", {"v": Rule("col", Policy.CUT)}, limits)
    assert cut.frame["v"].iloc[0] == "ab" + CUT_MARK and cut.rejected.isna().all()
    dropped = fit(rows, "t", {"v": Rule("col", Policy.DROP)}, limits)
    assert pd.isna(dropped.frame["v"].iloc[0]) and dropped.rejected.isna().all()
    rejected = fit(rows, "t", {"v": Rule("col", Policy.REJECT)}, limits)
    assert (
        rejected.frame["v"].iloc[0] == "abcdef"
        and rejected.rejected.iloc[0] == "col longer than 3 characters"
    )
    assert rejected.loadable.empty


def test_refused_entities_reject_every_row_planned_onto_them():
    links = pd.DataFrame(
        {
            "staging_id": [1, 2, 3],
            "student_id": ["A", "B", "B"],
            "matched_by": "new",
            "warnings": [None, None, "x"],
        }
    )
    new = pd.DataFrame({"student_id": ["A", "B"]})
    refused = refused_ids(
        new,
        "student_id",
        pd.DataFrame({"position": [1], "reason": ["refused: X"], "details": ['{"sqlstate": "23514"}']}),
    )
    kept, lost = settle_refused(links, "student_id", refused)
    assert kept["staging_id"].tolist() == [1]
    assert lost[["staging_id", "reason"]].values.tolist() == [[2, "refused: X"], [3, "refused: X"]]
    fitted = fit(
        pd.DataFrame({"staging_id": [9], "student_number": ["123456789"]}), "students", STUDENT_RULES, LIMITS
    )
    out = row_rejections("staging_student", fitted, lost)
    assert out[["staging_id", "reason"]].values.tolist() == [
        [9, "student_number longer than 8 characters"],
        [2, "refused: X"],
        [3, "refused: X"],
    ]
    assert not out["retryable"].any() and out.loc[1, "details"] == '{"sqlstate": "23514"}'


def test_warnings_of_planned_values_reach_every_row_of_the_entity():
    links = pd.DataFrame(
        {
            "staging_id": [1, 2, 3],
            "student_id": ["A", "A", "B"],
            "warnings": ["phone not recognised: dropped", None, None],
        }
    )
    plan = fit(
        pd.DataFrame({"student_id": ["A", "B"], "data_source": ["x" * 60, "csv_only"]}),
        "students",
        {"data_source": Rule("data_source", Policy.DROP)},
        LIMITS,
    )
    out = entity_warnings(links, "student_id", plan)
    assert out["warnings"].tolist()[:2] == [
        "phone not recognised: dropped; data_source longer than 50 characters: dropped",
        "data_source longer than 50 characters: dropped",
    ]
    assert pd.isna(out["warnings"].iloc[2])


def test_join_warnings_skips_empty_parts():
    out = join_warnings(
        pd.Series(["a", None, None]), pd.Series([None, "b", None]), pd.Series(["c", "d", None])
    )
    assert out.iloc[0] == "a; c" and out.iloc[1] == "b; d" and pd.isna(out.iloc[2])


def test_rejections_of_rows_from_two_staging_tables():
    """resolved_persons fits rows of staging_student and staging_lead together."""
    rows = pd.DataFrame(
        {
            "staging_table": ["staging_student", "staging_lead", "staging_lead"],
            "staging_id": [1, 1, 2],
            "display_name": ["A" * 9, "B", "C" * 9],
        }
    )
    fitted = fit(rows, "persons", PERSON_RULES, {"persons": {"full_name": Column("character varying", 5)}})
    links = pd.DataFrame({"staging_table": ["staging_lead"], "staging_id": [1], "person_id": ["P"]})
    kept, lost = settle_refused(
        links,
        "person_id",
        pd.DataFrame({"entity_id": ["P"], "reason": ["refused: UniqueViolation"], "details": ["{}"]}),
    )
    assert kept.empty and lost["staging_table"].tolist() == ["staging_lead"]
    out = row_rejections(None, fitted, lost)
    assert out[["staging_table", "staging_id", "reason"]].values.tolist() == [
        ["staging_student", 1, "full_name longer than 5 characters"],
        ["staging_lead", 2, "full_name longer than 5 characters"],
        ["staging_lead", 1, "refused: UniqueViolation"],
    ]
