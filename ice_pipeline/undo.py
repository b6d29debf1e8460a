"""`ice-pipeline undo RUN_ID [--dry-run]`: revert one migration run, precisely.

Every statement a run makes to production and to the pipeline's own tables
is logged (sql/ice_pipeline_changes.sql: created rows, previous values of
updated rows, deleted rows). Undo reverts the run in one transaction under
both migration locks: deletes the rows it created, restores the previous
values of the rows it changed (watermarks included, so the next run redoes
those staging rows), inserts again what it deleted, and marks the run
`undone` in ice_pipeline.runs. Then it removes the objects of the documents
it created that no remaining row names.

It refuses, listing what blocks, when something since depends on the run:
a row it touched changed afterwards (a bot edit, a later run), a row
outside the run references a row it created, or a later run linked a staging
row to a row it created or changed. Restoring the pg_dump of `migrate
--backup` would also erase everything the bot wrote since; this does not.

Objects go after the commit: a row never names a missing object. If removing
them fails, the database is already undone and the objects are strays (the
documents_no_stray_objects check lists them; a new run re-uploads the same keys).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from psycopg2 import errors
from psycopg2.extensions import ISOLATION_LEVEL_REPEATABLE_READ
from psycopg2.extensions import connection as Connection

from ice_pipeline.locks import MIGRATION_LOCK_KEY, RUN_LOCK_KEY
from ice_pipeline.store import undo as q

LOCK_WAIT_SECONDS = 30
MAX_BLOCKERS_SHOWN = 50


class UndoError(RuntimeError):
    """The run cannot be undone for a reason other than a blocker (unknown, already undone, busy)."""


@dataclass
class UndoResult:
    """What an undo did (or, on a dry run or a refusal, would do)."""

    run_id: str
    dry_run: bool
    undone: bool = False
    blockers: list[dict] = field(default_factory=list)
    tables: list[dict] = field(
        default_factory=list
    )  # per table: delete_created, restore_changed, reinsert_deleted
    watermarks: list[dict] = field(default_factory=list)  # staging watermarks moved back
    objects: list[tuple[str, str]] = field(default_factory=list)  # (bucket, key) removed or to remove
    objects_failed: int = 0
    seconds: float = 0.0

    @property
    def refused(self) -> bool:
        return bool(self.blockers)

    def as_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "undone": self.undone,
            "refused": self.refused,
            "blockers": self.blockers,
            "tables": self.tables,
            "watermarks": self.watermarks,
            "objects": len(self.objects),
            "objects_failed": self.objects_failed,
            "seconds": self.seconds,
        }


def _rows(cur, query: str, params: dict | None = None) -> list[dict]:
    cur.execute(query, params)
    names = [d.name for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _take_locks(cur) -> None:
    """The run lock (no migration runs meanwhile) and the writer lock, or UndoError."""
    cur.execute("SELECT pg_try_advisory_lock(%s)", (RUN_LOCK_KEY,))
    if not cur.fetchone()[0]:
        raise UndoError("a migration run is in progress: undo when it has finished.")
    cur.execute("SET LOCAL lock_timeout = %s", (f"{LOCK_WAIT_SECONDS}s",))
    try:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
    except errors.LockNotAvailable:
        raise UndoError(
            f"another writer kept the migration lock for {LOCK_WAIT_SECONDS} s: try again."
        ) from None
    cur.execute("SET LOCAL lock_timeout = 0")


def _check_run(cur, run_id: str) -> None:
    cur.execute(q.CHANGE_LOG_PRESENT)
    if not cur.fetchone()[0]:
        raise UndoError(
            "this production database has no change log yet: run `ice-pipeline db migrate` "
            "(runs before it cannot be undone)."
        )
    cur.execute(q.READ_RUN, {"run_id": run_id})
    status, logged = cur.fetchone()
    if status is None and not logged:
        raise UndoError(
            f"unknown run {run_id}: no run with this id wrote to this production database "
            "(see ice_pipeline.runs, or the run list in the Dagster UI)."
        )
    if status == "undone":
        raise UndoError(f"run {run_id} is already undone.")
    if not logged:
        raise UndoError(
            f"run {run_id} has no recorded changes: it wrote nothing, or it ran before the "
            "change log was installed; nothing to undo."
        )


def undo_run(
    conn: Connection,
    run_id: str,
    *,
    dry_run: bool = False,
    remove_objects: Callable[[str, list[str]], int] | None = None,
) -> UndoResult:
    """Undo run `run_id` in one transaction (or say what it would do, or what blocks it).

    `remove_objects(bucket, keys)` removes objects from the store and returns how many
    failed; called after the commit, for the run's documents no remaining row names.
    """
    started = time.monotonic()
    result = UndoResult(run_id=run_id, dry_run=dry_run)
    # REPEATABLE READ instead of row locks (locking every row the run touched costs as much as
    # the undo): a row someone changes after the checks makes the undo's write fail, changing nothing.
    conn.autocommit = False
    conn.set_session(isolation_level=ISOLATION_LEVEL_REPEATABLE_READ)
    try:
        with conn.cursor() as cur:
            _take_locks(cur)
            _check_run(cur, run_id)
            cur.execute(q.NET_CHANGES, {"run_id": run_id})
            cur.execute(q.CREATE_WORK_TABLES)
            cur.execute(q.SNAPSHOT)
            cur.execute(q.LATER_RUNS, {"run_id": run_id})
            cur.execute(q.CHANGED_SINCE)
            cur.execute(q.REFERENCED)
            cur.execute(q.LATER_LINKS)
            result.blockers = _rows(cur, q.READ_BLOCKERS)
            result.tables = _rows(cur, q.PLAN_COUNTS)
            result.watermarks = _rows(cur, q.WATERMARK_MOVES)
            if result.blockers or dry_run:
                result.objects = [(r["bucket"], r["object_key"]) for r in _rows(cur, q.OBJECTS_TO_REMOVE)]
                conn.rollback()
            else:
                cur.execute(q.APPLY)
                cur.execute(q.FORGET_RUN_EVIDENCE, {"run_id": run_id})
                result.objects = [(r["bucket"], r["object_key"]) for r in _rows(cur, q.ORPHANED_OBJECTS)]
                cur.execute(q.MARK_UNDONE, {"run_id": run_id})
                conn.commit()
                result.undone = True
    except (errors.SerializationFailure, errors.ForeignKeyViolation):
        conn.rollback()
        raise UndoError(
            f"production changed while undoing run {run_id} (a bot write): nothing was changed; "
            "run the undo again to see what blocks it."
        ) from None
    except BaseException:
        conn.rollback()
        raise
    finally:
        _release_run_lock(conn)
    if result.undone and result.objects and remove_objects is not None:
        by_bucket: dict[str, list[str]] = {}
        for bucket, key in result.objects:
            by_bucket.setdefault(bucket, []).append(key)
        result.objects_failed = sum(remove_objects(bucket, keys) for bucket, keys in by_bucket.items())
    result.seconds = round(time.monotonic() - started, 2)
    return result


def _release_run_lock(conn: Connection) -> None:
    if conn.closed:
        return
    with conn.cursor() as cur:
        # Session-level, so it outlives the transaction; a lock not taken is a no-op (with a server warning).
        cur.execute("SELECT pg_advisory_unlock(%s)", (RUN_LOCK_KEY,))
    conn.commit()


def store_remover(client) -> Callable[[str, list[str]], int]:
    """remove_objects for a minio client: one multi-object delete per bucket; returns the failures."""
    from minio.deleteobjects import DeleteObject

    def remove(bucket: str, keys: list[str]) -> int:
        try:
            errors = list(client.remove_objects(bucket, [DeleteObject(key) for key in keys]))
        except Exception:  # the store is down: the database is undone, the objects are strays
            return len(keys)
        return len(errors)

    return remove
