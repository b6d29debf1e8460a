"""Hard identity data with ground truth: placeholders, family e-mails, twins, namesakes, office phones.

Independent of the demo generator on purpose (its own name pools, its own rates): the identity
rules are measured on data they were not written against. Used by the precision tests
(`ice_pipeline_tests/test_false_merges.py`) and the quality benchmark (`benchmarks/identity_quality.py`).
Every row carries `truth`, the id of the person it really is.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

GIVEN_F = [
    "Luz",
    "Diana",
    "Paola",
    "Marcela",
    "Liliana",
    "Yolanda",
    "Adriana",
    "Natalia",
    "Valentina",
    "Camila",
    "Isabella",
    "Mariana",
    "Daniela",
    "Juliana",
    "Sofía",
    "Laura",
    "Catalina",
    "Andrea",
    "Gabriela",
    "Ximena",
]
GIVEN_M = [
    "Andrés",
    "Felipe",
    "Santiago",
    "Sebastián",
    "Alejandro",
    "Julián",
    "Mauricio",
    "Hernán",
    "Óscar",
    "Fabián",
    "Camilo",
    "Esteban",
    "Nicolás",
    "Mateo",
    "Samuel",
    "Tomás",
    "Daniel",
    "Gabriel",
    "Jorge",
    "Iván",
]
SURNAMES = [
    "Restrepo",
    "Ospina",
    "Cárdenas",
    "Quintero",
    "Betancur",
    "Zuluaga",
    "Arango",
    "Echeverri",
    "Londoño",
    "Montoya",
    "Salazar",
    "Valencia",
    "Giraldo",
    "Cifuentes",
    "Arbeláez",
    "Vélez",
    "Bedoya",
    "Uribe",
    "Patiño",
    "Villegas",
    "Henao",
    "Orozco",
    "Agudelo",
    "Cardona",
    "Tobón",
    "Jaramillo",
    "Posada",
    "Mejía",
]
DOMAINS = ["gmail.com", "hotmail.com", "outlook.com", "yahoo.es", "une.net.co"]
PLACEHOLDER_EMAILS = [
    "sincorreo@gmail.com",
    "notiene@hotmail.com",
    "ninguno@gmail.com",
    "no@no.com",
    "noaplica@gmail.com",
    "sin.correo@yahoo.com",
    "xxx@xxx.com",
]
PLACEHOLDER_CEDULAS = ["1234567890", "0000000000", "1111111111", "123456789", "9999999999"]
OFFICE_PHONES = ["6014445566", "3157778899"]  # the agency's lines, typed on many forms
PLACEHOLDER_PHONES = ["3000000000", "3111111111"]


@dataclass
class Person:
    truth: int
    given: list[str]
    surnames: list[str]
    birth_date: str | None
    cedula: str | None
    email: str | None
    mobile: str | None


@dataclass
class Row:
    table: str  # staging_student | staging_lead
    truth: int
    fields: dict[str, object] = field(default_factory=dict)


class World:
    """Unique identifiers drawn without collisions, for one seed."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()
        self.next_truth = 0

    def unique(self, make) -> str:
        while True:
            value = make()
            if value not in self.used:
                self.used.add(value)
                return value

    def cedula(self) -> str:
        rng = self.rng
        return self.unique(lambda: str(rng.randint(10_000_000, 1_099_999_999)))

    def mobile(self) -> str:
        rng = self.rng
        return self.unique(
            lambda: f"3{rng.choice(['00', '01', '10', '12', '15', '20'])}{rng.randint(1_000_000, 9_999_999)}"
        )

    def birth_date(self, young: bool = False) -> str:
        year = self.rng.randint(2000, 2008) if young else self.rng.randint(1960, 1999)
        return f"{year}-{self.rng.randint(1, 12):02d}-{self.rng.randint(1, 28):02d}"

    def email(self, given: str, surname: str) -> str:
        fold = str.maketrans("áéíóúÁÉÍÓÚñÑ", "aeiouAEIOUnN")
        local = f"{given}.{surname}".translate(fold).lower()
        rng = self.rng
        return self.unique(lambda: f"{local}{rng.randint(1, 9999)}@{rng.choice(DOMAINS)}")

    def person(
        self,
        *,
        given: list[str] | None = None,
        surnames: list[str] | None = None,
        birth_date: str | None | bool = True,
        cedula: str | None | bool = True,
        email: str | None | bool = True,
        mobile: str | None | bool = True,
        young: bool = False,
    ) -> Person:
        rng = self.rng
        pool = GIVEN_F if rng.random() < 0.5 else GIVEN_M
        given = given or rng.sample(pool, rng.choice([1, 2]))
        surnames = surnames or rng.sample(SURNAMES, 2)
        self.next_truth += 1
        return Person(
            truth=self.next_truth,
            given=given,
            surnames=surnames,
            birth_date=self.birth_date(young) if birth_date is True else birth_date or None,
            cedula=self.cedula() if cedula is True else cedula or None,
            email=self.email(given[0], surnames[0]) if email is True else email or None,
            mobile=self.mobile() if mobile is True else mobile or None,
        )


