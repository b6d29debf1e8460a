"""Every review kind can be closed, end to end: decision (CLI) -> applied (next run or `review apply`)
-> production state -> lineage. Real PostgreSQL; the CLI through typer's runner on ice_pipeline.cli.app."""

from __future__ import annotations

import csv
import json
import uuid
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest

from ice_pipeline.db import write_reviews
from ice_pipeline.review import ReviewError, list_items, resolve_item
from ice_pipeline.schema import REVIEW_DECISIONS_UPGRADE, sql_file


def _item(pipeline, kind: str, **values) -> int:
    """A review item written directly (situations the resolution code does not produce yet)."""
    values = {"kind": kind, **values}
    if "details" in values:
        values["details"] = json.dumps(values["details"])
    return pipeline.scalar(
        f"INSERT INTO ice_pipeline.review_queue ({', '.join(values)}) VALUES ({', '.join(['%s'] * len(values))}) "
        "RETURNING id",
        list(values.values()),
    )


def _status(pipeline, item: int) -> tuple:
    return pipeline.query(
        "SELECT status, decision_kind, decision_person_id::text FROM ice_pipeline.review_queue WHERE id = %s",
        (item,),
    )[0]


def _open_conflict(pipeline) -> tuple[str, int, int]:
    """Two existing namesakes born the same day, told apart by their cédulas; a staging student with
    their name and birth date (and an e-mail) could be either: it waits for a person."""
    first = pipeline.insert_bot_person(full_name="Ana Díaz", birth_date="1992-07-07", cedula="30111111")
    second = pipeline.insert_bot_person(
        full_name="Ana Díaz", birth_date="1992-07-07", cedula="30222222", created_at="2024-02-01"
    )
    (staging_id,) = pipeline.insert(
        "staging_student",
        [dict(full_name="ANA DIAZ", birth_date="07/07/1992", email=" Ana.Diaz@Mail.com ", source="csv_only")],
    )
    summary = pipeline.run()
    assert summary["success"] and summary["rows_in_review"] == 1, summary
    with closing(psycopg2.connect(pipeline.production_url)) as conn:
        (item,) = list_items(conn, kind="identity_conflict")
    assert item["staging_id"] == staging_id and item["candidate_person_id"] in (first, second)
    return item["candidate_person_id"], staging_id, int(item["id"])


# --- identity_conflict ------------------------------------------------------------------------------


def test_new_person_decision_creates_a_person_without_the_contested_email(pipeline):
    owner, staging_id, item = _open_conflict(pipeline)
    pipeline.cli("review", "resolve", item, "new_person")
    assert _status(pipeline, item) == ("resolved", "new_person", None)
    summary = pipeline.run()
    assert summary["success"] and summary["persons_created"] == 1 and summary["students_created"] == 1, (
        summary
    )
    person = pipeline.linked("staging_student", staging_id)
    assert person != owner
    assert pipeline.query("SELECT cedula, email FROM persons WHERE id = %s", (person,)) == [
        (None, "ana.diaz@mail.com")
    ]
    assert _status(pipeline, item)[0] == "applied"
    figures = pipeline.assert_accounted()["staging_student"]
    assert (figures["linked"], figures["in_review"], figures["unaccounted"]) == (1, 0, 0)
    assert pipeline.run()["persons_created"] == 0


def test_merge_decision_links_the_row_to_the_chosen_person(pipeline):
    owner, staging_id, item = _open_conflict(pipeline)
    pipeline.cli("review", "resolve", item, "merge_into", "--person", owner)
    # the columns, and (until every reader has switched) the old text
    assert _status(pipeline, item) == ("resolved", "merge_into", owner)
    assert (
        pipeline.scalar("SELECT decision FROM ice_pipeline.review_queue WHERE id = %s", (item,))
        == f"merge:{owner}"
    )
    summary = pipeline.run()
    assert summary["success"] and summary["persons_created"] == 0 and summary["students_created"] == 1, (
        summary
    )
    assert pipeline.linked("staging_student", staging_id) == owner
    # the chosen person keeps its cédula and gains the e-mail it lacked (fill NULLs only)
    assert pipeline.query("SELECT cedula IS NOT NULL, email FROM persons WHERE id = %s", (owner,)) == [
        (True, "ana.diaz@mail.com")
    ]


