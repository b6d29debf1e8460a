-- The change log of DESIGN §3.4: every change a pipeline run makes to
-- production (created rows, previous values of updated rows, deleted rows),
-- so that one run can be undone (`ice-pipeline undo RUN_ID`). Safe to apply twice.
--
-- How it is written: one AFTER ... FOR EACH STATEMENT trigger per table and
-- operation, reading the statement's transition tables, so a statement costs
-- one INSERT ... SELECT into the log whatever its row count (no per-row
-- trigger). It logs only when the session says a pipeline run is writing:
-- `writer_transaction` (assets/common.py) sets `ice_pipeline.run_id` for its
-- transaction (SET LOCAL). The bot's writes, operators' review decisions and
-- the undo itself leave no entry.

CREATE SCHEMA IF NOT EXISTS ice_pipeline;

-- The tables whose changes are logged, their primary key (how an entry names
-- its row) and the order parents come before children (restore order).
-- A view, not a table: nothing to keep in step, and a TRUNCATE of the schema's tables leaves it.
CREATE OR REPLACE VIEW ice_pipeline.change_tables (table_name, key_columns, restore_order) AS VALUES
    ('public.services', '{id}'::text[], 1),
    ('public.events', '{id}', 2),
    ('public.persons', '{id}', 3),
    ('public.students', '{id}', 4),
    ('public.leads', '{id}', 5),
    ('public.student_documents', '{id}', 6),
    ('ice_pipeline.source_links', '{staging_table,staging_id,entity}', 10),
    ('ice_pipeline.rejected_rows', '{staging_table,staging_id}', 11),
    ('ice_pipeline.review_queue', '{id}', 12),
    ('ice_pipeline.watermarks', '{staging_table}', 13),
    ('ice_pipeline.person_keys', '{person_id}', 14),
    ('ice_pipeline.person_moves', '{id}', 17);
-- Not logged: ice_pipeline.row_keys and ice_pipeline.field_sources (a row per linked staging row and per
-- field set: logging them doubled the cost of a full load). They leave with a person the undo deletes
-- (ON DELETE CASCADE), and `undo` forgets the rest the run wrote (store/undo.py FORGET_RUN_EVIDENCE).
DROP TRIGGER IF EXISTS ice_pipeline_log_insert ON ice_pipeline.row_keys;
DROP TRIGGER IF EXISTS ice_pipeline_log_update ON ice_pipeline.row_keys;
DROP TRIGGER IF EXISTS ice_pipeline_log_delete ON ice_pipeline.row_keys;
DROP TRIGGER IF EXISTS ice_pipeline_log_insert ON ice_pipeline.field_sources;
DROP TRIGGER IF EXISTS ice_pipeline_log_update ON ice_pipeline.field_sources;
DROP TRIGGER IF EXISTS ice_pipeline_log_delete ON ice_pipeline.field_sources;

