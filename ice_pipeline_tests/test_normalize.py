"""Normalization of staging values (DESIGN §4) and the SQL twins of the match keys (§3.4).

The first part is pure: every function takes a pandas Series, so each test
feeds the formats V3 really captures and checks the value *and* the status
the pipeline records. The second part holds the Python match keys equal to
`ice_pipeline.name_key/email_key/cedula_key/phone_tail` in a real PostgreSQL:
the pipeline finds bot-created persons by comparing the Python key of a
staging row with the SQL key of a stored, unnormalized value.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
import uuid
from contextlib import closing

import pandas as pd
import psycopg2
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ice_pipeline.logic import normalize as nz
from ice_pipeline.logic.people import alias_map, prepare_person_rows


def series(*values) -> pd.Series:
    return pd.Series(list(values), dtype="string")


def one(result):
    """First element of a (values, status) pair or of a plain Series, NA as None."""
    values = result[0] if isinstance(result, tuple) else result
    value = values.iloc[0]
    return None if value is None or value is pd.NA else value


# --- cédula -----------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, digits",
    [
        ("1.020.345.678", "1020345678"),
        ("CC 1020345678", "1020345678"),
        ("C.C. 52.123.456", "52123456"),
        ("c.c 52123456", "52123456"),
        (" 1020345678 ", "1020345678"),
        ("1 020 345 678", "1020345678"),
        ("1,020,345,678", "1020345678"),
    ],
)
def test_cedula_forms_become_digits(raw, digits):
    key, status = nz.cedula_key(series(raw))
    assert key.iloc[0] == digits
    assert status.iloc[0] == "ok"


@pytest.mark.parametrize(
    "raw", ["N/A", "0", "1111111111", "12", "no tiene", "-", "0000000", "12345678901", "99999999"]
)
def test_implausible_cedulas_are_never_match_keys(raw):
    key, status = nz.cedula_key(series(raw))
    assert key.isna().iloc[0]
    assert status.iloc[0] == "implausible"


@pytest.mark.parametrize(
    "raw, digits", [("123456", "123456"), ("1.234.567", "1234567"), ("CC 987654", "987654")]
)
def test_old_style_cedulas_are_kept_and_flagged(raw, digits):
    key, status = nz.cedula_key(series(raw))
    assert key.iloc[0] == digits
    assert status.iloc[0] == "old"


def test_missing_cedula_stays_missing():
    key, status = nz.cedula_key(series(None, "", "   "))
    assert key.isna().all()
    assert list(status) == ["missing", "missing", "missing"]


def test_cedula_warnings_reach_the_prepared_rows():
    raw = pd.DataFrame(
        {
            c: series(None, None)
            for c in ("full_name", "email", "phone", "cedula", "birth_date", "address", "city", "country")
        }
    )
    raw["full_name"] = series("Ana Gómez", "Luis Pérez")
    raw["cedula"] = series("N/A", "123456")
    out = prepare_person_rows(raw)
    assert out["cedula"].isna().iloc[0]
    assert "cédula implausible" in out["warnings"].iloc[0]
    assert out["cedula"].iloc[1] == "123456"
    assert "old-style" in out["warnings"].iloc[1]
    assert out["reject_reason"].isna().all()


# --- e-mail -----------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        " Maria@Mail.COM ",
        "maria@mail.com",
        "MARIA@MAIL.COM",
        "\tmaria@mail.com\n",
        "maria @mail.com",
        "maria@mail.com\u00a0",
    ],
)
def test_email_trimmed_and_lower_cased(raw):
    key, status = nz.email_key(series(raw))
    assert key.iloc[0] == "maria@mail.com"
    assert status.iloc[0] == "ok"


@pytest.mark.parametrize(
    "raw",
    [
        "mariamail.com",
        "maria@",
        "@mail.com",
        "maria@mail",
        "maria@@mail.com",
        "a@b.c",
        "x" * 250 + "@mail.com",
    ],
)
def test_invalid_email_is_not_a_key(raw):
    key, status = nz.email_key(series(raw))
    assert key.isna().iloc[0]
    assert status.iloc[0] == "invalid"


def test_missing_email():
    key, status = nz.email_key(series(None, "", "  "))
    assert key.isna().all()
    assert list(status) == ["missing", "missing", "missing"]


# --- phones -----------------------------------------------------------------

MOBILE_FORMS = [
    "3001234567",
    "300 123 4567",
    "300-123-4567",
    "300.123.4567",
    "(300) 123-4567",
    "+57 300 123 4567",
    "+573001234567",
    "573001234567",
    "57 300 1234567",
    "0057 300 123 4567",
    "+57 (300) 123-4567",
    "+57-300-123-4567",
    " 300 1234567 ",
]


@pytest.mark.parametrize("raw", MOBILE_FORMS)
def test_colombian_mobile_formats_to_e164(raw):
    e164, kind = nz.phone_e164(series(raw))
    assert e164.iloc[0] == "+573001234567"
    assert kind.iloc[0] == "mobile"


@pytest.mark.parametrize(
    "raw", ["601 2345678", "(1) 234 5678", "6012345678", "+57 601 2345678", "(601) 234-5678", "1 2345678"]
)
def test_bogota_landlines_to_e164(raw):
    e164, kind = nz.phone_e164(series(raw))
    assert e164.iloc[0] == "+576012345678"
    assert kind.iloc[0] == "landline"


def test_other_city_landline_uses_its_area_code():
    e164, kind = nz.phone_e164(series("(4) 444 5566", "604 4445566"))
    assert list(e164) == ["+576044445566", "+576044445566"]
    assert list(kind) == ["landline", "landline"]


def test_foreign_number_keeps_its_country():
    e164, kind = nz.phone_e164(series("+1 305 555 0100", "+1 (305) 555-0100"))
    assert list(e164) == ["+13055550100", "+13055550100"]
    assert set(kind) <= {"mobile", "landline"}  # recognised, not dropped
    assert nz.phone_tail(e164).iloc[0] == "3055550100"


@pytest.mark.parametrize("raw", ["12", "123", "000", "+57 12", "300 123"])
def test_unrecognised_phone_is_dropped(raw):
    e164, kind = nz.phone_e164(series(raw))
    assert e164.isna().iloc[0]
    assert kind.iloc[0] == "invalid"


def test_phone_without_digits_is_missing():
    e164, kind = nz.phone_e164(series("abc", "n/a"))
    assert e164.isna().all()
    assert set(kind) <= {"missing", "invalid"}


def test_missing_phone():
    e164, kind = nz.phone_e164(series(None, ""))
    assert e164.isna().all()
    assert list(kind) == ["missing", "missing"]


def test_phone_tail_of_e164_is_the_national_number():
    assert list(nz.phone_tail(series("+573001234567", "+576012345678"))) == ["3001234567", "6012345678"]
    assert nz.phone_tail(series(None)).isna().all()


# --- names ------------------------------------------------------------------


def test_name_key_ignores_accents_case_spaces_and_token_order():
    keys = nz.name_key(
        series(
            "RODRIGUEZ PEREZ MARIA",
            "María  Rodríguez Pérez",
            "maria rodriguez perez",
            " Pérez,  Rodríguez   María ",
        )
    )
    assert keys.nunique() == 1
    assert keys.iloc[0] == "maria perez rodriguez"


def test_name_key_distinguishes_different_people():
    keys = nz.name_key(series("María Rodríguez", "Mario Rodríguez", "María Rodríguez Pérez"))
    assert keys.nunique() == 3


def test_name_key_of_empty_or_punctuation_is_missing():
    assert nz.name_key(series(None, "", "   ", "--,.")).isna().all()


def test_display_name_is_nfc_and_collapsed():
    decomposed = unicodedata.normalize("NFD", "José  María\tPérez")
    out = nz.display_name(series(decomposed)).iloc[0]
    assert out == "José María Pérez"
    assert unicodedata.is_normalized("NFC", out)


def test_display_name_title_cases_shouting_but_keeps_written_names():
    out = nz.display_name(series("MARIA DE LA CRUZ", "maría rodríguez", "María McDonald"))
    assert list(out) == ["Maria de la Cruz", "María Rodríguez", "María McDonald"]


def test_clean_text_removes_controls_and_bidi_overrides():
    out = nz.clean_text(series("A\u202eB\u200bC\x07 D", "  ", None))
    assert out.iloc[0] == "ABC D"
    assert out.iloc[1:].isna().all()


def test_clean_text_cuts_long_values():
    assert nz.clean_text(series("x" * 5000), max_length=1000).iloc[0] == "x" * 1000


# --- dates ------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "1995-03-15",
        "15/03/1995",
        "15-03-1995",
        "15.03.1995",
        " 15/3/1995 ",
        "1995/03/15",
        "1995-03-15 00:00:00",
        "15/03/95",
    ],
)
def test_birth_date_forms_are_the_same_date(raw):
    dates, status = nz.birth_date(series(raw), today=dt.date(2025, 11, 5))
    assert dates.iloc[0] == dt.date(1995, 3, 15)
    assert status.iloc[0] == "ok"


def test_birth_date_is_day_first():
    dates, _ = nz.birth_date(series("03/04/1995"), today=dt.date(2025, 11, 5))
    assert dates.iloc[0] == dt.date(1995, 4, 3)


@pytest.mark.parametrize(
    "raw",
    [
        "31/02/1995",
        "30/02/2000",
        "31/04/1995",
        "1995-02-30",
        "29/02/2023",
        "15/13/1995",
        "00/01/1995",
        "15/03/2095",
        "2030-01-01",
        "01/01/1850",
    ],
)
def test_impossible_birth_dates_are_dropped(raw):
    dates, status = nz.birth_date(series(raw), today=dt.date(2025, 11, 5))
    assert pd.isna(dates.iloc[0])
    assert status.iloc[0] == "impossible"


def test_tomorrow_is_impossible_today_is_not():
    today = dt.date(2025, 11, 5)
    dates, status = nz.birth_date(series("06/11/2025", "05/11/2025"), today=today)
    assert list(status) == ["impossible", "ok"]
    assert dates.iloc[1] == today


def test_leap_day_in_leap_year_is_kept():
    dates, status = nz.birth_date(series("29/02/2000"), today=dt.date(2025, 11, 5))
    assert dates.iloc[0] == dt.date(2000, 2, 29)
    assert status.iloc[0] == "ok"


@pytest.mark.parametrize(
    "raw, status",
    [("garbage", "unparseable"), ("marzo 15", "unparseable"), ("", "missing"), (None, "missing")],
)
def test_unreadable_and_missing_birth_dates(raw, status):
    dates, statuses = nz.birth_date(series(raw), today=dt.date(2025, 11, 5))
    assert pd.isna(dates.iloc[0])
    assert statuses.iloc[0] == status


# --- labels -----------------------------------------------------------------


def test_label_aliases_share_one_key():
    keys = nz.label_key(series("AU PAIR", "Au-Pair", "aupair", "Áu pair", " au  pair "))
    assert set(keys) == {"aupair"}


def test_canonical_label_maps_aliases_and_keeps_unknown_values_cleaned():
    reference = pd.DataFrame(
        {
            "category": ["program", "program"],
            "code": ["AU_PAIR", "CAMP"],
            "label": ["Au Pair", "Camp USA"],
            "aliases": [["AuPair", "au-pair"], ["camp"]],
        }
    )
    mapping = alias_map(reference, "program")
    out = nz.canonical_label(
        series("AU PAIR", "Au-Pair", "aupair", "CAMP", "Work  and Travel", None), mapping
    )
    assert list(out[:4]) == ["Au Pair", "Au Pair", "Au Pair", "Camp USA"]
    assert out.iloc[4] == "Work and Travel"
    assert out.isna().iloc[5]


# --- the keys the database matches on, against a real PostgreSQL ------------------

# Text as it comes from CSVs and as the bot stores it: accents, punctuation,
# digits and separators, emoji, right-to-left scripts, odd whitespace, CSV
# metacharacters. NUL is impossible in PostgreSQL text, so it is never generated.
_INTERESTING = list("áéíóúÁÉÍÓÚñÑüÜçÇàèÀÈâêôÂÔãõÃÕ .-,;'\"\\@()+/_0123456789 aAzZN\t\n\r\u00a0ßſİıĳŒœØøÆæ")
_INTERESTING += [
    "😀",
    "👩",
    "\u200d",
    "\u200b",
    "\u202e",
    "\ufeff",
    "\u0301",
    "م",
    "ر",
    "ح",
    "ب",
    "ا",
    "ש",
    "ל",
    "ο",
    "й",
    "中",
    "０",
    "٣",
]
_CHARS = st.one_of(
    st.sampled_from(_INTERESTING), st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))
)
ANY_TEXT = st.text(alphabet=_CHARS, max_size=40)
NAMES = st.lists(
    st.sampled_from(
        [
            "María",
            "JOSÉ",
            "rodríguez",
            "Pérez",
            "Núñez",
            "O'Brien",
            "De la Cruz",
            "Ana-Luz",
            "Ñandú",
            "محمد",
            "😀",
            "  ",
        ]
    ),
    min_size=0,
    max_size=4,
).map(" ".join)
EMAILS = st.builds(
    lambda pre, local, dom, post: f"{pre}{local}@{dom}{post}",
    st.sampled_from(["", " ", "\t"]),
    st.from_regex(r"[A-Za-z0-9._+\-]{1,12}", fullmatch=True),
    st.sampled_from(["Mail.COM", "gmail.com", "HOTMAIL.com", "uni.edu.co"]),
    st.sampled_from(["", " ", "\u00a0"]),
)
CEDULAS = st.builds(
    lambda pre, digits, dots: (
        pre + (f"{int(digits):,}".replace(",", ".") if dots and digits[0] != "0" else digits)
    ),
    st.sampled_from(["", "CC ", "C.C. ", "cc. "]),
    st.from_regex(r"[0-9]{5,11}", fullmatch=True),
    st.booleans(),
)
PHONES = st.from_regex(r"(\+57 ?|0057 ?|57)?\(?3[0-5][0-9]\)?[ .\-]?[0-9]{3}[ .\-]?[0-9]{4}", fullmatch=True)
TEXTS = st.lists(st.one_of(ANY_TEXT, NAMES, EMAILS, CEDULAS, PHONES), min_size=1, max_size=12)

KEY_NAMES = ("cedula", "email", "name_key", "phone_tail")


def _key_tuples(frame: pd.DataFrame) -> list[tuple]:
    return [
        tuple(None if pd.isna(v) else str(v) for v in row)
        for row in frame[list(KEY_NAMES)].itertuples(index=False)
    ]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=TEXTS)
@example(
    texts=[
        "María  Rodríguez Pérez",
        "RODRIGUEZ PEREZ MARIA",
        "Maria@Mail.COM ",
        "52.123.456",
        "+57 300 123 4567",
    ]
)
@example(
    texts=[
        unicodedata.normalize("NFD", "María Rodríguez"),
        "Mar\u200bía Rodríguez",
        "0052123456",
        "CC 052.123.456",
        "محمد علي",
        "Ana 😀",
        'a,b"c\nd',
        "back\\slash",
        "",
    ]
)
def test_database_match_keys_equal_python_keys(pipeline, texts):
    """Persons the bot stored (any text) get, in ice_pipeline.person_keys, exactly the keys Python computes.

    The pipeline finds existing persons by comparing a staging row's keys with
    `person_keys`; those are computed from the stored values after a COPY round
    trip through the database. Any difference is a bot-created person that is
    never found -- a silent duplicate.
    """
    from ice_pipeline.assets.persons import refresh_person_keys
    from ice_pipeline.logic.persons import person_key_frame

    conn = getattr(pipeline, "_keys_conn", None)
    if conn is None:
        conn = pipeline._keys_conn = pipeline.connect("production")
        conn.autocommit = False
    # persons.email/cedula are unique; the literal text \\N has its own test below
    texts = list(dict.fromkeys(t.replace("\x00", "")[:50] for t in texts if t != "\\N"))
    ids = [str(uuid.uuid4()) for _ in texts]
    try:
        with conn.cursor() as cur:
            for person_id, text in zip(ids, texts, strict=True):
                cur.execute(
                    "INSERT INTO persons (id, full_name, email, cedula, phone, updated_at) "
                    "VALUES (%s, %s, %s, %s, %s, now() AT TIME ZONE 'UTC')",
                    (person_id, text, text, text, text),
                )
            refresh_person_keys(cur, None, "hypothesis")
            cur.execute(f"SELECT person_id::text, {', '.join(KEY_NAMES)} FROM ice_pipeline.person_keys")
            stored = {row[0]: row[1:] for row in cur.fetchall()}
    finally:
        conn.rollback()
    raw = pd.DataFrame(
        {
            c: pd.Series(
                texts if c in ("full_name", "email", "cedula", "phone") else [None] * len(texts),
                dtype="string",
            )
            for c in ("full_name", "email", "phone", "cedula", "birth_date", "address", "city", "country")
        }
    )
    expected = _key_tuples(person_key_frame(prepare_person_rows(raw)))
    for person_id, text, keys in zip(ids, texts, expected, strict=True):
        assert stored.get(person_id) == keys, f"keys of a person stored as {text!r}"


def test_literal_backslash_n_text_survives_the_database_round_trip(pipeline):
    r"""COPY CSV tells NULL (bare \N) from the text '\N' (quoted); reading it back must keep the difference.

    MySQL-style exports write NULL as \N, so the text does occur in staging
    values; read as NULL it is silently dropped (a note, an address, a name).
    """
    from ice_pipeline.db import read_frame

    with pipeline.production.cursor() as cur:
        frame = read_frame(cur, "SELECT %s::text AS v, NULL::text AS n, %s::text AS q", ("\\N", '"\\N"'))
    values = [None if pd.isna(v) else v for v in frame.iloc[0].tolist()]
    assert values == ["\\N", None, '"\\N"']


def test_frames_round_trip_through_copy_keeping_null_apart_from_empty_text(pipeline):
    """copy_into_temp then read_frame (both Arrow CSV) keep every value: NULL vs '', quotes, commas,
    newlines, \\N, accents, numbers, booleans, dates; and the frame after pandas operations (sliced,
    filtered, re-assigned Arrow strings), which Arrow's CSV writer once read as zero bytes."""
    from ice_pipeline.db import copy_into_temp, read_frame

    texts = ["", None, 'say "hi", twice', "line\nbreak", "\\N", "Peñalosa Ñuñez", "  spaced  ", "a,b;c"]
    frame = pd.DataFrame(
        {
            "t": pd.array(texts, dtype="string"),
            "n": pd.array([1, None, 3, 4, 5, 6, 7, 8], dtype="Int64"),
            "b": [True, False] * 4,
            "d": pd.array(["2020-01-31", None] * 4, dtype="string"),
            "o": ["x", None, 3, "y", None, "z", "w", "v"],
        }
    )
    derived = frame[frame["b"] | frame["t"].isna()].assign(t=lambda f: f["t"].str.slice(0, 40))
    columns = {"t": "text", "n": "bigint", "b": "boolean", "d": "date", "o": "text"}
    conn = psycopg2.connect(pipeline.production.dsn)  # a transaction: temp tables drop at commit
    with closing(conn), conn.cursor() as cur:
        for source in (frame, derived):
            copy_into_temp(cur, "tmp_round_trip", columns, source)
            back = read_frame(cur, "SELECT t, n, b, d, o FROM tmp_round_trip")
            cur.execute("DROP TABLE tmp_round_trip")
            expected = source.astype({"n": "string", "b": "string", "o": "string"})
            expected["b"] = expected["b"].map({"True": "t", "False": "f"})
            got = [[None if pd.isna(v) else v for v in row] for row in back.itertuples(index=False)]
            want = [[None if pd.isna(v) else v for v in row] for row in expected.itertuples(index=False)]
            assert got == want
