"""Every PostgreSQL advisory lock key the pipeline takes, who takes which, and why.

On the production database:

- `RUN_LOCK_KEY`, session level: one migration run at a time, from its first step (before the
  staging watermarks are read) to its end. Taken by the `MigrationLock` resource
  (resources.py), which only the staging multi-asset names, so it is held for the whole run;
  a second run waits, then stops without writing. `ice-pipeline undo` (try-lock: refuses
  while a run is in progress) and `ice-pipeline review apply` (waits) take it too, so no run
  is between resolving persons and writing their students while they change persons.
- `MIGRATION_LOCK_KEY`, transaction level: every transaction that writes production takes it
  (`assets.common.writer_transaction`, each review item in `review.apply`, `undo`), so two
  writers never plan from the same state; the plan is computed after the lock.
- `SCHEMA_LOCK_KEY`, transaction level: `db init` / `db migrate` (schema._apply) serialised, so
  two concurrent installs never race on CREATE ... IF NOT EXISTS.

On Dagster's own database (DAGSTER_PG_URL):

- `INSTANCE_SCHEMA_LOCK_KEY`, session level, a text hashed by the server: Dagster's schema is
  created by one process at a time (instance.py); concurrent creation fails with
  "already exists".

The integer keys are fixed: another process of another release must take the same lock.
"""

MIGRATION_LOCK_KEY = 0x1CE0001
RUN_LOCK_KEY = 0x1CE0002
SCHEMA_LOCK_KEY = 0x1CE5C4E
INSTANCE_SCHEMA_LOCK_KEY = "ice_pipeline:dagster_instance_schema"
