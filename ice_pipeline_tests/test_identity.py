"""Identity resolution and survivorship on small hand-made frames (DESIGN §4).

Pure: the nodes are built exactly as `resolved_persons` builds them
(`prepare_person_rows` for staging rows, `existing_nodes` for production
persons), then `resolve_persons` and `plan_persons` run on them.
"""

from __future__ import annotations

import random

import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ice_pipeline.logic import persons as lp
from ice_pipeline.logic.identity import EMAIL_TAKEN
from ice_pipeline.logic.people import prepare_person_rows
from ice_pipeline.logic.survivorship import union_of_tokens

RAW_COLUMNS = [
    "full_name",
    "original_name",
    "email",
    "phone",
    "cedula",
    "birth_date",
    "address",
    "city",
    "country",
]
STORED_COLUMNS = [
    "person_id",
    "full_name",
    "email",
    "phone",
    "cedula",
    "birth_date",
    "address",
    "city",
    "country",
    "data_source",
    "original_name",
    "csv_enriched",
    "student_number",
]

P1 = "00000000-0000-4000-8000-000000000001"
P2 = "00000000-0000-4000-8000-000000000002"
P3 = "00000000-0000-4000-8000-000000000003"


def build_nodes(existing: list[dict], staging: list[dict]) -> pd.DataFrame:
    """Existing persons first (as read from production: text columns), then staging rows in the given order."""
    stored = pd.DataFrame([{c: e.get(c) for c in STORED_COLUMNS} for e in existing], columns=STORED_COLUMNS)
    stored = stored.astype("string")
    stored["csv_enriched"] = stored["csv_enriched"].fillna("f")
    ex_nodes = lp.existing_nodes(stored.reset_index(drop=True), None)
    raw = pd.DataFrame([{c: s.get(c) for c in RAW_COLUMNS} for s in staging], columns=RAW_COLUMNS).astype(
        "string"
    )
    # The given order is the arrival order.
    batch = prepare_person_rows(raw).assign(
        staging_table=[s.get("table", "staging_lead") for s in staging],
        staging_id=[int(s["id"]) for s in staging],
        source_kind=[s.get("source_kind", "CSV") for s in staging],
        student_number=[s.get("student_number") for s in staging],
        updated_at=[f"2026-01-01 00:00:{i // 1000:02d}.{i % 1000:03d}+00" for i in range(len(staging))],
    )
    linked = pd.DataFrame(
        {
            "staging_table": batch["staging_table"],
            "staging_id": batch["staging_id"],
            "linked_person_id": [s.get("linked") for s in staging],
        }
    ).dropna()
    same_row = pd.DataFrame(columns=["staging_table", "staging_id", "source_row_person_id"])
    st_nodes = lp.staging_nodes(batch, linked, same_row)
    return lp.order_nodes(ex_nodes, st_nodes.iloc[0:0], st_nodes)


NO_DECISIONS = pd.DataFrame(columns=["staging_table", "staging_id", "decided_person_id", "decided_new"])


