"""The ground-truth people behind the demo rows, including the hard identity cases."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ice_pipeline.dev.demo_data.draw import (
    STR,
    as_str,
    no_repdigit_ranges,
    pick,
    unique_numbers,
    variants_s,
    zero_pad,
)
from ice_pipeline.dev.demo_data.names import (
    CITIES,
    DOMAIN_T,
    DOMAINS,
    F0,
    F2_0,
    FEMALE,
    FEMALE_2,
    GIVEN_MAIL,
    GIVEN_MAIL_C,
    GIVEN_T,
    M0,
    M2_0,
    MALE,
    MALE_2,
    PROGRAMS,
    SUR_MAIL,
    SUR_MAIL_C,
    SURNAMES,
)
from ice_pipeline.dev.demo_data.rates import (
    CEDULA_LENGTH_P,
    EMAIL_PATTERN_P,
    LEAD_FILE_COUNT_P,
    P_FATHER_TWO_LEADS,
    P_FEMALE,
    P_HOUSEHOLD_LANDLINE,
    P_PARENT_MOTHER,
    P_SECOND_GIVEN_NAME,
    P_SIBLING_YOUNGER,
    P_SON_SECOND_NAME,
    P_STUDENT_ONLY,
    P_STUDENT_OR_BOTH,
)

_CEDULA_LENGTHS = [10, 8, 9, 7, 6]
_CEDULA_BOUNDS = {
    10: (1_000_000_000, 1_200_000_000),
    9: (100_000_000, 1_000_000_000),
    8: (10_000_000, 100_000_000),
    7: (1_000_000, 10_000_000),
    6: (100_000, 1_000_000),
}

EPOCH = np.datetime64("1970-01-01", "D")
_YOUNG = (
    int(np.datetime64("1990-01-01", "D").astype(np.int64)),
    int(np.datetime64("2006-12-31", "D").astype(np.int64)),
)


def _cedula_ranges(length: int, seed: int) -> list[tuple[int, int]]:
    """Each seed gets its own tenth of every length's number space, so seeds
    that differ mod 10 never share a cédula and others rarely do."""
    lo, hi = _CEDULA_BOUNDS[length]
    width = (hi - lo) // 10
    part = seed % 10
    return no_repdigit_ranges(lo + part * width, lo + (part + 1) * width)


@dataclass
class Persons:
    n: int
    female: np.ndarray
    f1: np.ndarray
    f2: np.ndarray  # -1: no second given name
    s1: np.ndarray
    s2: np.ndarray
    birth: np.ndarray  # days since 1970-01-01
    city: np.ndarray
    has_land: np.ndarray
    land7: np.ndarray
    mobile: np.ndarray
    ced: np.ndarray
    ced_len: np.ndarray
    email: np.ndarray  # canonical lower-case e-mail (StringDType)
    email_cap: np.ndarray  # the same address as a person would capitalise it
    address: np.ndarray
    program: np.ndarray
    role: np.ndarray  # 0 student only, 1 student and lead, 2 lead only
    n_lead: np.ndarray
    student_number: np.ndarray
    specials: dict[str, np.ndarray]


def _choose_given(rng: np.random.Generator, female: np.ndarray, first: bool) -> np.ndarray:
    n = len(female)
    if first:
        fw, mw, f0, m0 = [w for _, w in FEMALE], [w for _, w in MALE], F0, M0
    else:
        fw, mw, f0, m0 = [w for _, w in FEMALE_2], [w for _, w in MALE_2], F2_0, M2_0
    return np.where(female, f0 + pick(rng, n, fw), m0 + pick(rng, n, mw))


def make_persons(rng: np.random.Generator, n: int, seed: int) -> Persons:
    female = rng.random(n) < P_FEMALE
    f1 = _choose_given(rng, female, True)
    f2 = np.where(rng.random(n) < P_SECOND_GIVEN_NAME, _choose_given(rng, female, False), -1)
    f2 = np.where(GIVEN_T[np.maximum(f2, 0), 0] == GIVEN_T[f1, 0], -1, f2)
    sw = [w for _, w in SURNAMES]
    s1, s2 = pick(rng, n, sw), pick(rng, n, sw)
    birth = rng.integers(_YOUNG[0], _YOUNG[1] + 1, n)
    city = pick(rng, n, [c[-1] for c in CITIES])
    has_land = rng.random(n) < P_HOUSEHOLD_LANDLINE
    land7 = rng.integers(2_000_000, 8_000_000, n)
    ced_len = np.array(_CEDULA_LENGTHS)[pick(rng, n, CEDULA_LENGTH_P)]
    program = pick(rng, n, [p[-1] for p in PROGRAMS])
    u = rng.random(n)
    role = np.where(u < P_STUDENT_ONLY, 0, np.where(u < P_STUDENT_OR_BOTH, 1, 2))
    n_lead = 1 + pick(rng, n, LEAD_FILE_COUNT_P)

    # --- hard identity cases (DESIGN §4), disjoint persons, at a small rate
    specials: dict[str, np.ndarray] = {}
    k = max(1, n // 1000) if n >= 40 else 0
    order = rng.permutation(n)
    pos = 0

    def take(m: int) -> np.ndarray:
        nonlocal pos
        out = order[pos : pos + m]
        pos += m
        return out

    for name, m in [
        ("son", k),
        ("father", k),
        ("sib_a", k),
        ("sib_b", k),
        ("namesake_a", k),
        ("namesake_b", k),
        ("cedula_email", k),
        ("nasty", 4 if n >= 40 else 0),
    ]:
        specials[name] = take(m)
    son, father = specials["son"], specials["father"]
    sa, sb = specials["sib_a"], specials["sib_b"]
    na_, nb_ = specials["namesake_a"], specials["namesake_b"]
    ce, nasty = specials["cedula_email"], specials["nasty"]

    # father and son: same full name, same household landline/address, different cédulas
    female[son] = False
    female[father] = False
    f1[son] = M0 + pick(rng, k, [w for _, w in MALE])
    f2[son] = np.where(rng.random(k) < P_SON_SECOND_NAME, M2_0 + pick(rng, k, [w for _, w in MALE_2]), -1)
    for arr in (f1, f2, s1, s2, city, land7):
        arr[father] = arr[son]
    has_land[son] = True
    has_land[father] = True
    birth[father] = birth[son] - rng.integers(22 * 365, 36 * 365, k)
    ced_len[son] = 10
    ced_len[father] = 8
    role[son] = 1
    role[father] = 2
    n_lead[father] = 1 + (rng.random(k) < P_FATHER_TWO_LEADS)

    # siblings: same surnames and household, different people, one parent's e-mail
    s1[sb], s2[sb], city[sb], land7[sb], has_land[sb] = s1[sa], s2[sa], city[sa], land7[sa], has_land[sa]
    same = GIVEN_T[f1[sb], 0] == GIVEN_T[f1[sa], 0]
    f1[sb] = np.where(
        same,
        np.where(female[sb], F0 + (f1[sb] - F0 + 1) % len(FEMALE), M0 + (f1[sb] - M0 + 1) % len(MALE)),
        f1[sb],
    )
    gap = rng.integers(400, 6 * 365, k) * np.where(rng.random(k) < P_SIBLING_YOUNGER, 1, -1)
    birth[sb] = np.clip(birth[sa] + gap, _YOUNG[0], _YOUNG[1])
    birth[sb] = np.where(birth[sb] == birth[sa], birth[sa] - 500, birth[sb])
    role[sa] = 1
    role[sb] = 2

    # namesakes: unrelated people sharing a full name
    female[nb_], f1[nb_], f2[nb_], s1[nb_], s2[nb_] = female[na_], f1[na_], f2[na_], s1[na_], s2[na_]
    birth[nb_] = np.where(birth[nb_] == birth[na_], birth[na_] + 777, birth[nb_])

    # one person: cédula in one source, only the e-mail in another
    role[ce] = 1
    n_lead[ce] = 2
    role[nasty] = 2
    n_lead[nasty] = 1

    # --- identifiers: unique within a seed, seed-mixed across seeds
    ced = np.zeros(n, dtype=np.int64)
    for length in _CEDULA_LENGTHS:
        idx = np.flatnonzero(ced_len == length)
        ced[idx] = unique_numbers(rng, len(idx), _cedula_ranges(length, seed))
    mobile = unique_numbers(rng, n, [(3_000_000_000, 3_240_000_000)])
    digits = max(4, len(str(max(n, 1))) + 1)
    token = as_str(unique_numbers(rng, n, [(0, 10**digits)]))

    pattern = pick(rng, n, EMAIL_PATTERN_P)
    gl, gc = GIVEN_MAIL[f1], GIVEN_MAIL_C[f1]
    sl, sc = SUR_MAIL[s1], SUR_MAIL_C[s1]
    il, ic = np.strings.slice(gl, 0, 1), np.strings.slice(gc, 0, 1)
    local = (
        variants_s(
            pattern,
            [
                lambda i: gl[i] + "." + sl[i],
                lambda i: gl[i] + sl[i],
                lambda i: il[i] + sl[i],
                lambda i: gl[i] + "_" + sl[i],
                lambda i: sl[i] + "." + gl[i],
            ],
        )
        + token
    )
    local_c = (
        variants_s(
            pattern,
            [
                lambda i: gc[i] + "." + sc[i],
                lambda i: gc[i] + sc[i],
                lambda i: ic[i] + sc[i],
                lambda i: gc[i] + "_" + sc[i],
                lambda i: sc[i] + "." + gc[i],
            ],
        )
        + token
    )
    dom = pick(rng, n, [w for _, w in DOMAINS])
    email = local + "@" + DOMAIN_T[dom, 0]
    email_cap = local_c + "@" + DOMAIN_T[dom, 3]
    # the siblings' rows carry one parent's address
    parent = np.where(
        rng.random(k) < P_PARENT_MOTHER,
        F0 + pick(rng, k, [w for _, w in FEMALE]),
        M0 + pick(rng, k, [w for _, w in MALE]),
    )
    parent = np.where(
        (parent == f1[sa]) | (parent == f1[sb]), np.where(parent + 1 < F2_0, parent + 1, F0), parent
    )
    p_local = GIVEN_MAIL[parent] + "." + SUR_MAIL[s1[sa]] + token[sa]
    p_local_c = GIVEN_MAIL_C[parent] + "." + SUR_MAIL_C[s1[sa]] + token[sa]
    for who in (sa, sb):
        email[who] = p_local + "@hotmail.com"
        email_cap[who] = p_local_c + "@Hotmail.com"

    # addresses (one per household)
    st = np.array(
        ["Calle", "Cl.", "Carrera", "Cra.", "Kr", "Avenida", "Av.", "Diagonal", "Transversal", "Cll"],
        dtype=STR,
    )
    st_i = pick(rng, n, [22, 10, 20, 10, 4, 6, 5, 6, 5, 3])
    suf = np.array(["", "A", "B", "C", " Bis", "A Bis"], dtype=STR)[pick(rng, n, [70, 12, 8, 3, 4, 3])]
    sep = np.array(["# ", "#", "No. ", "N° ", "No "], dtype=STR)[pick(rng, n, [50, 20, 15, 10, 5])]
    extra_kind = pick(rng, n, [50, 20, 10, 8, 6, 6])
    num, small = rng.integers(101, 1505, n), rng.integers(1, 80, n)
    extra = variants_s(
        extra_kind,
        [
            lambda i: np.full(len(i), "", dtype=STR),
            lambda i: " Apto " + as_str(num[i]),
            lambda i: " Torre " + as_str(small[i] % 8 + 1) + " Apto " + as_str(num[i]),
            lambda i: " Casa " + as_str(small[i]),
            lambda i: np.full(len(i), " Sur", dtype=STR),
            lambda i: " Int. " + as_str(small[i] % 11 + 1),
        ],
    )
    address = (
        st[st_i]
        + " "
        + as_str(rng.integers(1, 180, n))
        + suf
        + " "
        + sep
        + as_str(rng.integers(1, 150, n))
        + "-"
        + zero_pad(rng.integers(1, 99, n), 2)
        + extra
    )
    address[father] = address[son]
    address[sb] = address[sa]

    # student numbers: unique per person within a seed; seeds that differ mod 10
    # use disjoint serial ranges
    v = unique_numbers(rng, n, [(0, 10 * 1_000_000)])
    student_number = (
        "ICE-" + as_str(2016 + v // 1_000_000) + "-" + zero_pad((seed % 10) * 1_000_000 + v % 1_000_000, 7)
    )

    return Persons(
        n=n,
        female=female,
        f1=f1,
        f2=f2,
        s1=s1,
        s2=s2,
        birth=birth,
        city=city,
        has_land=has_land,
        land7=land7,
        mobile=mobile,
        ced=ced,
        ced_len=ced_len,
        email=email,
        email_cap=email_cap,
        address=address,
        program=program,
        role=role,
        n_lead=n_lead,
        student_number=student_number,
        specials=specials,
    )
