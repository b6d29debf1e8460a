"""`generate`: the demo staging frames (students, leads, failures, reference data) with their truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ice_pipeline.dev.demo_data.documents import document_rows, empty_documents
from ice_pipeline.dev.demo_data.draw import pick
from ice_pipeline.dev.demo_data.names import (
    CITIES,
    CITY_T,
    COUNTRIES,
    EVENTS,
    LEAD_SOURCES,
    LOREM,
    NOTES,
    PROGRAM_CODES,
    PROGRAMS,
    SERVICES,
    STATUSES,
    STUDENT_SOURCE_P,
    STUDENT_SOURCES,
    UNKNOWN_EVENTS,
    UNKNOWN_SERVICES,
)
from ice_pipeline.dev.demo_data.persons import Persons, make_persons
from ice_pipeline.dev.demo_data.rates import (
    LEAD_FAILURE_RATE,
    MISSING_ADDRESS,
    MISSING_BIRTH_DATE,
    MISSING_CEDULA_DIRECTORY_STUDENT,
    MISSING_CEDULA_STUDENT,
    MISSING_CITY,
    MISSING_COUNTRY,
    MISSING_EMAIL,
    MISSING_INTEREST_PROGRAM,
    MISSING_NOTES,
    MISSING_PHONE,
    MISSING_SERVICE,
    MISSING_STATUS,
    MISSING_STUDENT_NUMBER,
    MISSING_STUDENT_NUMBER_CSV_ONLY,
    MISSING_STUDENT_PROGRAM,
    P_INTEREST_FILE_PROGRAM,
    P_INTEREST_OWN_PROGRAM,
    P_LEAD_DUPLICATE_IN_FILE,
    P_SERVICE_ALIAS,
    P_SERVICE_OF_PROGRAM,
    P_SERVICE_VISA,
    P_STUDENT_LISTED_TWICE,
    P_UNKNOWN_EVENT,
    P_UNKNOWN_SERVICE,
)
from ice_pipeline.dev.demo_data.values import (
    RowCtx,
    case_variants,
    render_birth,
    render_cedula,
    render_city,
    render_country,
    render_email,
    render_names,
    render_phone,
    render_program,
    render_simple,
)


@dataclass
class DemoData:
    """Staging rows to load plus the ground truth needed to score the pipeline.

    Frames hold staging columns as V3 writes them. Text columns are ``object``
    dtype holding ``str`` or ``None`` (missing -> SQL NULL; never ``''``,
    except ``full_name``, which is NOT NULL and has a few blank bad rows);
    ``reference_data.aliases`` holds lists and ``attributes`` /
    ``lead_failures.raw_data`` hold dicts (``load`` writes text[] / jsonb).

    Truth columns, never loaded: ``person_ref`` (students, leads: the person
    index, per call); for documents ``student_row`` (position in
    ``students``), ``content_kind`` ('pdf' | 'jpeg' written as is;
    'bad_checksum' written but the staged checksum is wrong; 'missing' listed
    but never written; 'outside_root' path escapes the files root, never
    written) and ``content_key`` (equal keys mean identical bytes).
    ``hard_cases`` (kind, person_ref, other_person_ref, detail) lists the
    deliberately hard identity cases and the nasty rows.
    """

    students: pd.DataFrame
    leads: pd.DataFrame
    documents: pd.DataFrame
    reference_data: pd.DataFrame
    lead_failures: pd.DataFrame
    hard_cases: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(
            {
                "kind": pd.Series(dtype=object),
                "person_ref": pd.Series(dtype="int64"),
                "other_person_ref": pd.Series(dtype="Int64"),
                "detail": pd.Series(dtype=object),
            }
        )
    )


def _lead_rows(rng: np.random.Generator, P: Persons) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Persons' lead rows: each lead person appears in 1–3 distinct source files
    (about one row per source), a few twice in the same file."""
    lp = np.flatnonzero(P.role >= 1)
    ns = len(LEAD_SOURCES)
    w = np.array([s[2] for s in LEAD_SOURCES])
    # weighted sampling without replacement (Efraimidis–Spirakis keys)
    keys = rng.random((len(lp), ns)) ** (1.0 / w)
    ranked = np.argsort(-keys, axis=1)
    persons, sources, ordinal = [], [], []
    for j in range(3):
        has = P.n_lead[lp] > j
        persons.append(lp[has])
        sources.append(ranked[has, j])
        ordinal.append(np.full(int(has.sum()), j))
    dup = rng.random(len(lp)) < P_LEAD_DUPLICATE_IN_FILE
    persons.append(lp[dup])
    sources.append(ranked[dup, 0])
    ordinal.append(np.full(int(dup.sum()), 3))
    return np.concatenate(persons), np.concatenate(sources), np.concatenate(ordinal)


