"""The migration end to end on real PostgreSQL (DESIGN §3.4, §4, §6).

Every test runs the real `migrate_to_production` job through
`pipeline.run()` (what `ice-pipeline migrate --json` prints) against fresh
staging and production databases, then reads production back. Hypothesis
tests reset both databases inside each example (TRUNCATE ... RESTART
IDENTITY), since a function-scoped fixture is built once per test.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ice_pipeline.dev import demo_data

COUNT_KEYS = (
    "persons_created",
    "persons_updated",
    "students_created",
    "leads_created",
    "rows_rejected",
    "rows_in_review",
)


# --- helpers --------------------------------------------------------------------


def insert_mixed(pipeline, rows: list[dict]) -> list[tuple[str, int]]:
    """Rows carrying a 'table' key, inserted one by one in list order: [(table, id)]."""
    out = []
    for row in rows:
        table = row["table"]
        values = {k: v for k, v in row.items() if k not in ("table", "ref")}
        out.append((table, pipeline.insert(table, [values])[0]))
    return out


def count(pipeline, table: str) -> int:
    return pipeline.scalar(f"SELECT count(*) FROM {table}")


def changed_tables(before: dict, after: dict) -> dict[str, tuple[int, int]]:
    """Tables whose contents differ between two pipeline.dump()s: {table: (rows before, rows after)}."""
    return {t: (len(before[t]), len(after.get(t, []))) for t in before if before[t] != after.get(t)}


# --- the plan's three scenarios -----------------------------------------------------


def test_new_person_is_created_with_its_fields(pipeline):
    [sid] = pipeline.insert(
        "staging_student",
        [
            {
                "full_name": "MARIA RODRIGUEZ",
                "email": "maria@email.com",
                "cedula": "12345678",
                "birth_date": "1995-03-15",
                "phone": "300 123 4567",
                "address": "Calle 123 #45-67",
                "source": "directory+csv",
                "csv_enriched": True,
            }
        ],
    )
    summary = pipeline.run_ok()
    assert count(pipeline, "persons") == 1
    row = pipeline.query(
        "SELECT full_name, email, cedula, birth_date, phone, address, csv_enriched, data_source, "
        "original_name FROM persons"
    )[0]
    assert row == (
        "Maria Rodriguez",
        "maria@email.com",
        "12345678",
        dt.date(1995, 3, 15),
        "+573001234567",
        "Calle 123 #45-67",
        True,
        "CSV",
        "MARIA RODRIGUEZ",
    )
    assert summary["persons_created"] == 1 and summary["persons_updated"] == 0
    assert summary["students_created"] == 1
    person = pipeline.linked("staging_student", sid)
    assert pipeline.scalar("SELECT person_id::text FROM students") == person
    assert (
        pipeline.scalar("SELECT count(*) FROM ice_pipeline.source_links WHERE staging_id = %s", (sid,)) == 2
    )


def test_existing_person_is_enriched_not_duplicated(pipeline):
    person = pipeline.insert_bot_person(
        full_name="Maria Rodriguez", email="maria@email.com", cedula=None, address=None, phone="3001234567"
    )
    pipeline.insert(
        "staging_lead",
        [
            {
                "full_name": "MARIA RODRIGUEZ",
                "email": "maria@email.com",
                "cedula": "12345678",
                "birth_date": "15/03/1995",
                "address": "Calle 123 #45-67",
                "interest_program": "Au Pair",
            }
        ],
    )
    summary = pipeline.run_ok()
    assert pipeline.query(
        "SELECT id::text, email, cedula, address, birth_date, phone, csv_enriched FROM persons"
    ) == [
        (person, "maria@email.com", "12345678", "Calle 123 #45-67", dt.date(1995, 3, 15), "3001234567", True)
    ]
    assert summary["persons_created"] == 0 and summary["persons_updated"] == 1
    assert pipeline.scalar("SELECT person_id::text FROM leads") == person


def test_same_person_twice_in_one_csv_is_one_person(pipeline):
    ids = pipeline.insert(
        "staging_lead",
        [
            {
                "full_name": "MARIA RODRIGUEZ",
                "email": "maria@email.com",
                "cedula": "12.345.678",
                "interest_program": "Au Pair",
                "source_file": "leads_2024.xlsx",
                "source_row": 4,
            },
            {
                "full_name": "María Rodríguez",
                "email": " Maria@Email.com",
                "cedula": "CC 12345678",
                "interest_program": "Au Pair",
                "source_file": "leads_2024.xlsx",
                "source_row": 19,
            },
        ],
    )
    summary = pipeline.run_ok()
    assert count(pipeline, "persons") == 1
    assert pipeline.scalar("SELECT full_name FROM persons") == "María Rodríguez"
    assert pipeline.linked("staging_lead", ids[0]) == pipeline.linked("staging_lead", ids[1])
    assert (
        count(pipeline, "leads") == 1
    )  # same (person, program type): the second sighting enriches, never duplicates
    assert summary["persons_created"] == 1 and summary["leads_created"] == 1


def test_program_spelled_differently_is_one_lead(pipeline):
    """(person, program type) is the lead's identity; 'WORK AND TRAVEL' and 'Work and Travel' are one program
    even when the reference data has no entry for it (labels compare by label_key, DESIGN §4)."""
    pipeline.insert(
        "staging_lead",
        [
            {"full_name": "Juan Pérez", "email": "juan@mail.com", "interest_program": "Work and Travel"},
            {"full_name": "Juan Pérez", "email": "juan@mail.com", "interest_program": "WORK AND TRAVEL"},
            {"full_name": "Juan Pérez", "email": "juan@mail.com", "interest_program": "work-and-travel"},
        ],
    )
    summary = pipeline.run_ok()
    assert count(pipeline, "persons") == 1
    assert pipeline.query("SELECT program_type FROM leads") == [("Work and Travel",)]
    assert summary["leads_created"] == 1


def test_bot_created_unnormalized_persons_are_found(pipeline):
    """Matching finds persons the bot stored without normalizing (DESIGN §4)."""
    maria = pipeline.insert_bot_person(
        full_name="Maria Rodriguez", email="Maria@Mail.COM ", cedula="52.123.456"
    )
    decomposed = pipeline.insert_bot_person(
        full_name="Mari\u0301a Rodri\u0301guez Pe\u0301rez",
        email="mrp@bot.co",
        birth_date=dt.date(1990, 6, 1),
    )
    padded = pipeline.insert_bot_person(full_name="Luis Mora", email="luis@bot.co", cedula="0080123456")
    ids = pipeline.insert(
        "staging_lead",
        [
            {"full_name": "MARIA RODRIGUEZ", "email": "maria@mail.com", "cedula": "CC 52123456"},
            {"full_name": "MARIA RODRIGUEZ PEREZ", "birth_date": "01/06/1990"},
            {"full_name": "Luis Mora", "cedula": "80.123.456"},
        ],
    )
    summary = pipeline.run_ok()
    found = {
        "e-mail + cédula written by the bot": pipeline.linked("staging_lead", ids[0]) == maria,
        "decomposed (NFD) name + birth date": pipeline.linked("staging_lead", ids[1]) == decomposed,
        "zero-padded cédula": pipeline.linked("staging_lead", ids[2]) == padded,
    }
    assert found == dict.fromkeys(found, True)
    assert count(pipeline, "persons") == 3 and summary["persons_created"] == 0
    # stored values are kept as the bot wrote them (fill NULLs only)
    assert pipeline.query("SELECT email, cedula FROM persons WHERE id = %s", (maria,)) == [
        ("Maria@Mail.COM ", "52.123.456")
    ]


def test_bot_persons_written_between_runs_are_found(pipeline):
    """A person the bot writes after a run is matched by the next run, whatever its updated_at says.

    Prisma sets updated_at on the bot's clock; a restored or back-filled person
    keeps an old one. Either way it is in `persons` and must be found.
    """
    pipeline.insert("staging_lead", [{"full_name": "Primera Persona", "email": "primera@mail.com"}])
    pipeline.run_ok()
    now = pipeline.scalar("SELECT (now() AT TIME ZONE 'UTC')::timestamp(3)")
    fresh = pipeline.insert_bot_person(full_name="Nueva Bot", email="nueva@bot.com", updated_at=now)
    backfilled = pipeline.insert_bot_person(
        full_name="Vieja Bot", email="vieja@bot.com", updated_at=now - dt.timedelta(hours=1)
    )
    ids = pipeline.insert(
        "staging_lead",
        [
            {"full_name": "Nueva Bot", "email": "NUEVA@bot.com", "cedula": "52111222"},
            {"full_name": "Vieja Bot", "email": "VIEJA@bot.com", "cedula": "52333444"},
        ],
    )
    summary = pipeline.run()
    assert summary["success"], summary["error"]
    found = {
        "written now": pipeline.linked("staging_lead", ids[0]) == fresh,
        "updated_at one hour old": pipeline.linked("staging_lead", ids[1]) == backfilled,
    }
    assert found == dict.fromkeys(found, True)
    assert count(pipeline, "persons") == 3


def test_conflicting_values_go_to_review_and_never_overwrite(pipeline):
    person = pipeline.insert_bot_person(
        full_name="Ana Gómez", email="ana@mail.com", phone="3001234567", city="Bogotá"
    )
    [sid] = pipeline.insert(
        "staging_lead",
        [
            {
                "full_name": "Ana Gómez",
                "email": "ANA@mail.com",
                "phone": "310 999 8877",
                "address": "Cra 7 # 1-2",
            }
        ],
    )
    pipeline.run_ok()
    assert pipeline.query("SELECT phone, address FROM persons WHERE id = %s", (person,)) == [
        ("3001234567", "Cra 7 # 1-2")
    ]
    assert pipeline.query(
        "SELECT kind, staging_table, staging_id, person_id::text, existing_value, incoming_value, status "
        "FROM ice_pipeline.review_queue WHERE field = 'phone'"
    ) == [("field_conflict", "staging_lead", sid, person, "3001234567", "+573109998877", "open")]
    # the row is linked all the same: a field conflict does not hold the row back
    assert pipeline.linked("staging_lead", sid) == person
    # the same e-mail written differently is not a conflict
    assert pipeline.scalar("SELECT count(*) FROM ice_pipeline.review_queue WHERE field = 'email'") == 0


def test_email_of_another_cedula_is_shared_and_the_row_is_its_own_person(pipeline):
    """A family e-mail (DESIGN §4): the mother's address on her son's row, another cédula. The e-mail
    identifies nobody; the son is a person of his own; the mother keeps it (a conflict, for review)."""
    owner = pipeline.insert_bot_person(full_name="Maria Rodriguez", email="maria@mail.com", cedula="52123456")
    [sid] = pipeline.insert(
        "staging_lead",
        [
            {
                "full_name": "Mario Rodriguez",
                "email": "maria@mail.com",
                "cedula": "80999888",
                "interest_program": "Camp",
            }
        ],
    )
    summary = pipeline.run_ok()
    assert count(pipeline, "persons") == 2 and count(pipeline, "leads") == 1
    son = pipeline.scalar(
        "SELECT entity_id::text FROM ice_pipeline.source_links WHERE staging_id = %s AND entity = 'person'",
        (sid,),
    )
    assert son != owner
    assert pipeline.query("SELECT email, cedula FROM persons WHERE id = %s", (son,)) == [(None, "80999888")]
    assert pipeline.query(
        "SELECT kind, field, reason FROM ice_pipeline.review_queue WHERE staging_id = %s", (sid,)
    ) == [("field_conflict", "email", "value held by another person")]
    assert pipeline.query("SELECT kind, value, reason FROM ice_pipeline.shared_values") == [
        ("email", "maria@mail.com", "different cédulas")
    ]
    assert summary["rows_in_review"] == 0
    pipeline.assert_accounted()


# --- a mixed data set: dry run, real run, second run ------------------------------------


def mixed_rows() -> list[dict]:
    """Students and leads of a few persons, with the usual noise, a conflict, a review and rejections."""
    return [
        {
            "table": "staging_student",
            "full_name": "MARIA RODRIGUEZ",
            "email": "maria@email.com",
            "cedula": "1.020.345.678",
            "birth_date": "15/03/1995",
            "phone": "300 123 4567",
            "program": "Au Pair",
            "student_number": "S-001",
            "source": "directory+csv",
        },
        {
            "table": "staging_lead",
            "full_name": "María Rodríguez",
            "email": "MARIA@EMAIL.COM ",
            "phone": "+57 300 123 4567",
            "interest_program": "AU PAIR",
            "status": "Interesado",
            "notes": "llamar en la tarde",
        },
        {
            "table": "staging_lead",
            "full_name": "maria rodriguez",
            "cedula": "CC 1020345678",
            "interest_program": "Camp",
            "phone": "310 111 2233",
        },
        {
            "table": "staging_student",
            "full_name": "Juan Pérez",
            "cedula": "80.123.456",
            "birth_date": "1990-01-20",
            "source": "directory_only",
        },
        {
            "table": "staging_lead",
            "full_name": "JUAN PEREZ",
            "birth_date": "20-01-1990",
            "email": "juanp@mail.com",
            "interest_program": "Work and Travel",
        },
        {
            "table": "staging_lead",
            "full_name": "Carlos Gómez",
            "phone": "601 2345678",
            "interest_program": "Camp",
        },
        {
            "table": "staging_lead",
            "full_name": "Carlos Gómez",
            "phone": "(1) 234 5678",
            "interest_program": "Camp",
        },
        {
            "table": "staging_lead",
            "full_name": "Pedro Ruiz",
            "email": "maria@email.com",
            "cedula": "79111222",
            "interest_program": "Camp",
        },
        {"table": "staging_lead", "full_name": "   ", "email": "nadie@mail.com"},
        {"table": "staging_student", "full_name": "", "cedula": "1010101010", "source": "csv_only"},
        {
            "table": "staging_lead",
            "full_name": "Laura Torres",
            "email": "laura@mail",
            "cedula": "N/A",
            "birth_date": "31/02/1994",
            "interest_program": "Au Pair",
        },
    ]


def test_dry_run_writes_nothing_and_predicts_the_real_run(pipeline):
    insert_mixed(pipeline, mixed_rows())
    before = pipeline.dump()
    dry = pipeline.run_ok(dry_run=True)
    assert changed_tables(before, pipeline.dump()) == {}
    real = pipeline.run_ok()
    assert {k: dry[k] for k in COUNT_KEYS} == {k: real[k] for k in COUNT_KEYS}
    assert real["persons_created"] > 0 and real["rows_rejected"] == 2 and real["rows_in_review"] == 0


def test_second_run_changes_nothing(pipeline):
    insert_mixed(pipeline, mixed_rows())
    first = pipeline.run_ok()
    # María, Juan, two Carlos (landline), Laura, Pedro (María's e-mail with his own cédula: shared)
    assert first["persons_created"] == 6
    after_first = pipeline.dump()
    second = pipeline.run_ok()
    assert {k: second[k] for k in COUNT_KEYS[:4] + ("students_updated", "leads_updated")} == dict.fromkeys(
        COUNT_KEYS[:4] + ("students_updated", "leads_updated"), 0
    )
    assert changed_tables(after_first, pipeline.dump()) == {}
    pipeline.assert_accounted()


def test_full_refresh_rerun_changes_nothing(pipeline):
    insert_mixed(pipeline, mixed_rows())
    pipeline.run_ok()
    after_first = pipeline.dump()
    again = pipeline.run_ok(full_refresh=True)
    # re-reading every staging row finds nothing new: no entity and no link changes (updated_at included)
    changed = changed_tables(after_first, pipeline.dump())
    assert {t: n for t, n in changed.items() if t != "ice_pipeline.watermarks"} == {}
    assert {
        k: again[k]
        for k in (
            "persons_created",
            "persons_updated",
            "students_created",
            "students_updated",
            "leads_created",
            "leads_updated",
        )
    } == dict.fromkeys(
        (
            "persons_created",
            "persons_updated",
            "students_created",
            "students_updated",
            "leads_created",
            "leads_updated",
        ),
        0,
    )


# --- order and increments ------------------------------------------------------------------

ORDER_ROWS = [
    {
        "table": "staging_student",
        "full_name": "MARIA RODRIGUEZ",
        "cedula": "1.020.345.678",
        "email": "maria@email.com",
        "source": "csv_only",
        "program": "Au Pair",
    },
    {
        "table": "staging_lead",
        "full_name": "Maria Rodriguez",
        "email": " MARIA@email.com",
        "phone": "3001234567",
        "interest_program": "Au Pair",
    },
    {
        "table": "staging_lead",
        "full_name": "maria rodriguez",
        "phone": "+57 300 123 4567",
        "birth_date": "1995-03-15",
        "interest_program": "Camp",
    },
    {"table": "staging_lead", "full_name": "Juan Perez", "cedula": "80123456", "birth_date": "20/01/1990"},
    {
        "table": "staging_lead",
        "full_name": "JUAN PEREZ",
        "birth_date": "1990-01-20",
        "email": "juan@mail.com",
        "interest_program": "Camp",
    },
    {
        "table": "staging_student",
        "full_name": "juan perez",
        "email": "Juan@Mail.com",
        "phone": "311 222 3344",
        "source": "directory+csv",
    },
    {"table": "staging_lead", "full_name": "Carlos Gomez", "phone": "601 2345678"},
    {"table": "staging_lead", "full_name": "Carlos Gomez", "phone": "6012345678", "birth_date": "1960-05-05"},
    {"table": "staging_lead", "full_name": "Ana Diaz", "birth_date": "1992-07-07", "cedula": "30111111"},
    {"table": "staging_lead", "full_name": "Ana Diaz", "birth_date": "07/07/1992", "cedula": "30222222"},
    {"table": "staging_lead", "full_name": "Luis Mora", "phone": "310 555 1234"},
    {"table": "staging_lead", "full_name": "LUIS MORA", "phone": "+573105551234", "email": "luis@mora.co"},
    {
        "table": "staging_student",
        "full_name": "Luis Mora",
        "email": "LUIS@MORA.CO",
        "cedula": "1.010.101.010",
        "source": "csv_only",
    },
]


def outcome(pipeline) -> tuple:
    """Persons as comparable tuples (ids ignored), and the numbers of students and leads."""
    rows = pipeline.query("SELECT full_name, email, cedula, birth_date::text, phone FROM persons")
    persons = sorted(rows, key=lambda r: tuple((v is None, v or "") for v in r))
    return persons, count(pipeline, "students"), count(pipeline, "leads")


def test_shuffled_staging_rows_give_the_same_persons(pipeline):
    insert_mixed(pipeline, ORDER_ROWS)
    pipeline.run_ok()
    reference = outcome(pipeline)
    assert len(reference[0]) == 7  # María, Juan, two Carlos (landline), two Ana (two cédulas), Luis
    for seed in (1, 2):
        rows = ORDER_ROWS[:]
        random.Random(seed).shuffle(rows)
        pipeline.reset()
        insert_mixed(pipeline, rows)
        pipeline.run_ok()
        assert outcome(pipeline) == reference, f"order {seed}"


GIVEN = ["Maria", "Jose", "Ana", "Luis", "Carmen", "Pedro", "Laura", "Andres", "Sofia", "Diego"]
SURNAMES = [
    "Rodriguez",
    "Perez",
    "Gomez",
    "Lopez",
    "Martinez",
    "Diaz",
    "Torres",
    "Ramirez",
    "Castro",
    "Rojas",
]


def _name_variant(name: str, style: int) -> str:
    """Spellings that display the same ('Maria Rodriguez'): case and stray spaces only."""
    return [name, name.upper(), name.lower(), f"  {name.upper()}  ", name.replace(" ", "   ")][style]


def _cedula_variant(cedula: str, style: int) -> str:
    dotted = f"{int(cedula):,}".replace(",", ".")
    return [cedula, dotted, f"CC {cedula}", f"C.C. {dotted}", f" {cedula} "][style]


def _email_variant(email: str, style: int) -> str:
    return [email, email.upper(), f" {email} ", email.capitalize(), f"{email}\u00a0"][style]


def _date_variant(date: dt.date, style: int) -> str:
    return [
        date.isoformat(),
        date.strftime("%d/%m/%Y"),
        date.strftime("%d-%m-%Y"),
        date.isoformat(),
        date.strftime("%d/%m/%Y"),
    ][style]


def _phone_variant(national: str, style: int) -> str:
    return [
        national,
        f"+57 {national[:3]} {national[3:6]} {national[6:]}",
        f"({national[:3]}) {national[3:6]}-{national[6:]}",
        f"57{national}",
        f"{national[:3]}.{national[3:6]}.{national[6:]}",
    ][style]


@st.composite
def generated_persons(draw) -> list[dict]:
    """Rows of k persons; every row of a person carries that person's cédula or that person's e-mail."""
    k = draw(st.integers(1, 4))
    names = draw(
        st.lists(
            st.tuples(st.sampled_from(GIVEN), st.sampled_from(SURNAMES)), min_size=k, max_size=k, unique=True
        )
    )
    cedulas = draw(
        st.lists(
            st.integers(10_000_000, 1_199_999_999).map(str).filter(lambda c: len(set(c)) > 1),
            min_size=k,
            max_size=k,
            unique=True,
        )
    )
    rows = []
    for i, ((first_name, surname), cedula) in enumerate(zip(names, cedulas, strict=True)):
        name = f"{first_name} {surname}"
        email = f"{first_name.lower()}.{surname.lower()}{i}@mail.com"
        birth = draw(st.one_of(st.none(), st.dates(dt.date(1960, 1, 1), dt.date(2006, 12, 31))))
        mobile = f"3{draw(st.sampled_from(['00', '01', '10', '12', '20', '50']))}{i}{draw(st.integers(100000, 999999))}"
        address = draw(st.one_of(st.none(), st.just(f"Calle {i + 10} # {i + 1}-20")))
        shared = draw(st.sampled_from(["cedula", "email"]))
        for _ in range(draw(st.integers(1, 3))):
            style = draw(st.integers(0, 4))
            row = {
                "ref": i,
                "table": draw(st.sampled_from(["staging_student", "staging_lead"])),
                "full_name": _name_variant(name, draw(st.integers(0, 4))),
            }
            if shared == "cedula" or draw(st.booleans()):
                row["cedula"] = _cedula_variant(cedula, style)
            if shared == "email" or draw(st.booleans()):
                row["email"] = _email_variant(email, draw(st.integers(0, 4)))
            if birth and draw(st.booleans()):
                row["birth_date"] = _date_variant(birth, draw(st.integers(0, 4)))
            if draw(st.booleans()):
                row["phone"] = _phone_variant(mobile, draw(st.integers(0, 4)))
            if address and draw(st.booleans()):
                row["address"] = address
            if row["table"] == "staging_student":
                row["source"] = draw(st.sampled_from(["csv_only", "directory+csv", "directory_only"]))
            else:
                row["interest_program"] = draw(st.sampled_from(["Au Pair", "AU PAIR", "Camp", None]))
            rows.append(row)
    order = draw(st.permutations(range(len(rows))))
    return [rows[j] for j in order]


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(rows=generated_persons(), k=st.integers(2, 3))
def test_k_increments_give_the_same_result_as_one_batch(pipeline, rows, k):
    pipeline.reset()
    insert_mixed(pipeline, rows)
    pipeline.run_ok()
    batch = outcome(pipeline)
    assert len(batch[0]) == len({r["ref"] for r in rows})  # one person per generated person

    pipeline.reset()
    size = -(-len(rows) // k)
    for start in range(0, len(rows), size):
        insert_mixed(pipeline, rows[start : start + size])
        pipeline.run_ok()
    assert outcome(pipeline) == batch
    pipeline.assert_accounted()


def test_limit_takes_students_and_leads_together_in_arrival_order_and_the_watermark_takes_the_rest(pipeline):
    insert_mixed(pipeline, ORDER_ROWS)
    limit = 4
    runs = 0
    while True:
        summary = pipeline.run_ok(limit=limit)
        runs += 1
        taken = summary["staging_rows"]
        assert taken["students"] + taken["leads"] <= limit
        assert summary["more_pending"] == (taken["students"] + taken["leads"] == limit)
        if taken["students"] == taken["leads"] == 0:
            break
        assert runs <= 10
    assert runs == -(-len(ORDER_ROWS) // limit) + 1  # the last run finds nothing left
    limited = outcome(pipeline)
    linked = pipeline.query(
        "SELECT staging_table, staging_id, entity FROM ice_pipeline.source_links ORDER BY 1, 2, 3"
    )
    pipeline.reset()
    insert_mixed(pipeline, ORDER_ROWS)
    pipeline.run_ok()
    assert outcome(pipeline) == limited
    assert (
        pipeline.query(
            "SELECT staging_table, staging_id, entity FROM ice_pipeline.source_links ORDER BY 1, 2, 3"
        )
        == linked
    )


def test_migrate_takes_a_backlog_in_batches_with_the_result_of_one_batch(pipeline, monkeypatch):
    """Without --limit, migrate loops runs of DEFAULT_BATCH_ROWS until nothing waits (bounded memory)."""
    from ice_pipeline import cli

    insert_mixed(pipeline, ORDER_ROWS)
    pipeline.run_ok(limit=0)
    one_batch = outcome(pipeline)
    pipeline.reset()
    insert_mixed(pipeline, ORDER_ROWS)
    monkeypatch.setattr(cli, "DEFAULT_BATCH_ROWS", 3)
    batches = []
    summary = pipeline.run_ok(progress=batches.append)
    assert summary["runs"] == len(batches) == -(-len(ORDER_ROWS) // 3) + (len(ORDER_ROWS) % 3 == 0)
    assert len(set(summary["run_ids"])) == summary["runs"]
    assert summary["staging_rows"]["students"] + summary["staging_rows"]["leads"] == len(ORDER_ROWS)
    assert summary["persons_created"] == len(one_batch[0]) and not summary["more_pending"]
    assert outcome(pipeline) == one_batch
    pipeline.assert_accounted()
    # a dry run shows the first batch only, and says more waits
    insert_mixed(pipeline, ORDER_ROWS[:4])
    dry = pipeline.run_ok(dry_run=True)
    assert dry["runs"] == 1 and dry["more_pending"]
    assert dry["staging_rows"]["students"] + dry["staging_rows"]["leads"] == 3


# --- bad input -------------------------------------------------------------------------------

INJECTION = "'; DROP TABLE persons; --"


def test_bad_input_is_loaded_sanitized_or_rejected_with_a_reason(pipeline):
    long_text = "Calle 1 # 2-3 " * 715  # 10,010 characters
    rows = {
        "empty name": {"table": "staging_lead", "full_name": "", "email": "empty@mail.com"},
        "blank name": {
            "table": "staging_student",
            "full_name": " \t ",
            "cedula": "52999111",
            "source": "csv_only",
        },
        "long text": {
            "table": "staging_lead",
            "full_name": "Rosa Long",
            "email": "rosa@mail.com",
            "address": long_text,
            "notes": "n" * 10_000,
        },
        "injection": {"table": "staging_lead", "full_name": INJECTION, "email": "bobby@tables.com"},
        "impossible date": {
            "table": "staging_student",
            "full_name": "Pablo Fecha",
            "birth_date": "31/02/1995",
            "email": "pablo@mail.com",
            "source": "csv_only",
        },
        "future date": {
            "table": "staging_lead",
            "full_name": "Futuro Pérez",
            "birth_date": "2199-01-01",
            "email": "futuro@mail.com",
        },
        "na cedula 1": {"table": "staging_lead", "full_name": "Nora Uno", "cedula": "N/A"},
        "na cedula 2": {"table": "staging_lead", "full_name": "Nico Dos", "cedula": "N/A"},
        "no at": {
            "table": "staging_lead",
            "full_name": "Sin Arroba",
            "email": "sinarroba.mail.com",
            "cedula": "43111222",
        },
        "emoji": {"table": "staging_lead", "full_name": "Ana 😀 Gómez 🎉", "email": "emoji@mail.com"},
        "only emoji": {"table": "staging_lead", "full_name": "😀🎉", "email": "onlyemoji@mail.com"},
        "arabic": {
            "table": "staging_lead",
            "full_name": "\u202bمحمد علي\u202c",
            "email": "arabic@mail.com",
            "city": "القاهرة",
        },
        "bidi override": {"table": "staging_lead", "full_name": "Eve\u202e Evil", "email": "eve@mail.com"},
    }
    names = list(rows)
    inserted = dict(zip(names, insert_mixed(pipeline, list(rows.values())), strict=True))
    summary = pipeline.run()
    assert summary["success"], summary["error"]
    assert summary["checks_failed"] == 0, summary["failed_checks"]
    assert pipeline.scalar("SELECT to_regclass('public.persons') IS NOT NULL")

    def person(name: str) -> dict | None:
        table, sid = inserted[name]
        pid = pipeline.linked(table, sid)
        if pid is None:
            return None
        cols = ["full_name", "email", "cedula", "birth_date", "address"]
        return dict(
            zip(
                cols,
                pipeline.query(f"SELECT {', '.join(cols)} FROM persons WHERE id = %s", (pid,))[0],
                strict=True,
            )
        )

    def warnings(name: str) -> list[str]:
        table, sid = inserted[name]
        return (
            pipeline.scalar(
                "SELECT warnings FROM ice_pipeline.source_links WHERE staging_table = %s AND staging_id = %s "
                "AND entity = 'person'",
                (table, sid),
            )
            or []
        )

    def rejection(name: str) -> str | None:
        table, sid = inserted[name]
        return pipeline.scalar(
            "SELECT reason FROM ice_pipeline.rejected_rows WHERE staging_table = %s AND staging_id = %s",
            (table, sid),
        )

    assert rejection("empty name") == "no name" and person("empty name") is None
    assert rejection("blank name") == "no name" and person("blank name") is None
    assert rejection("only emoji") and person("only emoji") is None

    rosa = person("long text")
    assert rosa is not None and len(rosa["address"]) <= 1000
    assert any("address" in w for w in warnings("long text"))
    lead_notes = pipeline.scalar(
        "SELECT notes FROM leads l JOIN ice_pipeline.source_links s ON s.entity_id = l.id "
        "WHERE s.staging_table = 'staging_lead' AND s.staging_id = %s",
        (inserted["long text"][1],),
    )
    assert lead_notes is not None and set(lead_notes) == {"n"}

    assert person("injection")["full_name"] == INJECTION
    assert pipeline.scalar("SELECT count(*) FROM persons WHERE full_name = %s", (INJECTION,)) == 1

    for name in ("impossible date", "future date"):
        loaded = person(name)
        assert loaded is not None and loaded["birth_date"] is None, name
        assert "birth date impossible: dropped" in warnings(name), name

    nora, nico = person("na cedula 1"), person("na cedula 2")
    assert nora["cedula"] is None and nico["cedula"] is None
    assert pipeline.linked(*inserted["na cedula 1"]) != pipeline.linked(*inserted["na cedula 2"])
    assert any("cédula" in w for w in warnings("na cedula 1"))

    no_at = person("no at")
    assert no_at["email"] is None and no_at["cedula"] == "43111222"
    assert any("e-mail" in w for w in warnings("no at"))

    assert person("emoji")["full_name"] == "Ana 😀 Gómez 🎉"
    assert person("arabic")["full_name"] == "محمد علي"
    assert person("bidi override")["full_name"] == "Eve Evil"

    # nothing lost: every row linked, rejected with a reason, or waiting in review
    pipeline.assert_accounted()
    rejected = {name for name in names if rejection(name)}
    assert rejected == {"empty name", "blank name", "only emoji"}
    assert summary["rows_rejected"] == len(rejected)


# --- demo data, scored against its ground truth -----------------------------------------------


def _pairs(groups: pd.Series) -> set[tuple[int, int]]:
    out: set[tuple[int, int]] = set()
    for members in groups:
        out.update(itertools.combinations(sorted(members), 2))
    return out


def test_demo_data_identity_resolution_is_precise_and_complete(pipeline):
    data = demo_data.generate(800, seed=3)
    loaded = demo_data.load(pipeline.staging, data, pipeline.files_root)
    truth = demo_data.truth_frame(data, loaded)
    summary = pipeline.run_ok()

    links = pd.DataFrame(
        pipeline.query(
            "SELECT staging_table, staging_id, entity_id::text FROM ice_pipeline.source_links "
            "WHERE entity = 'person'"
        ),
        columns=["staging_table", "staging_id", "person_id"],
    )
    frame = (
        truth.reset_index(drop=True)
        .reset_index()
        .rename(columns={"index": "row"})
        .merge(links, on=["staging_table", "staging_id"], how="left")
    )
    predicted = _pairs(frame.dropna(subset=["person_id"]).groupby("person_id")["row"].apply(list))
    actual = _pairs(frame.groupby("person_ref")["row"].apply(list))
    true_positive = len(predicted & actual)
    precision = true_positive / len(predicted) if predicted else 1.0
    recall = true_positive / len(actual) if actual else 1.0
    print(
        f"\ndemo identity resolution: precision {precision:.4f} recall {recall:.4f} "
        f"({true_positive} of {len(actual)} true pairs found, {len(predicted) - true_positive} wrong pairs; "
        f"{int(frame['person_id'].isna().sum())} rows not linked)"
    )
    assert precision >= 0.99
    assert recall >= 0.9
    assert summary["checks_failed"] == 0
    pipeline.assert_accounted()

    # the richest data set also runs twice without changing anything
    after_first = pipeline.dump()
    second = pipeline.run_ok()
    assert second["persons_created"] == second["persons_updated"] == 0
    assert second["students_created"] == second["leads_created"] == second["documents_uploaded"] == 0
    assert changed_tables(after_first, pipeline.dump()) == {}


def test_namesakes_told_apart_by_student_number_pass_the_duplicate_check(pipeline):
    """Same name and birth date, different student numbers, no cédula or e-mail on one side: two persons,
    and the blocking name+birth-date check knows why (found at a million demo persons)."""
    insert_mixed(
        pipeline,
        [
            {
                "table": "staging_student",
                "full_name": "Juliana Sanchez",
                "birth_date": "1992-12-20",
                "student_number": "ICE-2019-0000001",
                "source": "csv_only",
            },
            {
                "table": "staging_student",
                "full_name": "JULIANA SÁNCHEZ",
                "birth_date": "20/12/1992",
                "student_number": "ICE-2021-0000002",
                "cedula": "1020345111",
                "email": "juliana@mail.com",
                "source": "csv_only",
            },
        ],
    )
    summary = pipeline.run_ok()
    assert summary["persons_created"] == 2
    assert pipeline.query("SELECT student_number FROM ice_pipeline.person_keys ORDER BY 1") == [
        ("ICE-2019-0000001",),
        ("ICE-2021-0000002",),
    ]
    # `ice-pipeline report` applies the same rule to the whole database
    from ice_pipeline.reporting import build_report

    report = build_report(pipeline.staging, pipeline.production)
    assert report["duplicates"]["persons_unique_name_birth_date"] == 0
    assert report["healthy"]
    # the same pair without student numbers is one person, as DESIGN §4 says
    pipeline.reset()
    insert_mixed(
        pipeline,
        [
            {"table": "staging_lead", "full_name": "Juliana Sanchez", "birth_date": "1992-12-20"},
            {
                "table": "staging_lead",
                "full_name": "JULIANA SÁNCHEZ",
                "birth_date": "20/12/1992",
                "cedula": "1020345111",
                "email": "juliana@mail.com",
            },
        ],
    )
    assert pipeline.run_ok()["persons_created"] == 1


def test_evidence_split_across_runs_is_flagged_as_a_possible_duplicate_and_does_not_block(pipeline):
    """Run 1 knows a person by cédula (no birth date); run 2 brings only the name and a birth date
    (a new person: nothing links it yet); run 3 brings the cédula with the birth date under a shorter
    name. In one batch the three are one person; across runs the third row shows two production
    persons to be one: flagged possible_duplicate (a person merges), never merged automatically,
    and the blocking name + birth date check does not stop the pipeline for it. The second person is
    found only through the cluster's key (stored name + the row's birth date), found by neither row."""
    insert_mixed(
        pipeline,
        [
            {
                "table": "staging_student",
                "full_name": "Juan Moreno Duque",
                "cedula": "CC. 14.682.314",
                "email": "moreno.juan@mail.com",
                "source": "csv_only",
            }
        ],
    )
    pipeline.run_ok()
    insert_mixed(
        pipeline, [{"table": "staging_lead", "full_name": "juan moreno duque", "birth_date": "23-04-2006"}]
    )
    assert pipeline.run_ok()["persons_created"] == 1
    insert_mixed(
        pipeline,
        [
            {
                "table": "staging_lead",
                "full_name": "JUAN MORENO",
                "cedula": "14.682.314",
                "birth_date": "2006-04-23",
            }
        ],
    )
    summary = pipeline.run_ok()
    assert summary["persons_created"] == 0
    persons = pipeline.query("SELECT id::text, cedula FROM persons ORDER BY cedula NULLS LAST")
    assert len(persons) == 2
    flagged = pipeline.query(
        "SELECT person_id::text, candidate_person_id::text FROM ice_pipeline.review_queue "
        "WHERE kind = 'possible_duplicate' AND status = 'open'"
    )
    assert len(flagged) == 1 and set(flagged[0]) == {p for p, _ in persons}
    pipeline.assert_accounted()