class Outcome:
    """The resolution of one frame, by staging id."""

    def __init__(self, existing: list[dict], staging: list[dict]):
        self.nodes = build_nodes(existing, staging)
        self.planned = lp.plan_resolution(self.nodes, NO_DECISIONS, set(), {})
        self.res = self.planned.assignment
        self.plan = self.planned.plan
        assignment = self.plan.assignment
        self.person = dict(zip(assignment["staging_id"].astype(int), assignment["person_id"], strict=True))
        self.matched_by = dict(
            zip(assignment["staging_id"].astype(int), assignment["matched_by"], strict=True)
        )
        staged = ~self.nodes["is_existing"].to_numpy()
        ids = self.nodes["staging_id"].to_numpy()
        self.review = {
            int(ids[i]): (
                self.res.review_reason[i],
                self.plan.person_of_anchor.get(int(self.res.review_candidate[i])),
            )
            for i in range(len(ids))
            if staged[i] and self.res.in_review[i]
        }

    def same(self, *staging_ids: int) -> bool:
        return len({self.person[i] for i in staging_ids}) == 1

    def partition(self) -> frozenset:
        groups: dict[str, set[int]] = {}
        for sid, pid in self.person.items():
            groups.setdefault(pid, set()).add(sid)
        return frozenset(frozenset(g) for g in groups.values())

    def existing_partition(self) -> dict[str, frozenset]:
        """Existing person id -> the staging rows joined to it."""
        out: dict[str, set[int]] = {}
        for sid, pid in self.person.items():
            if pid in (P1, P2, P3):
                out.setdefault(pid, set()).add(sid)
        return {k: frozenset(v) for k, v in out.items()}

    def new_person(self, staging_id: int) -> dict:
        frame = self.plan.new_persons.set_index("person_id")
        row = frame.loc[self.person[staging_id]]
        return {k: (None if pd.isna(v) else v) for k, v in row.items()}

    def update(self, person_id: str) -> dict | None:
        frame = self.plan.updates.set_index("person_id")
        if person_id not in frame.index:
            return None
        return {k: (None if pd.isna(v) else v) for k, v in frame.loc[person_id].items()}

    def conflicts(self, field: str | None = None) -> pd.DataFrame:
        c = self.plan.field_conflicts
        return c[c["field"] == field] if field else c


# --- priority of the keys ----------------------------------------------------


def test_cedula_joins_rows_whatever_their_formats_and_other_fields():
    out = Outcome(
        [],
        [
            {"id": 1, "full_name": "Maria Rodriguez", "cedula": "1.020.345.678", "email": "maria@a.com"},
            {"id": 2, "full_name": "MARIA RODRIGUEZ", "cedula": "CC 1020345678", "email": "maria.r@b.com"},
        ],
    )
    assert out.same(1, 2)
    assert out.matched_by == {1: "new", 2: "cedula"}
    assert out.review == {}


def test_email_joins_when_no_cedula_disagrees():
    out = Outcome(
        [],
        [
            {"id": 1, "full_name": "Ana Gómez", "email": " Ana.Gomez@Mail.COM", "cedula": "52123456"},
            {"id": 2, "full_name": "Ana G.", "email": "ana.gomez@mail.com"},
        ],
    )
    assert out.same(1, 2)
    assert out.matched_by[2] == "email"


def test_name_and_birth_date_join_rows_without_stronger_keys():
    out = Outcome(
        [],
        [
            {"id": 1, "full_name": "RODRIGUEZ PEREZ MARIA", "birth_date": "15/03/1995"},
            {"id": 2, "full_name": "María  Rodríguez Pérez", "birth_date": "1995-03-15", "email": "m@x.com"},
        ],
    )
    assert out.same(1, 2)
    assert out.matched_by[2] == "name_birth_date"


def test_name_and_mobile_join_rows_without_stronger_keys():
    out = Outcome(
        [],
        [
            {"id": 1, "full_name": "Luis Pérez", "phone": "300 123 4567"},
            {"id": 2, "full_name": "LUIS PEREZ", "phone": "+57 (300) 123-4567", "cedula": "80123456"},
        ],
    )
    assert out.same(1, 2)
    assert out.matched_by[2] == "name_phone"


def test_same_name_alone_never_joins():
    out = Outcome([], [{"id": 1, "full_name": "Juan Pérez"}, {"id": 2, "full_name": "Juan Pérez"}])
    assert not out.same(1, 2)


def test_cedula_wins_over_a_weaker_match_to_another_existing_person():
    existing = [
        {"person_id": P1, "full_name": "Ana Gómez", "birth_date": "1990-01-01", "email": "ana1@x.com"},
        {"person_id": P2, "full_name": "Ana Gómez", "cedula": "52123456", "email": "otra@x.com"},
    ]
    out = Outcome(
        existing, [{"id": 1, "full_name": "Ana Gómez", "birth_date": "01/01/1990", "cedula": "52.123.456"}]
    )
    assert out.person[1] == P2
    assert out.matched_by[1] == "cedula"