def test_dismissed_row_counts_as_rejected(pipeline):
    _, staging_id, item = _open_conflict(pipeline)
    pipeline.cli("review", "resolve", item, "--dismiss")  # the first release's spelling still works
    assert _status(pipeline, item) == ("dismissed", "dismiss", None)
    assert pipeline.run()["success"]
    assert (
        pipeline.scalar("SELECT reason FROM ice_pipeline.rejected_rows WHERE staging_id = %s", (staging_id,))
        == "dismissed in review"
    )
    figures = pipeline.assert_accounted()["staging_student"]
    assert (figures["rejected"], figures["in_review"], figures["unaccounted"]) == (1, 0, 0)


def test_bad_decisions_are_refused_with_a_reason(pipeline):
    owner = pipeline.insert_bot_person(full_name="Ana Gómez", email="ana@mail.com")
    item = _item(
        pipeline,
        "identity_conflict",
        staging_table="staging_student",
        staging_id=1,
        candidate_person_id=owner,
        reason="test",
    )
    with closing(psycopg2.connect(pipeline.production_url)) as conn:
        with pytest.raises(ReviewError, match="exactly one"):
            resolve_item(conn, item)
        with pytest.raises(ReviewError, match="No person has id"):
            resolve_item(conn, item, merge_into=str(uuid.uuid4()))
        with pytest.raises(ReviewError, match="not a person id"):
            resolve_item(conn, item, "merge_into", person="nope")
        with pytest.raises(ReviewError, match="does not exist"):
            resolve_item(conn, 999999, "new_person")
    # a decision of another kind names the valid ones; merge_into needs its person
    assert (
        "one of merge_into, new_person, dismiss"
        in pipeline.cli("review", "resolve", item, "take_incoming", code=2).output
    )
    assert "--person" in pipeline.cli("review", "resolve", item, "merge_into", code=2).output
    assert (
        "takes no person"
        in pipeline.cli("review", "resolve", item, "new_person", "--person", owner, code=2).output
    )
    pipeline.cli("review", "resolve", item, "new_person")
    assert "only open items" in pipeline.cli("review", "resolve", item, "new_person", code=2).output


def test_old_text_decisions_are_converted_into_columns_by_the_upgrade(pipeline):
    person = pipeline.insert_bot_person(full_name="Ana Gómez")
    merged = _item(
        pipeline,
        "identity_conflict",
        staging_table="staging_student",
        staging_id=1,
        status="resolved",
        decision=f"merge:{person}",
    )
    new = _item(
        pipeline,
        "identity_conflict",
        staging_table="staging_student",
        staging_id=2,
        status="resolved",
        decision="new",
    )
    dismissed = _item(
        pipeline, "identity_conflict", staging_table="staging_student", staging_id=3, status="dismissed"
    )
    untouched = _item(pipeline, "identity_conflict", staging_table="staging_student", staging_id=4)
    for _ in range(2):  # idempotent
        pipeline.query(sql_file(REVIEW_DECISIONS_UPGRADE))
    assert _status(pipeline, merged) == ("resolved", "merge_into", person)
    assert _status(pipeline, new) == ("resolved", "new_person", None)
    assert _status(pipeline, dismissed) == ("dismissed", "dismiss", None)
    assert _status(pipeline, untouched) == ("open", None, None)


# --- list / show escape what they print ---------------------------------------------------------------


def test_list_and_show_print_stored_values_literally(pipeline, monkeypatch):
    from ice_pipeline import cli as cli_module

    monkeypatch.setattr(cli_module.out, "width", 400)  # a wide terminal: cells are not folded
    person = pipeline.insert_bot_person(full_name="[bold]Ana[/]", email="x@y.co", city="[link=http://x]Cali")
    item = _item(
        pipeline,
        "field_conflict",
        staging_table="staging_lead",
        staging_id=7,
        person_id=person,
        field="city",
        existing_value="[link=http://x]Cali",
        incoming_value="Bogotá [/]",
        reason="differs [red]",
        details={"note": "[/]"},
    )
    listed = pipeline.cli("review", "list", "--kind", "field_conflict").output
    assert "[link=http://x]Cali" in listed and "Bogotá [/]" in listed and "differs [red]" in listed
    shown = pipeline.cli("review", "show", item).output
    assert "[bold]Ana[/]" in shown and "[link=http://x]Cali" in shown and "take_incoming" in shown
    data = json.loads(pipeline.cli("review", "show", item, "--json").stdout)
    assert data["details"] == {"note": "[/]"} and data["persons"][0]["full_name"] == "[bold]Ana[/]"
    (line,) = pipeline.cli("review", "list", "--json").stdout.splitlines()
    assert json.loads(line)["incoming_value"] == "Bogotá [/]"
    assert "Unknown kind" in pipeline.cli("review", "list", "--kind", "nope", code=2).output


