"""Which values can identify a person (DESIGN §4): placeholders and shared values never match.

Only a value that can identify someone is an identifier. Two kinds of values are kept on
the person as data but never used to match:

- *placeholders*: values typed for people who have none (`sincorreo@gmail.com`,
  `1234567890`, `3000000000`), listed as data in `ice_pipeline/data/placeholders.toml`;
- *shared* values: carried by rows the data shows to be clearly different people (a
  family e-mail, a mother's cédula typed for her child, an office phone), found in each
  run from the evidence (every row ever linked to the persons involved, plus the batch).

"Clearly different people" is decided on what both rows have: two different birth dates,
two different cédulas, or names that cannot be one person's (`names_differ`). A name typo
is *not* tolerated here: fuzzy similarity never merges (DESIGN §4) -- it goes to review as
a candidate instead.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from itertools import combinations

import numpy as np
import pandas as pd

# Above this many distinct signatures (name, birth date, cédula) for one value, the value is
# shared without comparing names pairwise: no person is written that many ways.
MAX_SIGNATURES = 12
# The identifying kinds checked for sharing: the columns of a node frame.
SHARED_KINDS = ("cedula", "email", "mobile")
# Particles of Spanish names ('Camila del Pilar Rojas'): written or not, they tell nobody apart.
NAME_PARTICLES = frozenset({"de", "del", "la", "las", "los", "y", "e", "da", "do", "dos", "van", "von"})


@dataclass(frozen=True)
class Placeholders:
    """The curated lists, compiled."""

    email_local_parts: frozenset[str]
    email_domains: frozenset[str]
    email_pattern: re.Pattern[str] | None
    cedula_values: frozenset[str]
    cedula_pattern: re.Pattern[str] | None
    cedula_consecutive_runs: bool
    phone_values: frozenset[str]
    phone_pattern: re.Pattern[str] | None


def _pattern(patterns: list[str]) -> re.Pattern[str] | None:
    return re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None


@lru_cache(maxsize=1)
def placeholders() -> Placeholders:
    """The placeholder lists of `ice_pipeline/data/placeholders.toml` (read once per process)."""
    text = resources.files("ice_pipeline.data").joinpath("placeholders.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    email, cedula, phone = data.get("email", {}), data.get("cedula", {}), data.get("phone", {})
    return Placeholders(
        email_local_parts=frozenset(s.lower() for s in email.get("local_parts", [])),
        email_domains=frozenset(s.lower() for s in email.get("domains", [])),
        email_pattern=_pattern(email.get("patterns", [])),
        cedula_values=frozenset(str(v).lstrip("0") for v in cedula.get("values", [])),
        cedula_pattern=_pattern(cedula.get("patterns", [])),
        cedula_consecutive_runs=bool(cedula.get("consecutive_runs", False)),
        phone_values=frozenset(str(v)[-10:] for v in phone.get("values", [])),
        phone_pattern=_pattern(phone.get("patterns", [])),
    )


CONSECUTIVE_RUN_DIGITS = 9


def _consecutive(digits: str) -> bool:
    """'123456789', '7890123456', '987654321': each digit one more (or one less) than the last, mod 10."""
    if len(digits) < CONSECUTIVE_RUN_DIGITS:
        return False
    steps = {(int(b) - int(a)) % 10 for a, b in zip(digits, digits[1:], strict=False)}
    return steps in ({1}, {9})


def _per_distinct(values: pd.Series, test) -> pd.Series:
    """Apply a scalar test once per distinct non-null value; False where missing."""
    codes, uniques = pd.factorize(values.astype("string"))
    verdict = np.fromiter((bool(test(u)) for u in uniques), dtype=bool, count=len(uniques))
    out = np.zeros(len(values), dtype=bool)
    present = codes >= 0
    out[present] = verdict[codes[present]]
    return pd.Series(out, index=values.index)


def placeholder_email(emails: pd.Series) -> pd.Series:
    """True for normalized e-mails that say "no e-mail" (by local part, domain or shape)."""
    lists = placeholders()

    def test(address: str) -> bool:
        local, _, domain = address.partition("@")
        local = local.split("+", 1)[0]
        return (
            local in lists.email_local_parts
            or domain in lists.email_domains
            or bool(lists.email_pattern and lists.email_pattern.fullmatch(local))
        )

    return _per_distinct(emails, test)


def placeholder_cedula(cedulas: pd.Series) -> pd.Series:
    """True for digits-only cédulas typed for people without one (1234567890, 1212121212...)."""
    lists = placeholders()

    def test(digits: str) -> bool:
        return (
            digits in lists.cedula_values
            or bool(lists.cedula_pattern and lists.cedula_pattern.fullmatch(digits))
            or (lists.cedula_consecutive_runs and _consecutive(digits))
        )

    return _per_distinct(cedulas, test)


def placeholder_phone(e164: pd.Series) -> pd.Series:
    """True for phones typed for people without one, compared on the last ten digits."""
    lists = placeholders()

    def test(phone: str) -> bool:
        tail = re.sub(r"\D", "", phone)[-10:]
        return tail in lists.phone_values or bool(lists.phone_pattern and lists.phone_pattern.fullmatch(tail))

    return _per_distinct(e164, test)


# --- names ----------------------------------------------------------------------------------


def _name_list(name: str) -> frozenset[str]:
    text = resources.files("ice_pipeline.data").joinpath(name).read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


@lru_cache(maxsize=1)
def name_lists() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(given names only, surnames only, tokens that are both: Carlos, David, Cruz, León...)."""
    given, surnames = _name_list("given_names.txt"), _name_list("surnames.txt")
    return given - surnames, surnames - given, given & surnames


