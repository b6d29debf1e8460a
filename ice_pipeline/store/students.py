"""Production students: reading the ones a batch touches, creating and filling them."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from psycopg2.extensions import cursor as Cursor

from ice_pipeline.db import IsolatedWrite, copy_into_temp, read_frame, write_isolating

READ_STUDENTS = """
SELECT s.id::text AS student_id, s.person_id::text AS person_id, s.student_number, s.program,
       s.data_source, s.csv_enriched
FROM students s
WHERE s.person_id IN (SELECT person_id FROM tmp_student_keys)
   OR s.student_number IN (SELECT student_number FROM tmp_student_keys WHERE student_number IS NOT NULL)
ORDER BY s.created_at, s.id
"""
KEY_COLUMNS = {"person_id": "uuid", "student_number": "text"}
STUDENT_COLUMNS = {
    "student_id": "uuid",
    "person_id": "uuid",
    "student_number": "text",
    "program": "text",
    "data_source": "text",
    "csv_enriched": "boolean",
}
INSERT_STUDENTS = """
INSERT INTO students (id, person_id, student_number, program, status, data_source, csv_enriched, created_at, updated_at)
SELECT student_id, person_id, student_number, program, 'ACTIVE', data_source, csv_enriched, %(now)s, %(now)s
FROM tmp_new_students
WHERE _row >= %(lo)s AND _row < %(hi)s
"""
FILL_STUDENTS = """
UPDATE students s SET
    student_number = coalesce(s.student_number, f.student_number),
    program = coalesce(s.program, f.program),
    data_source = coalesce(f.data_source, s.data_source),
    csv_enriched = s.csv_enriched OR f.csv_enriched,
    updated_at = %(now)s
FROM tmp_student_fills f
WHERE s.id = f.student_id AND f._row >= %(lo)s AND f._row < %(hi)s
"""


def read_students(cur: Cursor, rows: pd.DataFrame) -> pd.DataFrame:
    """Production students of the persons or student numbers of `rows`, oldest first."""
    copy_into_temp(cur, "tmp_student_keys", KEY_COLUMNS, rows)
    cur.execute("ANALYZE tmp_student_keys")
    existing = read_frame(cur, READ_STUDENTS)
    cur.execute("DROP TABLE tmp_student_keys")
    return existing.assign(csv_enriched=existing["csv_enriched"] == "t")


def insert_students(cur: Cursor, students: pd.DataFrame, now: dt.datetime) -> IsolatedWrite:
    """Create students (STUDENT_COLUMNS); a row production refuses costs that student only."""
    return write_isolating(cur, "tmp_new_students", STUDENT_COLUMNS, students, INSERT_STUDENTS, {"now": now})


def fill_students(cur: Cursor, fills: pd.DataFrame, now: dt.datetime) -> IsolatedWrite:
    """Fill NULL fields of existing students (student_id + fills, NA = keep); a refused fill costs that student."""
    return write_isolating(
        cur, "tmp_student_fills", STUDENT_COLUMNS, fills.assign(person_id=pd.NA), FILL_STUDENTS, {"now": now}
    )
