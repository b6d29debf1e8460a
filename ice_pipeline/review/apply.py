"""Applying the decisions people recorded in the review queue, one transaction per item.

Run by the job (asset applied_review_decisions, before identity resolution) and by
`ice-pipeline review apply`: the same code. Each item is applied under the migration lock
(MIGRATION_LOCK_KEY, the lock every production writer takes) and recorded: status 'applied',
what changed in `details.applied`, lineage in `person_moves` / `source_links` / `field_sources`.
A decision that cannot be applied (a unique value another person holds, two students with
different numbers, a person that no longer exists) changes nothing: the item goes back to 'open'
with the reason in `details.refused`.

Identity decisions (merge_into / new_person) are applied by resolved_persons when it links the
row; dismissals take effect when recorded. Neither is handled here.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field

import pandas as pd
import psycopg2
from psycopg2.extensions import connection as Connection
from psycopg2.extensions import cursor as Cursor
from psycopg2.extras import RealDictCursor

from ice_pipeline.db import copy_into_temp, read_frame
from ice_pipeline.locks import MIGRATION_LOCK_KEY, RUN_LOCK_KEY
from ice_pipeline.logic.normalize import label_key
from ice_pipeline.review import DECISIONS
from ice_pipeline.store import review as sql

PERSON_FIELDS = tuple(sql.SET_PERSON_FIELD)
STUDENT_FIELDS = tuple(sql.SET_STUDENT_FIELD)


class Refused(Exception):
    """This decision cannot be applied as things stand; the message says why (no personal values)."""


@dataclass
class ApplyResult:
    """What one pass applied, by decision kind, and what it refused (item id -> reason)."""

    applied: dict[str, int] = field(default_factory=dict)
    refused: dict[int, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.applied.values())

    def as_metadata(self) -> dict[str, int]:
        figures = {f"review_{kind}": n for kind, n in sorted(self.applied.items())}
        return {
            "review_decisions_applied": self.total,
            "review_decisions_refused": len(self.refused),
            **figures,
        }


def _now() -> dt.datetime:
    """timestamp(3) as Prisma writes it (UTC, milliseconds)."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def pending_decisions(conn: Connection) -> dict[str, int]:
    """Resolved decisions waiting to be applied here, by decision kind (a dry run reports these)."""
    try:
        with conn.cursor() as cur:
            cur.execute(sql.COUNT_RESOLVED)
            return {kind: n for kind, n in cur.fetchall()}
    finally:
        conn.rollback()


def apply_decisions(conn: Connection, run_id: str) -> ApplyResult:
    """Apply every resolved decision, oldest first, each in its own transaction."""
    result = ApplyResult()
    with conn.cursor() as cur:
        cur.execute(sql.READ_RESOLVED)
        ids = [row[0] for row in cur.fetchall()]
    conn.rollback()
    for item_id in ids:
        decision = None
        try:
            with conn, conn.cursor(cursor_factory=RealDictCursor) as cur:
                cur.execute(sql.MIGRATION_LOCK, {"key": MIGRATION_LOCK_KEY})
                cur.execute(sql.LOCK_ITEM, {"id": item_id})
                item = cur.fetchone()
                if item is None or item["status"] != "resolved":
                    continue  # answered again or applied by someone else meanwhile
                decision = item["decision_kind"]
                if decision not in DECISIONS[item["kind"]]:  # written around the CLI: never guessed at
                    raise Refused(f"'{decision}' is not a decision for a {item['kind']}")
                applied = APPLIERS[item["kind"]](cur, item, run_id)
                cur.execute(sql.MARK_APPLIED, {"id": item_id, "applied": json.dumps(applied, default=str)})
            result.applied[decision] = result.applied.get(decision, 0) + 1
        except Refused as refusal:
            _refuse(conn, result, item_id, decision, str(refusal))
        except (psycopg2.IntegrityError, psycopg2.DataError) as error:
            # A constraint of the bot's schema we did not foresee (e.g. a table of the bot that
            # references persons) or a value its column cannot hold (a birth date that is no date):
            # the item's transaction was rolled back; say which constraint, never the value.
            diag = error.diag
            # A data error's message quotes the value: only its kind is said.
            said = (
                type(error).__name__
                if isinstance(error, psycopg2.DataError)
                else (diag.message_primary or type(error).__name__)
            )
            reason = f"the database refused it ({said}" + (
                f", constraint {diag.constraint_name})" if diag.constraint_name else ")"
            )
            _refuse(conn, result, item_id, decision, reason)
    return result


