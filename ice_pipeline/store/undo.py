"""SQL of `ice-pipeline undo RUN_ID` (orchestrated by ice_pipeline/undo.py).

The change log and the per-table functions live in sql/ice_pipeline_changes.sql.
Everything here is set-based: the run's log is reduced to one entry per row
it touched (its image before the run's first change and after its last) in
`tmp_undo_rows`, and every check and write is one statement over that table.
"""

# The run as ice_pipeline knows it: its runs row (status) and whether it logged changes.
READ_RUN = """
SELECT (SELECT status FROM ice_pipeline.runs WHERE run_id = %(run_id)s),
       EXISTS (SELECT 1 FROM ice_pipeline.change_log WHERE run_id = %(run_id)s)
"""
CHANGE_LOG_PRESENT = "SELECT to_regclass('ice_pipeline.change_log') IS NOT NULL"

# Per row the run touched: the image before its first statement and after its last
# (NULL: the row did not exist). An UPDATE logs the old and the new image under one statement.
NET_CHANGES = """
CREATE TEMP TABLE tmp_undo_rows ON COMMIT DROP AS
WITH per_statement AS (
    SELECT g.table_name, ice_pipeline.row_key(coalesce(g.new_row, g.old_row), t.key_columns) AS row_key, g.statement,
           (array_agg(g.old_row) FILTER (WHERE g.old_row IS NOT NULL))[1] AS old_row,
           (array_agg(g.new_row) FILTER (WHERE g.new_row IS NOT NULL))[1] AS new_row
    FROM ice_pipeline.change_log g
    JOIN ice_pipeline.change_tables t ON t.table_name = g.table_name
    WHERE g.run_id = %(run_id)s
    GROUP BY 1, 2, 3
)
SELECT DISTINCT ON (table_name, row_key) table_name, row_key,
       first_value(old_row) OVER w AS before,
       last_value(new_row) OVER w AS after
FROM per_statement
WINDOW w AS (PARTITION BY table_name, row_key ORDER BY statement
             ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
"""
CREATE_WORK_TABLES = """
CREATE TEMP TABLE tmp_undo_current (table_name text, row_key jsonb, image jsonb) ON COMMIT DROP;
CREATE TEMP TABLE tmp_undo_blockers (table_name text, row_key jsonb, reason text) ON COMMIT DROP;
CREATE INDEX ON tmp_undo_rows (table_name, row_key);  -- each table's step reads its own rows only
ANALYZE tmp_undo_rows (table_name);
"""
# The current rows (the transaction is REPEATABLE READ: a row changed meanwhile fails the undo's write).
SNAPSHOT = "SELECT ice_pipeline.undo_snapshot()"

# Runs that wrote after this one and are not undone: one run writes at a time, so
# statement numbers order runs.
LATER_RUNS = """
CREATE TEMP TABLE tmp_undo_later ON COMMIT DROP AS
SELECT DISTINCT c.run_id
FROM ice_pipeline.change_log c
WHERE c.statement > (SELECT max(statement) FROM ice_pipeline.change_log WHERE run_id = %(run_id)s)
  AND c.run_id <> %(run_id)s
  AND NOT EXISTS (SELECT 1 FROM ice_pipeline.runs r WHERE r.run_id = c.run_id AND r.status = 'undone')
"""
# A row the run touched that is no longer as the run left it, or that a later run also changed.
CHANGED_SINCE = """
INSERT INTO tmp_undo_blockers (table_name, row_key, reason)
SELECT u.table_name, u.row_key,
       CASE WHEN l.runs IS NOT NULL THEN 'a later run changed it too (' || l.runs || ')'
            WHEN c.image IS NULL THEN 'deleted after the run, outside the pipeline'
            ELSE 'changed after the run, outside the pipeline (a bot or manual edit)' END
FROM tmp_undo_rows u
LEFT JOIN tmp_undo_current c ON c.table_name = u.table_name AND c.row_key = u.row_key
LEFT JOIN (SELECT g.table_name, ice_pipeline.row_key(coalesce(g.new_row, g.old_row), t.key_columns) AS row_key,
                  string_agg(DISTINCT g.run_id, ', ') AS runs
           FROM ice_pipeline.change_log g
           JOIN ice_pipeline.change_tables t ON t.table_name = g.table_name
           WHERE g.run_id IN (SELECT run_id FROM tmp_undo_later)
           GROUP BY 1, 2) l ON l.table_name = u.table_name AND l.row_key = u.row_key
WHERE c.image IS DISTINCT FROM u.after OR l.runs IS NOT NULL
"""
# Rows outside the run holding a foreign key to a row the run created (any table, the bot's too).
REFERENCED = "SELECT ice_pipeline.undo_reference_blockers()"
# Rows of the pipeline's own tables that a later run wrote naming (any *id column) a row this
# run created or changed: lineage, review items, keys. That run decided with this run's rows.
LATER_LINKS = """
INSERT INTO tmp_undo_blockers (table_name, row_key, reason)
SELECT c.table_name, ice_pipeline.row_key(c.new_row, t.key_columns),
       'a later run (' || c.run_id || ') linked it to ' || u.table_name || ' ' || (u.row_key ->> 0)
       || ', which this run ' || CASE WHEN u.before IS NULL THEN 'created' ELSE 'changed' END
FROM ice_pipeline.change_log c
JOIN ice_pipeline.change_tables t ON t.table_name = c.table_name
CROSS JOIN LATERAL jsonb_each_text(c.new_row) AS v(field, ref)
JOIN tmp_undo_rows u ON left(u.table_name, 7) = 'public.' AND u.row_key ->> 0 = v.ref
WHERE c.run_id IN (SELECT run_id FROM tmp_undo_later)
  AND left(c.table_name, 13) = 'ice_pipeline.' AND c.new_row IS NOT NULL AND right(v.field, 2) = 'id'
"""
READ_BLOCKERS = """
SELECT table_name, row_key ->> 0 AS row_id,
       (SELECT string_agg(e, ' / ') FROM jsonb_array_elements_text(row_key) AS e) AS row_key, reason
FROM (SELECT DISTINCT table_name, row_key, reason FROM tmp_undo_blockers) b
ORDER BY table_name, row_key::text, reason
"""

