"""A bad value costs its row, never the run (DESIGN §4, issue 12).

Production's columns are narrowed on each test's own copy of the production
database, as a real ICE bot database may declare them: every value one past
its column's width must be cut, dropped with a warning in lineage, or its row
rejected with a reason -- and the run must succeed with every staging row
accounted for. Rows production itself refuses (a CHECK constraint the
pipeline cannot know about) are isolated and rejected with the error's
class; the rest of the set is committed.
"""

from __future__ import annotations

import json
import random
from contextlib import closing

import pandas as pd
import psycopg2
import pytest
from psycopg2.extras import Json

from ice_pipeline.db import write_isolating
from ice_pipeline.logic.fit import CUT_MARK
from ice_pipeline.reporting import build_report

# (table, column, width) narrowed in production for the test; the baseline's own
# VARCHAR columns (students.data_source 50, leads.program_type 100) are narrowed too.
NARROWED = [
    ("students", "student_number", 12),
    ("students", "program", 20),
    ("students", "data_source", 30),
    ("leads", "lead_status", 20),
    ("leads", "notes", 30),
    ("leads", "program_type", 24),
    ("leads", "source_file", 40),
    ("leads", "source_sheet", 20),
    ("services", "name", 30),
    ("services", "description", 10),
    ("events", "name", 30),
    ("events", "location", 20),
]
WIDTH = {(t, c): w for t, c, w in NARROWED}


def one_past(table: str, column: str, letter: str = "x") -> str:
    """A value one character wider than the (narrowed) production column."""
    return letter * (WIDTH[(table, column)] + 1)