def _name(rng: random.Random, p: Person) -> str:
    """How a form captured the name: case, accents, a dropped second surname, surnames first."""
    surnames = p.surnames[:1] if len(p.surnames) > 1 and rng.random() < 0.15 else p.surnames
    parts = [*surnames, *p.given] if rng.random() < 0.1 else [*p.given, *surnames]
    text = " ".join(parts)
    style = rng.random()
    if style < 0.3:
        text = text.upper()
    elif style < 0.45:
        text = text.translate(str.maketrans("áéíóúÁÉÍÓÚñÑ", "aeiouAEIOUnN"))
    return text


def _date(rng: random.Random, iso: str) -> str:
    y, m, d = iso.split("-")
    return rng.choice([iso, f"{d}/{m}/{y}", f"{d}-{m}-{y}"])


def rows_of(rng: random.Random, p: Person, n: int, *, keep: float = 0.75) -> list[Row]:
    """n rows of one person, each with a random part of what the person has (the name always)."""
    out = []
    for i in range(n):
        table = "staging_student" if i == 0 and rng.random() < 0.4 else "staging_lead"
        fields: dict[str, object] = {"full_name": _name(rng, p)}
        if p.email and rng.random() < keep:
            fields["email"] = p.email.upper() if rng.random() < 0.2 else p.email
        if p.cedula and rng.random() < keep:
            fields["cedula"] = p.cedula
        if p.mobile and rng.random() < keep:
            fields["phone"] = p.mobile
        if p.birth_date and rng.random() < keep:
            fields["birth_date"] = _date(rng, p.birth_date)
        out.append(Row(table, p.truth, fields))
    return out


def hard_rows(seed: int, households: int = 40) -> list[Row]:
    """Rows of `households` groups of people, each group one hard case (or a plain person)."""
    rng = random.Random(seed)
    world = World(rng)
    rows: list[Row] = []
    for _ in range(households):
        case = rng.random()
        if case < 0.25:  # a plain person, one to three sightings
            p = world.person()
            rows += rows_of(rng, p, rng.randint(1, 3))
        elif case < 0.40:  # people without e-mail or document: placeholders typed instead
            for _ in range(rng.randint(2, 4)):
                p = world.person(
                    email=rng.choice(PLACEHOLDER_EMAILS),
                    cedula=rng.choice(PLACEHOLDER_CEDULAS) if rng.random() < 0.5 else True,
                    mobile=rng.choice(PLACEHOLDER_PHONES) if rng.random() < 0.3 else True,
                )
                rows += rows_of(rng, p, rng.randint(1, 2), keep=0.9)
        elif case < 0.60:  # a family: the children registered with a parent's e-mail (twins sometimes)
            parent = world.person()
            rows += rows_of(rng, parent, rng.randint(1, 2))
            twins = rng.random() < 0.3
            shared_bd = world.birth_date(young=True)
            taken = set(parent.given)
            for _ in range(rng.randint(1, 3)):
                pool = [g for g in GIVEN_F + GIVEN_M if g not in taken]
                given = [rng.choice(pool)]
                taken.update(given)
                child = world.person(
                    given=given,
                    surnames=parent.surnames,
                    email=parent.email,
                    birth_date=shared_bd if twins else world.birth_date(young=True),
                    cedula=rng.random() < 0.5,
                    mobile=rng.random() < 0.5,
                )
                rows += rows_of(rng, child, rng.randint(1, 2))
        elif case < 0.80:  # namesakes: the same full name, different people
            a = world.person()
            b = world.person(
                given=a.given,
                surnames=a.surnames,
                email=rng.random() < 0.5,
                birth_date=rng.random() < 0.7,
                cedula=rng.random() < 0.6,
            )
            rows += rows_of(rng, a, rng.randint(1, 3)) + rows_of(rng, b, rng.randint(1, 3))
        else:  # forms filled at the office: its phone instead of the person's
            for _ in range(rng.randint(2, 4)):
                p = world.person(
                    mobile=rng.choice(OFFICE_PHONES),
                    email=rng.random() < 0.5,
                    birth_date=rng.random() < 0.6,
                    cedula=rng.random() < 0.5,
                )
                rows += rows_of(rng, p, rng.randint(1, 2))
    rng.shuffle(rows)
    return rows


def false_merges(person_of_row: dict[int, str], truth_of_row: dict[int, int]) -> dict[str, set[int]]:
    """Persons holding rows of more than one true person: {person id: the truths it holds}."""
    held: dict[str, set[int]] = {}
    for row, person in person_of_row.items():
        held.setdefault(person, set()).add(truth_of_row[row])
    return {person: truths for person, truths in held.items() if len(truths) > 1}


def pair_recall(person_of_row: dict[int, str], truth_of_row: dict[int, int]) -> tuple[int, int]:
    """(pairs of rows of one true person that ended in one person, all such pairs among linked rows)."""
    by_truth: dict[int, list[str]] = {}
    for row, truth in truth_of_row.items():
        if row in person_of_row:
            by_truth.setdefault(truth, []).append(person_of_row[row])
    found = total = 0
    for persons in by_truth.values():
        n = len(persons)
        total += n * (n - 1) // 2
        counts: dict[str, int] = {}
        for p in persons:
            counts[p] = counts.get(p, 0) + 1
        found += sum(c * (c - 1) // 2 for c in counts.values())
    return found, total