def _dropped_parts(common: set[str], only_a: set[str], only_b: set[str]) -> bool:
    """The two names share a given name, and one side's extra tokens can be given names while the
    other side's are surnames, one of them surely a surname. Names sharing no given name differ
    (a parent and a child: 'Santiago Montoya Ospina' / 'Gabriel Montoya'); siblings and twins
    differ by given names only, never by a sure surname (Juan / Ana, Andrés / Ángel)."""
    given, surnames, either = name_lists()
    if not common & (given | either):
        return False
    for first, second in ((only_a, only_b), (only_b, only_a)):
        if first <= given | either and second <= surnames | either and second & surnames:
            return True
    return False


def _drop_initials(only_a: set[str], only_b: set[str]) -> tuple[set[str], set[str]]:
    """'Maria J Perez' and 'Maria Jose Perez': an initial matches a token of the other name."""
    for short, long_ in ((only_a, only_b), (only_b, only_a)):
        for initial in [t for t in short if len(t) == 1]:
            match = next((t for t in sorted(long_) if t.startswith(initial)), None)
            if match is not None:
                short.discard(initial)
                long_.discard(match)
    return only_a, only_b


@lru_cache(maxsize=262144)
def names_differ(a: str | None, b: str | None) -> bool:
    """True when two name keys cannot be one person's name.

    A name written partly is the same name: one contains the other ('Sara Ramírez' and
    'Sara Ramírez Gómez'), or one side dropped a given name and the other a surname
    ('María José Pérez' and 'María Pérez Gómez'; which token is which comes from the name lists
    in `ice_pipeline/data/`). Anything else -- a different given name (siblings, twins), a
    different surname, a typo -- differs. Exact tokens after folding: a typo is a candidate for
    review, never a reason to merge.
    """
    if not a or not b or a == b:
        return False
    only_a, only_b = set(a.split()) - NAME_PARTICLES, set(b.split()) - NAME_PARTICLES
    common = only_a & only_b
    only_a, only_b = _drop_initials(only_a - common, only_b - common)
    if not only_a or not only_b:
        return False
    return not _dropped_parts(common, only_a, only_b)


# --- shared values ----------------------------------------------------------------------------


def _names_conflict(names: list[str]) -> bool:
    if len(names) > MAX_SIGNATURES:
        return True
    return any(names_differ(a, b) for a, b in combinations(sorted(names), 2))


def shared_values(nodes: pd.DataFrame, kinds: tuple[str, ...] = SHARED_KINDS) -> dict[str, dict[str, str]]:
    """Per kind, the values carried by clearly different people, with the reason.

    `nodes` has the key columns (`cedula`, `email`, `mobile`, `name_key`, `birth_date`):
    batch rows, the stored rows of the persons involved, and those persons. A value is
    shared when two of its carriers have different birth dates, different cédulas (for
    e-mails and phones), or names that differ (`names_differ`). Vectorised per value;
    names are compared pairwise only for values written with several names.
    """
    found: dict[str, dict[str, str]] = {}
    for kind in kinds:
        columns = list(dict.fromkeys([kind, "name_key", "birth_date", "cedula"]))
        carriers = nodes[columns].dropna(subset=[kind]).astype("string").drop_duplicates()
        several = carriers[kind].duplicated(keep=False)
        carriers = carriers[several.to_numpy()]
        reasons: dict[str, str] = {}
        if len(carriers):
            grouped = carriers.groupby(kind, sort=True)
            dates = grouped["birth_date"].nunique()
            reasons.update(dict.fromkeys(dates.index[dates.to_numpy() > 1], "different birth dates"))
            if kind != "cedula":
                cedulas = grouped["cedula"].nunique()
                for value in cedulas.index[cedulas.to_numpy() > 1]:
                    reasons.setdefault(value, "different cédulas")
            names = carriers.dropna(subset=["name_key"]).drop_duplicates([kind, "name_key"])
            names = names[names[kind].duplicated(keep=False).to_numpy()]
            for value, keys in names.groupby(kind, sort=True)["name_key"]:
                if value not in reasons and _names_conflict(keys.tolist()):
                    reasons[value] = "different names"
        found[kind] = reasons
    return found
