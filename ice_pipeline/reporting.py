"""`ice-pipeline report`: the health of the whole production database, not just the last run."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ice_pipeline.checks import FINAL_ENTITY, accounting
from ice_pipeline.db import read_frame

WHOLE_DATABASE_DUPLICATES = {
    "persons_same_cedula": """
        SELECT count(*) FROM (SELECT 1 FROM ice_pipeline.person_keys k JOIN persons p ON p.id = k.person_id
        WHERE k.cedula IS NOT NULL GROUP BY k.cedula HAVING count(*) > 1) d""",
    "persons_same_email": """
        SELECT count(*) FROM (SELECT 1 FROM ice_pipeline.person_keys k JOIN persons p ON p.id = k.person_id
        WHERE k.email IS NOT NULL GROUP BY k.email HAVING count(*) > 1) d""",
    "persons_same_name_birth_date_without_distinguishing_id": """
        SELECT count(*) FROM (SELECT 1 FROM ice_pipeline.person_keys k JOIN persons p ON p.id = k.person_id
        WHERE k.birth_date IS NOT NULL AND k.name_key IS NOT NULL GROUP BY k.name_key, k.birth_date
        HAVING count(*) > 1 AND count(DISTINCT k.cedula) <= 1 AND count(DISTINCT k.email) <= 1
               AND count(DISTINCT k.student_number) <= 1) d""",
    "students_same_person": "SELECT count(*) FROM (SELECT 1 FROM students GROUP BY person_id HAVING count(*) > 1) d",
    "leads_same_key": """
        SELECT count(*) FROM (SELECT 1 FROM leads GROUP BY person_id,
          CASE WHEN service_id IS NOT NULL AND event_id IS NOT NULL THEN service_id::text || '|' || event_id::text
               ELSE 'program:' || coalesce(program_type, '') END HAVING count(*) > 1) d""",
    "documents_same_student_checksum": """
        SELECT count(*) FROM (SELECT 1 FROM student_documents WHERE checksum IS NOT NULL
        GROUP BY student_id, checksum HAVING count(*) > 1) d""",
}
ORPHANS = {
    "students_without_person": "SELECT count(*) FROM students s LEFT JOIN persons p ON p.id = s.person_id WHERE p.id IS NULL",
    "leads_without_person": "SELECT count(*) FROM leads l LEFT JOIN persons p ON p.id = l.person_id WHERE p.id IS NULL",
    "documents_without_student": """SELECT count(*) FROM student_documents d
        LEFT JOIN students s ON s.id = d.student_id WHERE s.id IS NULL""",
}
REVIEW = "SELECT kind, status, count(*)::int AS n FROM ice_pipeline.review_queue GROUP BY kind, status ORDER BY 1, 2"
REJECTIONS = """SELECT staging_table, reason, count(*)::int AS n FROM ice_pipeline.rejected_rows
GROUP BY staging_table, reason ORDER BY 3 DESC"""
TOTALS = """SELECT (SELECT count(*) FROM persons) AS persons, (SELECT count(*) FROM students) AS students,
(SELECT count(*) FROM leads) AS leads, (SELECT count(*) FROM student_documents) AS documents"""


def build_report(staging_conn, production_conn) -> dict:
    """All figures of the report; `healthy` is False on any duplicate, orphan or lost row."""
    figures: dict = {"accounting": {t: accounting(staging_conn, production_conn, t) for t in FINAL_ENTITY}}
    with production_conn.cursor() as cur:
        figures["duplicates"] = {}
        for name, query in WHOLE_DATABASE_DUPLICATES.items():
            cur.execute(query)
            figures["duplicates"][name] = cur.fetchone()[0]
        figures["orphans"] = {}
        for name, query in ORPHANS.items():
            cur.execute(query)
            figures["orphans"][name] = cur.fetchone()[0]
        figures["review_queue"] = read_frame(cur, REVIEW).astype({"n": "int64"}).astype(object).to_dict("records")
        figures["rejections"] = read_frame(cur, REJECTIONS).astype({"n": "int64"}).astype(object).to_dict("records")
        cur.execute(TOTALS)
        figures["totals"] = dict(zip(("persons", "students", "leads", "documents"), cur.fetchone(), strict=True))
    production_conn.rollback()
    figures["healthy"] = (
        not any(figures["duplicates"].values()) and not any(figures["orphans"].values())
        and all(a["unaccounted"] == 0 and a["in_two_places"] == 0 for a in figures["accounting"].values())
    )
    return figures


def print_report(console: Console, figures: dict) -> None:
    table = Table(title="accounting: staging rows = linked + rejected + in review (+ not processed yet)")
    for column in ("table", "staging_rows", "linked", "rejected", "in_review", "not_processed_yet", "unaccounted"):
        table.add_column(column, justify="right" if column != "table" else "left")
    for name, a in figures["accounting"].items():
        table.add_row(name, *(str(a[c]) for c in ("staging_rows", "linked", "rejected", "in_review",
                                                   "not_processed_yet", "unaccounted")))
    console.print(table)
    checks = Table(title="duplicates and orphans (whole database)")
    checks.add_column("check")
    checks.add_column("count", justify="right")
    for group in ("duplicates", "orphans"):
        for name, count in figures[group].items():
            checks.add_row(name, str(count))
    console.print(checks)
    console.print(f"totals: {figures['totals']}")
    for item in figures["review_queue"]:
        console.print(f"review: {item['kind']} {item['status']}: {item['n']}")
    for item in figures["rejections"][:20]:
        console.print(f"rejected: {item['staging_table']}: {item['reason']}: {item['n']}")
    console.print("[green]healthy[/]" if figures["healthy"] else "[bold red]NOT healthy[/]")
