"""The production writers no longer name `migration_lock`: the run lock is still taken once per run, and held
while they write (issue 10)."""

from __future__ import annotations

from contextlib import contextmanager

import ice_pipeline.assets.leads as leads_asset
import ice_pipeline.assets.students as students_asset
from ice_pipeline.locks import RUN_LOCK_KEY
from ice_pipeline.resources import MigrationLock

HELD_BY_ANOTHER_SESSION = """
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND classid = %s AND objid = %s AND granted AND pid <> pg_backend_pid()
"""


def test_run_lock_is_taken_once_per_run_and_held_while_students_and_leads_write(pipeline, monkeypatch):
    entered: list[str] = []
    held_during: dict[str, int] = {}
    original = MigrationLock.yield_for_execution

    @contextmanager
    def counting(self, context):
        entered.append("lock")
        with original(self, context) as lock:
            yield lock

    def observed(name, write):
        def wrapper(cur, frame, now):
            cur.execute(HELD_BY_ANOTHER_SESSION, (RUN_LOCK_KEY >> 32, RUN_LOCK_KEY & 0xFFFFFFFF))
            held_during[name] = cur.fetchone()[0]
            return write(cur, frame, now)

        return wrapper

    monkeypatch.setattr(MigrationLock, "yield_for_execution", counting)
    monkeypatch.setattr(
        students_asset, "insert_students", observed("students", students_asset.insert_students)
    )
    monkeypatch.setattr(leads_asset, "insert_leads", observed("leads", leads_asset.insert_leads))
    pipeline.insert(
        "staging_student", [{"full_name": "Ana Uno", "email": "ana@mail.com", "source": "csv_only"}]
    )
    pipeline.insert(
        "staging_lead", [{"full_name": "Ana Uno", "email": "ana@mail.com", "interest_program": "Camp"}]
    )
    summary = pipeline.run()
    assert summary["success"], summary["error"]
    assert summary["students_created"] == 1 and summary["leads_created"] == 1
    assert entered == ["lock"]
    assert held_during == {"students": 1, "leads": 1}