def test_cedula_carried_by_a_differently_named_person_identifies_nobody():
    """DESIGN §4: a value carried by clearly different people (names that cannot be one person's) is
    shared: kept as data, never matched on. The row joins the person its name and birth date find."""
    existing = [
        {"person_id": P1, "full_name": "Ana Gómez", "birth_date": "1990-01-01", "email": "ana1@x.com"},
        {"person_id": P2, "full_name": "Otra Persona", "cedula": "52123456", "email": "otra@x.com"},
    ]
    out = Outcome(
        existing, [{"id": 1, "full_name": "Ana Gómez", "birth_date": "01/01/1990", "cedula": "52.123.456"}]
    )
    assert out.person[1] == P1
    assert out.matched_by[1] == "name_birth_date"
    assert out.planned.shared["cedula"] == {"52123456": "different names"}
    held = out.conflicts("cedula")
    assert list(held["reason"]) == ["value held by another person"]


def test_email_wins_over_name_and_birth_date():
    existing = [
        {"person_id": P1, "full_name": "Ana Gómez", "birth_date": "1990-01-01", "email": "ana1@x.com"},
        {"person_id": P2, "full_name": "Ana María Gómez", "email": "ana2@x.com"},
    ]
    out = Outcome(
        existing, [{"id": 1, "full_name": "Ana Gómez", "birth_date": "1990-01-01", "email": "ANA2@x.com"}]
    )
    assert out.person[1] == P2
    assert out.review == {}


# --- vetoes --------------------------------------------------------------------


def test_email_of_a_person_with_another_cedula_is_shared_and_the_row_is_its_own_person():
    """A family e-mail: the mother's address on her son's row. Different cédulas: the e-mail is
    shared, the son is a person of his own, and the mother keeps the e-mail (a conflict for him)."""
    existing = [
        {"person_id": P1, "full_name": "Maria Rodriguez", "email": "maria@mail.com", "cedula": "52123456"}
    ]
    out = Outcome(
        existing, [{"id": 7, "full_name": "Mario Rodriguez", "email": "Maria@Mail.com", "cedula": "80999888"}]
    )
    assert out.person[7] != P1
    assert out.new_person(7)["email"] is None and out.new_person(7)["cedula"] == "80999888"
    assert out.review == {}
    assert list(out.conflicts("email")["reason"]) == ["value held by another person"]


def test_email_shared_by_two_staging_rows_goes_to_the_first_to_arrive():
    out = Outcome(
        [],
        [
            {"id": 1, "full_name": "Maria Rodriguez", "email": "maria@mail.com", "cedula": "52123456"},
            {"id": 2, "full_name": "Mario Rodriguez", "email": "maria@mail.com", "cedula": "80999888"},
        ],
    )
    assert not out.same(1, 2)
    assert out.new_person(1)["email"] == "maria@mail.com"
    assert out.new_person(2)["email"] is None
    assert list(out.conflicts("email")["staging_id"]) == [2]


def test_same_email_and_student_numbers_that_differ_go_to_review():
    """Nothing but the student numbers tells the two apart (same name, no birth dates): the e-mail
    has one owner, the other row waits for a person."""
    out = Outcome(
        [],
        [
            {"id": 1, "full_name": "Maria Rodriguez", "email": "maria@mail.com", "student_number": "S-1"},
            {"id": 2, "full_name": "Maria Rodriguez", "email": "maria@mail.com", "student_number": "S-2"},
        ],
    )
    assert 1 in out.person and 2 not in out.person
    assert out.review[2] == (EMAIL_TAKEN, out.person[1])


def test_name_and_birth_date_vetoed_by_different_cedula():
    out = Outcome(
        [],
        [
            {"id": 1, "full_name": "Juan Pérez", "birth_date": "1970-05-05", "cedula": "19123456"},
            {"id": 2, "full_name": "Juan Pérez", "birth_date": "1970-05-05", "cedula": "19654321"},
        ],
    )
    assert not out.same(1, 2)
    assert out.review == {}


def test_name_and_birth_date_vetoed_by_different_email():
    out = Outcome(
        [],
        [
            {"id": 1, "full_name": "Juan Pérez", "birth_date": "1970-05-05", "email": "juan@a.com"},
            {"id": 2, "full_name": "Juan Pérez", "birth_date": "1970-05-05", "email": "jp@b.com"},
        ],
    )
    assert not out.same(1, 2)