def narrow(pipeline) -> None:
    with closing(psycopg2.connect(pipeline.production_url)) as conn, conn, conn.cursor() as cur:
        for table, column, width in NARROWED:
            cur.execute(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE varchar({width})')


def assert_accounted_and_healthy(pipeline) -> None:
    """Nothing lost (`pipeline.assert_accounted`), and `ice-pipeline report` finds production healthy."""
    pipeline.assert_accounted()
    assert build_report(pipeline.staging, pipeline.production)["healthy"]


def link(pipeline, table: str, staging_id: int, entity: str) -> tuple[str, list[str]] | None:
    """(entity id, warnings) of a staging row's link, None when it is not linked."""
    rows = pipeline.query(
        "SELECT entity_id::text, warnings FROM ice_pipeline.source_links "
        "WHERE staging_table = %s AND staging_id = %s AND entity = %s",
        (table, staging_id, entity),
    )
    return rows[0] if rows else None


def rejection(pipeline, table: str, staging_id: int) -> tuple[str, dict] | None:
    rows = pipeline.query(
        "SELECT reason, details FROM ice_pipeline.rejected_rows WHERE staging_table = %s AND staging_id = %s",
        (table, staging_id),
    )
    return rows[0] if rows else None


def student(n: int, **fields) -> dict:
    return {
        "full_name": f"Estudiante Prueba {chr(65 + n)}",
        "email": f"student{n}@mail.com",
        "source": "csv_only",
        **fields,
    }


def lead(n: int, **fields) -> dict:
    return {
        "full_name": f"Interesado Prueba {chr(65 + n)}",
        "email": f"lead{n}@mail.com",
        "interest_program": "Au Pair",
        **fields,
    }


def test_every_narrowed_column_fed_one_past_its_width(pipeline):
    narrow(pipeline)
    pipeline.insert(
        "staging_reference_data",
        [
            {"source_file": "ref.csv", "category": "service", "code": "WAT", "label": "Work and Travel"},
            {
                "source_file": "ref.csv",
                "category": "service",
                "code": "LONG",
                "label": one_past("services", "name", "s"),
            },
            {
                "source_file": "ref.csv",
                "category": "event",
                "code": "FERIA",
                "label": "Feria Bogota 2024",
                "attributes": Json(
                    {"date": "2024-03-15", "city": one_past("events", "location", "c"), "service": "WAT"}
                ),
            },
            {
                "source_file": "ref.csv",
                "category": "event",
                "code": "BIG",
                "label": one_past("events", "name", "e"),
            },
        ],
    )
    students = dict(
        zip(
            ["plain", "number", "program", "source"],
            pipeline.insert(
                "staging_student",
                [
                    student(0, student_number="S-1", program="Au Pair"),
                    student(1, student_number=one_past("students", "student_number", "9")),
                    student(2, program=one_past("students", "program", "p")),
                    student(3, source=one_past("students", "data_source", "d")),
                ],
            ),
            strict=True,
        )
    )
    leads = dict(
        zip(
            ["plain", "status", "notes", "program", "file", "sheet", "service", "event"],
            pipeline.insert(
                "staging_lead",
                [
                    lead(0, notes="llamar el lunes", service="WAT", event="FERIA"),
                    lead(1, status=one_past("leads", "lead_status", "z")),
                    lead(2, notes="palabra " * 10),
                    lead(3, interest_program=one_past("leads", "program_type", "q")),
                    lead(4, source_file=one_past("leads", "source_file", "f"), source_row=7),
                    lead(5, source_sheet=one_past("leads", "source_sheet", "h")),
                    lead(6, service=one_past("services", "name", "s"), event="FERIA"),
                    lead(7, service="WAT", event=one_past("events", "name", "e")),
                ],
            ),
            strict=True,
        )
    )

    summary = pipeline.run_ok()
    assert_accounted_and_healthy(pipeline)

    # students: an identifier is never cut -- the row is rejected; descriptive values are dropped with a warning
    reason, details = rejection(pipeline, "staging_student", students["number"])
    assert reason == "student_number longer than 12 characters"
    assert link(pipeline, "staging_student", students["number"], "student") is None
    assert link(pipeline, "staging_student", students["number"], "person") is not None  # the person loaded
    for name, column in (("program", "program"), ("source", "data_source")):
        student_id, warnings = link(pipeline, "staging_student", students[name], "student")
        assert f"{column} longer than {WIDTH[('students', column)]} characters: dropped" in warnings
        assert pipeline.scalar(f"SELECT {column} FROM students WHERE id = %s", (student_id,)) is None
    assert pipeline.query(
        "SELECT student_number, program, data_source FROM students WHERE student_number = 'S-1'"
    ) == [("S-1", "Au Pair", "csv_only")]
    assert summary["students_created"] == 3

    # leads: notes cut (a prefix keeps its meaning), other values dropped with a warning
    lead_id, warnings = link(pipeline, "staging_lead", leads["notes"], "lead")
    notes = pipeline.scalar("SELECT notes FROM leads WHERE id = %s", (lead_id,))
    assert len(notes) == 30 and notes.endswith(CUT_MARK) and ("palabra " * 10).startswith(notes[:-1])
    assert "notes longer than 30 characters: cut" in warnings
    for name, column in (
        ("status", "lead_status"),
        ("program", "program_type"),
        ("file", "source_file"),
        ("sheet", "source_sheet"),
    ):
        lead_id, warnings = link(pipeline, "staging_lead", leads[name], "lead")
        assert f"{column} longer than {WIDTH[('leads', column)]} characters: dropped" in warnings, name
        assert pipeline.scalar(f"SELECT {column} FROM leads WHERE id = %s", (lead_id,)) is None, name
    assert all(rejection(pipeline, "staging_lead", i) is None for i in leads.values())

    # reference data: a service or event whose name does not fit is rejected (as a reference row);
    # leads naming it load without it, with a warning
    refused = dict(
        pipeline.query(
            "SELECT staging_id, reason FROM ice_pipeline.rejected_rows "
            "WHERE staging_table = 'staging_reference_data'"
        )
    )
    assert sorted(refused.values()) == ["name longer than 30 characters", "name longer than 30 characters"]
    assert pipeline.query("SELECT name FROM services ORDER BY name") == [("Work and Travel",)]
    assert pipeline.scalar("SELECT description FROM services") == "From V3 r" + CUT_MARK
    assert pipeline.query(
        "SELECT e.name, e.event_date::date::text, e.location, s.name FROM events e "
        "JOIN services s ON s.id = e.service_id"
    ) == [("Feria Bogota 2024", "2024-03-15", None, "Work and Travel")]
    _, warnings = link(pipeline, "staging_lead", leads["service"], "lead")
    assert "service not in reference data" in warnings
    _, warnings = link(pipeline, "staging_lead", leads["event"], "lead")
    assert "event not in reference data" in warnings
    plain_lead = link(pipeline, "staging_lead", leads["plain"], "lead")[0]
    assert (
        pipeline.scalar(
            "SELECT e.name FROM leads l JOIN events e ON e.id = l.event_id WHERE l.id = %s", (plain_lead,)
        )
        == "Feria Bogota 2024"
    )

    # nothing personal in the reasons or warnings: the values never appear
    texts = json.dumps(
        pipeline.query("SELECT reason, details FROM ice_pipeline.rejected_rows")
        + pipeline.query("SELECT warnings FROM ice_pipeline.source_links")
    )
    assert "xxxxxxxxxx" not in texts and "9999999999" not in texts and "pppppppp" not in texts

    # a second run changes nothing and rejects nothing new
    before = pipeline.dump()
    pipeline.run_ok()
    assert pipeline.dump() == before


@pytest.mark.parametrize(
    "attributes",
    [
        [1, 2, 3],
        "2024-03-15",
        42,
        None,
        True,
        {"date": 20240315, "city": ["Bogotá"], "service": {"code": "WAT"}},
        {"date": "not a date", "city": 7, "service": 3.5},
        {"date": "31/02/2024", "city": None, "service": "NO-SUCH-SERVICE"},
        {"date": "9999-12-31T23:59:59", "city": "Medellín", "service": "wat", "extra": {"nested": [1, None]}},
    ],
)
def test_odd_reference_attributes_are_ignored_with_a_warning_never_the_run(pipeline, attributes):
    pipeline.insert(
        "staging_reference_data",
        [
            {
                "source_file": "ref.csv",
                "category": "service",
                "code": "WAT",
                "label": "Work and Travel",
                "attributes": Json(attributes),
            },
            {
                "source_file": "ref.csv",
                "category": "event",
                "code": "FERIA",
                "label": "Feria 2024",
                "attributes": Json(attributes),
            },
        ],
    )
    [lead_row] = pipeline.insert("staging_lead", [lead(0, service="WAT", event="FERIA")])
    pipeline.run_ok()
    assert_accounted_and_healthy(pipeline)
    assert pipeline.scalar("SELECT count(*) FROM services") == 1
    event = pipeline.query("SELECT event_date, location, service_id IS NOT NULL FROM events")
    assert len(event) == 1
    date, location, has_service = event[0]
    assert location in (None, "Medellín")
    assert has_service == (isinstance(attributes, dict) and attributes.get("service") == "wat")
    assert link(pipeline, "staging_lead", lead_row, "lead") is not None


def test_a_row_production_refuses_costs_that_row_only(pipeline):
    """CHECK constraints the pipeline cannot foresee: the refused rows are isolated and rejected with the
    error's class; every other row of the set is committed, and a later run does not stumble on them."""
    with closing(psycopg2.connect(pipeline.production_url)) as conn, conn, conn.cursor() as cur:
        cur.execute(
            "ALTER TABLE students ADD CONSTRAINT no_forbidden CHECK (program IS DISTINCT FROM 'Forbidden')"
        )
        cur.execute("ALTER TABLE leads ADD CONSTRAINT no_forbidden CHECK (notes NOT LIKE '%%forbidden%%')")
    student_ids = pipeline.insert(
        "staging_student",
        [
            student(i, program="Forbidden" if i in (3, 11) else None if i == 7 else "Au Pair")
            for i in range(16)
        ],
    )
    lead_ids = pipeline.insert(
        "staging_lead", [lead(i, notes="forbidden" if i == 5 else "ok") for i in range(9)]
    )

    summary = pipeline.run_ok()
    assert_accounted_and_healthy(pipeline)
    refused = {student_ids[3], student_ids[11]}
    for sid in student_ids:
        found = rejection(pipeline, "staging_student", sid)
        if sid in refused:
            reason, details = found
            assert reason == "refused by the production database: CheckViolation (SQLSTATE 23514)"
            assert details["constraint"] == "no_forbidden" and details["sqlstate"] == "23514"
            assert link(pipeline, "staging_student", sid, "student") is None
        else:
            assert found is None and link(pipeline, "staging_student", sid, "student") is not None
    assert pipeline.scalar("SELECT count(*) FROM students") == 14 and summary["students_created"] == 14
    [(reason,)] = pipeline.query(
        "SELECT reason FROM ice_pipeline.rejected_rows WHERE staging_table = 'staging_lead'"
    )
    assert "CheckViolation" in reason
    assert rejection(pipeline, "staging_lead", lead_ids[5]) is not None
    assert pipeline.scalar("SELECT count(*) FROM leads") == 8 and summary["leads_created"] == 8
    assert summary["rows_rejected"] == 3

    # A fill production refuses: the existing student keeps its value, the new row is rejected.
    [plain] = pipeline.insert("staging_student", [student(7, student_number="N-100", program="Forbidden")])
    # ... and a row linked before whose new value production refuses keeps its link (never in two places).
    with pipeline.production.cursor() as cur:
        cur.execute(
            "UPDATE leads SET notes = NULL WHERE id = (SELECT entity_id FROM ice_pipeline.source_links "
            "WHERE staging_table = 'staging_lead' AND staging_id = %s AND entity = 'lead')",
            (lead_ids[0],),
        )
    with pipeline.staging.cursor() as cur:
        cur.execute(
            "UPDATE staging_lead SET notes = 'forbidden now', updated_at = now() WHERE id = %s",
            (lead_ids[0],),
        )
    summary = pipeline.run_ok()
    assert_accounted_and_healthy(pipeline)
    assert rejection(pipeline, "staging_student", plain)[0].startswith("refused by the production database")
    assert (
        pipeline.scalar(
            "SELECT program FROM students WHERE person_id = (SELECT entity_id FROM "
            "ice_pipeline.source_links WHERE staging_table = 'staging_student' AND staging_id = %s "
            "AND entity = 'person')",
            (plain,),
        )
        is None
    )
    assert summary["students_updated"] == 0 and summary["rows_rejected"] == 1
    assert rejection(pipeline, "staging_lead", lead_ids[0]) is None
    assert link(pipeline, "staging_lead", lead_ids[0], "lead") is not None


@pytest.mark.parametrize("narrowed", [True, False], ids=["narrowed", "baseline"])
def test_everything_wide_and_every_kind_of_messy_value_still_runs(pipeline, narrowed):
    """Every staging field far wider than any column, next to the messy values DESIGN §4 lists. On the
    baseline's TEXT columns a 10 kB service name still cannot be indexed (SQLSTATE 54000): that item is
    refused by production and isolated."""
    if narrowed:
        narrow(pipeline)
    wide = "Ñ" * 5000
    rng = random.Random(7)  # a name PostgreSQL cannot compress into an index entry
    noise = "".join(rng.choice("abcdefghijklmnopqrstuvwxyzáéíóúñÁÉÍÓÚÑ0123456789") for _ in range(5000))
    pipeline.insert(
        "staging_reference_data",
        [
            {
                "source_file": "ref.csv",
                "category": "service",
                "code": "W" * 3000,
                "label": noise,
                "aliases": ["ok", "a" * 3000],
                "attributes": Json({"date": wide, "city": wide, "service": wide}),
            },
            {
                "source_file": "ref.csv",
                "category": "event",
                "code": "E" * 3000,
                "label": "E" + wide,
                "attributes": Json({"date": wide, "city": wide, "service": wide}),
            },
            {"source_file": "ref.csv", "category": "program", "code": "P", "label": "P" * 400},
            {
                "source_file": "ref.csv",
                "category": "city",
                "code": "C",
                "label": "C" * 400,
                "aliases": ["bogota"],
            },
        ],
    )
    messy = [
        {
            "cedula": "1.020.345.678",
            "phone": "(300) 123-4567",
            "birth_date": "15/03/1995",
            "email": " Ana@Mail.COM ",
        },
        {
            "cedula": "CC 52123456",
            "phone": "+57 310 555 0000",
            "birth_date": "1995-03-15",
            "email": "sincorreo@gmail.com",
        },
        {"cedula": "1234567890", "phone": "6011234567", "birth_date": "15-03-1995", "email": "notiene@x.com"},
        {"cedula": "1111111", "phone": "abc", "birth_date": "31/02/1995", "email": "no-at-sign"},
    ]
    students = [student(i, **m) for i, m in enumerate(messy)] + [
        student(
            9,
            email=wide,
            phone=wide,
            cedula="1" * 5000,
            birth_date=wide,
            address=wide,
            city=wide,
            country=wide,
            program=wide,
            student_number=wide,
            source=wide,
            original_name=wide,
        ),
        student(10, program="P", city="bogota", source="csv_only," * 600),
    ]
    leads = [lead(i, **m) for i, m in enumerate(messy)] + [
        lead(
            9,
            email=wide,
            phone=wide,
            cedula="2" * 5000,
            birth_date=wide,
            address=wide,
            city=wide,
            country=wide,
            interest_program=wide,
            service=wide,
            event=wide,
            status=wide,
            notes=wide,
            source_file=wide,
            source_sheet=wide,
            original_name=wide,
        )
    ]
    student_ids = pipeline.insert("staging_student", students)
    lead_ids = pipeline.insert("staging_lead", leads)
    pipeline.run_ok()
    assert_accounted_and_healthy(pipeline)
    assert (
        pipeline.scalar("SELECT count(*) FROM services") == 0
    )  # its name fits no column, nor an index entry
    assert pipeline.scalar(
        "SELECT count(*) FROM ice_pipeline.rejected_rows WHERE staging_table = 'staging_reference_data'"
    ) == (2 if narrowed else 1)
    if not narrowed:
        assert pipeline.query("SELECT reason FROM ice_pipeline.rejected_rows") == [
            ("refused by the production database: ProgramLimitExceeded (SQLSTATE 54000)",)
        ]
    wide_lead = link(pipeline, "staging_lead", lead_ids[-1], "lead")
    assert wide_lead is not None  # every value of the wide lead was cut or dropped: the lead itself loads
    notes = pipeline.scalar("SELECT notes FROM leads WHERE id = %s", (wide_lead[0],))
    assert notes.endswith(CUT_MARK) if narrowed else notes == wide
    wide_student = student_ids[-2]
    assert (
        link(pipeline, "staging_student", wide_student, "student") is None
    ) == narrowed  # the number: rejected
    pipeline.run_ok()


# --- the isolating writer on its own ------------------------------------------------------------


def test_write_isolating_refuses_only_the_offending_rows(scratch_databases):
    url = scratch_databases("isolate_writes")
    with closing(psycopg2.connect(url)) as conn:
        with conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE target (id integer PRIMARY KEY, code varchar(5) NOT NULL CHECK (code <> 'bad'), "
                "n smallint)"
            )
            frame = pd.DataFrame({"id": range(200), "code": ["ok"] * 200, "n": ["1"] * 200})
            frame.loc[17, "code"] = "toolong"  # 22001
            frame.loc[64, "code"] = "bad"  # 23514
            frame.loc[120, "id"] = 3  # 23505: the first row with id 3 wins
            frame.loc[150, "n"] = "70000"  # 22003: out of range for smallint
            frame.loc[199, "code"] = None  # 23502
            result = write_isolating(
                cur,
                "tmp_target",
                {"id": "integer", "code": "text", "n": "text"},
                frame,
                "INSERT INTO target SELECT id, code, n::smallint FROM tmp_target "
                "WHERE _row >= %(lo)s AND _row < %(hi)s",
            )
            cur.execute("SELECT count(*), count(DISTINCT id) FROM target")
            assert cur.fetchone() == (195, 195)
        conn.commit()
    assert result.written == 195
    reasons = dict(zip(result.refused["position"], result.refused["reason"], strict=True))
    assert sorted(reasons) == [17, 64, 120, 150, 199]
    assert "StringDataRightTruncation (SQLSTATE 22001)" in reasons[17]
    assert "CheckViolation (SQLSTATE 23514)" in reasons[64]
    assert "UniqueViolation (SQLSTATE 23505)" in reasons[120]
    assert "NumericValueOutOfRange (SQLSTATE 22003)" in reasons[150]
    assert "NotNullViolation (SQLSTATE 23502)" in reasons[199]
    details = [json.loads(d) for d in result.refused["details"]]
    assert all("70000" not in json.dumps(d) and "toolong" not in json.dumps(d) for d in details)


def test_write_isolating_lets_a_statement_error_through(scratch_databases):
    """Not a row's fault (a missing column): the write stops, as it must, instead of rejecting every row."""
    url = scratch_databases("isolate_statement_error")
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE target (id integer PRIMARY KEY)")
        with pytest.raises(psycopg2.errors.UndefinedColumn):
            write_isolating(
                cur,
                "tmp_target",
                {"id": "integer"},
                pd.DataFrame({"id": [1, 2]}),
                "INSERT INTO target SELECT nope FROM tmp_target WHERE _row >= %(lo)s AND _row < %(hi)s",
            )
