"""Rendering person fields into the messy values V3 really captures.

Each `render_*` turns a person's true value into one of the formats people
type (cédulas dotted or prefixed, phones in every local format, e-mails in
mixed case, dates in three orders), missing or junk at the rates of `rates.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ice_pipeline.dev.demo_data.draw import AT, STR, as_str, nulls, pick, variants_s, zero_pad
from ice_pipeline.dev.demo_data.names import (
    CITY_AREA,
    CITY_T,
    CITY_VARIANT_P,
    COUNTRY_VARIANTS,
    GIVEN_T,
    IMPOSSIBLE_DATES,
    JUNK_CEDULAS,
    PROGRAMS,
    SUR_T,
)
from ice_pipeline.dev.demo_data.persons import EPOCH, Persons
from ice_pipeline.dev.demo_data.rates import (
    P_BAD_EMAIL,
    P_DROP_SECOND_GIVEN_NAME,
    P_DROP_SECOND_SURNAME,
    P_FULL_NAME_TIDIED,
    P_IMPOSSIBLE_BIRTH_DATE,
    P_JUNK_CEDULA,
    P_LANDLINE_GIVEN,
    P_NO_ORIGINAL_NAME,
    P_SURNAME_FIRST,
    P_SURNAME_FIRST_UPPER,
)


@dataclass
class RowCtx:
    """Per-row knobs: who the row is, how likely each field is missing, and
    forced presence (1) / absence (-1) for the hard cases."""

    p: np.ndarray
    miss: dict[str, np.ndarray]
    force: dict[str, np.ndarray]
    upper_bias: np.ndarray  # directory listings are mostly UPPER CASE
    plain_name: np.ndarray  # hard cases: full name in natural order, nothing dropped


def _present(rng: np.random.Generator, ctx: RowCtx, name: str) -> np.ndarray:
    r = len(ctx.p)
    pres = rng.random(r) >= ctx.miss[name]
    f = ctx.force.get(name)
    if f is not None:
        pres = np.where(f == 1, True, np.where(f == -1, False, pres))
    return pres


def _forced(ctx: RowCtx, name: str) -> np.ndarray:
    f = ctx.force.get(name)
    return np.zeros(len(ctx.p), dtype=bool) if f is None else f == 1


def variants(f: np.ndarray, builders: list[Callable[[np.ndarray], np.ndarray]]) -> np.ndarray:
    """Object array whose row i is ``builders[f[i]]`` evaluated only on the rows
    that chose it (np.select would build every variant for every row)."""
    out = np.empty(len(f), dtype=object)
    for k, build in enumerate(builders):
        idx = np.flatnonzero(f == k)
        if len(idx):
            out[idx] = np.asarray(build(idx)).astype(object)
    return out


def render_names(rng: np.random.Generator, P: Persons, ctx: RowCtx) -> tuple[np.ndarray, np.ndarray]:
    p, r = ctx.p, len(ctx.p)
    mode = np.where(ctx.upper_bias, pick(rng, r, [8, 8, 20, 55, 2, 7]), pick(rng, r, [40, 25, 8, 17, 3, 7]))
    plain = ctx.plain_name
    given = GIVEN_T[P.f1[p], mode]
    has2 = np.flatnonzero((P.f2[p] >= 0) & ((rng.random(r) > P_DROP_SECOND_GIVEN_NAME) | plain))
    given[has2] = given[has2] + " " + GIVEN_T[P.f2[p[has2]], mode[has2]]
    sur = SUR_T[P.s1[p], mode]
    has_s2 = np.flatnonzero((rng.random(r) > P_DROP_SECOND_SURNAME) | plain)
    sur[has_s2] = sur[has_s2] + " " + SUR_T[P.s2[p[has_s2]], mode[has_s2]]
    upper = (mode == 2) | (mode == 3)
    sur_first = (rng.random(r) < np.where(upper, P_SURNAME_FIRST_UPPER, P_SURNAME_FIRST)) & ~plain
    clean = variants_s(
        sur_first.astype(np.int8), [lambda i: given[i] + " " + sur[i], lambda i: sur[i] + " " + given[i]]
    )
    spacing = np.where(plain, 0, pick(rng, r, [80, 8, 6, 4, 2]))
    raw = variants(
        spacing,
        [
            lambda i: clean[i],
            lambda i: np.strings.replace(clean[i], " ", "  ", 1),  # double space
            lambda i: " " + clean[i] + "  ",  # stray spaces around
            lambda i: clean[i] + " ",  # trailing space
            lambda i: np.strings.replace(clean[i], " ", "\u00a0", 1),  # non-breaking space
        ],
    )
    # V3 sometimes tidied the spacing of full_name; original_name keeps the capture
    tidy = (rng.random(r) < P_FULL_NAME_TIDIED) & (spacing != 4)
    full = raw.copy()
    full[tidy] = clean[tidy].astype(object)
    original = raw
    original[rng.random(r) < P_NO_ORIGINAL_NAME] = None
    return full, original


def _dotted(c: np.ndarray) -> np.ndarray:
    g3, g2, g1, g0 = c % 1000, (c // 1000) % 1000, (c // 1_000_000) % 1000, c // 1_000_000_000
    out = np.empty(len(c), dtype=STR)
    for cond, build in (
        (
            c >= 1_000_000_000,
            lambda m: (
                as_str(g0[m]) + "." + zero_pad(g1[m], 3) + "." + zero_pad(g2[m], 3) + "." + zero_pad(g3[m], 3)
            ),
        ),
        (
            (c >= 1_000_000) & (c < 1_000_000_000),
            lambda m: as_str(g1[m]) + "." + zero_pad(g2[m], 3) + "." + zero_pad(g3[m], 3),
        ),
        (c < 1_000_000, lambda m: as_str(g2[m]) + "." + zero_pad(g3[m], 3)),
    ):
        if cond.any():
            out[cond] = build(cond)
    return out


def render_cedula(rng: np.random.Generator, P: Persons, ctx: RowCtx) -> np.ndarray:
    p, r = ctx.p, len(ctx.p)
    out = nulls(r)
    pres = _present(rng, ctx, "cedula")
    junk = pres & (rng.random(r) < P_JUNK_CEDULA) & ~_forced(ctx, "cedula")
    fmt = pick(rng, r, [48, 20, 9, 6, 5, 3, 3, 2, 2, 2])
    ok = pres & ~junk
    c = P.ced[p[ok]]
    out[ok] = variants(
        fmt[ok],
        [
            lambda i: as_str(c[i]),
            lambda i: _dotted(c[i]),
            lambda i: "CC " + as_str(c[i]),
            lambda i: "C.C. " + _dotted(c[i]),
            lambda i: as_str(c[i]) + " ",
            lambda i: "cc " + as_str(c[i]),
            lambda i: " " + as_str(c[i]),
            lambda i: "C.C " + as_str(c[i]),
            lambda i: np.strings.replace(_dotted(c[i]), ".", ","),
            lambda i: "CC. " + _dotted(c[i]),
        ],
    )
    if junk.any():
        out[junk] = np.array(JUNK_CEDULAS, dtype=object)[rng.integers(0, len(JUNK_CEDULAS), int(junk.sum()))]
    return out


def render_email(rng: np.random.Generator, P: Persons, ctx: RowCtx) -> np.ndarray:
    p, r = ctx.p, len(ctx.p)
    out = nulls(r)
    pres = _present(rng, ctx, "email")
    bad = pres & (rng.random(r) < P_BAD_EMAIL) & ~_forced(ctx, "email")
    ok = pres & ~bad
    e, ec = P.email[p[ok]], P.email_cap[p[ok]]

    def cap_local_lower_domain(i: np.ndarray) -> np.ndarray:
        parts = np.strings.partition(ec[i], AT)
        return parts[0] + "@" + np.strings.lower(parts[2])

    out[ok] = variants(
        pick(rng, r, [55, 10, 8, 7, 8, 7, 5])[ok],
        [
            lambda i: e[i],  # maria.rodriguez123@gmail.com
            cap_local_lower_domain,  # Maria.Rodriguez123@gmail.com
            lambda i: ec[i],  # Maria.Rodriguez123@Gmail.COM
            lambda i: np.strings.upper(e[i]),  # MARIA.RODRIGUEZ123@GMAIL.COM
            lambda i: " " + e[i] + " ",
            lambda i: " " + ec[i] + " ",  # ' Maria.Rodriguez123@Gmail.COM '
            lambda i: e[i] + " ",
        ],
    )
    if bad.any():
        eb = P.email[p[bad]]
        out[bad] = variants(
            rng.integers(0, 4, len(eb)),
            [
                lambda i: np.strings.replace(eb[i], "@", ""),
                lambda i: np.strings.replace(eb[i], "@", " "),
                lambda i: np.strings.replace(eb[i], "@", " arroba "),
                lambda i: np.full(len(i), "no tiene correo", dtype=object),
            ],
        )
    return out


def render_phone(rng: np.random.Generator, P: Persons, ctx: RowCtx) -> np.ndarray:
    p, r = ctx.p, len(ctx.p)
    out = nulls(r)
    pres = _present(rng, ctx, "phone") | _forced(ctx, "landline")
    land = pres & P.has_land[p] & ((rng.random(r) < P_LANDLINE_GIVEN) | _forced(ctx, "landline"))
    mob = pres & ~land
    m = P.mobile[p[mob]]
    a, b, c = as_str(m // 10_000_000), zero_pad((m // 10_000) % 1000, 3), zero_pad(m % 10_000, 4)
    out[mob] = variants(
        pick(rng, r, [35, 15, 12, 5, 8, 5, 10, 10])[mob],
        [
            lambda i: as_str(m[i]),  # 3001234567
            lambda i: a[i] + " " + b[i] + " " + c[i],  # 300 123 4567
            lambda i: "+57 " + a[i] + " " + b[i] + " " + c[i],  # +57 300 123 4567
            lambda i: "(+57) " + a[i] + "-" + b[i] + "-" + c[i],  # (+57) 300-123-4567
            lambda i: "57" + as_str(m[i]),  # 573001234567
            lambda i: a[i] + "." + b[i] + "." + c[i],  # 300.123.4567
            lambda i: "+57" + as_str(m[i]),  # +573001234567
            lambda i: a[i] + "-" + b[i] + "-" + c[i],  # 300-123-4567
        ],
    )
    pl = p[land]
    area = CITY_AREA[P.city[pl]]
    n7 = P.land7[pl]
    b7, b3, b4 = as_str(n7), as_str(n7 // 10_000), zero_pad(n7 % 10_000, 4)
    out[land] = variants(
        pick(rng, r, [30, 15, 20, 15, 10, 10])[land],
        [
            lambda i: "60" + area[i] + " " + b7[i],  # 601 2345678
            lambda i: "(" + area[i] + ") " + b3[i] + " " + b4[i],  # (1) 234 5678
            lambda i: b7[i],  # 2345678
            lambda i: "+57 60" + area[i] + " " + b7[i],  # +57 604 4445566
            lambda i: "60" + area[i] + b7[i],  # 6012345678
            lambda i: "(60" + area[i] + ") " + b3[i] + " " + b4[i],  # (601) 234 5678
        ],
    )
    return out


def render_birth(rng: np.random.Generator, P: Persons, ctx: RowCtx) -> np.ndarray:
    p, r = ctx.p, len(ctx.p)
    out = nulls(r)
    pres = _present(rng, ctx, "birth_date")
    bad = pres & (rng.random(r) < P_IMPOSSIBLE_BIRTH_DATE) & ~_forced(ctx, "birth_date")
    ok = pres & ~bad
    d = EPOCH + P.birth[p[ok]].astype("timedelta64[D]")
    month_start = d.astype("datetime64[M]")
    y = d.astype("datetime64[Y]").astype(np.int64) + 1970
    mo = month_start.astype(np.int64) % 12 + 1
    da = (d - month_start.astype("datetime64[D]")).astype(np.int64) + 1
    ys, ms, ds = as_str(y), zero_pad(mo, 2), zero_pad(da, 2)
    out[ok] = variants(
        pick(rng, r, [40, 36, 19, 5])[ok],
        [
            lambda i: ys[i] + "-" + ms[i] + "-" + ds[i],  # 1995-03-15
            lambda i: ds[i] + "/" + ms[i] + "/" + ys[i],  # 15/03/1995
            lambda i: ds[i] + "-" + ms[i] + "-" + ys[i],  # 15-03-1995
            lambda i: as_str(da[i]) + "/" + as_str(mo[i]) + "/" + ys[i],  # 5/3/1995
        ],
    )
    if bad.any():
        yb = (EPOCH + P.birth[p[bad]].astype("timedelta64[D]")).astype("datetime64[Y]").astype(
            np.int64
        ) + 1970
        tpl = rng.integers(0, len(IMPOSSIBLE_DATES), len(yb))
        out[bad] = [IMPOSSIBLE_DATES[t].format(y=yy) for t, yy in zip(tpl.tolist(), yb.tolist(), strict=True)]
    return out


def render_simple(
    rng: np.random.Generator, ctx: RowCtx, name: str, values: np.ndarray, variant_p: list[float]
) -> np.ndarray:
    """Address-like free text: as captured, UPPER, lower or with extra spaces."""
    r = len(ctx.p)
    out = nulls(r)
    pres = _present(rng, ctx, name)
    v = values[pres]
    out[pres] = variants(
        pick(rng, r, variant_p)[pres],
        [
            lambda i: v[i],
            lambda i: np.strings.upper(v[i]),
            lambda i: np.strings.lower(v[i]),
            lambda i: np.strings.replace(v[i], " ", "  ", 1) + " ",
        ],
    )
    return out


def render_city(rng: np.random.Generator, P: Persons, ctx: RowCtx) -> np.ndarray:
    out = nulls(len(ctx.p))
    pres = _present(rng, ctx, "city")
    var = pick(rng, len(ctx.p), CITY_VARIANT_P)
    out[pres] = CITY_T[P.city[ctx.p[pres]], var[pres]].astype(object)
    return out


def render_country(rng: np.random.Generator, ctx: RowCtx) -> np.ndarray:
    out = nulls(len(ctx.p))
    pres = _present(rng, ctx, "country")
    vals = np.array([v for v, _ in COUNTRY_VARIANTS], dtype=object)
    out[pres] = vals[pick(rng, int(pres.sum()), [w for _, w in COUNTRY_VARIANTS])]
    return out


def render_program(rng: np.random.Generator, prog: np.ndarray, miss: float) -> np.ndarray:
    """Program names as people write them: label, known aliases, a few unknown."""
    r = len(prog)
    out = nulls(r)
    pres = rng.random(r) >= miss
    for i, (_, label, aliases, unknown, _) in enumerate(PROGRAMS):
        m = pres & (prog == i)
        cnt = int(m.sum())
        if not cnt:
            continue
        choices = [label, label.upper(), f" {label} "] + aliases + unknown
        weights = [30, 5, 3] + [55 / len(aliases)] * len(aliases) + [7 / len(unknown)] * len(unknown)
        out[m] = np.array(choices, dtype=object)[pick(rng, cnt, weights)]
    return out


def case_variants(rng: np.random.Generator, which: np.ndarray, labels: list[str]) -> np.ndarray:
    """Reference labels with case/spacing variants (`AU PAIR`, `au pair`, `Au  Pair `)."""
    table = np.array(
        [[s, s.upper(), s.lower(), s.replace(" ", "  ", 1) + " ", " " + s] for s in labels], dtype=object
    )
    return table[which, pick(rng, len(which), [55, 15, 10, 10, 10])]
