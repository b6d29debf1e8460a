"""`ice-pipeline report`: the health of the whole database, with the rules the asset checks run.

Duplicates and orphans are the rules of ice_pipeline/checks/rules.py at scope "whole
database" (the job verify_production runs the same); the accounting identity is the
accounting check's. Then the figures of the integration plan's verification: persons by
data_source, csv_enriched, students by program, leads by status and service, and how
much the indexes of migration 20251105_add_staging_fields are used.
"""

from __future__ import annotations

import re
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ice_pipeline.checks.accounting import FINAL_ENTITY, accounting
from ice_pipeline.checks.engine import EVERYTHING, find_violations, offending_ids
from ice_pipeline.checks.rules import DUPLICATES, ERROR, ORPHANS, RULES
from ice_pipeline.db import read_frame

REPORT_LISTED = 10  # offending ids per rule in the report (the check lists more)
MIGRATION_SQL = Path(__file__).resolve().parent / "sql" / "20251105_add_staging_fields.sql"
REVIEW = "SELECT kind, status, count(*)::int AS n FROM ice_pipeline.review_queue GROUP BY kind, status ORDER BY 1, 2"
REJECTIONS = """SELECT staging_table, reason, count(*)::int AS n FROM ice_pipeline.rejected_rows
GROUP BY staging_table, reason ORDER BY 3 DESC"""
TOTALS = """SELECT (SELECT count(*) FROM persons) AS persons, (SELECT count(*) FROM students) AS students,
(SELECT count(*) FROM leads) AS leads, (SELECT count(*) FROM student_documents) AS documents"""
# The plan's verification queries. Groups only: values of data_source/program/status/service are
# categories, not personal data.
PERSONS_BY_DATA_SOURCE = """SELECT coalesce(data_source, '(none)') AS data_source, count(*)::int AS n
FROM persons GROUP BY 1 ORDER BY 2 DESC, 1"""
CSV_ENRICHED = """SELECT (SELECT count(*) FROM persons WHERE csv_enriched)::int AS persons,
(SELECT count(*) FROM students WHERE csv_enriched)::int AS students"""
STUDENTS_BY_PROGRAM = """SELECT coalesce(program, '(none)') AS program, count(*)::int AS n
FROM students GROUP BY 1 ORDER BY 2 DESC, 1"""
LEADS_BY_STATUS_AND_SERVICE = """SELECT coalesce(l.lead_status, '(none)') AS status, coalesce(s.name, '(none)') AS service,
count(*)::int AS n FROM leads l LEFT JOIN services s ON s.id = l.service_id GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2"""
# Statistics since the last stats reset (pg_stat_reset): scans, tuples read, size.
INDEX_USAGE = """SELECT i.relname AS table_name, i.indexrelname AS index_name, i.idx_scan::bigint AS scans,
i.idx_tup_read::bigint AS tuples_read, pg_relation_size(i.indexrelid)::bigint AS size_bytes
FROM pg_stat_user_indexes i WHERE i.schemaname = 'public' AND i.indexrelname = ANY(%(names)s) ORDER BY 1, 2"""
INDEX_NAME = re.compile(
    r'CREATE\s+(?:UNIQUE\s+)?INDEX\s+IF\s+NOT\s+EXISTS\s+"?([A-Za-z0-9_]+)"?', re.IGNORECASE
)


def migration_indexes(path: Path = MIGRATION_SQL) -> list[str]:
    """Names of the indexes the migration creates: the migration file is their one definition."""
    return INDEX_NAME.findall(path.read_text(encoding="utf-8"))


def _records(cur, query: str, params: dict | None = None) -> list[dict]:
    frame = read_frame(cur, query, params)
    for column in ("n", "scans", "tuples_read", "size_bytes", "persons", "students"):
        if column in frame:
            frame[column] = frame[column].astype("int64")
    return frame.astype(object).to_dict("records")


def verification(production_conn) -> dict:
    """The integration plan's verification figures (counts per category, index usage)."""
    with production_conn.cursor() as cur:
        figures = {
            "persons_by_data_source": _records(cur, PERSONS_BY_DATA_SOURCE),
            "csv_enriched": _records(cur, CSV_ENRICHED)[0],
            "students_by_program": _records(cur, STUDENTS_BY_PROGRAM),
            "leads_by_status_and_service": _records(cur, LEADS_BY_STATUS_AND_SERVICE),
            "index_usage": _records(cur, INDEX_USAGE, {"names": migration_indexes()}),
        }
    production_conn.rollback()
    return figures


