"""Fuzzy duplicate candidates (logic only, no database): each kind of evidence, and what must not be a candidate."""

from __future__ import annotations

import pandas as pd
import pytest

from ice_pipeline.logic.candidates import (
    compare_names,
    deletion_keys,
    find_candidates,
    one_edit_variants,
)
from ice_pipeline.logic.normalize import name_key


def person(
    pid: str,
    full_name: str,
    birth_date: str | None = None,
    cedula: str | None = None,
    email: str | None = None,
    phone_tail: str | None = None,
    student_number: str | None = None,
) -> dict:
    return {
        "person_id": pid,
        "full_name": full_name,
        "name_key": name_key(pd.Series([full_name])).iloc[0],
        "birth_date": birth_date,
        "cedula": cedula,
        "email": email,
        "phone_tail": phone_tail,
        "student_number": student_number,
    }


def candidates(*people: dict, **options) -> pd.DataFrame:
    return find_candidates(pd.DataFrame(people), **options).pairs


def only_pair(*people: dict) -> dict:
    pairs = candidates(*people)
    assert len(pairs) == 1, pairs
    return pairs.iloc[0].to_dict()


@pytest.mark.parametrize(
    ("a", "b", "text"),
    [
        (
            person("a", "Laura Marcela Gómez Ríos", "1994-05-17", email="laura.g@mail.com"),
            person("b", "Laura Marcela Gómez", "1994-05-17", phone_tail="3001234567"),
            "second surname missing",
        ),
        (
            person("a", "Andrés Felipe Castaño Ruiz", "1990-02-11"),
            person("b", "Andrés Felipe Catsaño Ruiz", "1990-02-11"),
            "name differs by a typo (a transposed letter)",
        ),
        (
            person("a", "Andrés Felipe Castaño Ruiz", phone_tail="3104445566"),
            person("b", "Andres Felipe Castano Ruis", phone_tail="3104445566"),
            "name differs by a typo (one letter differs)",
        ),
        (
            person("a", "Diana Patricia Mora León", email="dpmora@gmail.com"),
            person("b", "Diana Patricia Mora", email="dpmora@gmail.com"),
            "second surname missing",
        ),
        (
            person("a", "Carlos Alberto Pérez Díaz", "1985-07-21", cedula="1020345678"),
            person("b", "Carlos Alberto Pérez Díaz", "1985-07-21", cedula="1020345679"),
            "cédula differs in one digit",
        ),
        (
            person("a", "Carlos Alberto Pérez Díaz", "1985-07-21", cedula="1020345678"),
            person("b", "Carlos Alberto Pérez Díaz", "1985-07-21", cedula="1020354678"),
            "cédula differs by a transposition",
        ),
        (
            person("a", "Carlos Alberto Pérez Díaz", "1985-07-21", cedula="1020345678"),
            person("b", "Carlos Alberto Pérez Díaz", cedula="102345678"),
            "cédula has one digit more or less",
        ),
        (
            person("a", "María José Herrera Vargas", "1999-03-08"),
            person("b", "María José Herrera Vargas", "1999-08-03"),
            "birth date day/month swapped",
        ),
        (
            person("a", "María José Herrera Vargas", "1999-03-08", email="mjh@mail.com"),
            person("b", "Maria Jose Herrera Vargas", "1999-03-09", email="mjh@hotmail.com"),
            "birth date differs in one digit",
        ),
        (
            person("a", "Juan Sebastián Ospina Gil", "2001-12-01", cedula="1020345678"),
            person("b", "Juan Sebastián Ospina Gil", "2001-12-01", cedula="79555111"),
            "identity vetoed this match",
        ),
    ],
)
def test_each_kind_of_evidence_makes_a_candidate_that_says_why(a, b, text):
    pair = only_pair(a, b)
    assert {pair["person_id"], pair["candidate_person_id"]} == {"a", "b"}
    assert text in pair["evidence"]["summary"], pair["evidence"]
    assert 0 < pair["score"] <= 1
    # evidence names fields and comparisons, never the values compared
    flat = str(pair["evidence"])
    for value in (a["full_name"], b["full_name"], a["cedula"], b["cedula"], a["email"], a["birth_date"]):
        if value:
            assert value not in flat


def test_evidence_lists_agreeing_and_differing_fields():
    pair = only_pair(
        person("a", "Carlos Alberto Pérez Díaz", "1985-07-21", cedula="1020345678", email="c@x.co"),
        person("b", "Carlos Alberto Pérez Díaz", "1985-07-21", cedula="1020345679", email="c@x.co"),
    )
    evidence = pair["evidence"]
    assert set(evidence["agree"]) == {"name", "birth_date", "email"}
    assert evidence["differ"] == ["cedula"]
    assert evidence["fields"]["cedula"]["comparison"] == "one_digit"
    assert "cedula" in evidence["found_by"] and "birth" in evidence["found_by"]


def test_stronger_evidence_scores_higher():
    strong = only_pair(
        person("a", "Carlos Pérez Díaz", "1985-07-21", cedula="1020345678", email="c@x.co"),
        person("b", "Carlos Pérez Díaz", "1985-07-21", cedula="1020345679", email="c@x.co"),
    )
    weak = only_pair(
        person("a", "Carlos Pérez Díaz", "1985-07-21"), person("b", "Carlos Pérez", "1985-07-21")
    )
    assert strong["score"] > weak["score"]


