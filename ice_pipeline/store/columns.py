"""The widths and types of the production columns, read from the database itself.

Read once per run (cached by database and run id) so that every writer fits
its values to the columns as they are -- a real ICE bot database may declare
narrower columns than the baseline this repository ships.
"""

from __future__ import annotations

from psycopg2.extensions import cursor as Cursor

from ice_pipeline.logic.fit import Column, Limits

PRODUCTION_TABLES = ("persons", "students", "leads", "services", "events", "student_documents")
READ_COLUMNS = """
SELECT table_name, column_name, data_type, character_maximum_length
FROM information_schema.columns
WHERE table_schema = 'public' AND table_name = ANY(%(tables)s)
"""
CURRENT_DATABASE = "SELECT current_database()"

_by_run: dict[tuple[str, str], Limits] = {}


def read_column_limits(cur: Cursor, tables: tuple[str, ...] = PRODUCTION_TABLES) -> Limits:
    """table -> column -> Column(data_type, max_length) for the production tables."""
    cur.execute(READ_COLUMNS, {"tables": list(tables)})
    limits: dict[str, dict[str, Column]] = {}
    for table, column, data_type, max_length in cur.fetchall():
        limits.setdefault(table, {})[column] = Column(
            data_type, int(max_length) if max_length is not None else None
        )
    return limits


def column_limits(cur: Cursor, run_id: str) -> Limits:
    """`read_column_limits` once per run: the first writer of a run reads them, the others reuse them."""
    cur.execute(CURRENT_DATABASE)
    key = (cur.fetchone()[0], run_id)
    if key not in _by_run:
        if len(_by_run) > 16:  # a long-lived code server runs many runs: keep the last few
            _by_run.pop(next(iter(_by_run)))
        _by_run[key] = read_column_limits(cur)
    return _by_run[key]