def _number_source_rows(rng: np.random.Generator, src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers inside each source file/sheet (header is row 1), in random
    order; returns (order by file then row, source_row)."""
    perm = rng.permutation(len(src))
    order = perm[np.argsort(src[perm], kind="stable")]
    sorted_src = src[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_src)) + 1] if len(src) else np.zeros(0, dtype=np.int64)
    counts = np.diff(np.r_[starts, len(src)])
    rank = np.arange(len(src)) - np.repeat(starts, counts)
    source_row = np.empty(len(src), dtype=np.int64)
    source_row[order] = rank + 2
    return order, source_row


def generate(persons: int, seed: int = 0, documents: bool = True) -> DemoData:
    """Build messy staging rows for ``persons`` people, deterministic for ``seed``.

    Persons (``person_ref`` 0..persons-1, per call) appear as students and/or
    as leads in several source files; identifiers are rendered in the formats
    V3 really captures, with missing and junk values and a few hard identity
    cases (see ``DemoData.hard_cases``). ``documents=False`` skips the
    document rows (benchmarks at 1M persons do not need files).
    """
    if persons < 0:
        raise ValueError("persons must be >= 0")
    seed = int(seed)
    rng = np.random.default_rng([0x1CE5, seed % (2**63)])
    P = make_persons(rng, persons, seed)
    sp = P.specials

    # ---- student rows: one per student person, a few listed twice
    stud_p = np.flatnonzero(P.role <= 1)
    src = pick(rng, len(stud_p), STUDENT_SOURCE_P)
    dup = (rng.random(len(stud_p)) < P_STUDENT_LISTED_TWICE) & (src != 1)
    stud_p = np.r_[stud_p, stud_p[dup]]
    src = np.r_[src, np.where(src[dup] == 0, 1, 0)]
    if persons >= 40:  # the cédula/e-mail case has exactly one student row
        keep = ~np.isin(stud_p, sp["cedula_email"]) | (np.arange(len(stud_p)) < len(stud_p) - int(dup.sum()))
        stud_p, src = stud_p[keep], src[keep]
    order = rng.permutation(len(stud_p))
    stud_p, src = stud_p[order], src[order]
    n_s = len(stud_p)

    # ---- lead rows (+ failed rows, numbered together within each file)
    lead_p, lead_src, lead_ord = _lead_rows(rng, P)
    n_fail = max(3, int(round(len(lead_p) * LEAD_FAILURE_RATE))) if len(lead_p) else 0
    fail_src = pick(rng, n_fail, [s[2] for s in LEAD_SOURCES])
    all_src = np.r_[lead_src, fail_src]
    order, source_row = _number_source_rows(rng, all_src)
    lead_order = order[order < len(lead_p)]
    lead_p, lead_src, lead_ord = lead_p[lead_order], lead_src[lead_order], lead_ord[lead_order]
    lead_row_no = source_row[lead_order]
    fail_row_no = source_row[len(lead_p) :]
    n_l = len(lead_p)

    # ---- shared person columns for all rows at once (students first)
    rows_p = np.r_[stud_p, lead_p]
    r = len(rows_p)
    is_stud = np.arange(r) < n_s
    dir_only = np.r_[src == 2, np.zeros(n_l, dtype=bool)]
    l_src = np.r_[np.full(n_s, -1), lead_src]
    ced_miss_lead = np.array([s[3] for s in LEAD_SOURCES])[np.maximum(l_src, 0)]

    def miss(student: float, lead: float, directory: float) -> np.ndarray:
        return np.where(dir_only, directory, np.where(is_stud, student, lead))

    miss_p = {
        "email": miss(*MISSING_EMAIL),
        "phone": miss(*MISSING_PHONE),
        "cedula": np.where(
            is_stud,
            np.where(dir_only, MISSING_CEDULA_DIRECTORY_STUDENT, MISSING_CEDULA_STUDENT),
            ced_miss_lead,
        ),
        "birth_date": miss(*MISSING_BIRTH_DATE),
        "address": miss(*MISSING_ADDRESS),
        "city": miss(*MISSING_CITY),
        "country": miss(*MISSING_COUNTRY),
    }
    force: dict[str, np.ndarray] = {
        k: np.zeros(r, dtype=np.int8) for k in ("cedula", "email", "phone", "birth_date", "landline")
    }
    plain = np.zeros(r, dtype=bool)

    def rows_of(people: np.ndarray) -> np.ndarray:
        return np.isin(rows_p, people)

    fs = rows_of(np.r_[sp["son"], sp["father"]])
    force["cedula"][fs] = force["birth_date"][fs] = force["landline"][fs] = 1
    force["email"][rows_of(sp["father"])] = -1
    force["email"][rows_of(sp["son"])] = 1
    sib = rows_of(np.r_[sp["sib_a"], sp["sib_b"]])
    force["cedula"][sib] = force["email"][sib] = force["birth_date"][sib] = 1
    nms = rows_of(np.r_[sp["namesake_a"], sp["namesake_b"]])
    force["cedula"][nms] = force["birth_date"][nms] = 1
    plain |= fs | sib | nms
    ce = rows_of(sp["cedula_email"])
    ce_stud = ce & is_stud
    lead_ordinal = np.r_[np.full(n_s, -1), lead_ord]
    ce_l0, ce_l1 = ce & (lead_ordinal == 0), ce & (lead_ordinal == 1)
    force["cedula"][ce_stud] = force["email"][ce_stud] = 1
    force["email"][ce_l0] = 1
    force["cedula"][ce_l0] = force["phone"][ce_l0] = force["birth_date"][ce_l0] = -1
    force["cedula"][ce_l1] = 1
    force["email"][ce_l1] = -1
    plain |= ce

    ctx = RowCtx(p=rows_p, miss=miss_p, force=force, upper_bias=dir_only, plain_name=plain)
    full_name, original_name = render_names(rng, P, ctx)
    cols: dict[str, np.ndarray] = {
        "full_name": full_name,
        "original_name": original_name,
        "email": render_email(rng, P, ctx),
        "phone": render_phone(rng, P, ctx),
        "cedula": render_cedula(rng, P, ctx),
        "birth_date": render_birth(rng, P, ctx),
        "address": render_simple(rng, ctx, "address", P.address[rows_p], [75, 15, 5, 5]),
        "city": render_city(rng, P, ctx),
        "country": render_country(rng, ctx),
    }

    # ---- nasty values on a handful of rows (truth unchanged)
    hard: list[tuple[str, int, int | None, str]] = []
    if persons >= 40:
        texts = ["'; DROP TABLE persons; --", None, "محمد عبد الله الحسن", "דוד כהן לוי"]
        for person, text in zip(sp["nasty"].tolist(), texts, strict=True):
            row = int(np.flatnonzero(rows_p == person)[0])
            name = text if text is not None else str(full_name[row]).strip() + " 😊✈️"
            cols["full_name"][row] = name
            cols["original_name"][row] = name
            hard.append(("nasty_name", person, None, "unusual full_name (SQL text, emoji, RTL script)"))
        specials_all = np.concatenate([v for v in sp.values()])
        ordinary = np.flatnonzero(~np.isin(rows_p, specials_all))
        stud_ordinary, lead_ordinary = ordinary[ordinary < n_s], ordinary[ordinary >= n_s]
        blanks = np.r_[
            rng.choice(stud_ordinary, size=min(2, len(stud_ordinary)), replace=False),
            rng.choice(lead_ordinary, size=min(3, len(lead_ordinary)), replace=False),
        ]
        for row, text in zip(blanks.tolist(), ["", " \t ", "", "   ", ""][: len(blanks)], strict=True):
            cols["full_name"][row] = text
            cols["original_name"][row] = None
            hard.append(("blank_name", int(rows_p[row]), None, "full_name empty or whitespace only"))
        if len(stud_ordinary):
            row = int(rng.choice(stud_ordinary))
            cols["address"][row] = (LOREM * 60)[:10_000]
            hard.append(("long_text", int(rows_p[row]), None, "10,000-character address"))

    # ---- students frame
    sv = {k: v[:n_s] for k, v in cols.items()}
    prog_s = render_program(rng, P.program[stud_p], MISSING_STUDENT_PROGRAM)
    sn = P.student_number[stud_p].astype(object)
    sn[rng.random(n_s) < np.where(src == 1, MISSING_STUDENT_NUMBER_CSV_ONLY, MISSING_STUDENT_NUMBER)] = None
    students = pd.DataFrame(
        {
            **{k: pd.Series(v, dtype=object) for k, v in sv.items()},
            "program": pd.Series(prog_s, dtype=object),
            "student_number": pd.Series(sn, dtype=object),
            "source": pd.Series(np.array(STUDENT_SOURCES, dtype=object)[src], dtype=object),
            "csv_enriched": src != 2,
            "person_ref": stud_p.astype(np.int64),
        }
    )

    # ---- leads frame
    lv = {k: v[n_s:] for k, v in cols.items()}
    bias = np.array([PROGRAM_CODES.index(s[5]) if s[5] else -1 for s in LEAD_SOURCES])
    lb = bias[lead_src]
    u = rng.random(n_l)
    interest = np.where(
        (lb >= 0) & (u < P_INTEREST_FILE_PROGRAM),
        lb,
        np.where(u < P_INTEREST_OWN_PROGRAM, P.program[lead_p], pick(rng, n_l, [p[-1] for p in PROGRAMS])),
    )
    interest_s = render_program(rng, interest, MISSING_INTEREST_PROGRAM)

    prog_to_svc = np.array([next((i for i, s in enumerate(SERVICES) if s[0] == c), 4) for c in PROGRAM_CODES])
    u = rng.random(n_l)
    svc = np.where(
        u < P_SERVICE_OF_PROGRAM,
        prog_to_svc[interest],
        np.where(u < P_SERVICE_VISA, 4, pick(rng, n_l, [1] * len(SERVICES))),
    )
    service = case_variants(rng, svc, [s_[1] for s_ in SERVICES])
    alias_m = rng.random(n_l) < P_SERVICE_ALIAS
    svc_alias = [s[2] for s in SERVICES]
    service[alias_m] = [
        svc_alias[i][j % len(svc_alias[i])]
        for i, j in zip(svc[alias_m].tolist(), rng.integers(0, 10, int(alias_m.sum())).tolist(), strict=True)
    ]
    unk = rng.random(n_l) < P_UNKNOWN_SERVICE
    service[unk] = np.array(UNKNOWN_SERVICES, dtype=object)[
        rng.integers(0, len(UNKNOWN_SERVICES), int(unk.sum()))
    ]
    service[rng.random(n_l) < MISSING_SERVICE] = None

    event = case_variants(rng, rng.integers(0, len(EVENTS), n_l), [e[1] for e in EVENTS])
    unk = rng.random(n_l) < P_UNKNOWN_EVENT
    event[unk] = np.array(UNKNOWN_EVENTS, dtype=object)[rng.integers(0, len(UNKNOWN_EVENTS), int(unk.sum()))]
    event[rng.random(n_l) >= np.array([s[4] for s in LEAD_SOURCES])[lead_src]] = None

    status = np.array([s for s, _ in STATUSES], dtype=object)[pick(rng, n_l, [w for _, w in STATUSES])]
    status[rng.random(n_l) < MISSING_STATUS] = None
    notes = np.array(NOTES, dtype=object)[rng.integers(0, len(NOTES), n_l)]
    notes[rng.random(n_l) < MISSING_NOTES] = None
    if persons >= 40 and n_l:
        row = int(rng.integers(0, n_l))
        notes[row] = ("Notas de seguimiento: " + LOREM * 60)[:10_000]
        hard.append(("long_text", int(lead_p[row]), None, "10,000-character notes"))

    src_files = np.array([s[0] for s in LEAD_SOURCES], dtype=object)
    src_sheets = np.array([s[1] for s in LEAD_SOURCES], dtype=object)
    leads = pd.DataFrame(
        {
            **{k: pd.Series(v, dtype=object) for k, v in lv.items()},
            "interest_program": pd.Series(interest_s, dtype=object),
            "service": pd.Series(service, dtype=object),
            "event": pd.Series(event, dtype=object),
            "status": pd.Series(status, dtype=object),
            "notes": pd.Series(notes, dtype=object),
            "source_file": pd.Series(src_files[lead_src], dtype=object),
            "source_sheet": pd.Series(src_sheets[lead_src], dtype=object),
            "source_row": pd.array(lead_row_no, dtype="Int64"),
            "person_ref": lead_p.astype(np.int64),
        }
    )

    failures = _lead_failures(rng, cols, fail_src, fail_row_no)

    # ---- hard-case truth
    for kind, a, b, detail in [
        (
            "father_son_landline",
            sp["son"],
            sp["father"],
            "same full name, shared landline and address, different cédulas: two persons",
        ),
        (
            "siblings_shared_email",
            sp["sib_a"],
            sp["sib_b"],
            "siblings share a parent's e-mail, different cédulas: identity conflict, two persons",
        ),
        (
            "namesakes",
            sp["namesake_a"],
            sp["namesake_b"],
            "same full name, different cédulas and birth dates: two persons",
        ),
    ]:
        hard.extend((kind, int(x), int(y), detail) for x, y in zip(a.tolist(), b.tolist(), strict=True))
    hard.extend(
        (
            "cedula_then_email",
            int(x),
            None,
            "student row has cédula+e-mail; one lead row only the e-mail, another only the cédula: one person",
        )
        for x in sp.get("cedula_email", np.zeros(0, dtype=np.int64)).tolist()
    )
    hard_cases = pd.DataFrame(
        {
            "kind": pd.Series([h[0] for h in hard], dtype=object),
            "person_ref": pd.Series([h[1] for h in hard], dtype="int64"),
            "other_person_ref": pd.array([h[2] for h in hard], dtype="Int64"),
            "detail": pd.Series([h[3] for h in hard], dtype=object),
        }
    )

    docs = document_rows(rng, students, seed) if documents else empty_documents()
    return DemoData(
        students=students,
        leads=leads,
        documents=docs,
        reference_data=_reference_data(),
        lead_failures=failures,
        hard_cases=hard_cases,
    )


def _lead_failures(
    rng: np.random.Generator, cols: dict[str, np.ndarray], src: np.ndarray, row_no: np.ndarray
) -> pd.DataFrame:
    """Rows V3 could not parse, as the raw JSON it kept, with the error text."""
    n = len(src)
    total = len(cols["full_name"])
    donors = rng.integers(0, total, n) if total else np.zeros(n, dtype=np.int64)
    kinds = rng.integers(0, 6, n)
    donor = {
        c: [cols[c][d] if total else None for d in donors.tolist()]
        for c in ("full_name", "email", "phone", "cedula")
    }
    raws, errors = [], []
    for i in range(n):
        row = int(row_no[i])
        name, email, phone, cedula = (donor[c][i] for c in ("full_name", "email", "phone", "cedula"))
        k = int(kinds[i])
        if k == 0:
            raw = {"Nombre completo": None, "Correo": email, "Celular": phone, "Programa": "Au Pair"}
            err = "missing required field: full_name"
        elif k == 1:
            parts = [str(name or ""), str(phone or ""), str(email or "")]
            raw = {"_line": ";".join(parts), "_columns": 3}
            err = f"row {row}: expected 12 columns, got 3"
        elif k == 2:
            raw = {"Nombre completo": name, "Fecha de nacimiento": "45123.5", "Cédula": cedula}
            err = "could not parse Excel serial date '45123.5' in column 'Fecha de nacimiento'"
        elif k == 3:
            raw = {"Nombre completo": "Mar\ufffda G\ufffdmez", "Correo": email, "Ciudad": "Bogot\ufffd"}
            err = 'invalid byte sequence for encoding "UTF8": 0xed 0x61'
        elif k == 4:
            raw = {"Nombre completo": "#REF!", "Correo": "#N/A", "Celular": "=+57 300 000 0000"}
            err = "formula error value in row"
        else:
            raw = {"Nombre completo": "", "Correo": "", "Celular": "", "Cédula": ""}
            err = "empty row"
        raws.append(raw)
        errors.append(err)
    return pd.DataFrame(
        {
            "source_file": pd.Series(np.array([s[0] for s in LEAD_SOURCES], dtype=object)[src], dtype=object),
            "source_sheet": pd.Series(
                np.array([s[1] for s in LEAD_SOURCES], dtype=object)[src], dtype=object
            ),
            "source_row": pd.array(row_no, dtype="Int64"),
            "raw_data": pd.Series(raws, dtype=object),
            "error": pd.Series(errors, dtype=object),
        }
    )


def _reference_data() -> pd.DataFrame:
    """The catalogue files V3 staged (same for every seed, so re-loading adds nothing)."""
    rows: list[tuple[str, str, str, str, list[str], dict[str, Any]]] = []
    for code, label, aliases, _, _ in PROGRAMS:
        rows.append(("programas.csv", "program", code, label, list(aliases), {}))
    for code, label, aliases in SERVICES:
        rows.append(("servicios.csv", "service", code, label, list(aliases), {}))
    for code, label, date, city, service in EVENTS:
        rows.append(
            (
                "eventos_2023_2024.xlsx",
                "event",
                code,
                label,
                [],
                {"date": date, "city": city, "service": service},
            )
        )
    for i, (label, dep, dane, area, _alias, _) in enumerate(CITIES):
        variants = [str(v) for v in CITY_T[i].tolist()]
        aliases = sorted({v.strip() for v in variants if v.strip() != label})
        rows.append(
            (
                "ciudades_colombia.csv",
                "city",
                dane,
                label,
                aliases,
                {"department": dep, "country": "CO", "landline_prefix": f"60{area}"},
            )
        )
    for code, label, aliases, calling in COUNTRIES:
        rows.append(("paises.csv", "country", code, label, list(aliases), {"calling_code": calling}))
    return pd.DataFrame(
        {
            "source_file": pd.Series([r[0] for r in rows], dtype=object),
            "category": pd.Series([r[1] for r in rows], dtype=object),
            "code": pd.Series([r[2] for r in rows], dtype=object),
            "label": pd.Series([r[3] for r in rows], dtype=object),
            "aliases": pd.Series([r[4] for r in rows], dtype=object),
            "attributes": pd.Series([r[5] for r in rows], dtype=object),
        }
    )