def test_name_and_mobile_vetoed_by_different_birth_date():
    out = Outcome(
        [],
        [
            {"id": 1, "full_name": "Juan Pérez", "phone": "3001234567", "birth_date": "1970-05-05"},
            {"id": 2, "full_name": "Juan Pérez", "phone": "3001234567", "birth_date": "2001-09-09"},
        ],
    )
    assert not out.same(1, 2)


def test_father_and_son_with_the_same_name_and_landline_are_two_persons():
    out = Outcome(
        [],
        [
            {"id": 1, "full_name": "Carlos Gómez", "phone": "601 2345678"},
            {"id": 2, "full_name": "CARLOS GOMEZ", "phone": "(1) 234 5678"},
            {"id": 3, "full_name": "Carlos Gómez", "phone": "+57 601 234 5678", "birth_date": "1999-01-01"},
        ],
    )
    assert len(out.partition()) == 3


def test_landline_never_finds_an_existing_person():
    existing = [{"person_id": P1, "full_name": "Carlos Gómez", "phone": "6012345678", "email": "papa@x.com"}]
    out = Outcome(existing, [{"id": 1, "full_name": "Carlos Gómez", "phone": "601 234 5678"}])
    assert out.person[1] != P1


def test_chain_never_joins_two_cedulas():
    # A -(e-mail)- B -(name + birth date)- C, with A and C holding different cédulas
    out = Outcome(
        [],
        [
            {"id": 1, "full_name": "Pedro Ruiz", "cedula": "10111111", "email": "pedro@x.com"},
            {"id": 2, "full_name": "Laura Ruiz", "email": "pedro@x.com", "birth_date": "1990-02-02"},
            {"id": 3, "full_name": "Laura Ruiz", "birth_date": "02/02/1990", "cedula": "10222222"},
        ],
    )
    # Pedro and Laura carry one e-mail: shared (different names), it joins nobody; Laura is one person
    assert not out.same(1, 2)
    assert out.same(2, 3)
    assert out.person[3] != out.person[1]


def test_chain_in_reverse_order_never_joins_two_cedulas():
    out = Outcome(
        [],
        [
            {"id": 3, "full_name": "Laura Ruiz", "birth_date": "02/02/1990", "cedula": "10222222"},
            {"id": 2, "full_name": "Laura Ruiz", "email": "pedro@x.com", "birth_date": "1990-02-02"},
            {"id": 1, "full_name": "Pedro Ruiz", "cedula": "10111111", "email": "pedro@x.com"},
        ],
    )
    assert 1 in out.person and 3 in out.person
    assert out.person[1] != out.person[3]


def test_a_shared_cedula_joins_nobody_but_still_tells_two_cedulas_apart():
    """DESIGN §4: no chain of matches joins two cédulas. A cédula two differently named people carry
    is shared -- it joins nobody -- but it is still a cédula: the Ana Gómez who carries it is not the
    Ana Gómez with another cédula, however her other rows chain them (found by hypothesis: adding Eva's
    row used to make the chain 1 -(name + mobile)- 4 -(name + birth date)- 2 join two cédulas)."""
    rows = [
        {"id": 1, "full_name": "Ana Gómez", "cedula": "22.222.223", "phone": "3001234567"},
        {"id": 2, "full_name": "Ana Gómez", "cedula": "11111112", "birth_date": "02/02/1991"},
        {"id": 3, "full_name": "Eva Díaz", "cedula": "11111112"},
        {"id": 4, "full_name": "Ana Gómez", "phone": "3001234567", "birth_date": "02/02/1991"},
    ]
    for order in (rows, rows[::-1], [rows[3], rows[0], rows[2], rows[1]]):
        out = Outcome([], order)
        assert "11111112" in out.planned.shared["cedula"]
        assert not out.same(1, 2)
        assert not out.same(2, 3)
        assert out.planned.stats["vetoed_joins"] >= 1


