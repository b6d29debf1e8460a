"""Normalization of staging values into match keys and clean display values.

Vectorised over pandas Series: the pipeline normalizes a million rows per run.
Every function keeps missing values missing (pd.NA) and returns a *status*
next to the value where a value can be dropped, so the caller can record why
(nothing is dropped silently).

These functions are the only definition of the match keys: the keys of the
persons already in production (`ice_pipeline.person_keys`, including persons
the bot stored without normalizing) are computed by them too.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import numpy as np
import pandas as pd
import phonenumbers

# --- text -----------------------------------------------------------------


def by_unique(values: pd.Series, normalize):
    """Apply `normalize` once per distinct value and spread the result back.

    For low-cardinality columns (city, program, status, dates) this turns a
    million-row string pass into a few thousand. `normalize` returns a Series
    or a tuple of Series aligned with its input.
    """
    codes, uniques = pd.factorize(values.astype("string"), use_na_sentinel=False)
    result = normalize(pd.Series(uniques, dtype="string"))

    def spread(series: pd.Series) -> pd.Series:
        return pd.Series(series.to_numpy()[codes], index=values.index, dtype=series.dtype)

    if isinstance(result, tuple):
        return tuple(spread(part) for part in result)
    return spread(result)


_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]"


def clean_text(values: pd.Series, max_length: int | None = None) -> pd.Series:
    """NFC, control and bidi-override characters removed, whitespace collapsed; '' -> NA.

    With `max_length`, longer values are cut (the caller records a warning).
    """
    s = values.astype("string")
    s = s.str.replace(_CONTROL, "", regex=True).str.normalize("NFC")
    s = s.str.replace(r"\s+", " ", regex=True).str.strip()
    s = s.mask(s == "")
    if max_length is not None:
        s = s.str.slice(0, max_length)
    return s


# --- names ----------------------------------------------------------------

# ASCII upper case and the accented Latin letters folded to their base letter,
# lower case.
_FOLD_FROM = "ABCDEFGHIJKLMNOPQRSTUVWXYZÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖÙÚÛÜÝàáâãäåçèéêëìíîïñòóôõöùúûüýÿĀāĂăĄąĆćĈĉĊċČčĎďĒēĔĕĖėĘęĚěĜĝĞğĠġĢģĤĥĨĩĪīĬĭĮįİĴĵĶķĹĺĻļĽľŃńŅņŇňŌōŎŏŐőŔŕŖŗŘřŚśŜŝŞşŠšŢţŤťŨũŪūŬŭŮůŰűŲųŴŵŶŷŸŹźŻżŽžſƠơƯưǍǎǏǐǑǒǓǔǕǖǗǘǙǚǛǜǞǟǠǡǦǧǨǩǪǫǬǭǰǴǵǸǹǺǻȀȁȂȃȄȅȆȇȈȉȊȋȌȍȎȏȐȑȒȓȔȕȖȗȘșȚțȞȟȦȧȨȩȪȫȬȭȮȯȰȱȲȳ"
_FOLD_TO = "abcdefghijklmnopqrstuvwxyzaaaaaaceeeeiiiinooooouuuuyaaaaaaceeeeiiiinooooouuuuyyaaaaaaccccccccddeeeeeeeeeegggggggghhiiiiiiiiijjkkllllllnnnnnnoooooorrrrrrssssssssttttuuuuuuuuuuuuwwyyyzzzzzzsoouuaaiioouuuuuuuuuuaaaaggkkoooojggnnaaaaaaeeeeiiiioooorrrruuuusstthhaaeeooooooooyy"
FOLD_TABLE = str.maketrans(_FOLD_FROM, _FOLD_TO)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_PARTICLES = r"\b(De|Del|La|Las|Los|Y|E|Da|Do|Dos|Van|Von)\b"

MAX_NAME_LENGTH = 200


def name_key(values: pd.Series) -> pd.Series:
    """Match key of a name: accents and case folded, punctuation dropped, tokens sorted.

    Sorting the tokens makes `RODRIGUEZ PEREZ MARIA` and `María Rodríguez
    Pérez` one key; names alone never match (birth date or mobile are needed).
    """
    s = values.astype("string").str.translate(FOLD_TABLE).str.replace(r"[^a-z0-9]+", " ", regex=True)
    arr = s.to_numpy(dtype=object, na_value=None)
    out = np.empty(len(arr), dtype=object)
    for i, text in enumerate(arr):
        if text is not None:
            tokens = text.split()
            out[i] = " ".join(sorted(tokens)) if tokens else None
        else:
            out[i] = None
    return pd.Series(out, index=values.index, dtype="string")


def display_name(values: pd.Series) -> pd.Series:
    """Clean name for display: text cleaned; ALL-CAPS or all-lower names title-cased."""
    s = clean_text(values)
    shouting = (s == s.str.upper()) | (s == s.str.lower())
    titled = s.str.title().str.replace(_PARTICLES, lambda m: m.group(1).lower(), regex=True)
    # keep the first letter capitalised even when it is a particle ("De La Cruz Ana" stays "De la Cruz Ana")
    titled = titled.str.slice(0, 1).str.upper() + titled.str.slice(1)
    return s.where(~shouting.fillna(False), titled)


# --- e-mail ---------------------------------------------------------------

_EMAIL_SPACES = str.maketrans("", "", " \t\n\x0b\x0c\r\xa0")
_EMAIL_RE = r"^[^@\s]+@[^@\s]+\.[^@\s.]{2,}$"


def email_key(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(normalized e-mail, status): whitespace removed, ASCII lower-cased.

    status: ok | missing | invalid (no '@', no domain, too long: not used).
    """
    s = values.astype("string").str.translate(_EMAIL_SPACES).str.translate(_ASCII_LOWER)
    s = s.mask(s == "")
    valid = s.str.fullmatch(_EMAIL_RE).fillna(False) & (s.str.len() <= 254).fillna(False)
    status = pd.Series(np.where(s.isna(), "missing", np.where(valid, "ok", "invalid")), index=values.index)
    return s.where(valid), status