def _refuse(conn: Connection, result: ApplyResult, item_id: int, decision: str | None, reason: str) -> None:
    with conn, conn.cursor() as cur:
        cur.execute(sql.MARK_REFUSED, {"id": item_id, "decision": decision, "reason": reason})
    result.refused[item_id] = reason


# --- field_conflict ------------------------------------------------------------------------------


def apply_field_conflict(cur: Cursor, item: dict, run_id: str) -> dict:
    if item["decision_kind"] == "keep_existing":
        return {"decision": "keep_existing"}
    person, column, value = item["person_id"], item["field"], item["incoming_value"]
    params = {"person": person, "value": value, "now": _now()}
    cur.execute(sql.LOCK_PERSONS, {"ids": [person]})
    if not cur.fetchall():
        raise Refused(f"person {person} no longer exists")
    if column in STUDENT_FIELDS:
        cur.execute(sql.STUDENT_OF, params)
        if cur.fetchone() is None:
            raise Refused(f"person {person} has no student any more")
        if column == "student_number":
            cur.execute(sql.STUDENT_NUMBER_HOLDER, params)
            holder = cur.fetchone()
            if holder:
                raise Refused(f"another person ({holder['person_id']}) holds that student number")
        cur.execute(sql.READ_STUDENT_VALUE[column], params)
        previous = cur.fetchone()
        cur.execute(sql.SET_STUDENT_FIELD[column], params)
        return {
            "decision": "take_incoming",
            "table": "students",
            "field": column,
            "previous": next(iter(previous.values())) if previous else None,
        }
    if column not in PERSON_FIELDS:
        raise Refused(f"the field '{column}' is not one the pipeline writes")
    if column in sql.UNIQUE_HOLDER:
        cur.execute(sql.UNIQUE_HOLDER[column], params)
        holder = cur.fetchone()
        if holder:
            raise Refused(f"another person ({holder['id']}) holds that {column}")
    cur.execute(sql.READ_PERSON_VALUE[column], params)
    previous = next(iter(cur.fetchone().values()))
    cur.execute(sql.SET_PERSON_FIELD[column], params)
    if item["staging_table"] is not None:
        cur.execute(
            sql.RECORD_FIELD_SOURCE,
            {
                "person": person,
                "field": column,
                "run_id": run_id,
                "staging_table": item["staging_table"],
                "staging_id": item["staging_id"],
            },
        )
    cur.execute(sql.FORGET_PERSON_KEYS, {"ids": [person]})
    return {"decision": "take_incoming", "table": "persons", "field": column, "previous": previous}


# --- possible_duplicate --------------------------------------------------------------------------


def apply_possible_duplicate(cur: Cursor, item: dict, run_id: str) -> dict:
    if item["decision_kind"] == "not_same":
        return {"decision": "not_same"}
    stayer = item["decision_person_id"]
    pair = (item["person_id"], item["candidate_person_id"])
    absorbed = pair[1] if stayer == pair[0] else pair[0]
    cur.execute(sql.LOCK_PERSONS, {"ids": list(pair)})
    found = {row["id"] for row in cur.fetchall()}
    for person in pair:
        if person not in found:
            raise Refused(f"person {person} no longer exists (merged or deleted since)")
    return merge_persons(cur, stayer, absorbed, item["id"], run_id)


def lead_merges(leads: pd.DataFrame, stayer: str) -> pd.DataFrame:
    """(from_id, to_id): each lead of the absorbed person that has the key of a lead of the stayer
    (the stayer's oldest with that key), as prod_leads keys them: (service, event) when both are set,
    else the program."""
    both = leads["service_id"].notna() & leads["event_id"].notna()
    key = ("se|" + leads["service_id"].fillna("") + "|" + leads["event_id"].fillna("")).where(
        both, "pt|" + label_key(leads["program_type"]).fillna("")
    )
    leads = leads.assign(key=key)
    kept = leads[leads["person_id"] == stayer].drop_duplicates("key").set_index("key")["lead_id"]
    gone = leads[leads["person_id"] != stayer]
    return pd.DataFrame(
        {"from_id": gone["lead_id"].to_numpy(), "to_id": gone["key"].map(kept).to_numpy()}
    ).dropna()