def test_a_second_conflicting_email_group_after_a_taken_email_resolves_instead_of_failing_the_run():
    """Two e-mail groups in one conflicting component: the first gives its e-mail to its owner (the rows
    carry another student number: review), the second ties two production persons sharing an e-mail.
    The e-mail owner's variable used to shadow the array of node owners, and the second group raised
    TypeError -- one row's data stopped the whole run."""
    existing = [
        {"person_id": P1, "full_name": "Juan Pérez", "email": "uno@x.com", "student_number": "S-1"},
        {"person_id": P2, "full_name": "Juan Pérez", "email": "dos@x.com"},
        {"person_id": P3, "full_name": "Juan Pérez", "email": "dos@x.com"},
    ]
    out = Outcome(
        existing,
        [
            {
                "id": 1,
                "table": "staging_student",
                "full_name": "Juan Pérez",
                "cedula": "52222222",
                "email": "uno@x.com",
                "student_number": "S-2",
            },
            {"id": 2, "full_name": "Juan Pérez", "cedula": "52222222", "email": "dos@x.com"},
        ],
    )
    assert out.review == {1: (EMAIL_TAKEN, P1), 2: (EMAIL_TAKEN, P1)}
    assert out.person == {}


def test_ambiguous_row_between_two_incompatible_persons_goes_to_review():
    out = Outcome(
        [],
        [
            {"id": 1, "full_name": "Ana Díaz", "birth_date": "1992-07-07", "cedula": "30111111"},
            {"id": 2, "full_name": "Ana Díaz", "birth_date": "1992-07-07", "cedula": "30222222"},
            {"id": 3, "full_name": "ANA DIAZ", "birth_date": "07/07/1992"},
        ],
    )
    assert not out.same(1, 2)
    assert 3 not in out.person
    reason, candidate = out.review[3]
    assert "more than one person" in reason
    assert candidate in (out.person[1], out.person[2])


def test_two_existing_persons_are_never_merged():
    existing = [
        {"person_id": P1, "full_name": "Ana Díaz", "birth_date": "1992-07-07", "email": "ana1@x.com"},
        {"person_id": P2, "full_name": "Ana Díaz", "birth_date": "1992-07-07", "cedula": "30222222"},
    ]
    # linked to P1 by e-mail and to P2 by cédula: stays with the stronger key, persons stay apart
    out = Outcome(
        existing,
        [
            {"id": 1, "full_name": "Ana Díaz", "email": "ana1@x.com", "cedula": "30222222"},
            {"id": 2, "full_name": "Ana Díaz", "birth_date": "1992-07-07"},
        ],
    )
    assert out.person[1] == P2
    assert out.plan.new_persons.empty
    # the row compatible with both existing persons cannot choose: review
    assert 2 not in out.person and 2 in out.review
    # P2 is not given P1's e-mail (unique)
    assert (out.update(P2) or {}).get("email") is None


def test_existing_person_compatible_with_two_incompatible_rows_does_not_depend_on_arrival():
    """Existing Ana Gómez (no cédula) and two rows with her name + birth date but different cédulas.

    Joining either row to her is a guess; it must at least not be decided by
    which row arrived first (DESIGN §4: shuffling gives the same persons).
    """
    existing = [
        {"person_id": P1, "full_name": "Ana Gómez", "birth_date": "1990-01-01", "email": "ana@bot.com"}
    ]
    y = {"id": 1, "full_name": "ANA GOMEZ", "birth_date": "01/01/1990", "cedula": "11111112"}
    z = {"id": 2, "full_name": "ana gómez", "birth_date": "1990-01-01", "cedula": "22222223"}
    first, second = Outcome(existing, [y, z]), Outcome(existing, [z, y])
    assert first.existing_partition() == second.existing_partition()
    assert set(first.review) == set(second.review)
    assert first.plan.new_persons["cedula"].tolist() == second.plan.new_persons["cedula"].tolist()


# --- order independence ---------------------------------------------------------

