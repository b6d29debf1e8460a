"""Row-by-row baseline: the integration plan's §3.1 sample algorithm, for comparison only.

This is NOT product code. It reproduces `StagingToProduction` of
`seed/integration-plan.md` §3.1 as written - per-row SELECTs in priority
order on the *raw* staging values (cédula, e-mail, name + birth date,
name + phone), a per-row INSERT or UPDATE, a commit per row - so that the
set-based pipeline can be measured against it on the same machine, the same
data and the same production schema.

Changes from the plan's code, each only what the Prisma schema requires or
what a fair measurement needs:

* every INSERT supplies `id` (uuid4, client-side) and `updated_at` (NOW()):
  Prisma tables have no database default for either (DESIGN §3.2);
* `persons.email` is nullable (migration 20251105), so leads without e-mail
  insert as the plan's code would send them (NULL);
* the session uses `DateStyle = 'ISO, DMY'`, so that `15/03/1995` is the
  15th of March and not a failed row (the plan passes raw text to a DATE
  column; with PostgreSQL's default MDY most Colombian dates would fail and
  the baseline would do *less* work than it is meant to);
* the staging SELECT orders by `created_at, id` (the plan: `created_at`
  only; rows loaded in one transaction share created_at, so `id` makes the
  order - and a sample - deterministic), and accepts a LIMIT for samples;
* errors are counted by SQLSTATE instead of logging `full_name` (PII).

Defects kept on purpose (DESIGN §5): exact matching on raw values, no
lineage, `data_source` overwritten, names+phone merges, no documents.

Timing: `windows` records, every `window` rows, the seconds spent and the
size of `persons`; `extrapolate` scales a sample linearly (a lower bound: the
plan's name+phone lookup has no usable index and scans `persons`, so the
cost per row grows with the table).
"""

from __future__ import annotations

import argparse
import time
import uuid
from dataclasses import dataclass, field

import psycopg2
from psycopg2.extras import RealDictCursor


@dataclass
class Window:
    table: str
    rows: int
    seconds: float
    persons_start: int
    persons_end: int


@dataclass
class PassResult:
    """One pass of migrate_students + migrate_leads (possibly limited)."""

    student_rows: int
    lead_rows: int
    student_seconds: float
    lead_seconds: float
    persons_before: int
    persons_after_students: int
    persons_after: int
    stats: dict[str, int]
    errors: dict[str, int]
    windows: list[Window] = field(default_factory=list)
    name_phone_lookups: int = 0  # priority-4 lookups: each one scans `persons` (no usable index)

    @property
    def rows(self) -> int:
        return self.student_rows + self.lead_rows

    @property
    def seconds(self) -> float:
        return self.student_seconds + self.lead_seconds