-- One entry per row and statement: the row before (UPDATE, DELETE) and/or
-- after (INSERT, UPDATE). An UPDATE gives two entries with the same statement.
CREATE SEQUENCE IF NOT EXISTS ice_pipeline.change_statement_seq;
CREATE TABLE IF NOT EXISTS ice_pipeline.change_log (
    run_id      text        NOT NULL,
    statement   bigint      NOT NULL,   -- order of the run's statements (one run writes at a time)
    table_name  text        NOT NULL,
    old_row     jsonb,                  -- the row before the statement
    new_row     jsonb,                  -- the row after it
    logged_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS change_log_run_idx ON ice_pipeline.change_log (run_id);
-- "Which runs wrote after this one": statements only grow, so a BRIN index is enough (and nearly free to keep).
CREATE INDEX IF NOT EXISTS change_log_statement_idx ON ice_pipeline.change_log USING brin (statement);

-- Kept minimal: to_jsonb of each row and a plain INSERT (the row's key is computed when undoing).
CREATE OR REPLACE FUNCTION ice_pipeline.log_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    run  text := current_setting('ice_pipeline.run_id', true);
    stmt bigint;
    tbl  text := TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME;
BEGIN
    IF run IS NULL OR run = '' THEN
        RETURN NULL;
    END IF;
    stmt := nextval('ice_pipeline.change_statement_seq');
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO ice_pipeline.change_log (run_id, statement, table_name, old_row)
        SELECT run, stmt, tbl, to_jsonb(o) FROM old_rows o;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO ice_pipeline.change_log (run_id, statement, table_name, new_row)
        SELECT run, stmt, tbl, to_jsonb(n) FROM new_rows n;
    END IF;
    RETURN NULL;
END $$;

-- Three triggers per logged table (a trigger with transition tables has one event).
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT table_name, key_columns FROM ice_pipeline.change_tables LOOP
        IF to_regclass(t.table_name) IS NULL THEN
            CONTINUE;
        END IF;
        EXECUTE format('DROP TRIGGER IF EXISTS ice_pipeline_log_insert ON %s', t.table_name);
        EXECUTE format('DROP TRIGGER IF EXISTS ice_pipeline_log_update ON %s', t.table_name);
        EXECUTE format('DROP TRIGGER IF EXISTS ice_pipeline_log_delete ON %s', t.table_name);
        EXECUTE format('CREATE TRIGGER ice_pipeline_log_insert AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION ice_pipeline.log_changes()', t.table_name);
        EXECUTE format('CREATE TRIGGER ice_pipeline_log_update AFTER UPDATE ON %s '
                       'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION ice_pipeline.log_changes()', t.table_name);
        EXECUTE format('CREATE TRIGGER ice_pipeline_log_delete AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION ice_pipeline.log_changes()', t.table_name);
    END LOOP;
END $$;

-- The join condition "t.<key> = r.<key>" of a logged table, for the functions below.
CREATE OR REPLACE FUNCTION ice_pipeline.key_join(table_name text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT string_agg(format('t.%1$I = r.%1$I', k), ' AND ')
    FROM ice_pipeline.change_tables c, unnest(c.key_columns) AS k
    WHERE c.table_name = key_join.table_name
$$;

-- The undo of a run works on tmp_undo_rows(table_name, row_key, before, after):
-- per row the run touched, its image before the run's first change and after
-- its last (NULL: the row did not exist). The functions below read and
-- change the logged tables for those rows, one set-based statement per table.

-- The rows as they are now. Not locked: the undo runs in REPEATABLE READ, so a row
-- changed by someone else before the undo writes it makes the undo fail, changing nothing.
CREATE OR REPLACE FUNCTION ice_pipeline.undo_snapshot() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT c.table_name FROM ice_pipeline.change_tables c
             WHERE c.table_name IN (SELECT DISTINCT u.table_name FROM tmp_undo_rows u)
             ORDER BY c.restore_order LOOP
        EXECUTE format(
            'INSERT INTO tmp_undo_current (table_name, row_key, image) '
            'SELECT %1$L, u.row_key, to_jsonb(t) '
            'FROM tmp_undo_rows u, jsonb_populate_record(NULL::%1$s, coalesce(u.after, u.before)) r, %1$s t '
            'WHERE u.table_name = %1$L AND %2$s', t.table_name, ice_pipeline.key_join(t.table_name));
    END LOOP;
END $$;

-- A row's key as undo names it: its key columns' values, as a JSON array of three.
CREATE OR REPLACE FUNCTION ice_pipeline.row_key(image jsonb, key_columns text[]) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT jsonb_build_array(image -> key_columns[1], image -> key_columns[2], image -> key_columns[3])
$$;

-- The same key (ice_pipeline.row_key) as an expression of a row `t` of a logged table.
CREATE OR REPLACE FUNCTION ice_pipeline.row_key_sql(table_name text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT format('jsonb_build_array(%s)', string_agg(
               CASE WHEN c.key_columns[n] IS NULL THEN 'NULL::jsonb' ELSE format('to_jsonb(t.%I)', c.key_columns[n]) END,
               ', ' ORDER BY n))
    FROM ice_pipeline.change_tables c, generate_series(1, 3) AS n
    WHERE c.table_name = row_key_sql.table_name
$$;

-- Rows the run did not touch that reference (foreign key) a row the run
-- created: deleting it would fail or cascade. Every table with such a key
-- counts, the bot's own tables included.
CREATE OR REPLACE FUNCTION ice_pipeline.undo_reference_blockers() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    fk record;
BEGIN
    FOR fk IN
        SELECT n.nspname || '.' || cl.relname AS referencing,
               quote_ident(n.nspname) || '.' || quote_ident(cl.relname) AS referencing_sql, c.table_name AS referenced,
               (SELECT string_agg(format('t.%I = r.%I', a.attname, b.attname), ' AND ')
                FROM unnest(con.conkey, con.confkey) AS k(child, parent)
                JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.child
                JOIN pg_attribute b ON b.attrelid = con.confrelid AND b.attnum = k.parent) AS join_on,
               rc.table_name AS logged_as
        FROM pg_constraint con
        JOIN pg_class cl ON cl.oid = con.conrelid
        JOIN pg_namespace n ON n.oid = cl.relnamespace
        JOIN ice_pipeline.change_tables c ON to_regclass(c.table_name) = con.confrelid
        LEFT JOIN ice_pipeline.change_tables rc ON to_regclass(rc.table_name) = con.conrelid
        WHERE con.contype = 'f'
          -- the evidence tables go with their person (ON DELETE CASCADE) and are not logged; a later run's
          -- evidence for a person comes with that run's lineage, which blocks (LATER_LINKS)
          AND NOT (n.nspname = 'ice_pipeline' AND cl.relname IN ('row_keys', 'field_sources', 'person_keys'))
          AND c.table_name IN (SELECT u.table_name FROM tmp_undo_rows u WHERE u.before IS NULL AND u.after IS NOT NULL)
    LOOP
        EXECUTE format(
            'INSERT INTO tmp_undo_blockers (table_name, row_key, reason) '
            'SELECT %1$L, jsonb_build_array(coalesce(to_jsonb(t) -> ''id'', to_jsonb(t.ctid::text))), '
            '       ''references '' || %3$L || '' '' || (u.row_key ->> 0) || '', which the run created'' '
            'FROM tmp_undo_rows u, jsonb_populate_record(NULL::%3$s, u.after) r, %5$s t '
            'WHERE u.table_name = %3$L AND u.before IS NULL AND u.after IS NOT NULL AND %2$s %4$s',
            fk.referencing, fk.join_on, fk.referenced,
            CASE WHEN fk.logged_as IS NULL THEN ''
                 ELSE format('AND NOT EXISTS (SELECT 1 FROM tmp_undo_rows o WHERE o.table_name = %L AND o.row_key = %s)',
                             fk.logged_as, ice_pipeline.row_key_sql(fk.logged_as)) END,
            fk.referencing_sql);
    END LOOP;
END $$;

-- Put every row the run touched back as it was before the run: restore the
-- previous values of updated rows, delete created rows (children first), insert
-- deleted rows again (parents first). One statement per table and step.
CREATE OR REPLACE FUNCTION ice_pipeline.undo_apply() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT c.table_name, ice_pipeline.key_join(c.table_name) AS join_on,
                    (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a
                     WHERE a.attrelid = to_regclass(c.table_name) AND a.attnum > 0 AND NOT a.attisdropped
                       AND a.attgenerated = '') AS col_list,
                    (SELECT string_agg('r.' || quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a
                     WHERE a.attrelid = to_regclass(c.table_name) AND a.attnum > 0 AND NOT a.attisdropped
                       AND a.attgenerated = '') AS val_list
             FROM ice_pipeline.change_tables c
             WHERE c.table_name IN (SELECT DISTINCT u.table_name FROM tmp_undo_rows u)
             ORDER BY c.restore_order LOOP
        EXECUTE format(
            'UPDATE %1$s t SET (%3$s) = ROW(%4$s) '
            'FROM tmp_undo_rows u, jsonb_populate_record(NULL::%1$s, u.before) r '
            'WHERE u.table_name = %1$L AND u.before IS NOT NULL AND u.after IS NOT NULL AND %2$s',
            t.table_name, t.join_on, t.col_list, t.val_list);
    END LOOP;
    FOR t IN SELECT c.table_name, ice_pipeline.key_join(c.table_name) AS join_on
             FROM ice_pipeline.change_tables c
             WHERE c.table_name IN (SELECT DISTINCT u.table_name FROM tmp_undo_rows u)
             ORDER BY c.restore_order DESC LOOP
        EXECUTE format(
            'DELETE FROM %1$s t USING tmp_undo_rows u, jsonb_populate_record(NULL::%1$s, u.after) r '
            'WHERE u.table_name = %1$L AND u.before IS NULL AND u.after IS NOT NULL AND %2$s',
            t.table_name, t.join_on);
    END LOOP;
    FOR t IN SELECT c.table_name FROM ice_pipeline.change_tables c
             WHERE c.table_name IN (SELECT DISTINCT u.table_name FROM tmp_undo_rows u)
             ORDER BY c.restore_order LOOP
        EXECUTE format(
            'INSERT INTO %1$s SELECT r.* FROM tmp_undo_rows u, jsonb_populate_record(NULL::%1$s, u.before) r '
            'WHERE u.table_name = %1$L AND u.before IS NOT NULL AND u.after IS NULL',
            t.table_name);
    END LOOP;
END $$;
