"""`ice-pipeline explain` against a real run: rows (linked, in review, rejected) and persons, text and JSON."""

from __future__ import annotations

import json
from contextlib import closing

import psycopg2
import pytest

from ice_pipeline.explain import ExplainError, explain, parse_target


@pytest.fixture
def explained_run(pipeline):
    """A linked row with a warning, a second row of the same person, an identity conflict, a rejected row,
    and a possible duplicate found by the candidates."""
    # An existing person owns an e-mail that a staging student brings with another cédula: a conflict.
    pipeline.query(
        "INSERT INTO persons (id, full_name, email, cedula, updated_at) VALUES "
        "('9b2f4c1e-0000-4000-8000-0000000000b1', 'Beatriz Ruiz', 'bea@mail.com', '79111222', now())"
    )
    ids = pipeline.insert(
        "staging_student",
        [
            dict(
                full_name="Ana Gómez",
                email="ana@mail.com",
                cedula="52123456",
                birth_date="31/02/1990",
                source="csv_only",
            ),
            dict(full_name="BEATRIZ RUIZ", email=" Bea@Mail.com ", cedula="1.020.345.678", source="csv_only"),
            dict(full_name="12345", source="csv_only"),
            dict(
                full_name="Carlos Alberto Pérez Díaz",
                birth_date="1985-07-21",
                cedula="1020345671",
                source="csv_only",
            ),
            dict(
                full_name="Carlos Alberto Pérez Díaz",
                birth_date="1985-07-21",
                cedula="1020345679",
                source="csv_only",
            ),
        ],
    )
    (lead,) = pipeline.insert(
        "staging_lead", [dict(full_name="Ana Gómez", cedula="52.123.456", phone="3001234567")]
    )
    summary = pipeline.run()
    assert summary["success"], summary
    return pipeline, ids, lead, summary


def test_a_linked_row_says_which_person_by_which_key_in_which_run(explained_run):
    pipeline, ids, lead, summary = explained_run
    result = pipeline.cli("explain", f"staging_lead:{lead}", "--json")
    row = json.loads(result.stdout)
    person = pipeline.linked("staging_student", ids[0])
    assert row["status"] == "linked" and row["person_id"] == person and row["matched_by"] == "cedula"
    assert {link["entity"] for link in row["links"]} >= {"person", "lead"}
    assert all(link["run_id"] == summary["run_id"] for link in row["links"])
    assert isinstance(row["evidence"], dict)  # empty until resolution records evidence for the row

    first = pipeline.cli("explain", f"staging_student:{ids[0]}", "--json")
    assert any("birth date" in w for link in json.loads(first.stdout)["links"] for w in link["warnings"])


def test_a_row_in_review_and_a_rejected_row_say_why(explained_run):
    pipeline, ids, _, _ = explained_run
    with closing(psycopg2.connect(pipeline.production_url)) as conn:
        waiting = explain(conn, f"staging_student:{ids[1]}")
        rejected = explain(conn, f"staging_student:{ids[2]}")
        unknown = explain(conn, "staging_student:999999")
    # Whatever resolution decided about the contested row, explain says it and lists its review items.
    queued = pipeline.query(
        "SELECT kind FROM ice_pipeline.review_queue WHERE staging_table = 'staging_student' "
        "AND staging_id = %s ORDER BY id",
        (ids[1],),
    )
    assert [item["kind"] for item in waiting["review_items"]] == [kind for (kind,) in queued] != []
    if ("identity_conflict",) in queued:
        assert waiting["status"] == "in review" and waiting["person_id"] is None
    else:
        assert waiting["status"] == "linked" and waiting["person_id"] is not None
    assert rejected["status"] == "rejected" and rejected["rejection"]["reason"] == "name has no letters"
    assert unknown["status"] == "not processed yet"
    pipeline.cli("explain", "staging_student:999999", code=1)


def test_a_person_lists_its_rows_fields_and_open_review_items(explained_run):
    pipeline, ids, lead, summary = explained_run
    ana = pipeline.linked("staging_student", ids[0])
    result = json.loads(pipeline.cli("explain", f"person:{ana}", "--json").stdout)
    assert result["exists"]
    assert {(r["staging_table"], r["staging_id"]) for r in result["linked_rows"]} == {
        ("staging_student", ids[0]),
        ("staging_lead", lead),
    }
    assert result["matched_by"] == {"new": 1, "cedula": 1}
    assert all(r["run_id"] == summary["run_id"] for r in result["linked_rows"])
    assert isinstance(result["field_sources"], list)

    carlos = pipeline.linked("staging_student", ids[3])
    duplicate = json.loads(pipeline.cli("explain", f"person:{carlos}", "--json").stdout)
    (item,) = duplicate["open_review_items"]
    assert (
        item["kind"] == "possible_duplicate" and "cédula differs in one digit" in item["details"]["summary"]
    )

    # Text: tables, and stored text printed as text, never as rich markup.
    pipeline.query(
        "UPDATE ice_pipeline.review_queue SET reason = '[red]not markup[/red]' WHERE id = %s", (item["id"],)
    )
    text = pipeline.cli("explain", f"person:{carlos}")
    assert "[red]not markup[/red]" in text.output and "possible_duplicate" in text.output
    assert "linked rows" in text.output


def test_bad_targets_are_refused_with_a_reason(pipeline):
    for target, message in (
        ("nothing", "is not"),
        ("person:nope", "not a person id"),
        ("persons:1", "unknown table"),
        ("staging_lead:x", "not a staging row id"),
    ):
        with pytest.raises(ExplainError, match=message):
            parse_target(target)
    pipeline.cli("explain", "person:nope", code=2)
    missing = pipeline.cli("explain", "person:9b2f4c1e-0000-4000-8000-00000000dead", "--json", code=1)
    assert json.loads(missing.stdout)["exists"] is False