class StagingToProduction:
    """The plan's class, with the Prisma fixes listed in the module docstring."""

    def __init__(self, staging_db_url: str, production_db_url: str, window: int = 250):
        self.staging_conn = psycopg2.connect(staging_db_url, cursor_factory=RealDictCursor)
        self.prod_conn = psycopg2.connect(production_db_url, cursor_factory=RealDictCursor)
        with self.prod_conn.cursor() as cur:
            cur.execute("SET DateStyle = 'ISO, DMY'")
            cur.execute("SELECT count(*) AS n FROM persons")
            self.persons = int(cur.fetchone()["n"])
        self.prod_conn.commit()
        self.window = window
        self.windows: list[Window] = []
        self.name_phone_lookups = 0
        self.errors: dict[str, int] = {}
        self.stats = {
            "persons_created": 0,
            "persons_updated": 0,
            "students_created": 0,
            "students_updated": 0,
            "leads_created": 0,
            "leads_updated": 0,
            "rows_failed": 0,
        }

    def close(self) -> None:
        self.staging_conn.close()
        self.prod_conn.close()

    # --- plan §3.1: find_or_create_person / _create_person / _update_person ---

    def find_or_create_person(self, staging_student: dict) -> tuple[str, bool]:
        with self.prod_conn.cursor() as cur:
            # Priority 1: Cedula
            if staging_student.get("cedula"):
                cur.execute("SELECT id FROM persons WHERE cedula = %s", (staging_student["cedula"],))
                result = cur.fetchone()
                if result:
                    return (result["id"], False)
            # Priority 2: Email
            if staging_student.get("email"):
                cur.execute("SELECT id FROM persons WHERE email = %s", (staging_student["email"],))
                result = cur.fetchone()
                if result:
                    self._update_person(result["id"], staging_student)
                    return (result["id"], False)
            # Priority 3: Name + Birth Date
            if staging_student.get("birth_date"):
                cur.execute(
                    "SELECT id FROM persons WHERE full_name = %s AND birth_date = %s",
                    (staging_student["full_name"], staging_student["birth_date"]),
                )
                result = cur.fetchone()
                if result:
                    self._update_person(result["id"], staging_student)
                    return (result["id"], False)
            # Priority 4: Name + Phone
            if staging_student.get("phone"):
                self.name_phone_lookups += 1
                cur.execute(
                    "SELECT id FROM persons WHERE full_name = %s AND phone = %s",
                    (staging_student["full_name"], staging_student["phone"]),
                )
                result = cur.fetchone()
                if result:
                    self._update_person(result["id"], staging_student)
                    return (result["id"], False)
            # Create new person
            person_id = self._create_person(staging_student)
            return (person_id, True)

    def _create_person(self, data: dict) -> str:
        with self.prod_conn.cursor() as cur:
            cur.execute(
                """
                INSERT INTO persons (
                    id, full_name, email, phone, address, cedula, birth_date,
                    city, country, data_source, original_name, csv_enriched, updated_at
                )
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, NOW())
                RETURNING id
            """,
                (
                    str(uuid.uuid4()),
                    data["full_name"],
                    data.get("email"),
                    data.get("phone"),
                    data.get("address"),
                    data.get("cedula"),
                    data.get("birth_date"),
                    data.get("city"),
                    data.get("country"),
                    "CSV",
                    data.get("original_name"),
                    True,
                ),
            )
            person_id = cur.fetchone()["id"]
            self.prod_conn.commit()
            self.stats["persons_created"] += 1
            self.persons += 1
            return person_id

    def _update_person(self, person_id: str, new_data: dict) -> None:
        with self.prod_conn.cursor() as cur:
            updates = []
            params = []
            if new_data.get("address"):
                updates.append("address = COALESCE(address, %s)")
                params.append(new_data["address"])
            if new_data.get("cedula"):
                updates.append("cedula = COALESCE(cedula, %s)")
                params.append(new_data["cedula"])
            if new_data.get("birth_date"):
                updates.append("birth_date = COALESCE(birth_date, %s)")
                params.append(new_data["birth_date"])
            if new_data.get("country"):
                updates.append("country = COALESCE(country, %s)")
                params.append(new_data["country"])
            updates.append("csv_enriched = TRUE")
            updates.append("updated_at = NOW()")
            if updates:
                params.append(person_id)
                query = f"UPDATE persons SET {', '.join(updates)} WHERE id = %s"
                cur.execute(query, params)
                self.prod_conn.commit()
                self.stats["persons_updated"] += 1

    # --- plan §3.1: migrate_students / migrate_leads -------------------------

    def _failed(self, error: Exception) -> None:
        self.prod_conn.rollback()
        code = getattr(error, "pgcode", None) or type(error).__name__
        self.errors[code] = self.errors.get(code, 0) + 1
        self.stats["rows_failed"] += 1

    def _rows(self, query: str, limit: int | None) -> list[dict]:
        with self.staging_conn.cursor() as staging_cur:
            staging_cur.execute(
                query + (" LIMIT %s" if limit is not None else ""), (limit,) if limit is not None else None
            )
            rows = staging_cur.fetchall()
        self.staging_conn.commit()
        return rows

    def _tick(self, table: str, done: int, mark: list) -> None:
        if done % self.window == 0:
            now = time.perf_counter()
            self.windows.append(Window(table, done - mark[2], now - mark[0], mark[1], self.persons))
            mark[:] = [now, self.persons, done]

    def _close_window(self, table: str, done: int, mark: list) -> None:
        if done > mark[2]:
            self.windows.append(
                Window(table, done - mark[2], time.perf_counter() - mark[0], mark[1], self.persons)
            )

    def migrate_students(self, limit: int | None = None) -> int:
        students = self._rows("SELECT * FROM staging_student ORDER BY created_at, id", limit)
        mark = [time.perf_counter(), self.persons, 0]
        done = 0
        for student in students:
            try:
                person_id, created = self.find_or_create_person(student)
                with self.prod_conn.cursor() as prod_cur:
                    prod_cur.execute("SELECT id FROM students WHERE person_id = %s", (person_id,))
                    existing_student = prod_cur.fetchone()
                    if existing_student:
                        prod_cur.execute(
                            """
                            UPDATE students
                            SET program = COALESCE(program, %s),
                                data_source = %s,
                                csv_enriched = TRUE,
                                updated_at = NOW()
                            WHERE id = %s
                        """,
                            (student.get("program"), student.get("source", "CSV"), existing_student["id"]),
                        )
                        self.stats["students_updated"] += 1
                    else:
                        prod_cur.execute(
                            """
                            INSERT INTO students (
                                id, person_id, program, data_source, csv_enriched, status, updated_at
                            )
                            VALUES (%s, %s, %s, %s, TRUE, 'ACTIVE', NOW())
                        """,
                            (
                                str(uuid.uuid4()),
                                person_id,
                                student.get("program"),
                                student.get("source", "CSV"),
                            ),
                        )
                        self.stats["students_created"] += 1
                    self.prod_conn.commit()
            except Exception as e:  # the plan: log, roll back, next row
                self._failed(e)
            done += 1
            self._tick("staging_student", done, mark)
        self._close_window("staging_student", done, mark)
        return done

    def migrate_leads(self, limit: int | None = None) -> int:
        leads = self._rows("SELECT * FROM staging_lead ORDER BY created_at, id", limit)
        mark = [time.perf_counter(), self.persons, 0]
        done = 0
        for lead in leads:
            try:
                person_data = {
                    "full_name": lead["full_name"],
                    "email": lead.get("email"),
                    "phone": lead.get("phone"),
                    "address": lead.get("address"),
                    "cedula": lead.get("cedula"),
                    "birth_date": lead.get("birth_date"),
                    "city": lead.get("city"),
                    "country": lead.get("country"),
                }
                person_id, created = self.find_or_create_person(person_data)
                with self.prod_conn.cursor() as prod_cur:
                    prod_cur.execute(
                        """
                        SELECT id FROM leads
                        WHERE person_id = %s
                        AND program_type = %s
                        AND source_file = %s
                    """,
                        (person_id, lead.get("interest_program"), lead.get("source_file")),
                    )
                    existing_lead = prod_cur.fetchone()
                    if existing_lead:
                        prod_cur.execute(
                            """
                            UPDATE leads
                            SET lead_status = COALESCE(%s, lead_status),
                                notes = COALESCE(%s, notes),
                                updated_at = NOW()
                            WHERE id = %s
                        """,
                            (lead.get("status"), lead.get("notes"), existing_lead["id"]),
                        )
                        self.stats["leads_updated"] += 1
                    else:
                        prod_cur.execute(
                            """
                            INSERT INTO leads (
                                id, person_id, program_type, lead_status, lead_date,
                                source_file, source_sheet, notes, updated_at
                            )
                            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, NOW())
                        """,
                            (
                                str(uuid.uuid4()),
                                person_id,
                                lead.get("interest_program"),
                                lead.get("status", "NEW"),
                                lead.get("created_at"),
                                lead.get("source_file"),
                                lead.get("source_sheet"),
                                lead.get("notes"),
                            ),
                        )
                        self.stats["leads_created"] += 1
                    self.prod_conn.commit()
            except Exception as e:  # the plan: log, roll back, next row
                self._failed(e)
            done += 1
            self._tick("staging_lead", done, mark)
        self._close_window("staging_lead", done, mark)
        return done

    def run_pass(self, student_limit: int | None = None, lead_limit: int | None = None) -> PassResult:
        """The plan's run_full_migration (students, then leads), optionally on the first rows only."""
        stats_before = dict(self.stats)
        scans_before = self.name_phone_lookups
        errors_before = dict(self.errors)
        windows_before = len(self.windows)
        persons_before = self.persons
        t0 = time.perf_counter()
        n_students = self.migrate_students(student_limit)
        t1 = time.perf_counter()
        persons_mid = self.persons
        n_leads = self.migrate_leads(lead_limit)
        t2 = time.perf_counter()
        return PassResult(
            student_rows=n_students,
            lead_rows=n_leads,
            student_seconds=t1 - t0,
            lead_seconds=t2 - t1,
            persons_before=persons_before,
            persons_after_students=persons_mid,
            persons_after=self.persons,
            stats={k: v - stats_before.get(k, 0) for k, v in self.stats.items()},
            errors={
                k: v - errors_before.get(k, 0) for k, v in self.errors.items() if v - errors_before.get(k, 0)
            },
            windows=self.windows[windows_before:],
            name_phone_lookups=self.name_phone_lookups - scans_before,
        )

    def scan_seconds_per_person(self, repeat: int = 30) -> float:
        """Seconds one name+phone lookup spends per row of `persons` (it is a sequential scan)."""
        with self.prod_conn.cursor() as cur:
            cur.execute("SELECT count(*) AS n FROM persons")
            persons = max(int(cur.fetchone()["n"]), 1)
            started = time.perf_counter()
            for i in range(repeat):
                cur.execute(
                    "SELECT id FROM persons WHERE full_name = %s AND phone = %s",
                    (f"no such person {i}", f"+0 {i}"),
                )
                cur.fetchall()
            seconds = (time.perf_counter() - started) / repeat
        self.prod_conn.rollback()
        return seconds / persons