def build_report(staging_conn, production_conn) -> dict:
    """All figures of the report; `healthy` is False on any ERROR rule violated or any lost row."""
    figures: dict = {"accounting": {t: accounting(staging_conn, production_conn, t) for t in FINAL_ENTITY}}
    figures["duplicates"], figures["orphans"], figures["rules"] = {}, {}, {}
    for rule in RULES:
        found = find_violations(rule, production_conn, staging_conn, EVERYTHING)
        figures[DUPLICATES if rule.kind == DUPLICATES else ORPHANS][rule.name] = len(found)
        figures["rules"][rule.name] = {
            "asset": rule.asset,
            "kind": rule.kind,
            "severity": rule.severity,
            "violations": len(found),
            "offending_ids": offending_ids(found, REPORT_LISTED),
        }
    with production_conn.cursor() as cur:
        figures["review_queue"] = _records(cur, REVIEW)
        figures["rejections"] = _records(cur, REJECTIONS)
        cur.execute(TOTALS)
        figures["totals"] = dict(
            zip(("persons", "students", "leads", "documents"), cur.fetchone(), strict=True)
        )
    production_conn.rollback()
    figures["verification"] = verification(production_conn)
    figures["healthy"] = not any(
        r["violations"] for r in figures["rules"].values() if r["severity"] == ERROR
    ) and all(a["unaccounted"] == 0 and a["in_two_places"] == 0 for a in figures["accounting"].values())
    return figures


def _table(title: str, rows: list[dict], columns: tuple[str, ...]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(
            column, justify="right" if column in ("n", "scans", "tuples_read", "size_bytes") else "left"
        )
    for row in rows:
        table.add_row(*(str(row[c]) for c in columns))
    return table


def print_report(console: Console, figures: dict) -> None:
    table = Table(title="accounting: staging rows = linked + rejected + in review (+ not processed yet)")
    for column in (
        "table",
        "staging_rows",
        "linked",
        "rejected",
        "in_review",
        "not_processed_yet",
        "unaccounted",
    ):
        table.add_column(column, justify="right" if column != "table" else "left")
    for name, a in figures["accounting"].items():
        table.add_row(
            name,
            *(
                str(a[c])
                for c in (
                    "staging_rows",
                    "linked",
                    "rejected",
                    "in_review",
                    "not_processed_yet",
                    "unaccounted",
                )
            ),
        )
    console.print(table)
    checks = Table(title="duplicates and orphans (whole database; the asset checks' rules)")
    for column in ("rule", "asset", "severity", "violations", "first ids"):
        checks.add_column(column, justify="right" if column == "violations" else "left")
    for name, rule in figures["rules"].items():
        checks.add_row(
            name,
            rule["asset"],
            rule["severity"],
            str(rule["violations"]),
            ", ".join(rule["offending_ids"][:3]),
        )
    console.print(checks)
    console.print(f"totals: {figures['totals']}")
    for item in figures["review_queue"]:
        console.print(f"review: {item['kind']} {item['status']}: {item['n']}")
    for item in figures["rejections"][:20]:
        console.print(f"rejected: {item['staging_table']}: {item['reason']}: {item['n']}")
    check = figures["verification"]
    console.print(_table("persons by data_source", check["persons_by_data_source"], ("data_source", "n")))
    console.print(
        f"csv_enriched: {check['csv_enriched']['persons']} persons, {check['csv_enriched']['students']} students"
    )
    console.print(_table("students by program", check["students_by_program"], ("program", "n")))
    console.print(
        _table(
            "leads by status and service", check["leads_by_status_and_service"], ("status", "service", "n")
        )
    )
    console.print(
        _table(
            "index usage (indexes of migration 20251105_add_staging_fields, since the stats reset)",
            check["index_usage"],
            ("table_name", "index_name", "scans", "tuples_read", "size_bytes"),
        )
    )
    console.print("[green]healthy[/]" if figures["healthy"] else "[bold red]NOT healthy[/]")


def verification_metadata(production_conn) -> dict:
    """The verification figures as Dagster metadata (markdown tables), for the run's last asset."""
    from dagster import MetadataValue

    from ice_pipeline.assets.common import markdown_counts

    figures = verification(production_conn)
    leads = {f"{r['status']} / {r['service']}": r["n"] for r in figures["leads_by_status_and_service"]}
    usage = ["| index | table | scans | tuples read | bytes |", "|---|---|---:|---:|---:|"]
    usage += [
        f"| {r['index_name']} | {r['table_name']} | {r['scans']} | {r['tuples_read']} | {r['size_bytes']} |"
        for r in figures["index_usage"]
    ]
    return {
        "persons_by_data_source": markdown_counts(
            "data_source", {r["data_source"]: r["n"] for r in figures["persons_by_data_source"]}
        ),
        "persons_csv_enriched": figures["csv_enriched"]["persons"],
        "students_csv_enriched": figures["csv_enriched"]["students"],
        "students_by_program": markdown_counts(
            "program", {r["program"]: r["n"] for r in figures["students_by_program"]}
        ),
        "leads_by_status_and_service": markdown_counts("status / service", leads),
        "migration_index_usage": MetadataValue.md("\n".join(usage)),
    }
