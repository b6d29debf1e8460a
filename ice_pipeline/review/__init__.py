"""The review queue from the command line: list the questions, show one, record a person's answer.

Every kind of item can be closed by a decision (DESIGN §3.4), stored as two columns,
`decision_kind` and `decision_person_id`:

- identity_conflict: `merge_into` a person, `new_person`, or `dismiss` (the row then counts as
  rejected at once). The next run's identity resolution applies merge/new.
- field_conflict: `keep_existing` or `take_incoming`.
- possible_duplicate: `same_person` (the person that stays: `--person`, default the older one)
  or `not_same` (the pair is never asked about again).
- possible_false_merge: `split` (the rows the item's details list move to a new person) or
  `keep_together`.

Decisions other than identity ones are applied by the next run (asset applied_review_decisions)
or by `ice-pipeline review apply`: ice_pipeline/review/apply.py.
"""

from __future__ import annotations

import uuid

from psycopg2.extensions import connection as Connection
from psycopg2.extras import RealDictCursor

from ice_pipeline.store import review as sql

DECISIONS: dict[str, tuple[str, ...]] = {
    "identity_conflict": ("merge_into", "new_person", "dismiss"),
    "field_conflict": ("keep_existing", "take_incoming"),
    "possible_duplicate": ("same_person", "not_same"),
    "possible_false_merge": ("split", "keep_together"),
}
KINDS = tuple(DECISIONS)
STATUSES = ("open", "resolved", "applied", "dismissed", "superseded")
# Decisions that name a person: required for merge_into, optional for same_person (default: the older).
NEEDS_PERSON = ("merge_into",)
TAKES_PERSON = ("merge_into", "same_person")


class ReviewError(ValueError):
    """A decision that cannot be recorded; the message says why."""


def _plain(row: dict) -> dict:
    """JSON-friendly values (ids as int, timestamps as text), for --json and the CLI tables."""
    out = {}
    for key, value in row.items():
        if hasattr(value, "isoformat"):
            value = value.isoformat()
        out[key] = value
    return out


def list_items(
    conn: Connection, kind: str | None = None, status: str | None = "open", limit: int = 50
) -> list[dict]:
    """Review items, oldest first (they show the values in question: for operators only)."""
    if kind is not None and kind not in KINDS:
        raise ReviewError(f"Unknown kind '{kind}': one of {', '.join(KINDS)}.")
    if status is not None and status not in STATUSES:
        raise ReviewError(f"Unknown status '{status}': one of {', '.join(STATUSES)}, or all.")
    try:
        with conn.cursor(cursor_factory=RealDictCursor) as cur:
            cur.execute(sql.LIST_ITEMS, {"kind": kind, "status": status, "limit": limit})
            return [_plain(dict(row)) for row in cur.fetchall()]
    finally:
        conn.rollback()


def show_item(conn: Connection, item_id: int) -> dict:
    """One item with its evidence (`details`) and the current fields of the persons it is about."""
    try:
        with conn.cursor(cursor_factory=RealDictCursor) as cur:
            cur.execute(sql.GET_ITEM, {"id": item_id})
            row = cur.fetchone()
            if row is None:
                raise ReviewError(f"Review item {item_id} does not exist.")
            item = _plain(dict(row))
            ids = [
                p for p in (item["person_id"], item["candidate_person_id"], item["decision_person_id"]) if p
            ]
            cur.execute(sql.PERSON_FIELDS_OF, {"ids": list(dict.fromkeys(ids))})
            item["persons"] = [_plain(dict(p)) for p in cur.fetchall()]
            item["valid_decisions"] = list(DECISIONS[item["kind"]]) if item["status"] == "open" else []
            return item
    finally:
        conn.rollback()


def _person_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ReviewError(f"'{value}' is not a person id (a UUID).") from None