def test_namesakes_with_different_birth_dates_and_cedulas_are_not_candidates():
    assert candidates(
        person("a", "José Luis Rodríguez Pérez", "1980-01-15", cedula="79123456"),
        person("b", "José Luis Rodríguez Pérez", "1993-09-02", cedula="1020999888"),
    ).empty
    # nor without cédulas: two different birth dates tell them apart
    assert candidates(
        person("a", "José Luis Rodríguez Pérez", "1980-01-15"),
        person("b", "José Luis Rodríguez Pérez", "1993-09-02"),
    ).empty


def test_twins_are_not_candidates():
    assert candidates(
        person(
            "a",
            "Valentina Moreno Castro",
            "2004-06-30",
            email="familia.moreno@mail.com",
            phone_tail="3001112233",
        ),
        person(
            "b",
            "Isabella Moreno Castro",
            "2004-06-30",
            email="familia.moreno@mail.com",
            phone_tail="3001112233",
        ),
    ).empty


def test_different_plausible_cedulas_separate_similar_names_unless_the_birth_date_holds_them():
    assert candidates(
        person("a", "Andrés Castaño Ruiz", "1990-02-11", cedula="1020345678"),
        person("b", "Andrés Catsaño Ruiz", "1991-07-30", cedula="52987654"),
    ).empty
    assert candidates(
        person("a", "Andrés Castaño Ruiz", "1990-02-11", cedula="1020345678"),
        person("b", "Andrés Catsaño Ruiz", cedula="52987654"),
    ).empty
    # FEBRL4 holds such pairs: a similar name, the same birth date, a cédula typed wrongly beyond one digit.
    pair = only_pair(
        person("a", "Andrés Castaño Ruiz", "1990-02-11", cedula="1020345678"),
        person("b", "Andrés Catsaño Ruiz", "1990-02-11", cedula="52987654"),
    )
    assert "different cédulas" in pair["evidence"]["summary"]


def test_different_student_numbers_separate_namesakes():
    assert candidates(
        person("a", "Ana María Soto", "2000-04-04", student_number="ICE-001"),
        person("b", "Ana María Soto", "2000-04-04", student_number="ICE-002"),
    ).empty


def test_a_placeholder_sized_block_is_skipped_and_counted():
    surnames = [
        "Ochoa",
        "Bernal",
        "Quiroga",
        "Zuluaga",
        "Forero",
        "Uribe",
        "Castro",
        "Lozano",
        "Vega",
        "Niño",
        "Prieto",
        "Duque",
        "Henao",
        "Ibarra",
        "Tovar",
        "Yepes",
        "Silva",
        "Mendoza",
        "Rincón",
        "Palacios",
        "Galeano",
        "Escobar",
        "Cifuentes",
        "Aguilar",
        "Trujillo",
        "Sarmiento",
        "Jaramillo",
        "Arango",
        "Medina",
        "Correa",
    ]
    crowd = [person(f"p{i:03d}", f"María {surnames[i]}", "1900-01-01") for i in range(30)]
    result = find_candidates(pd.DataFrame(crowd), max_block=20)
    assert result.stats["blocks_skipped_birth"] == 1  # placeholder birth date + 'maria': 30 persons
    assert result.stats["persons_in_skipped_blocks"] >= 30
    assert result.pairs.empty


def test_a_value_many_persons_carry_is_no_evidence():
    names = ["Carlos Pérez Díaz", "Carlos Pérez"]
    crowd = [
        person(
            f"p{i:03d}",
            names[i] if i < 2 else f"Persona{i} Otra",
            None,
            email="sincorreo@gmail.com",
            phone_tail="3000000000",
        )
        for i in range(12)
    ]
    assert candidates(*crowd).empty


def test_focus_compares_only_pairs_with_a_focused_person():
    people = pd.DataFrame(
        [
            person("a", "Laura Gómez Ríos", "1994-05-17"),
            person("b", "Laura Gómez", "1994-05-17"),
            person("c", "Pedro Niño Soto", "1970-01-02"),
            person("d", "Pedro Nino Soto", "1970-02-01"),
        ]
    )
    pairs = find_candidates(people, focus=people["person_id"].isin(["d"])).pairs
    assert list(zip(pairs["person_id"], pairs["candidate_person_id"], strict=True)) == [("c", "d")]
    assert len(find_candidates(people).pairs) == 2


def test_name_comparison_levels():
    assert compare_names(["ana", "gomez"], ["ana", "gomez"]) == ("same", "same name")
    assert compare_names(["juan", "perez", "gil"], ["pedro", "perez", "gil"])[0] == "different"
    assert compare_names(["ana", "maria", "soto", "diaz"], ["ana", "soto"]) == ("dropped", "2 names missing")
    assert compare_names(["ana", "m", "soto"], ["ana", "maria", "soto"])[0] == "typo"


def test_cedula_neighbourhoods_cover_one_edit():
    a, b = "1020345678", "1020354678"  # adjacent transposition
    assert set(deletion_keys(a)) & set(deletion_keys(b))
    assert (
        b in one_edit_variants(a)
        and "102034567" in one_edit_variants(a)
        and "10203456789" in one_edit_variants(a)
    )
    assert "1020345699" not in one_edit_variants(a)
