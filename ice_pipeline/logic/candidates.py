"""Fuzzy duplicate candidates between persons: blocking, scoring and evidence (issue 13, DESIGN §4).

Exact keys decide identity; what they cannot decide -- a transposed letter in
a name, a dropped second surname, a mistyped cédula digit, day and month
swapped -- would otherwise stay split without anyone being told. This module
finds such pairs among persons, scores them and says why, so a person can
decide. It never merges: its output is a list of questions.

Blocking, not all pairs: two persons are compared only when they share a
blocking key --

- ``birth``:  year + {day, month} as a set (same date, or day/month swapped), with one name token
  (a typo or a dropped surname leaves the other tokens shared);
- ``name``:   the name key (sorted folded tokens) -- typos in dates, cédulas; a name carried by more
  than COMMON_NAME persons only together with the birth year, or the birth day and month;
- ``sound``:  the sorted phonetic codes (metaphone) of the name tokens, split the same way;
- ``cedula``: the cédula and its one-deletion neighbourhood (every string with
  one digit removed): two cédulas share one of these keys exactly when they
  are equal or one substitution, insertion, deletion or adjacent transposition
  apart (a symmetric-deletion index);
- ``mobile``: the mobile's last ten digits;
- ``email``:  the e-mail's local part (a mistyped or changed domain).

A block larger than ``max_block`` is skipped and counted (a placeholder value
or a very common name would otherwise explode into millions of pairs).
Pairs inside blocks are generated with numpy and compared column-wise with
rapidfuzz (``process.cpdist``) and numpy; only the pairs no field separates
reach the per-pair name alignment in Python.

A pair is *separated* -- never a candidate -- when a stronger identifier tells
the two apart: different student numbers; plausible cédulas more than one
edit apart unless the birth date holds them (same, swapped, one digit) and
the name is the same or a typo (the match identity vetoes -- same name and
birth date, different cédulas -- is queued with that evidence); birth dates
neither equal, swapped nor one digit apart unless a cédula one edit away
holds them; a whole given name that differs (twins, siblings) unless a
cédula one edit away and the birth date hold it and no family contact is
shared. Values more than SHARED_VALUE_LIMIT persons carry are no evidence.
The rules and weights were set on FEBRL4 and on the realistic generator of
`benchmarks/candidates.py` (coverage >= 0.99, precision >= 0.8 on both).

Scores are a ranking for the reviewer (0..1, 0.5 at the threshold), not a
probability. Evidence holds field comparisons in words, never the values.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field

import jellyfish
import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA, Hamming

from ice_pipeline.logic.normalize import FOLD_TABLE

DEFAULT_MAX_BLOCK = 400
# Name similarity (rapidfuzz token_set_ratio, 0..100) below which a blocked pair is not looked at further:
# cheap and permissive (a dropped surname scores 100, a typo ~90, two strangers sharing one surname ~60).
NAME_PREFILTER = 60.0
# A name that shares little (one token, or one side without a name) needs this much from the other fields
# (e.g. a cédula one digit apart and the same birth date).
WEAK_NAME_NEEDS = 7.0
THRESHOLD = 4.5  # total weight from which a pair is a candidate
SCORE_SCALE = 2.0  # logistic scale of the 0..1 score around the threshold
# A value more persons than this carry identifies nobody (a placeholder e-mail, an office phone, a family
# e-mail is shared by a handful): it is neither a blocking key nor evidence.
SHARED_VALUE_LIMIT = 8
PAIR_CHUNK = 4_000_000
# A name (or its sound) carried by more persons than this is blocked together with the birth year or the
# birth day and month, not alone.
COMMON_NAME = 20  # pairs generated per step (bounds memory at a million persons)

PARTICLES = frozenset({"de", "del", "la", "las", "los", "y", "e", "da", "do", "dos", "van", "von", "di"})
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
BLOCK_KINDS = ("birth", "name", "sound", "cedula", "mobile", "email")

# Weight of each comparison level (log-odds-like, set by hand and checked on the benchmarks).
NAME_WEIGHTS = {"same": 4.0, "typo": 3.0, "dropped": 2.5, "typo_dropped": 2.0, "weak": 0.5, "different": 0.0}
CEDULA_WEIGHTS = {
    "same": 6.0,
    "one_digit": 3.5,
    "transposition": 3.5,
    "length": 3.0,
    "missing": 0.0,
    "different": -1.5,
}
BIRTH_WEIGHTS = {
    "same": 4.0,
    "swapped": 3.0,
    "one_digit": 2.0,
    "transposition": 2.0,
    "missing": 0.0,
    "different": -2.0,
}
EMAIL_WEIGHTS = {"same": 3.0, "same_local_part": 2.0, "different": -0.5, "missing": 0.0}
MOBILE_WEIGHTS = {"same": 3.0, "different": -0.5, "missing": 0.0}
RARE_NAME_WEIGHT = 2.0  # the same name, carried by no third person
STUDENT_WEIGHTS = {"same": 5.0, "different": -3.0, "missing": 0.0}

CEDULA_TEXT = {
    "same": "same cédula",
    "one_digit": "cédula differs in one digit",
    "transposition": "cédula differs by a transposition (two adjacent digits swapped)",
    "length": "cédula has one digit more or less",
    "missing": "cédula on one side only or on neither",
    "different": "different cédulas",
}
BIRTH_TEXT = {
    "same": "same birth date",
    "swapped": "birth date day/month swapped",
    "one_digit": "birth date differs in one digit",
    "transposition": "birth date has two adjacent digits transposed",
    "missing": "birth date on one side only or on neither",
    "different": "different birth dates",
}
EMAIL_TEXT = {
    "same": "same e-mail",
    "same_local_part": "same e-mail name, different domain",
    "different": "different e-mails",
    "missing": "e-mail on one side only or on neither",
}
MOBILE_TEXT = {
    "same": "same mobile",
    "different": "different mobiles",
    "missing": "mobile on one side only or on neither",
}
STUDENT_TEXT = {
    "same": "same student number",
    "different": "different student numbers",
    "missing": "student number on one side only or on neither",
}

PERSON_COLUMNS = (
    "person_id",
    "full_name",
    "name_key",
    "birth_date",
    "cedula",
    "email",
    "phone_tail",
    "student_number",
)
PAIR_COLUMNS = ["person_id", "candidate_person_id", "score", "evidence"]


@dataclass
class CandidateResult:
    """Candidate pairs (person_id < candidate_person_id as text) and counts for run metadata."""

    pairs: pd.DataFrame
    stats: dict[str, int] = field(default_factory=dict)


# --- preparing the persons ------------------------------------------------------------------------------------


def name_tokens(full_names: pd.Series, name_keys: pd.Series) -> list[list[str]]:
    """Folded name tokens in display order, particles dropped; from the name key when no name is stored."""
    text = full_names.astype("string").fillna(name_keys.astype("string"))
    folded = text.str.translate(FOLD_TABLE).str.lower().str.replace(r"[^a-z0-9]+", " ", regex=True)
    return [
        [t for t in value.split() if t not in PARTICLES] if isinstance(value, str) else []
        for value in folded.to_numpy(dtype=object, na_value=None)
    ]


def fold_tokens(name: str) -> list[str]:
    """One name's folded tokens in display order, particles dropped (name_tokens for a single value)."""
    folded = _NOT_ALNUM.sub(" ", name.translate(FOLD_TABLE).lower())
    return [t for t in folded.split() if t not in PARTICLES]