FIXED_EXISTING = [
    {"person_id": P1, "full_name": "Maria Rodriguez", "email": "Maria@Mail.COM ", "cedula": None},
    {"person_id": P2, "full_name": "Juan Pérez", "cedula": "19.123.456", "email": "juan@x.com"},
]
FIXED_STAGING = [
    {"id": 1, "full_name": "MARIA RODRIGUEZ", "email": "maria@mail.com", "cedula": "CC 52123456"},
    {"id": 2, "full_name": "María Rodríguez", "cedula": "52.123.456", "birth_date": "1995-03-15"},
    {"id": 3, "full_name": "maria rodriguez", "birth_date": "15/03/1995", "phone": "3001234567"},
    {"id": 4, "full_name": "Juan Perez", "cedula": "19123456"},
    {"id": 5, "full_name": "Juan Pérez", "email": "juan@x.com", "cedula": "19999999"},  # e-mail taken: review
    {"id": 6, "full_name": "Carlos Gómez", "phone": "601 2345678"},
    {"id": 7, "full_name": "Carlos Gómez", "phone": "601 2345678"},  # landline: another person
    {"id": 8, "full_name": "Ana Díaz", "birth_date": "1992-07-07", "cedula": "30111111"},
    {"id": 9, "full_name": "Ana Díaz", "birth_date": "1992-07-07", "cedula": "30222222"},
    {"id": 10, "full_name": "ANA DIAZ", "birth_date": "07/07/1992"},  # ambiguous: review
    {"id": 11, "full_name": "Luis Mora", "phone": "310 555 1234"},
    {"id": 12, "full_name": "Luis Mora", "phone": "+573105551234", "email": "luis@mora.co"},
    {"id": 13, "full_name": "Luis Mora", "email": "LUIS@MORA.CO", "cedula": "1.010.101.010"},
]


def _signature(nodes: pd.DataFrame) -> tuple:
    """(partition of the linked staging ids, staging ids in review, existing person -> its staging ids).

    Resolution only (no survivorship), so that many orders are cheap to compare.
    """
    res = lp.plan_resolution(nodes.reset_index(drop=True), NO_DECISIONS, set(), {}).assignment
    staged = ~nodes["is_existing"].to_numpy()
    ids = nodes["staging_id"].to_numpy()
    groups: dict[int, set[int]] = {}
    for i in range(len(nodes)):
        if staged[i] and not res.in_review[i]:
            groups.setdefault(int(res.person_anchor[i]), set()).add(int(ids[i]))
    existing = {nodes["person_id"].iloc[a]: frozenset(g) for a, g in groups.items() if not staged[a]}
    review = frozenset(int(ids[i]) for i in range(len(nodes)) if staged[i] and res.in_review[i])
    return frozenset(frozenset(g) for g in groups.values()), review, existing, res


