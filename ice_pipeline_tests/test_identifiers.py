"""Which values identify a person (DESIGN §4): placeholders, names that cannot be one person's,
shared values. Pure logic, no database."""

from __future__ import annotations

import pandas as pd
import pytest

from ice_pipeline.logic.identifiers import (
    names_differ,
    placeholder_cedula,
    placeholder_email,
    placeholder_phone,
    shared_values,
)
from ice_pipeline.logic.normalize import cedula_key, email_key, name_key, phone_e164


def key(name: str) -> str:
    return name_key(pd.Series([name], dtype="string")).iloc[0]


@pytest.mark.parametrize(
    ("a", "b", "differ"),
    [
        ("Sara Ramírez", "Sara Ramírez Gómez", False),  # a surname dropped
        ("María José Pérez", "María Pérez Gómez", False),  # a given name dropped here, a surname there
        ("RODRIGUEZ PEREZ MARIA", "María Rodríguez Pérez", False),  # order and accents
        ("Camila del Pilar Rojas", "Camila Pilar Rojas", False),  # a particle
        ("Maria J Perez", "Maria Jose Perez", False),  # an initial
        ("Camilo Carlos Escobar", "Camilo Escobar Mendoza", False),  # Carlos is also a surname: either role
        ("Juan Pérez Gómez", "Ana Pérez Gómez", True),  # siblings, twins
        ("Andrés León", "Ángel León", True),  # two tokens that may be either: no proof
        ("Santiago Montoya Ospina", "Gabriel Montoya", True),  # a parent and a child: no given name shared
        ("Juan Pérez", "Juan Gómez", True),  # another surname
        ("Jhon Pérez", "John Pérez", True),  # a typo: a candidate, never a merge
        ("Mario Rodríguez", "María Rodríguez", True),
    ],
)
def test_names_differ(a, b, differ):
    assert names_differ(key(a), key(b)) is differ
    assert names_differ(key(b), key(a)) is differ


@pytest.mark.parametrize(
    ("raw", "placeholder"),
    [
        ("sincorreo@gmail.com", True),
        ("NOTIENE@HOTMAIL.COM", True),
        ("no@no.com", True),
        ("ninguno@gmail.com", True),
        ("sin.correo@yahoo.com", True),
        ("xxx@xxx.com", True),
        ("aaa@gmail.com", True),
        ("juan@notiene.com", True),
        ("maria@email.com", False),
        ("m@x.com", False),
        ("nora.sin@gmail.com", False),
        ("noemi@hotmail.com", False),
    ],
)
def test_placeholder_emails(raw, placeholder):
    value, _ = email_key(pd.Series([raw], dtype="string"))
    assert bool(placeholder_email(value).iloc[0]) is placeholder


@pytest.mark.parametrize(
    ("raw", "placeholder"),
    [
        ("1234567890", True),
        ("123456789", True),
        ("9876543210", True),
        ("1212121212", True),
        ("0123456789", True),
        ("12345678", False),
        ("52123456", False),
        ("1020345678", False),
        ("79111222", False),
    ],
)
def test_placeholder_cedulas(raw, placeholder):
    value, _ = cedula_key(pd.Series([raw], dtype="string"))
    assert bool(placeholder_cedula(value).fillna(False).iloc[0]) is placeholder


@pytest.mark.parametrize(
    ("raw", "placeholder"),
    [
        ("300 000 0000", True),
        ("3111111111", True),
        ("+57 310 111 1111", True),
        ("300 123 4567", False),
        ("315 777 8899", False),
    ],
)
def test_placeholder_phones(raw, placeholder):
    value, _ = phone_e164(pd.Series([raw], dtype="string"))
    assert bool(placeholder_phone(value).iloc[0]) is placeholder


def test_shared_values_are_found_from_the_carriers_and_say_why():
    frame = pd.DataFrame(
        {
            "email": [
                "fam@x.co",
                "fam@x.co",
                "fam@x.co",
                "solo@x.co",
                "solo@x.co",
                "twins@x.co",
                "twins@x.co",
            ],
            "cedula": [None, None, None, None, None, None, None],
            "mobile": [None, None, None, "3104445566", "3104445566", None, None],
            "name_key": [
                key("Carmen Ospina"),
                key("Mateo Ospina Ruiz"),
                key("Carmen Ospina Díaz"),
                key("Luis Mora"),
                key("LUIS MORA"),
                key("Sara Ospina"),
                key("Lucas Ospina"),
            ],
            "birth_date": [
                "1970-04-02",
                "2004-09-10",
                None,
                "1990-01-01",
                "1990-01-01",
                "2006-01-15",
                "2006-01-15",
            ],
        }
    ).astype("string")
    found = shared_values(frame)
    assert found["email"] == {"fam@x.co": "different birth dates", "twins@x.co": "different names"}
    assert found["mobile"] == {}  # one person written twice
    assert found["cedula"] == {}