# --------------------------------------------------------------------------
# extrapolation


@dataclass
class Extrapolation:
    linear_seconds: float  # the sample's seconds per row (per table) x all rows: a lower bound
    first_ms_per_row: float  # seconds per row in the sample's first and last windows: the drift
    last_ms_per_row: float  # shows the per-row cost growing with the size of `persons`
    scan_model_seconds: float | None = None  # linear + the name+phone scans at the full table sizes


def extrapolate(
    sample: PassResult, total_students: int, total_leads: int, scan_seconds_per_person: float | None = None
) -> Extrapolation:
    """Linear full-run estimate from a pass over the first rows of each table.

    A lower bound: the plan's name+phone lookup has no usable index and scans
    `persons`, so rows cost more as the table grows (see first/last ms per row).
    """
    linear = 0.0
    if sample.student_rows:
        linear += sample.student_seconds / sample.student_rows * total_students
    if sample.lead_rows:
        linear += sample.lead_seconds / sample.lead_rows * total_leads
    leads = [w for w in sample.windows if w.table == "staging_lead" and w.rows] or [
        w for w in sample.windows if w.rows
    ]
    k = max(1, len(leads) // 5)

    def ms(ws: list[Window]) -> float:
        return 1000 * sum(w.seconds for w in ws) / max(sum(w.rows for w in ws), 1)

    model = None
    if scan_seconds_per_person is not None and sample.rows:
        # Every priority-4 lookup scans `persons`. Scale the sample's rate of such lookups and
        # of new persons to all rows, with `persons` growing linearly over the run: the scans
        # then cost c * lookups * (mean table size), of which the sample already paid a little.
        total = total_students + total_leads
        lookups = sample.name_phone_lookups / sample.rows * total
        final = sample.persons_before + (sample.persons_after - sample.persons_before) / sample.rows * total
        mean_full = (sample.persons_before + final) / 2
        mean_sample = (sample.persons_before + sample.persons_after) / 2
        model = linear + scan_seconds_per_person * lookups * max(mean_full - mean_sample, 0.0)
    return Extrapolation(
        linear_seconds=linear,
        first_ms_per_row=ms(leads[:k]),
        last_ms_per_row=ms(leads[-k:]),
        scan_model_seconds=model,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the plan's row-by-row algorithm (baseline) once.")
    parser.add_argument("--staging-url", required=True)
    parser.add_argument(
        "--production-url", required=True, help="an empty production database (db init applied)"
    )
    parser.add_argument("--students", type=int, default=None, help="only the first N staging students")
    parser.add_argument("--leads", type=int, default=None, help="only the first N staging leads")
    args = parser.parse_args(argv)
    migrator = StagingToProduction(args.staging_url, args.production_url)
    try:
        result = migrator.run_pass(args.students, args.leads)
    finally:
        migrator.close()
    print(
        f"{result.rows} rows in {result.seconds:.1f} s ({result.rows / max(result.seconds, 1e-9):.0f} rows/s); "
        f"students {result.student_seconds:.1f} s, leads {result.lead_seconds:.1f} s; "
        f"persons {result.persons_after}; stats {result.stats}; errors {result.errors}"
    )


if __name__ == "__main__":
    main()