def merge_persons(cur: Cursor, stayer: str, absorbed: str, review_id: int, run_id: str) -> dict:
    """Move everything of `absorbed` to `stayer`, fill the stayer's NULLs, delete `absorbed`."""
    now = _now()
    ids = {"stayer": stayer, "absorbed": absorbed, "now": now, "review_id": review_id}
    cur.execute(sql.READ_STUDENTS_OF_PAIR, ids)
    students = {row["person_id"]: row for row in cur.fetchall()}
    kept, gone = students.get(stayer), students.get(absorbed)
    applied: dict = {"decision": "same_person", "stayer": stayer, "absorbed": absorbed}
    if gone and not kept:
        cur.execute(sql.MOVE_STUDENT, ids)
        applied["student_moved"] = gone["student_id"]
    elif gone and kept:
        if (
            kept["student_number"]
            and gone["student_number"]
            and kept["student_number"] != gone["student_number"]
        ):
            raise Refused(
                "both persons have a student, with different student numbers: merge the students in "
                "the bot first, or decide not_same"
            )
        both = {**ids, "stayer_student": kept["student_id"], "absorbed_student": gone["student_id"]}
        cur.execute(sql.REDIRECT_DUPLICATE_DOCUMENT_LINKS, both)
        cur.execute(sql.DROP_DUPLICATE_DOCUMENTS, both)
        applied["documents_dropped_as_duplicates"] = cur.rowcount
        cur.execute(sql.MOVE_DOCUMENTS, both)
        applied["documents_moved"] = cur.rowcount
        cur.execute(sql.REDIRECT_STUDENT_LINKS, both)
        cur.execute(sql.SAVE_ABSORBED_STUDENT, both)
        cur.execute(sql.DELETE_STUDENT, both)
        cur.execute(sql.FILL_STUDENT, both)
        cur.execute("DROP TABLE tmp_absorbed_student")
        applied["student_merged"] = {"from": gone["student_id"], "into": kept["student_id"]}
    copy_into_temp(
        cur,
        "tmp_lead_merge",
        sql.LEAD_MERGE_COLUMNS,
        lead_merges(read_frame(cur, sql.READ_PAIR_LEADS, ids), stayer),
    )
    cur.execute(sql.FILL_MERGED_LEADS, ids)
    cur.execute(sql.REDIRECT_MERGED_LEAD_LINKS, ids)
    cur.execute(sql.DELETE_MERGED_LEADS, ids)
    applied["leads_merged"] = cur.rowcount
    cur.execute("DROP TABLE tmp_lead_merge")
    cur.execute(sql.MOVE_LEADS, ids)
    applied["leads_moved"] = cur.rowcount
    cur.execute(sql.ABSORBED_ROWS, ids)
    rows = next(iter(cur.fetchone().values()))
    cur.execute(sql.MOVE_PERSON_LINKS, ids)
    cur.execute(sql.MOVE_ROW_KEYS, ids)
    cur.execute(sql.SAVE_ABSORBED_PERSON, ids)
    cur.execute(sql.FIELDS_TAKEN, ids)
    taken = [row["f"] for row in cur.fetchall()]
    cur.execute(sql.MOVE_FIELD_SOURCES, {**ids, "fields": taken})
    cur.execute(sql.FORGET_FIELD_SOURCES, ids)
    cur.execute(sql.SUPERSEDE_ABSORBED_PAIRS, ids)
    cur.execute(sql.REPOINT_REVIEWS, ids)
    cur.execute(sql.FORGET_PERSON_KEYS, {"ids": [stayer, absorbed]})
    cur.execute(sql.DELETE_PERSON, ids)
    cur.execute(sql.FILL_STAYER, ids)
    cur.execute("DROP TABLE tmp_absorbed_person")
    cur.execute(
        sql.RECORD_MOVE,
        {
            "kind": "merge",
            "from_person": absorbed,
            "to_person": stayer,
            "review_id": review_id,
            "run_id": run_id,
            "rows": json.dumps(rows),
        },
    )
    applied["fields_filled"] = taken
    applied["staging_rows_moved"] = len(rows)
    return applied


# --- possible_false_merge ------------------------------------------------------------------------


def split_rows(details: dict) -> list[tuple[str, int]]:
    """The rows `details.rows.move` lists, as (staging_table, staging_id); malformed lists refused."""
    listed = ((details or {}).get("rows") or {}).get("move") or []
    rows = []
    for entry in listed:
        if not (isinstance(entry, list | tuple) and len(entry) == 2 and isinstance(entry[0], str)):
            raise Refused("details.rows.move must list [staging_table, staging_id] pairs")
        try:
            rows.append((entry[0], int(entry[1])))
        except (TypeError, ValueError):
            raise Refused("details.rows.move must list [staging_table, staging_id] pairs") from None
    if not rows:
        raise Refused("the item lists no rows to move (details.rows.move)")
    return sorted(set(rows))