def _text(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame:
        return np.full(len(frame), None, dtype=object)
    values = frame[column].astype("string").str.strip()
    return values.mask(values == "").to_numpy(dtype=object, na_value=None)


@dataclass
class _Persons:
    ids: np.ndarray
    tokens: list[list[str]]  # folded, particles dropped, sorted
    full_names: np.ndarray  # as stored: display order for the evidence text
    name_cmp: np.ndarray  # sorted tokens joined: what rapidfuzz compares
    birth: np.ndarray  # 'YYYYMMDD' or ''
    year: np.ndarray
    month: np.ndarray
    day: np.ndarray
    cedula: np.ndarray  # '' when missing
    email: np.ndarray
    local: np.ndarray
    mobile: np.ndarray
    student: np.ndarray


def _prepare(persons: pd.DataFrame) -> _Persons:
    frame = persons.reset_index(drop=True)
    empty = pd.Series(pd.NA, index=frame.index, dtype="string")
    name_keys = frame["name_key"].astype("string") if "name_key" in frame else empty
    full = frame["full_name"].astype("string") if "full_name" in frame else empty
    # Tokens for blocking and comparing: the stored name key (folded, sorted) split; folded here only for
    # persons without one. Display order is read later, only for the pairs that become candidates.
    keyed = name_keys.notna().to_numpy()
    tokens: list[list[str]] = [
        [t for t in k.split() if t not in PARTICLES] if isinstance(k, str) else []
        for k in name_keys.to_numpy(dtype=object, na_value=None)
    ]
    if not keyed.all():
        folded = name_tokens(full[~keyed], empty[~keyed])
        for position, value in zip(np.flatnonzero(~keyed), folded, strict=True):
            tokens[position] = sorted(value)
    birth = (
        pd.to_datetime(frame["birth_date"].astype("string"), errors="coerce", format="%Y-%m-%d")
        if "birth_date" in frame
        else pd.Series(pd.NaT, index=frame.index)
    )
    present = birth.notna().to_numpy()
    year = np.where(present, birth.dt.year.fillna(0).to_numpy(dtype=np.int64), 0)
    month = np.where(present, birth.dt.month.fillna(0).to_numpy(dtype=np.int64), 0)
    day = np.where(present, birth.dt.day.fillna(0).to_numpy(dtype=np.int64), 0)
    birth_text = np.where(present, birth.dt.strftime("%Y%m%d").fillna("").to_numpy(dtype=object), "")
    email = _text(frame, "email")
    local = np.array([e.split("@", 1)[0] if e else None for e in email], dtype=object)

    def blank(values: np.ndarray) -> np.ndarray:
        """'' for missing values and for values too many persons carry (placeholders, an office phone)."""
        out = np.array(["" if v is None else v for v in values], dtype=object)
        codes, uniques = pd.factorize(out)
        counts = np.bincount(codes, minlength=len(uniques))
        out[(counts[codes] > SHARED_VALUE_LIMIT) & (out != "")] = ""
        return out

    local = blank(local)
    local[blank(email) == ""] = ""
    return _Persons(
        ids=frame["person_id"].astype("string").to_numpy(dtype=object),
        tokens=tokens,
        full_names=full.to_numpy(dtype=object, na_value=None),
        name_cmp=np.array([" ".join(t) for t in tokens], dtype=object),
        birth=birth_text.astype(object),
        year=year,
        month=month,
        day=day,
        cedula=blank(_text(frame, "cedula")),
        email=blank(email),
        local=local,
        mobile=blank(_text(frame, "phone_tail")),
        student=blank(_text(frame, "student_number")),
    )


# --- blocking keys --------------------------------------------------------------------------------------------


def deletion_keys(value: str) -> list[str]:
    """The value and every string with one character removed (symmetric-deletion neighbourhood)."""
    return [value, *{value[:i] + value[i + 1 :] for i in range(len(value))}]


def one_edit_variants(value: str, alphabet: str = "0123456789") -> set[str]:
    """Every string one substitution, insertion, deletion or adjacent transposition from `value` (and itself).

    For looking up a few cédulas' neighbours in an index (the per-run asset); the full scan uses
    deletion keys instead.
    """
    out = {value}
    for i in range(len(value)):
        out.add(value[:i] + value[i + 1 :])
        for ch in alphabet:
            out.add(value[:i] + ch + value[i + 1 :])
        if i + 1 < len(value):
            out.add(value[:i] + value[i + 1] + value[i] + value[i + 2 :])
    for i in range(len(value) + 1):
        for ch in alphabet:
            out.add(value[:i] + ch + value[i:])
    return out


def blocking_keys(p: _Persons) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per block kind: (person index, key) arrays; a person may have several keys of a kind."""
    n = len(p.ids)
    idx = np.arange(n)
    keys: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    has_birth = p.year > 0
    lo, hi = np.minimum(p.month, p.day), np.maximum(p.month, p.day)
    birth_key = (p.year * 10000 + lo * 100 + hi).astype(str).astype(object)
    # Birth date (day and month as a set) with each name token: one shared token is enough (a typo or a
    # dropped surname leaves the others), and blocks stay small at a million persons.
    exploded = pd.Series(p.tokens, dtype=object).explode().dropna()
    token_owner = exploded.index.to_numpy(dtype=np.int64)
    with_birth = has_birth[token_owner]
    owner = token_owner[with_birth]
    keys["birth"] = (owner, birth_key[owner] + "|" + exploded.to_numpy(dtype=object)[with_birth])
    has_name = np.array([bool(t) for t in p.name_cmp])
    keys["name"] = _name_blocks(p.name_cmp, has_name, p.year, p.month * 100 + p.day)
    vocabulary = pd.unique(exploded.to_numpy(dtype=object))
    sound_of = {token: jellyfish.metaphone(token) for token in vocabulary}
    sounds = np.array([" ".join(sorted({sound_of[t] for t in tokens})) for tokens in p.tokens], dtype=object)
    keys["sound"] = _name_blocks(sounds, has_name, p.year, p.month * 100 + p.day)
    has_cedula = np.flatnonzero(p.cedula != "")
    cedulas = pd.Series(p.cedula[has_cedula], dtype="string")
    ced_idx, ced_key = [has_cedula], [cedulas.to_numpy(dtype=object)]
    for position in range(int(cedulas.str.len().max()) if len(cedulas) else 0):
        longer = (cedulas.str.len() > position).to_numpy()
        deleted = cedulas.str.slice(0, position) + cedulas.str.slice(position + 1)
        ced_idx.append(has_cedula[longer])
        ced_key.append(deleted.to_numpy(dtype=object)[longer])
    keys["cedula"] = (np.concatenate(ced_idx), np.concatenate(ced_key))
    has_mobile = p.mobile != ""
    keys["mobile"] = (idx[has_mobile], p.mobile[has_mobile])
    has_local = p.local != ""
    keys["email"] = (idx[has_local], p.local[has_local])
    return keys


def _name_blocks(names: np.ndarray, has_name: np.ndarray, year: np.ndarray, month_day: np.ndarray):
    """A name (or sound) key as a block when few persons carry it; a common one split by birth year and by
    birth month+day, so a one-digit date typo still meets and blocks grow with the data, not its square."""
    idx = np.flatnonzero(has_name)
    codes, _ = pd.factorize(names[idx])
    common = np.bincount(codes)[codes] > COMMON_NAME
    rare_idx = idx[~common]
    dated = idx[common & (year[idx] > 0)]
    members = np.concatenate([rare_idx, dated, dated])
    keys = np.concatenate(
        [
            names[rare_idx],
            names[dated] + "|y" + year[dated].astype(str).astype(object),
            names[dated] + "|d" + month_day[dated].astype(str).astype(object),
        ]
    )
    return members, keys


def _block_pairs(members: np.ndarray, keys: np.ndarray, max_block: int, focus: np.ndarray | None):
    """Yield (left, right) person-index arrays of every pair sharing a key; plus skipped counts at the end.

    Generated vectorised, block by block in chunks of about PAIR_CHUNK pairs.
    """
    if len(members) == 0:
        return 0, 0, iter(())
    codes, _ = pd.factorize(keys)
    frame = pd.DataFrame({"code": codes, "member": members}).drop_duplicates().sort_values(["code", "member"])
    c = frame["code"].to_numpy()
    m = frame["member"].to_numpy()
    starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
    sizes = np.diff(np.r_[starts, len(c)])
    too_big = sizes > max_block
    keep = (sizes >= 2) & ~too_big
    if focus is not None and keep.any():
        has_focus = np.add.reduceat(focus[m].astype(np.int64), starts) > 0
        keep &= has_focus
        too_big &= has_focus
    skipped, skipped_members = int(too_big.sum()), int(sizes[too_big].sum())
    ks, kz = starts[keep], sizes[keep]

    def chunks():
        pair_counts = kz * (kz - 1) // 2
        bounds = np.searchsorted(
            np.cumsum(pair_counts),
            np.arange(PAIR_CHUNK, pair_counts.sum() + PAIR_CHUNK, PAIR_CHUNK),
            side="right",
        )
        begin = 0
        for end in [*bounds, len(ks)]:
            end = max(end, begin + 1)
            if begin >= len(ks):
                break
            s, z = ks[begin:end], kz[begin:end]
            begin = end
            local = np.arange(z.sum()) - np.repeat(np.cumsum(z) - z, z)
            pos = np.repeat(s, z) + local
            counts = np.repeat(z, z) - 1 - local
            left = np.repeat(pos, counts)
            right = left + np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + 1
            a, b = m[left], m[right]
            if focus is not None:
                wanted = focus[a] | focus[b]
                a, b = a[wanted], b[wanted]
            yield a, b

    return skipped, skipped_members, chunks()


def _names_alike(p: _Persons, i: np.ndarray, j: np.ndarray, kind: str) -> np.ndarray:
    """Pairs whose names are alike enough (NAME_PREFILTER) to look at further; all pairs of a cédula block.

    Cédulas one edit apart are rare among strangers: kept whatever the names (a replaced given name).
    """
    names = process.cpdist(list(p.name_cmp[i]), list(p.name_cmp[j]), scorer=fuzz.token_set_ratio, workers=1)
    return names >= NAME_PREFILTER if kind != "cedula" else np.ones(len(i), dtype=bool)


def _blocked_pairs(
    p: _Persons, focus: np.ndarray | None, max_block: int, stats: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, found_by) of each distinct pair sharing a blocking key whose names are alike, i < j.

    found_by has bit b set when BLOCK_KINDS[b] found the pair (for the evidence). Skipped blocks, blocked
    pairs and alike pairs are counted into `stats`, in total and per kind.
    """
    n = len(p.ids)
    found_codes, found_bits = [], []
    for bit, (kind, (members, keys)) in enumerate(blocking_keys(p).items()):
        skipped, skipped_members, chunks = _block_pairs(members, keys, max_block, focus)
        stats["blocks_skipped"] += skipped
        stats["persons_in_skipped_blocks"] += skipped_members
        stats[f"blocks_skipped_{kind}"] = skipped
        for i, j in chunks:
            stats["pairs_blocked"] += len(i)
            if not len(i):
                continue
            near = _names_alike(p, i, j, kind)
            stats[f"pairs_blocked_{kind}"] = stats.get(f"pairs_blocked_{kind}", 0) + len(i)
            stats[f"pairs_near_{kind}"] = stats.get(f"pairs_near_{kind}", 0) + int(near.sum())
            found_codes.append(i[near].astype(np.int64) * n + j[near])
            found_bits.append(np.full(int(near.sum()), 1 << bit, dtype=np.int64))
    if not found_codes:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    # A pair found by several kinds is compared once: one code per pair, its kinds' bits or-ed together.
    unique, inverse = np.unique(np.concatenate(found_codes), return_inverse=True)
    found_by = np.zeros(len(unique), dtype=np.int64)
    np.bitwise_or.at(found_by, inverse, np.concatenate(found_bits))
    return unique // n, unique % n, found_by


# --- field comparisons (vectorised) ---------------------------------------------------------------------------


def _levels(conditions: list[tuple[np.ndarray, str]], default: str) -> np.ndarray:
    return np.select([c for c, _ in conditions], [v for _, v in conditions], default).astype(object)


def compare_cedulas(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Level per pair: same | one_digit | transposition | length | missing | different."""
    both = (a != "") & (b != "")
    osa = process.cpdist(list(a), list(b), scorer=OSA.distance, workers=1) if len(a) else np.zeros(0)
    ham = process.cpdist(list(a), list(b), scorer=Hamming.distance, workers=1) if len(a) else np.zeros(0)
    same_length = np.array([len(x) == len(y) for x, y in zip(a, b, strict=True)], dtype=bool)
    return _levels(
        [
            (~both, "missing"),
            (osa == 0, "same"),
            ((osa == 1) & same_length & (ham == 1), "one_digit"),
            ((osa == 1) & same_length, "transposition"),
            (osa == 1, "length"),
        ],
        "different",
    )


def compare_births(p: _Persons, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Level per pair: same | swapped | one_digit | transposition | missing | different."""
    a, b = p.birth[i], p.birth[j]
    both = (p.year[i] > 0) & (p.year[j] > 0)
    same = both & (a == b)
    swapped = both & (p.year[i] == p.year[j]) & (p.month[i] == p.day[j]) & (p.day[i] == p.month[j])
    osa = process.cpdist(list(a), list(b), scorer=OSA.distance, workers=1) if len(a) else np.zeros(0)
    ham = process.cpdist(list(a), list(b), scorer=Hamming.distance, workers=1) if len(a) else np.zeros(0)
    return _levels(
        [
            (~both, "missing"),
            (same, "same"),
            (swapped, "swapped"),
            (ham == 1, "one_digit"),
            (osa == 1, "transposition"),
        ],
        "different",
    )


def _equal_levels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    both = (a != "") & (b != "")
    return _levels([(~both, "missing"), (a == b, "same")], "different")


def compare_emails(p: _Persons, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    levels = _equal_levels(p.email[i], p.email[j])
    same_local = (levels == "different") & (p.local[i] == p.local[j])
    levels[same_local] = "same_local_part"
    return levels


@dataclass
class _Fields:
    """Comparison levels of the pairs (i[k], j[k]) and the flags the candidate rules read."""

    cedula: np.ndarray
    birth: np.ndarray
    email: np.ndarray
    mobile: np.ndarray
    student: np.ndarray
    rare_name: np.ndarray  # the same name of at least two tokens, carried by these two persons only
    vetoed: np.ndarray  # same name and birth date, different cédulas: identity's veto, a person tells
    near_cedula: np.ndarray  # same cédula or one edit apart


def _compare_fields(p: _Persons, i: np.ndarray, j: np.ndarray) -> _Fields:
    """Every field of every pair compared column-wise: levels, not values."""
    ced = compare_cedulas(p.cedula[i], p.cedula[j])
    birth = compare_births(p, i, j)
    exact_name = p.name_cmp[i] == p.name_cmp[j]
    # A name exactly two persons carry (at least two tokens) is itself evidence: with the birth date on
    # one side only it keeps a pair whose cédulas differ (a cédula typed wrongly beyond one digit).
    name_codes, _ = pd.factorize(p.name_cmp)
    carriers = np.bincount(name_codes)[name_codes]
    rare_name = exact_name & (carriers[i] == 2) & np.array([len(p.tokens[x]) >= 2 for x in i], dtype=bool)
    return _Fields(
        cedula=ced,
        birth=birth,
        email=compare_emails(p, i, j),
        mobile=_equal_levels(p.mobile[i], p.mobile[j]),
        student=_equal_levels(p.student[i], p.student[j]),
        rare_name=rare_name,
        vetoed=exact_name & (birth == "same") & (ced == "different"),
        near_cedula=np.isin(ced, ["same", "one_digit", "transposition", "length"]),
    )


# --- names (per pair) -----------------------------------------------------------------------------------------


def _typo_kind(x: str, y: str) -> str:
    if len(x) != len(y):
        return "a letter missing or extra"
    return "one letter differs" if Hamming.distance(x, y) == 1 else "a transposed letter"


def _ordinal(k: int) -> str:
    return {1: "first", 2: "second", 3: "third", 4: "fourth"}.get(k, f"{k}th")


def _nearest_token(x: str, others: list[str]) -> tuple[str | None, int]:
    """The token of `others` closest to `x` and its distance; (None, 99) when none is close enough.

    One edit is allowed up to five letters, two beyond; an initial matches a name with its first letter.
    """
    best, best_d = None, 99
    for y in others:
        if len(x) == 1 or len(y) == 1:
            d = 0 if x[0] == y[0] else 99
        else:
            allowed = 1 if min(len(x), len(y)) <= 5 else 2
            d = OSA.distance(x, y, score_cutoff=allowed)
            d = d if d <= allowed else 99
        if d < best_d:
            best, best_d = y, d
    return best, best_d


def _match_tokens(a: list[str], b: list[str]) -> tuple[int, list[str], list[str], list[str]]:
    """(tokens matched, typo descriptions, tokens of `a` left, tokens of `b` left) of two token lists.

    Whole tokens first, then the rest pairwise by _nearest_token in `a`'s display order, then what is left
    as one name split in two or two joined.
    """
    common = Counter(a) & Counter(b)
    rest_a = list((Counter(a) - common).elements())
    rest_b = list((Counter(b) - common).elements())
    typos: list[str] = []
    for x in sorted(rest_a, key=a.index):
        best, best_d = _nearest_token(x, rest_b)
        if best is not None:
            rest_b.remove(best)
            rest_a.remove(x)
            typos.append(
                "an initial for a name"
                if len(x) == 1 or len(best) == 1
                else _typo_kind(x, best)
                if best_d == 1
                else f"{best_d} letters differ in a name"
            )
    if rest_a and rest_b:
        joined_a, joined_b = "".join(sorted(rest_a, key=a.index)), "".join(sorted(rest_b, key=b.index))
        if (len(rest_a) > 1 or len(rest_b) > 1) and OSA.distance(joined_a, joined_b) <= 1:
            typos.append("a name split in two or two joined")
            rest_a, rest_b = [], []
    return sum(common.values()) + len(typos), typos, rest_a, rest_b


def _missing_text(missing: list[str], longer: list[str]) -> str:
    """Which names the shorter side lacks, in words: a second surname is the common case worth naming."""
    if len(missing) > 1:
        return f"{len(missing)} names missing"
    position = longer.index(missing[0]) + 1
    return (
        "second surname missing"
        if position == len(longer) and len(longer) >= 3
        else f"one name missing ({_ordinal(position)} of {len(longer)})"
    )


def compare_names(a: list[str], b: list[str]) -> tuple[str, str]:
    """(level, evidence text) of two folded token lists in display order.

    Whole tokens are matched first, then the rest pairwise within a small edit distance (one edit up to
    five letters, two beyond; an initial matches its name). Tokens left on one side only are missing
    names (level 'dropped'); tokens left on both sides are a different name (twins, siblings): level 'different'.
    """
    if not a or not b:
        return "weak", "a name is missing"
    matched, typos, rest_a, rest_b = _match_tokens(a, b)
    if rest_a and rest_b:
        return "different", "a name differs entirely"
    missing = rest_a or rest_b
    if missing and (matched < 2 or len(missing) > 2):
        return "weak", "names share little"
    parts = []
    if typos:
        parts.append(
            f"name differs by a typo ({typos[0]})"
            if len(typos) == 1
            else f"name differs by {len(typos)} typos"
        )
    if missing:
        parts.append(_missing_text(missing, a if rest_a else b))
    if not parts:
        return "same", "same name"
    level = "typo_dropped" if typos and missing else "typo" if typos else "dropped"
    return level, "; ".join(parts)


def _display_tokens(p: _Persons, persons: np.ndarray) -> dict[int, list[str]]:
    """Name tokens of these persons in display order (for compare_names' positions and words).

    The stored name's tokens when they are the key's tokens, else the key's (sorted) order.
    """
    display: dict[int, list[str]] = {}
    for x in np.unique(persons).tolist():
        name = p.full_names[x]
        folded = fold_tokens(name) if isinstance(name, str) else []
        display[x] = folded if sorted(folded) == p.tokens[x] else p.tokens[x]
    return display


# --- scoring --------------------------------------------------------------------------------------------------


def _score(total: float) -> float:
    return round(1.0 / (1.0 + math.exp(-(total - THRESHOLD) / SCORE_SCALE)), 3)


def _weights(levels: np.ndarray, table: dict[str, float]) -> np.ndarray:
    return np.array([table[v] for v in levels], dtype=np.float64) if len(levels) else np.zeros(0)


def _weight_without_name(f: _Fields) -> np.ndarray:
    """Each pair's weight from every field but the name (the name's level is known only per pair)."""
    return (
        RARE_NAME_WEIGHT * f.rare_name
        + _weights(f.cedula, CEDULA_WEIGHTS)
        + _weights(f.birth, BIRTH_WEIGHTS)
        + _weights(f.email, EMAIL_WEIGHTS)
        + _weights(f.mobile, MOBILE_WEIGHTS)
        + _weights(f.student, STUDENT_WEIGHTS)
    )


def _separated(f: _Fields) -> np.ndarray:
    """Pairs a stronger identifier tells apart: never candidates, whatever the names.

    Different cédulas only with a near birth date, different birth dates only with a near cédula (the
    name is checked per pair: the same or a typo); different student numbers never (namesakes) unless the
    cédula is the same. A rare name with the birth date on one side only keeps differing cédulas.
    """
    near_birth = np.isin(f.birth, ["same", "swapped", "one_digit", "transposition"])
    return (
        ((f.cedula == "different") & ~near_birth & ~(f.rare_name & (f.birth == "missing")))
        | ((f.birth == "different") & ~f.near_cedula)
        | ((f.student == "different") & ~(f.cedula == "same"))
    )


def _name_keeps(f: _Fields, k: int, level: str, partial: float) -> bool:
    """Whether pair k stays a candidate given how its names compare (`level`); `partial`: its other weight."""
    ced, birth, near_ced = f.cedula[k], f.birth[k], f.near_cedula[k]
    shared_contact = f.email[k] == "same" or f.mobile[k] == "same"
    # A whole name differs (twins, siblings): only a cédula at most one edit away and the same (or
    # swapped) birth date keep the pair -- one person whose given name was replaced, or twins registered
    # with consecutive numbers: a person tells.
    if level == "different" and not (near_ced and birth != "different"):
        return False
    if (ced == "different" or birth == "different") and level not in ("same", "typo"):
        return False
    # Twins share the family e-mail or mobile and may hold consecutive cédulas: a replaced given name
    # is kept only without such a shared contact.
    if level == "different" and shared_contact:
        return False
    # A birth date one digit off links namesakes of a common name: kept only for a name no third
    # person carries, or with a cédula or contact to back it.
    if birth in ("one_digit", "transposition") and not (near_ced or shared_contact or f.rare_name[k]):
        return False
    # A dropped name with another mobile: two relatives more often than one person.
    if level in ("dropped", "typo_dropped") and f.mobile[k] == "different" and not near_ced:
        return False
    return not (level == "weak" and partial < WEAK_NAME_NEEDS)


def _evidence(f: _Fields, k: int, name: tuple[str, str], found_by: int, total: float) -> dict:
    """Why pair k is a candidate, in words and comparison levels -- never the values compared."""
    fields = {
        "name": name,
        "cedula": (f.cedula[k], CEDULA_TEXT[f.cedula[k]]),
        "birth_date": (f.birth[k], BIRTH_TEXT[f.birth[k]]),
        "email": (f.email[k], EMAIL_TEXT[f.email[k]]),
        "mobile": (f.mobile[k], MOBILE_TEXT[f.mobile[k]]),
        "student_number": (f.student[k], STUDENT_TEXT[f.student[k]]),
    }
    texts = [text for lvl, text in fields.values() if lvl != "missing"]
    if f.rare_name[k]:
        texts.insert(1, "no other person has this name")
    if f.vetoed[k]:
        texts.insert(0, "identity vetoed this match: same name and birth date, different cédulas")
    return {
        "summary": "; ".join(texts),
        "fields": {field: {"comparison": lvl, "text": text} for field, (lvl, text) in fields.items()},
        "agree": [field for field, (lvl, _) in fields.items() if lvl == "same"],
        "differ": [field for field, (lvl, _) in fields.items() if lvl not in ("same", "missing")],
        "found_by": [kind for bit, kind in enumerate(BLOCK_KINDS) if found_by >> bit & 1],
        "vetoed_match": bool(f.vetoed[k]),
        "weight": round(float(total), 2),
    }


def _ranked(rows: list[tuple]) -> pd.DataFrame:
    """Candidate rows as PAIR_COLUMNS, best score first, then by person id (a stable review order)."""
    pairs = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    return pairs.sort_values(["score", "person_id"], ascending=[False, True], ignore_index=True)


def find_candidates(
    persons: pd.DataFrame, focus: pd.Series | np.ndarray | None = None, *, max_block: int = DEFAULT_MAX_BLOCK
) -> CandidateResult:
    """Candidate duplicate pairs among `persons` (columns PERSON_COLUMNS; missing ones count as empty).

    With `focus` (a boolean mask over the rows), only pairs with at least one focused person are
    compared: a run's new and touched persons against their blocking neighbours.
    """
    stats = {
        "persons": len(persons),
        "blocks_skipped": 0,
        "persons_in_skipped_blocks": 0,
        "pairs_blocked": 0,
        "pairs_compared": 0,
        "candidates": 0,
    }
    if len(persons) < 2:
        return CandidateResult(pd.DataFrame(columns=PAIR_COLUMNS), stats)
    p = _prepare(persons)
    focus_mask = None if focus is None else np.asarray(focus, dtype=bool)
    i, j, found_by = _blocked_pairs(p, focus_mask, max_block, stats)
    stats["pairs_compared"] = len(i)
    if not len(i):
        return CandidateResult(pd.DataFrame(columns=PAIR_COLUMNS), stats)
    f = _compare_fields(p, i, j)
    partial = _weight_without_name(f)
    # Only pairs that the best name comparison could lift over the threshold reach the per-pair names.
    hopeful = np.flatnonzero(~_separated(f) & (partial + NAME_WEIGHTS["same"] >= THRESHOLD))
    display = _display_tokens(p, np.concatenate([i[hopeful], j[hopeful]]))
    rows = []
    for k in hopeful:
        a, b = int(i[k]), int(j[k])
        level, name_text = compare_names(display[a], display[b])
        total = partial[k] + NAME_WEIGHTS[level]
        if not _name_keeps(f, k, level, partial[k]) or total < THRESHOLD:
            continue
        first, second = sorted((p.ids[a], p.ids[b]))
        rows.append((first, second, _score(total), _evidence(f, k, (level, name_text), found_by[k], total)))
    stats["candidates"] = len(rows)
    return CandidateResult(_ranked(rows), stats)


def neighbour_keys(focus: pd.DataFrame) -> pd.DataFrame:
    """(kind, value) keys that find the blocking neighbours of `focus` persons in an indexed store.

    kind: birth (ISO date, also with day and month swapped) | name (name key) | cedula (every value one
    edit away) | mobile | email (local part). Phonetic blocks are not looked up: a neighbour by sound alone
    is compared only by the full scan.
    """
    rows: list[tuple[str, str]] = []
    p = _prepare(focus)
    for k in range(len(p.ids)):
        if p.year[k]:
            rows.append(("birth", f"{p.year[k]:04d}-{p.month[k]:02d}-{p.day[k]:02d}"))
            if p.day[k] <= 12 and p.day[k] != p.month[k]:
                rows.append(("birth", f"{p.year[k]:04d}-{p.day[k]:02d}-{p.month[k]:02d}"))
        if p.cedula[k]:
            rows.extend(("cedula", v) for v in one_edit_variants(p.cedula[k]))
        if p.mobile[k]:
            rows.append(("mobile", p.mobile[k]))
        if p.local[k]:
            rows.append(("email", p.local[k]))
    keys = (
        focus["name_key"].dropna().astype("string") if "name_key" in focus else pd.Series([], dtype="string")
    )
    rows.extend(("name", v) for v in keys)
    return pd.DataFrame(rows, columns=["kind", "value"]).drop_duplicates(ignore_index=True)