def resolve_item(
    conn: Connection,
    item_id: int,
    decision: str | None = None,
    *,
    person: str | None = None,
    merge_into: str | None = None,
    new_person: bool = False,
    dismiss: bool = False,
) -> str:
    """Record one decision on an open item; returns what was recorded.

    `merge_into=`, `new_person=`, `dismiss=` are the first release's spelling of the identity
    decisions (`--merge-into`, `--new-person`, `--dismiss`), kept working.
    """
    legacy = sum((merge_into is not None, new_person, dismiss))
    if legacy and decision is not None or legacy > 1:
        raise ReviewError(
            "Give exactly one decision (DECISION, or one of --merge-into, --new-person, --dismiss)."
        )
    if merge_into is not None:
        decision, person = "merge_into", merge_into
    elif new_person:
        decision = "new_person"
    elif dismiss:
        decision = "dismiss"
    if decision is None:
        raise ReviewError(
            "Give exactly one decision (DECISION, or one of --merge-into, --new-person, --dismiss)."
        )
    with conn, conn.cursor(cursor_factory=RealDictCursor) as cur:
        return _record(cur, item_id, decision, person)


def _record(cur, item_id: int, decision: str, person: str | None) -> str:
    """Validate and record one decision in the caller's transaction (resolve and import share it)."""
    cur.execute(sql.LOCK_ITEM, {"id": item_id})
    item = cur.fetchone()
    if item is None:
        raise ReviewError(f"Review item {item_id} does not exist.")
    kind, status = item["kind"], item["status"]
    if status != "open":
        raise ReviewError(f"Review item {item_id} is {status}: only open items take a decision.")
    valid = DECISIONS[kind]
    if decision not in valid:
        raise ReviewError(f"'{decision}' is not a decision for a {kind}: one of {', '.join(valid)}.")
    if kind == "identity_conflict" and item["field"] is not None and decision != "dismiss":
        raise ReviewError(
            f"Review item {item_id} is about the {item['field']}, not the person: only dismiss applies."
        )
    if person is not None and decision not in TAKES_PERSON:
        raise ReviewError(f"'{decision}' takes no person (--person is for {' and '.join(TAKES_PERSON)}).")
    if decision in NEEDS_PERSON and person is None:
        raise ReviewError(f"'{decision}' needs the person: --person PERSON_ID.")
    if person is not None:
        person = _person_id(person)
        cur.execute(sql.PERSON_EXISTS, {"id": person})
        if cur.fetchone() is None:
            raise ReviewError(f"No person has id {person}.")
    if decision == "same_person":
        pair = [item["person_id"], item["candidate_person_id"]]
        if person is None:
            cur.execute(sql.OLDER_PERSON, {"ids": pair})
            older = cur.fetchone()
            if older is None:
                raise ReviewError(f"Neither person of review item {item_id} exists any more.")
            person = older["id"]
        elif person not in pair:
            raise ReviewError(f"--person must be one of the pair: {pair[0]} or {pair[1]}.")
    if decision == "split":
        rows = ((item["details"] or {}).get("rows") or {}).get("move")
        if not rows:
            raise ReviewError(
                f"Review item {item_id} lists no rows to move (details.rows.move): it cannot be split."
            )
    if decision == "dismiss":
        cur.execute(sql.DISMISS, {"id": item_id})
        if item["staging_table"] is not None:
            cur.execute(
                sql.REJECT_DISMISSED,
                {"table": item["staging_table"], "staging_id": item["staging_id"], "id": item_id},
            )
        return (
            f"item {item_id} dismissed: {item['staging_table']} {item['staging_id']} is now rejected "
            "('dismissed in review')"
        )
    legacy = (
        {"merge_into": f"merge:{person}", "new_person": "new"}.get(decision)
        if kind == "identity_conflict"
        else None
    )
    cur.execute(sql.RECORD_DECISION, {"id": item_id, "kind": decision, "person": person, "legacy": legacy})
    target = f" ({person})" if person else ""
    when = (
        "the next migration run applies it"
        if kind == "identity_conflict"
        else "the next migration run (or `ice-pipeline review apply`) applies it"
    )
    return f"item {item_id}: {decision}{target}; {when}"