def apply_possible_false_merge(cur: Cursor, item: dict, run_id: str) -> dict:
    if item["decision_kind"] == "keep_together":
        return {"decision": "keep_together"}
    person = item["person_id"]
    rows = split_rows(item["details"])
    cur.execute(sql.LOCK_PERSONS, {"ids": [person]})
    if not cur.fetchall():
        raise Refused(f"person {person} no longer exists")
    copy_into_temp(
        cur,
        "tmp_split_rows",
        sql.SPLIT_ROW_COLUMNS,
        pd.DataFrame(rows, columns=["staging_table", "staging_id"]),
    )
    ids = {"person": person, "new_person": str(uuid.uuid4()), "now": _now()}
    cur.execute(sql.ROWS_NOT_LINKED, ids)
    stray = cur.fetchall()
    if stray:
        raise Refused(
            f"{len(stray)} of the rows to move are not linked to person {person} any more "
            f"(e.g. {stray[0]['staging_table']} {stray[0]['staging_id']})"
        )
    cur.execute(sql.SHARED_ENTITIES, ids)
    shared = cur.fetchall()
    if any(row["entity"] == "student" for row in shared):
        raise Refused("the student is linked by rows on both sides: decide which rows move with it")
    cur.execute(sql.FIELDS_OF_ROWS, ids)
    fields = [row["field"] for row in cur.fetchall() if row["field"] in PERSON_FIELDS]
    params = {**ids, "fields": fields}
    cur.execute(sql.SAVE_SPLIT_PERSON, params)
    cur.execute(sql.CLEAR_MOVED_FIELDS, params)
    cur.execute(sql.INSERT_SPLIT_PERSON, params)
    cur.execute(sql.MOVE_SPLIT_FIELD_SOURCES, params)
    cur.execute(sql.MOVE_SPLIT_STUDENTS, params)
    students = cur.rowcount
    cur.execute(sql.MOVE_SPLIT_LEADS, params)
    leads = cur.rowcount
    cur.execute(sql.MOVE_SPLIT_PERSON_LINKS, params)
    cur.execute(sql.MOVE_SPLIT_ROW_KEYS, params)
    cur.execute(sql.COUNT_MOVED_DOCUMENTS, params)
    documents = next(iter(cur.fetchone().values()))
    cur.execute(sql.FORGET_PERSON_KEYS, {"ids": [person, ids["new_person"]]})
    cur.execute("DROP TABLE tmp_split_person")
    cur.execute("DROP TABLE tmp_split_rows")
    cur.execute(
        sql.RECORD_MOVE,
        {
            "kind": "split",
            "from_person": person,
            "to_person": ids["new_person"],
            "review_id": item["id"],
            "run_id": run_id,
            "rows": json.dumps([list(r) for r in rows]),
        },
    )
    return {
        "decision": "split",
        "new_person_id": ids["new_person"],
        "fields_moved": fields,
        "staging_rows_moved": len(rows),
        "students_moved": students,
        "leads_moved": leads,
        "documents_moved": documents,
        "shared_leads_kept": [row["entity_id"] for row in shared if row["entity"] == "lead"],
    }


APPLIERS = {
    "field_conflict": apply_field_conflict,
    "possible_duplicate": apply_possible_duplicate,
    "possible_false_merge": apply_possible_false_merge,
}


class MigrationRunning(RuntimeError):
    """A migration run holds the run lock: its steps must not see persons merged under them."""


def apply_now(conn: Connection, wait_seconds: int = 30) -> tuple[str, ApplyResult]:
    """`ice-pipeline review apply`: apply outside a run, holding the run lock (RUN_LOCK_KEY) so that no
    migration is between resolving persons and writing their students meanwhile. Returns (run id, result)."""
    run_id = f"review-apply-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SET lock_timeout = %s", (f"{wait_seconds}s",))
            try:
                cur.execute("SELECT pg_advisory_lock(%s)", (RUN_LOCK_KEY,))
            except psycopg2.errors.LockNotAvailable:
                raise MigrationRunning(
                    f"a migration run has been running for more than {wait_seconds} s; it applies "
                    "the decisions itself, or run `ice-pipeline review apply` when it ends"
                ) from None
            cur.execute("SET lock_timeout = 0")
    finally:
        conn.autocommit = False
    try:
        return run_id, apply_decisions(conn, run_id)
    finally:
        conn.rollback()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (RUN_LOCK_KEY,))
        conn.autocommit = False