# --- field_conflict -----------------------------------------------------------------------------------


def test_field_conflicts_take_incoming_or_keep_existing(pipeline):
    person = pipeline.insert_bot_person(
        full_name="Ana Gómez", cedula="1020345678", phone="+573001112233", city="Cali"
    )
    (row,) = pipeline.insert(
        "staging_student",
        [
            dict(
                full_name="Ana Gómez",
                cedula="1020345678",
                phone="300 999 8877",
                city="Medellín",
                source="csv_only",
            )
        ],
    )
    assert pipeline.run()["success"]
    items = dict(
        pipeline.query(
            "SELECT field, id FROM ice_pipeline.review_queue WHERE kind = 'field_conflict' "
            "AND person_id = %s",
            (person,),
        )
    )
    assert {"phone", "city"} <= set(items), items
    pipeline.cli("review", "resolve", items["phone"], "take_incoming")
    pipeline.cli("review", "resolve", items["city"], "keep_existing")
    summary = pipeline.run()
    assert summary["success"] and summary["review_decisions_applied"] == 2, summary
    assert pipeline.query("SELECT phone, city FROM persons WHERE id = %s", (person,)) == [
        ("+573009998877", "Cali")
    ]
    # where the value came from
    assert pipeline.query(
        "SELECT staging_table, staging_id FROM ice_pipeline.field_sources "
        "WHERE person_id = %s AND field = 'phone'",
        (person,),
    ) == [("staging_student", row)]
    assert _status(pipeline, items["phone"])[:2] == ("applied", "take_incoming")
    assert _status(pipeline, items["city"])[:2] == ("applied", "keep_existing")
    # never asked again
    pipeline.run(full_refresh=True)
    assert (
        pipeline.scalar(
            "SELECT count(*) FROM ice_pipeline.review_queue WHERE kind = 'field_conflict' "
            "AND person_id = %s AND status = 'open' AND field IN ('phone', 'city')",
            (person,),
        )
        == 0
    )


def test_take_incoming_is_refused_when_another_person_holds_the_value(pipeline):
    holder = pipeline.insert_bot_person(full_name="Luis Pérez", email="shared@mail.com")
    person = pipeline.insert_bot_person(full_name="Ana Gómez", email="ana@mail.com")
    item = _item(
        pipeline,
        "field_conflict",
        staging_table="staging_lead",
        staging_id=3,
        person_id=person,
        field="email",
        existing_value="ana@mail.com",
        incoming_value="Shared@Mail.com",
    )
    not_a_date = _item(
        pipeline,
        "field_conflict",
        staging_table="staging_lead",
        staging_id=4,
        person_id=person,
        field="birth_date",
        incoming_value="31/02/1990",
    )
    pipeline.cli("review", "resolve", item, "take_incoming")
    pipeline.cli("review", "resolve", not_a_date, "take_incoming")
    result = json.loads(pipeline.cli("review", "apply", "--json", code=1).stdout)
    assert result["review_decisions_applied"] == 0 and holder in result["refused"][str(item)]
    assert "1990" not in result["refused"][str(not_a_date)]  # the reason never quotes the value
    assert pipeline.scalar("SELECT email FROM persons WHERE id = %s", (person,)) == "ana@mail.com"
    assert _status(pipeline, item) == ("open", None, None)  # back in the queue, saying why
    assert "refused" in json.loads(pipeline.cli("review", "show", item, "--json").stdout)["details"]


# --- possible_duplicate -------------------------------------------------------------------------------


def _student(pipeline, person: str, number: str | None) -> str:
    student = str(uuid.uuid4())
    pipeline.query(
        "INSERT INTO students (id, person_id, student_number, updated_at) VALUES (%s, %s, %s, now())",
        (student, person, number),
    )
    return student