# What the undo does, per table: rows created (deleted by the undo), changed (previous values
# restored), deleted (inserted again).
PLAN_COUNTS = """
SELECT table_name,
       count(*) FILTER (WHERE before IS NULL AND after IS NOT NULL) AS delete_created,
       count(*) FILTER (WHERE before IS NOT NULL AND after IS NOT NULL) AS restore_changed,
       count(*) FILTER (WHERE before IS NOT NULL AND after IS NULL) AS reinsert_deleted
FROM tmp_undo_rows
GROUP BY table_name
ORDER BY table_name
"""
# The staging watermarks the undo moves back (no personal data: table names, timestamps, ids).
WATERMARK_MOVES = """
SELECT row_key ->> 0 AS staging_table,
       after ->> 'high_updated_at' AS from_updated_at, (after ->> 'high_id')::bigint AS from_id,
       before ->> 'high_updated_at' AS to_updated_at, (before ->> 'high_id')::bigint AS to_id
FROM tmp_undo_rows
WHERE table_name = 'ice_pipeline.watermarks'
ORDER BY 1
"""
APPLY = "SELECT ice_pipeline.undo_apply()"

# Objects of the documents the run created that no remaining row names (read after APPLY).
ORPHANED_OBJECTS = """
SELECT DISTINCT u.after ->> 'bucket' AS bucket, u.after ->> 'object_key' AS object_key
FROM tmp_undo_rows u
WHERE u.table_name = 'public.student_documents' AND u.before IS NULL AND u.after IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM student_documents d
                  WHERE d.bucket = u.after ->> 'bucket' AND d.object_key = u.after ->> 'object_key')
ORDER BY 1, 2
"""
# The same objects before APPLY, for a dry run: the run's documents whose key no other row names.
OBJECTS_TO_REMOVE = """
SELECT DISTINCT u.after ->> 'bucket' AS bucket, u.after ->> 'object_key' AS object_key
FROM tmp_undo_rows u
WHERE u.table_name = 'public.student_documents' AND u.before IS NULL AND u.after IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM student_documents d
                  WHERE d.bucket = u.after ->> 'bucket' AND d.object_key = u.after ->> 'object_key'
                    AND d.id::text NOT IN (SELECT o.row_key ->> 0 FROM tmp_undo_rows o
                                           WHERE o.table_name = 'public.student_documents'
                                             AND o.before IS NULL))
ORDER BY 1, 2
"""
# The evidence and field sources the run wrote (not in the change log): forgotten with the run.
FORGET_RUN_EVIDENCE = """
DELETE FROM ice_pipeline.row_keys WHERE run_id = %(run_id)s;
DELETE FROM ice_pipeline.field_sources WHERE run_id = %(run_id)s;
"""
MARK_UNDONE = """
INSERT INTO ice_pipeline.runs (run_id, status, finished_at, stats)
VALUES (%(run_id)s, 'undone', now(), jsonb_build_object('undone_at', now()))
ON CONFLICT (run_id) DO UPDATE
SET status = 'undone', stats = ice_pipeline.runs.stats || jsonb_build_object('undone_at', now())
"""