# --- cédula ---------------------------------------------------------------


def cedula_key(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(digits-only cédula, status) -- `1.020.345.678`, `CC 1020345678` -> `1020345678`.

    status: ok (8-10 digits) | old (6-7 digits: old-style, kept and flagged) |
    implausible (other lengths, one digit repeated: kept in lineage, never
    matched on) | missing.
    """
    digits = values.astype("string").str.replace(r"[^0-9]", "", regex=True).str.lstrip("0")
    digits = digits.mask(digits == "")
    length = digits.str.len()
    repeated = digits.str.fullmatch(r"(\d)\1*").fillna(False)
    ok = length.between(8, 10).fillna(False) & ~repeated
    old = length.between(6, 7).fillna(False) & ~repeated
    raw_present = values.astype("string").str.strip().fillna("") != ""
    status = np.select([ok, old, raw_present], ["ok", "old", "implausible"], "missing")
    return digits.where(ok | old), pd.Series(status, index=values.index)


# --- phone ----------------------------------------------------------------

# Colombian national-number patterns straight from phonenumbers' metadata, so
# the vectorised fast path agrees with phonenumbers by construction.
_CO = phonenumbers.PhoneMetadata.metadata_for_region("CO")
_CO_MOBILE = _CO.mobile.national_number_pattern
_CO_LANDLINE = _CO.fixed_line.national_number_pattern


@lru_cache(maxsize=65536)
def _parse_phone_slow(text: str) -> tuple[str | None, str]:
    try:
        number = phonenumbers.parse(text, "CO")
    except phonenumbers.NumberParseException:
        return None, "invalid"
    if not phonenumbers.is_valid_number(number):
        return None, "invalid"
    kind = phonenumbers.number_type(number)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if kind == phonenumbers.PhoneNumberType.MOBILE:
        return e164, "mobile"
    return e164, "landline"


def phone_e164(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(E.164 phone, kind) with Colombia as the default region.

    kind: mobile | landline | invalid | missing. Only mobiles identify a
    person (a landline is shared by a household). The common Colombian shapes
    take a vectorised fast path; the rest goes through `phonenumbers`.
    """
    raw = values.astype("string")
    digits = raw.str.replace(r"[^0-9]", "", regex=True)
    digits = digits.mask(digits == "")
    foreign = raw.str.contains("+", regex=False).fillna(False) & ~digits.str.startswith("57").fillna(False)
    national = digits.str.replace(r"^(?:00)?57(?=\d{10}$)", "", regex=True).where(~foreign)
    ten = (national.str.len() == 10).fillna(False)
    mobile = ten & national.str.fullmatch(_CO_MOBILE).fillna(False)
    landline = ten & ~mobile & national.str.fullmatch(_CO_LANDLINE).fillna(False)
    # Pre-2021 landlines: one area digit + 7 digits -> 60<area> + 7 digits.
    old_landline = national.str.fullmatch(r"[124-8][2-9]\d{6}").fillna(False) & ~foreign
    # Ten Colombian digits that match no range, or a bare 7-digit number with no
    # area: not a reachable number. Decided here, without phonenumbers.
    unknown = (ten & ~mobile & ~landline) | (national.str.len() == 7).fillna(False)
    e164 = pd.Series(pd.NA, index=values.index, dtype="string")
    kind = pd.Series("missing", index=values.index, dtype=object)
    e164 = e164.mask(mobile | landline, "+57" + national)
    e164 = e164.mask(old_landline, "+5760" + national)
    kind = kind.mask(mobile, "mobile").mask(landline | old_landline, "landline").mask(unknown, "invalid")
    slow = digits.notna() & ~(mobile | landline | old_landline | unknown)
    if slow.any():
        parsed = [_parse_phone_slow(t) for t in raw[slow].to_numpy(dtype=object)]
        e164.loc[slow] = [p[0] for p in parsed]
        kind.loc[slow] = [p[1] for p in parsed]
    return e164, kind


def phone_tail(e164: pd.Series) -> pd.Series:
    """Last ten digits: a Colombian mobile's national number, whatever its format."""
    tail = e164.astype("string").str.replace(r"[^0-9]", "", regex=True).str.slice(-10)
    return tail.mask(tail == "")


# --- dates ----------------------------------------------------------------

_DATE_RE = r"^\s*(\d{1,4})[/\-\. ](\d{1,2})[/\-\. ](\d{1,4})(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?\s*$"
OLDEST_BIRTH_YEAR = 1900


def birth_date(values: pd.Series, today: dt.date | None = None) -> tuple[pd.Series, pd.Series]:
    """(date, status) read day-first; a leading 4-digit year is read as ISO.

    status: ok | missing | impossible (31/02/1995, a future date, before 1900) |
    unparseable. Dropped dates are reported by status, never guessed.
    """
    today = today or dt.date.today()
    s = values.astype("string")
    parts = s.str.extract(_DATE_RE)
    first_is_year = parts[0].str.len() == 4
    year = parts[2].where(~first_is_year, parts[0])
    day = parts[0].where(~first_is_year, parts[2])
    month = parts[1]
    y = pd.to_numeric(year, errors="coerce").astype("float64")
    short_year = (year.str.len() <= 2).fillna(False).to_numpy(dtype=bool)
    pivot = today.year % 100
    y = y.where(~short_year, np.where(y <= pivot, 2000 + y, 1900 + y))
    frame = pd.DataFrame(
        {
            "year": y,
            "month": pd.to_numeric(month, errors="coerce").astype("float64"),
            "day": pd.to_numeric(day, errors="coerce").astype("float64"),
        }
    )
    parsed = pd.to_datetime(frame, errors="coerce")
    in_range = (parsed.dt.year >= OLDEST_BIRTH_YEAR) & (parsed <= pd.Timestamp(today))
    good = parsed.notna() & in_range.fillna(False)
    present = s.str.strip().fillna("") != ""
    matched = parts[0].notna()
    status = np.select([~present, good, matched], ["missing", "ok", "impossible"], "unparseable")
    dates = parsed.dt.date.where(good)
    return pd.Series(dates.to_numpy(dtype=object), index=values.index).where(good, None), pd.Series(
        status, index=values.index
    )


# --- reference labels -----------------------------------------------------


def label_key(values: pd.Series) -> pd.Series:
    """Key to compare labels and aliases: 'AU PAIR', 'Au-Pair', 'aupair' -> 'aupair'."""
    s = values.astype("string").str.translate(FOLD_TABLE).str.replace(r"[^a-z0-9]+", "", regex=True)
    return s.mask(s == "")


def canonical_label(values: pd.Series, alias_to_label: dict[str, str]) -> pd.Series:
    """Canonical label through reference-data aliases; unknown values are kept cleaned."""

    def canonical(distinct: pd.Series) -> pd.Series:
        cleaned = clean_text(distinct, max_length=100)
        return label_key(cleaned).map(alias_to_label).astype("string").fillna(cleaned)

    return by_unique(values, canonical)