def _lead(pipeline, person: str, program: str, notes: str | None = None) -> str:
    lead = str(uuid.uuid4())
    pipeline.query(
        "INSERT INTO leads (id, person_id, program_type, notes, updated_at) VALUES (%s, %s, %s, %s, now())",
        (lead, person, program, notes),
    )
    return lead


def _document(pipeline, student: str, checksum: str) -> str:
    document = str(uuid.uuid4())
    pipeline.query(
        "INSERT INTO student_documents (id, student_id, document_type, file_name, object_key, file_size, "
        "mime_type, checksum, updated_at) VALUES (%s, %s, 'passport', 'f.pdf', %s, 1, 'application/pdf', "
        "%s, now())",
        (document, student, f"k/{document}", checksum),
    )
    return document


def _link(pipeline, table: str, staging_id: int, entity: str, entity_id: str) -> None:
    pipeline.query(
        "INSERT INTO ice_pipeline.source_links (staging_table, staging_id, entity, entity_id, matched_by, "
        "run_id) VALUES (%s, %s, %s, %s, 'test', 'test')",
        (table, staging_id, entity, entity_id),
    )


def test_same_person_merges_the_two_production_persons(pipeline):
    stayer = pipeline.insert_bot_person(created_at="2023-01-01", full_name="Ana Gómez", cedula="1020345678")
    absorbed = pipeline.insert_bot_person(
        created_at="2024-06-01",
        full_name="Ana Gomez",
        email="ana@mail.com",
        phone="+573001112233",
        data_source="CSV",
    )
    kept_student, gone_student = _student(pipeline, stayer, "S-1"), _student(pipeline, absorbed, None)
    same_file = _document(pipeline, kept_student, "a" * 64)
    duplicate_file, other_file = (
        _document(pipeline, gone_student, "a" * 64),
        _document(pipeline, gone_student, "b" * 64),
    )
    kept_lead = _lead(pipeline, stayer, "Au Pair")
    duplicate_lead = _lead(pipeline, absorbed, "AU-PAIR", notes="call back")
    other_lead = _lead(pipeline, absorbed, "Camp")
    _link(pipeline, "staging_student", 5, "person", absorbed)
    _link(pipeline, "staging_student", 5, "student", gone_student)
    _link(pipeline, "staging_lead", 9, "person", absorbed)
    _link(pipeline, "staging_lead", 9, "lead", duplicate_lead)
    _link(pipeline, "staging_document", 4, "document", duplicate_file)
    pipeline.query(
        "INSERT INTO ice_pipeline.field_sources (person_id, field, staging_table, staging_id, run_id) "
        "VALUES (%s, 'email', 'staging_lead', 9, 't'), (%s, 'full_name', 'staging_lead', 9, 't')",
        (absorbed, absorbed),
    )
    pipeline.query(
        "INSERT INTO ice_pipeline.row_keys (staging_table, staging_id, person_id, run_id) "
        "VALUES ('staging_lead', 9, %s, 't')",
        (absorbed,),
    )
    item = _item(
        pipeline,
        "possible_duplicate",
        person_id=absorbed,
        candidate_person_id=stayer,
        score=0.93,
        reason="fuzzy",
        details={"agree": ["name_key"], "differ": []},
    )
    # an identity decision pending on the absorbed person follows it to the stayer
    pending = _item(pipeline, "identity_conflict", staging_table="staging_lead", staging_id=11)
    pipeline.cli("review", "resolve", pending, "merge_into", "--person", absorbed)

    assert "one of same_person, not_same" in pipeline.cli("review", "resolve", item, "split", code=2).output
    pipeline.cli("review", "resolve", item, "same_person")  # default: the older person stays
    assert _status(pipeline, item) == ("resolved", "same_person", stayer)
    assert "1 decisions applied" in pipeline.cli("review", "apply").output

    assert pipeline.query("SELECT count(*) FROM persons WHERE id = %s", (absorbed,)) == [(0,)]
    assert pipeline.query(
        "SELECT email, phone, cedula, data_source FROM persons WHERE id = %s", (stayer,)
    ) == [("ana@mail.com", "+573001112233", "1020345678", "CSV")]
    assert pipeline.query("SELECT id::text, student_number FROM students") == [(kept_student, "S-1")]
    assert sorted(
        pipeline.query("SELECT id::text FROM student_documents WHERE student_id = %s", (kept_student,))
    ) == sorted([(same_file,), (other_file,)])
    assert sorted(
        pipeline.query("SELECT id::text, notes FROM leads WHERE person_id = %s", (stayer,))
    ) == sorted([(kept_lead, "call back"), (other_lead, None)])
    links = dict(
        ((t, e), i)
        for t, e, i in pipeline.query(
            "SELECT staging_table, entity, entity_id::text FROM ice_pipeline.source_links"
        )
    )
    assert links == {
        ("staging_student", "person"): stayer,
        ("staging_student", "student"): kept_student,
        ("staging_lead", "person"): stayer,
        ("staging_lead", "lead"): kept_lead,
        ("staging_document", "document"): same_file,
    }
    assert pipeline.query("SELECT person_id::text FROM ice_pipeline.row_keys") == [(stayer,)]
    # the e-mail came with the absorbed person's lead row; the stayer kept its own name
    assert pipeline.query("SELECT person_id::text, field FROM ice_pipeline.field_sources") == [
        (stayer, "email")
    ]
    assert pipeline.query(
        "SELECT kind, from_person_id::text, to_person_id::text, review_id, staging_rows "
        "FROM ice_pipeline.person_moves"
    ) == [("merge", absorbed, stayer, item, [["staging_lead", 9], ["staging_student", 5]])]
    assert _status(pipeline, item)[0] == "applied"
    assert _status(pipeline, pending) == ("resolved", "merge_into", stayer)