def _reordered(nodes: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The same nodes with the staging rows in another arrival order (existing persons stay first)."""
    existing = nodes[nodes["is_existing"]]
    staging = nodes[~nodes["is_existing"]]
    order = list(range(len(staging)))
    random.Random(seed).shuffle(order)
    return pd.concat([existing, staging.iloc[order]], ignore_index=True)


def test_fixed_frame_resolution():
    out = Outcome(FIXED_EXISTING, FIXED_STAGING)
    assert out.person[1] == P1 and out.same(1, 2, 3)
    assert out.person[4] == P2
    assert set(out.review) == {10}
    assert out.person[5] not in (P1, P2)  # P2's e-mail with another cédula: shared, a person of its own
    assert not out.same(6, 7)
    assert not out.same(8, 9)
    assert out.same(11, 12, 13)
    assert len(out.plan.new_persons) == 6  # 5, 6, 7, 8, 9, and Luis Mora


_FIXED_NODES = build_nodes(FIXED_EXISTING, FIXED_STAGING)
_FIXED_SIGNATURE = _signature(_FIXED_NODES)[:3]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_shuffled_staging_rows_give_the_same_partition(seed):
    assert _signature(_reordered(_FIXED_NODES, seed))[:3] == _FIXED_SIGNATURE


_ROW = st.fixed_dictionaries(
    {
        "cedula": st.sampled_from([None, "11111112", "22.222.223", "N/A"]),
        "email": st.sampled_from([None, "a@x.com", "B@X.com", "sin-arroba"]),
        "full_name": st.sampled_from(["Ana Gómez", "ANA GOMEZ", "Eva Díaz"]),
        "birth_date": st.sampled_from([None, "1990-01-01", "02/02/1991", "31/02/1990"]),
        "phone": st.sampled_from([None, "3001234567", "601 2345678"]),
    }
)


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(_ROW, min_size=2, max_size=7), seed=st.integers(0, 2**32 - 1))
def test_random_staging_frames_are_order_independent(rows, seed):
    """Same persons and same review set for any arrival order (first-come e-mail ownership aside)."""
    nodes = build_nodes([], [dict(r, id=i + 1) for i, r in enumerate(rows)])
    a_part, a_review, _, a_res = _signature(nodes)
    shuffled = _reordered(nodes, seed)
    b_part, b_review, _, b_res = _signature(shuffled)
    # Who keeps a disputed e-mail is decided by arrival (the first row keeps it): order matters there by design.
    assume(EMAIL_TAKEN not in set(a_res.review_reason) | set(b_res.review_reason))
    assert a_part == b_part
    assert a_review == b_review
    # whatever the order, no person holds two cédulas
    for frame, part in ((nodes, a_part), (shuffled, b_part)):
        cedula = dict(zip(frame["staging_id"].astype(int), frame["cedula"], strict=True))
        for group in part:
            assert len({cedula[i] for i in group if pd.notna(cedula[i])}) <= 1


# --- survivorship -------------------------------------------------------------


def test_fill_nulls_only_and_conflicting_values_go_to_review():
    existing = [
        {
            "person_id": P1,
            "full_name": "Maria Rodriguez",
            "email": "Maria@Mail.COM ",
            "phone": "3001234567",
            "cedula": None,
            "address": None,
            "data_source": "MANUAL",
            "csv_enriched": "f",
        }
    ]
    out = Outcome(
        existing,
        [
            {
                "id": 1,
                "full_name": "MARIA RODRIGUEZ",
                "email": "maria@mail.com",
                "phone": "311 399 8877",
                "cedula": "52.123.456",
                "address": "Calle 1 # 2-3",
            }
        ],
    )
    assert out.person[1] == P1
    update = out.update(P1)
    assert update["cedula"] == "52123456"
    assert update["address"] == "Calle 1 # 2-3"
    assert update["phone"] is None and update["email"] is None and update["full_name"] is None
    assert update["data_source"] == "CSV,MANUAL"
    assert update["csv_enriched"] is True or update["csv_enriched"] == 1
    phone = out.conflicts("phone")
    assert len(phone) == 1
    assert phone.iloc[0]["existing_value"] == "3001234567"
    assert phone.iloc[0]["incoming_value"] == "+573113998877"
    assert phone.iloc[0]["staging_id"] == 1
    # the same e-mail written differently is not a conflict
    assert out.conflicts("email").empty


def test_nothing_new_means_no_update():
    existing = [
        {
            "person_id": P1,
            "full_name": "Maria Rodriguez",
            "email": "maria@mail.com",
            "cedula": "52123456",
            "data_source": "CSV,MANUAL",
            "csv_enriched": "t",
            "original_name": "MARIA RODRIGUEZ",
        }
    ]
    out = Outcome(
        existing,
        [
            {
                "id": 1,
                "full_name": "MARIA RODRIGUEZ",
                "email": "maria@mail.com",
                "original_name": "MARIA RODRIGUEZ",
            }
        ],
    )
    assert out.person[1] == P1
    assert out.update(P1) is None
    assert out.conflicts().empty


@pytest.mark.parametrize(
    "stored, incoming, expected",
    [
        ("MANUAL", {"CSV"}, "CSV,MANUAL"),
        ("CSV", {"CSV"}, "CSV"),
        ("CSV,MANUAL", {"CSV"}, "CSV,MANUAL"),
        (" MANUAL , CSV ", {"CSV", "DIRECTORY"}, "CSV,DIRECTORY,MANUAL"),
        ("CSV,CSV,CSV", {"CSV"}, "CSV"),
        (None, {"CSV"}, "CSV"),
        (None, set(), None),
    ],
)
def test_data_source_is_a_set(stored, incoming, expected):
    values = [stored, *sorted(incoming)]
    merged = union_of_tokens(["p"] * len(values), values)
    assert (merged["p"] if "p" in merged.index else None) == expected


def test_token_union_is_per_owner_and_vectorised():
    merged = union_of_tokens(
        ["a", "b", "a", "c", "b"], ["csv_only", None, "directory+csv, csv_only", "", "x,y"]
    )
    assert merged.to_dict() == {"a": "csv_only,directory+csv", "b": "x,y"}


def test_data_source_never_repeats_over_runs():
    source = "MANUAL"
    for _ in range(3):
        existing = [
            {
                "person_id": P1,
                "full_name": "Ana Gómez",
                "email": "ana@x.com",
                "data_source": source,
                "csv_enriched": "t",
            }
        ]
        out = Outcome(existing, [{"id": 1, "full_name": "Ana Gómez", "email": "ana@x.com"}])
        update = out.update(P1)
        source = update["data_source"] if update else source
    assert source == "CSV,MANUAL"


def test_new_person_takes_first_values_and_best_written_name():
    out = Outcome(
        [],
        [
            {"id": 1, "full_name": "MARIA RODRIGUEZ", "cedula": "52123456", "address": "Calle 1"},
            {
                "id": 2,
                "full_name": "María Rodríguez",
                "cedula": "52.123.456",
                "address": "Carrera 9",
                "email": "m@x.com",
                "phone": "3001234567",
            },
        ],
    )
    person = out.new_person(1)
    assert person["full_name"] == "María Rodríguez"
    assert person["address"] == "Calle 1"
    assert person["email"] == "m@x.com"
    assert person["phone"] == "+573001234567"
    assert person["cedula"] == "52123456"
    assert person["data_source"] == "CSV"
    assert bool(person["csv_enriched"])
    address = out.conflicts("address")
    assert list(address["staging_id"]) == [2]


def test_unique_email_not_filled_when_another_person_holds_it():
    existing = [
        {"person_id": P1, "full_name": "Ana Gómez", "cedula": "52123456", "email": None},
        {"person_id": P2, "full_name": "Otra Persona", "email": "ana@x.com"},
    ]
    out = Outcome(
        existing,
        [
            {
                "id": 1,
                "full_name": "Ana Gómez",
                "cedula": "52.123.456",
                "email": "ANA@x.com",
                "address": "Calle 5",
            }
        ],
    )
    assert out.person[1] == P1
    update = out.update(P1)
    assert update is not None and update["email"] is None
    assert update["address"] == "Calle 5"
    held = out.conflicts("email")
    assert len(held) == 1 and held.iloc[0]["reason"] == "value held by another person"


def test_unique_email_filled_when_nobody_else_holds_it():
    existing = [{"person_id": P1, "full_name": "Ana Gómez", "cedula": "52123456", "email": None}]
    out = Outcome(
        existing,
        [
            {"id": 1, "full_name": "Ana Gómez", "cedula": "52.123.456", "email": "ANA@x.com"},
            {"id": 2, "full_name": "Otra", "cedula": "80111222", "email": "ana@x.com"},
        ],
    )
    assert out.person[1] == P1
    assert out.update(P1)["email"] == "ana@x.com"
    # "Otra" (another cédula) carries it too: shared, Otra is a person of her own without it
    assert out.person[2] != P1 and out.new_person(2)["email"] is None


def test_previously_linked_row_stays_with_its_person():
    existing = [
        {"person_id": P1, "full_name": "Ana Gómez", "email": "ana@x.com"},
        {"person_id": P2, "full_name": "Ana Gómez", "email": "ana2@x.com"},
    ]
    out = Outcome(existing, [{"id": 1, "full_name": "Ana Gómez", "email": "ana2@x.com", "linked": P1}])
    assert out.person[1] == P1
    assert out.matched_by[1] == "linked"
