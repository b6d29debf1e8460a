"""`ice-pipeline explain`: why a staging row went where it went, and what a person is made of.

`explain staging_lead:123` -- the row's links (which person, student, lead; by which key; in which run),
what resolution recorded about it (`row_keys.evidence`: vetoed matches and why, values not used to
match), its rejection if any, and its review items. `explain person:<uuid>` -- every linked staging row
with its `matched_by` and run, which row brought each field (`field_sources`), open review items, and
merges or splits a person decided (`person_moves`).

Ids, keys, reasons and evidence only: the person's values are not printed (the review commands show
them to the operator who decides). Stored text is escaped before rich renders it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from psycopg2.extensions import connection as Connection
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ice_pipeline.store.explain import (
    PERSON,
    PERSON_FIELD_SOURCES,
    PERSON_MOVES,
    PERSON_REVIEWS,
    PERSON_ROWS,
    ROW_KEYS,
    ROW_LINKS,
    ROW_REJECTION,
    ROW_REVIEWS,
    fetch,
)

STAGING_TABLES = ("staging_student", "staging_lead", "staging_document", "staging_lead_failures")


class ExplainError(ValueError):
    """A target that cannot be explained; the message says why."""


@dataclass(frozen=True)
class Target:
    kind: str  # 'row' | 'person'
    table: str | None
    staging_id: int | None
    person_id: str | None


def parse_target(text: str) -> Target:
    """`<staging_table>:<id>` or `person:<uuid>`."""
    prefix, sep, rest = text.strip().partition(":")
    if not sep:
        raise ExplainError(f"'{text}' is not <staging_table>:<id> or person:<uuid>.")
    if prefix == "person":
        try:
            return Target("person", None, None, str(uuid.UUID(rest)))
        except ValueError:
            raise ExplainError(f"'{rest}' is not a person id (a UUID).") from None
    if prefix not in STAGING_TABLES:
        raise ExplainError(f"unknown table '{prefix}': one of {', '.join(STAGING_TABLES)} or person.")
    if not rest.isdigit():
        raise ExplainError(f"'{rest}' is not a staging row id (an integer).")
    return Target("row", prefix, int(rest), None)


def explain_row(conn: Connection, table: str, staging_id: int) -> dict:
    """What the pipeline decided about one staging row (read-only)."""
    params = {"table": table, "id": staging_id}
    with conn.cursor() as cur:
        links = fetch(cur, ROW_LINKS, params)
        keys = fetch(cur, ROW_KEYS, params)
        rejection = fetch(cur, ROW_REJECTION, params)
        reviews = fetch(cur, ROW_REVIEWS, params)
        person = next((link["entity_id"] for link in links if link["entity"] == "person"), None)
        person_reviews = fetch(cur, PERSON_REVIEWS, {"person": person, "all": False}) if person else []
    conn.rollback()
    own = {item["id"] for item in reviews}
    if links:
        status = "linked"
    elif rejection:
        status = "rejected"
    elif any(item["status"] in ("open", "resolved") for item in reviews):
        status = "in review"
    else:
        status = "not processed yet"
    key = keys[0] if keys else None
    return {
        "target": f"{table}:{staging_id}",
        "status": status,
        "person_id": person,
        "matched_by": next((link["matched_by"] for link in links if link["entity"] == "person"), None),
        "links": links,
        "keys_present": {k.removeprefix("has_"): v for k, v in key.items() if k.startswith("has_")}
        if key
        else {},
        "evidence": (key or {}).get("evidence") or {},
        "rejection": rejection[0] if rejection else None,
        "review_items": reviews,
        "person_open_review_items": [item for item in person_reviews if item["id"] not in own],
    }


def explain_person(conn: Connection, person_id: str) -> dict:
    """Every row linked to a person, which row brought each field, open review items, moves (read-only)."""
    params = {"person": person_id, "all": False}
    with conn.cursor() as cur:
        person = fetch(cur, PERSON, params)
        rows = fetch(cur, PERSON_ROWS, params)
        sources = fetch(cur, PERSON_FIELD_SOURCES, params)
        reviews = fetch(cur, PERSON_REVIEWS, params)
        moves = fetch(cur, PERSON_MOVES, params)
    conn.rollback()
    return {
        "target": f"person:{person_id}",
        "exists": bool(person),
        "person": person[0] if person else None,
        "linked_rows": rows,
        "matched_by": _counts(row["matched_by"] for row in rows),
        "field_sources": sources,
        "open_review_items": reviews,
        "moves": moves,
    }


def explain(conn: Connection, text: str) -> dict:
    target = parse_target(text)
    if target.kind == "person":
        return explain_person(conn, target.person_id)
    return explain_row(conn, target.table, target.staging_id)


def found(result: dict) -> bool:
    """Whether the target is known to the pipeline at all (the CLI exits 1 when not)."""
    if result["target"].startswith("person:"):
        return result["exists"] or bool(result["moves"]) or bool(result["linked_rows"])
    return result["status"] != "not processed yet" or bool(result["review_items"])


def _counts(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        out[value] = out.get(value, 0) + 1
    return out


# --- text -----------------------------------------------------------------------------------------------------


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, default=str)
    return escape(str(value))


def _table(title: str, rows: list[dict], columns: list[str]) -> Table:
    table = Table(title=escape(title), title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_text(row.get(column)) for column in columns))
    return table


def _print_reviews(console: Console, title: str, items: list[dict]) -> None:
    """One line per item and one for its evidence: review items carry long texts a table would wrap."""
    console.print(f"[bold]{escape(title)}[/]")
    for item in items:
        about = (
            f"{item['staging_table']}:{item['staging_id']}"
            if item.get("staging_table")
            else f"persons {item.get('person_id')} / {item.get('candidate_person_id')}"
        )
        field = f" field {item['field']}" if item.get("field") else ""
        score = f" score {item['score']:.2f}" if item.get("score") is not None else ""
        decided = f" decided {item['decision_kind']}" if item.get("decision_kind") else ""
        console.print(
            f"  #{item['id']} {escape(item['kind'])} ({escape(item['status'])}) {escape(about)}"
            f"{escape(field)}{score}{escape(decided)}, since {escape(str(item.get('created_at')))}",
            highlight=False,
        )
        if item.get("reason"):
            console.print(f"      reason: {_text(item['reason'])}", highlight=False)
        summary = (item.get("details") or {}).get("summary")
        if summary:
            console.print(f"      evidence: {_text(summary)}", highlight=False)


def print_explanation(console: Console, result: dict) -> None:
    """Rich tables; every stored value escaped (a name like '[bold]' is text, not markup)."""
    if result["target"].startswith("person:"):
        _print_person(console, result)
    else:
        _print_row(console, result)


def _print_row(console: Console, result: dict) -> None:
    console.print(
        f"[bold]{escape(result['target'])}[/]: {escape(result['status'])}"
        + (
            f", person {escape(result['person_id'])} by {escape(str(result['matched_by']))}"
            if result["person_id"]
            else ""
        )
    )
    if result["links"]:
        console.print(
            _table(
                "links",
                result["links"],
                ["entity", "entity_id", "matched_by", "run_id", "linked_at", "warnings"],
            )
        )
    if result["keys_present"]:
        present = [k for k, v in result["keys_present"].items() if v]
        console.print(f"match keys the row carries: {escape(', '.join(present) or 'none')}")
    if result["evidence"]:
        console.print(
            _table(
                "what resolution recorded",
                [{"item": k, "value": v} for k, v in result["evidence"].items()],
                ["item", "value"],
            )
        )
    else:
        console.print(
            "no resolution evidence recorded for this row (no vetoed match, or linked before evidence "
            "was kept)"
        )
    if result["rejection"]:
        console.print(
            _table(
                "rejected", [result["rejection"]], ["reason", "details", "retryable", "run_id", "rejected_at"]
            )
        )
    if result["review_items"]:
        _print_reviews(console, "review items about this row", result["review_items"])
    if result["person_open_review_items"]:
        _print_reviews(console, "open review items about its person", result["person_open_review_items"])


def _print_person(console: Console, result: dict) -> None:
    state = "exists" if result["exists"] else "not in persons (merged away or never created)"
    console.print(f"[bold]{escape(result['target'])}[/]: {state}; {len(result['linked_rows'])} linked rows")
    if result["person"]:
        console.print(
            _table(
                "person",
                [result["person"]],
                ["person_id", "created_at", "updated_at", "data_source", "csv_enriched"],
            )
        )
    if result["linked_rows"]:
        console.print(
            _table(
                "linked rows",
                result["linked_rows"],
                ["staging_table", "staging_id", "matched_by", "run_id", "linked_at", "warnings", "evidence"],
            )
        )
    if result["field_sources"]:
        console.print(
            _table(
                "which row brought each field",
                result["field_sources"],
                ["field", "staging_table", "staging_id", "run_id", "set_at"],
            )
        )
    else:
        console.print("no field sources recorded (fields set before they were kept, or by the bot)")
    if result["open_review_items"]:
        _print_reviews(console, "open review items", result["open_review_items"])
    if result["moves"]:
        console.print(
            _table(
                "merges and splits",
                result["moves"],
                ["id", "kind", "from_person_id", "to_person_id", "review_id", "run_id", "moved_at"],
            )
        )