def test_same_person_is_refused_for_students_with_different_numbers(pipeline):
    a = pipeline.insert_bot_person(created_at="2023-01-01", full_name="Ana Gómez")
    b = pipeline.insert_bot_person(created_at="2024-01-01", full_name="Ana Gomez")
    _student(pipeline, a, "S-1"), _student(pipeline, b, "S-2")
    item = _item(pipeline, "possible_duplicate", person_id=a, candidate_person_id=b)
    assert (
        "one of the pair"
        in pipeline.cli(
            "review",
            "resolve",
            item,
            "same_person",
            "--person",
            pipeline.insert_bot_person(full_name="X"),
            code=2,
        ).output
    )
    pipeline.cli("review", "resolve", item, "same_person", "--person", b)
    assert "different student numbers" in pipeline.cli("review", "apply", code=1).output
    assert pipeline.scalar("SELECT count(*) FROM persons WHERE id IN (%s, %s)", (a, b)) == 2
    assert pipeline.scalar("SELECT count(*) FROM ice_pipeline.person_moves") == 0


def test_not_same_closes_the_pair_for_good(pipeline):
    a = pipeline.insert_bot_person(full_name="Ana Gómez")
    b = pipeline.insert_bot_person(full_name="Ana Gomez")
    item = _item(pipeline, "possible_duplicate", person_id=a, candidate_person_id=b)
    pipeline.cli("review", "resolve", item, "not_same")
    dry = pipeline.run(dry_run=True)
    assert dry["success"] and dry["review_decisions_applied"] == 1, dry  # what the run would apply
    assert _status(pipeline, item)[0] == "resolved"
    summary = pipeline.run()
    assert summary["success"] and summary["review_decisions_applied"] == 1, summary
    assert _status(pipeline, item)[:2] == ("applied", "not_same")
    assert pipeline.scalar("SELECT count(*) FROM persons WHERE id IN (%s, %s)", (a, b)) == 2
    # the same pair, found again (either way round), is not queued again
    import pandas as pd

    with closing(psycopg2.connect(pipeline.production_url)) as conn, conn, conn.cursor() as cur:
        added = write_reviews(
            cur,
            pd.DataFrame(
                [
                    {
                        "kind": "possible_duplicate",
                        "staging_table": "staging_lead",
                        "staging_id": 99,
                        "person_id": b,
                        "candidate_person_id": a,
                    }
                ]
            ),
            "t",
        )
    assert added == 0


# --- possible_false_merge -----------------------------------------------------------------------------


def test_split_moves_the_listed_rows_and_what_they_brought_to_a_new_person(pipeline):
    (student_row,) = pipeline.insert(
        "staging_student",
        [dict(full_name="Ana Gómez", cedula="1020345678", email="ana@mail.com", source="csv_only")],
    )
    (lead_row,) = pipeline.insert(
        "staging_lead",
        [dict(full_name="Ana Gomez", email="ana@mail.com", phone="3001112233", interest_program="Au Pair")],
    )
    assert pipeline.run()["success"]
    (person,) = [p for (p,) in pipeline.query("SELECT id::text FROM persons")]
    lead = pipeline.scalar("SELECT id::text FROM leads")
    # the run recorded which row brought each value: the cédula the student's row, the phone the lead's
    sources = dict(
        pipeline.query(
            "SELECT field, staging_table || ':' || staging_id FROM ice_pipeline.field_sources "
            "WHERE person_id = %s",
            (person,),
        )
    )
    assert (
        sources["cedula"] == f"staging_student:{student_row}"
        and sources["phone"] == f"staging_lead:{lead_row}"
    )
    item = _item(
        pipeline,
        "possible_false_merge",
        person_id=person,
        reason="test",
        details={"rows": {"stay": [["staging_student", student_row]], "move": [["staging_lead", lead_row]]}},
    )
    together = _item(
        pipeline,
        "possible_false_merge",
        person_id=person,
        staging_table="staging_lead",
        staging_id=lead_row,
        details={"rows": {"move": [["staging_lead", lead_row]]}},
    )
    pipeline.cli("review", "resolve", together, "keep_together")
    pipeline.cli("review", "resolve", item, "split")
    summary = pipeline.run()
    assert summary["success"] and summary["review_decisions_applied"] == 2, summary

    new = pipeline.scalar(
        "SELECT to_person_id::text FROM ice_pipeline.person_moves WHERE kind = 'split' "
        "AND from_person_id = %s AND review_id = %s",
        (person, item),
    )
    assert new and new != person
    assert pipeline.query("SELECT phone, cedula FROM persons WHERE id = %s", (new,)) == [
        ("+573001112233", None)
    ]
    assert pipeline.query("SELECT phone, cedula FROM persons WHERE id = %s", (person,)) == [
        (None, "1020345678")
    ]
    assert pipeline.scalar("SELECT person_id::text FROM leads WHERE id = %s", (lead,)) == new
    assert pipeline.scalar("SELECT person_id::text FROM students") == person
    assert (
        pipeline.scalar(
            "SELECT entity_id::text FROM ice_pipeline.source_links WHERE staging_table = 'staging_lead' "
            "AND entity = 'person'"
        )
        == new
    )
    assert (
        pipeline.scalar("SELECT person_id::text FROM ice_pipeline.field_sources WHERE field = 'phone'") == new
    )
    assert _status(pipeline, item)[:2] == ("applied", "split")
    assert _status(pipeline, together)[:2] == ("applied", "keep_together")
    assert pipeline.scalar("SELECT count(*) FROM persons") == 2
    figures = pipeline.assert_accounted()["staging_lead"]
    assert (figures["linked"], figures["unaccounted"]) == (1, 0)


# --- in bulk: a spreadsheet ---------------------------------------------------------------------------


def _queue_for_sheet(pipeline) -> tuple[str, int, int, int]:
    person = pipeline.insert_bot_person(full_name="Ana Gómez", city="Cali")
    other = pipeline.insert_bot_person(full_name="Ana Gomez")
    field = _item(
        pipeline,
        "field_conflict",
        staging_table="staging_lead",
        staging_id=1,
        person_id=person,
        field="city",
        existing_value="Cali",
        incoming_value='=HYPERLINK("http://x")',
    )
    pair = _item(pipeline, "possible_duplicate", person_id=person, candidate_person_id=other, score=0.9)
    untouched = _item(
        pipeline,
        "field_conflict",
        staging_table="staging_lead",
        staging_id=2,
        person_id=person,
        field="country",
        existing_value="Colombia",
        incoming_value="Peru",
    )
    return person, field, pair, untouched


def _fill(path: Path, decisions: dict[int, tuple[str, str]]) -> None:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        if int(row["id"]) in decisions:
            row["decision"], row["decision_person_id"] = decisions[int(row["id"])]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_export_edit_import_apply(pipeline, tmp_path):
    person, field, pair, untouched = _queue_for_sheet(pipeline)
    sheet = tmp_path / "review.csv"
    assert "3 open items" in pipeline.cli("review", "export", "--csv", sheet).output
    with sheet.open(newline="", encoding="utf-8") as handle:
        rows = {int(r["id"]): r for r in csv.DictReader(handle)}
    assert set(rows) == {field, pair, untouched}
    assert rows[field]["incoming_value"].startswith("'=")  # a spreadsheet does not run it
    assert rows[pair]["valid_decisions"] == "same_person | not_same" and rows[pair]["decision"] == ""
    _fill(sheet, {field: ("keep_existing", ""), pair: ("same_person", person)})
    assert (
        "2 decisions recorded (1 lines without a decision)" in pipeline.cli("review", "import", sheet).output
    )
    assert "2 decisions applied" in pipeline.cli("review", "apply").output
    assert _status(pipeline, field)[:2] == ("applied", "keep_existing")
    assert _status(pipeline, pair) == ("applied", "same_person", person)
    assert _status(pipeline, untouched)[0] == "open"
    assert pipeline.scalar("SELECT count(*) FROM persons") == 1


def test_import_with_one_bad_line_records_nothing_and_names_the_line(pipeline, tmp_path):
    person, field, pair, untouched = _queue_for_sheet(pipeline)
    sheet = tmp_path / "review.csv"
    pipeline.cli("review", "export", "--csv", sheet, "--kind", "field_conflict")
    _fill(sheet, {field: ("keep_existing", ""), untouched: ("same_person", "")})
    output = pipeline.cli("review", "import", sheet, code=2).output
    assert (
        "line 3:" in output
        and "one of keep_existing, take_incoming" in output
        and "nothing was recorded" in output
    )
    assert _status(pipeline, field) == ("open", None, None)
    assert _status(pipeline, untouched) == ("open", None, None)


def test_the_run_merges_before_it_resolves_new_rows(pipeline):
    """A same_person decision is applied first thing in the run: a new row carrying the absorbed
    person's e-mail joins the person that stays (never the one that is gone)."""
    stayer = pipeline.insert_bot_person(created_at="2023-01-01", full_name="Ana Gómez", cedula="1020345678")
    absorbed = pipeline.insert_bot_person(
        created_at="2024-01-01", full_name="Ana Gomez", email="ana@mail.com"
    )
    item = _item(pipeline, "possible_duplicate", person_id=stayer, candidate_person_id=absorbed)
    pipeline.cli("review", "resolve", item, "same_person", "--person", stayer)
    (row,) = pipeline.insert(
        "staging_student", [dict(full_name="Ana Gómez", email="ana@mail.com", source="csv_only")]
    )
    summary = pipeline.run()
    assert (
        summary["success"] and summary["review_decisions_applied"] == 1 and summary["persons_created"] == 0
    ), summary
    assert pipeline.linked("staging_student", row) == stayer
    assert pipeline.query("SELECT id::text, email FROM persons") == [(stayer, "ana@mail.com")]
    assert pipeline.scalar("SELECT person_id::text FROM students") == stayer


def test_review_apply_waits_for_a_running_migration_then_says_so(pipeline):
    from ice_pipeline.locks import RUN_LOCK_KEY
    from ice_pipeline.review.apply import MigrationRunning, apply_now

    a = pipeline.insert_bot_person(full_name="Ana Gómez")
    b = pipeline.insert_bot_person(full_name="Ana Gomez")
    item = _item(pipeline, "possible_duplicate", person_id=a, candidate_person_id=b)
    pipeline.cli("review", "resolve", item, "same_person", "--person", a)
    running = pipeline.production  # a migration run's session holding the run lock
    with running.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s)", (RUN_LOCK_KEY,))
    with closing(psycopg2.connect(pipeline.production_url)) as conn, pytest.raises(MigrationRunning):
        apply_now(conn, wait_seconds=1)
    assert _status(pipeline, item)[0] == "resolved"
    with running.cursor() as cur:
        cur.execute("SELECT pg_advisory_unlock(%s)", (RUN_LOCK_KEY,))
    with closing(psycopg2.connect(pipeline.production_url)) as conn:
        _, result = apply_now(conn, wait_seconds=1)
    assert result.applied == {"same_person": 1} and _status(pipeline, item)[0] == "applied"
    assert "does not exist" in pipeline.cli("review", "show", 999999, code=2).output
