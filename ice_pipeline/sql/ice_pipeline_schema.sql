-- The pipeline's own state, in schema ice_pipeline of the production database
-- (DESIGN §3.4). Prisma ignores other schemas, so this lives apart from the
-- bot's tables. Safe to apply twice.

CREATE SCHEMA IF NOT EXISTS ice_pipeline;

-- Lineage and exactly-once bookkeeping: one row per (staging row, entity it
-- produced or joined). External checks read this table: names are fixed.
CREATE TABLE IF NOT EXISTS ice_pipeline.source_links (
    staging_table  text        NOT NULL,
    staging_id     bigint      NOT NULL,
    entity         text        NOT NULL CHECK (entity IN ('person', 'student', 'lead', 'document')),
    entity_id      uuid        NOT NULL,
    matched_by     text        NOT NULL,
    run_id         text        NOT NULL,
    linked_at      timestamptz NOT NULL DEFAULT now(),
    warnings       text[]      NOT NULL DEFAULT '{}',   -- values dropped while loading, e.g. an impossible birth date
    PRIMARY KEY (staging_table, staging_id, entity)
);
CREATE INDEX IF NOT EXISTS source_links_entity_idx ON ice_pipeline.source_links (entity, entity_id);
-- The run-scoped checks read "what this run linked": without it, a scan of all lineage per check.
CREATE INDEX IF NOT EXISTS source_links_run_idx ON ice_pipeline.source_links (run_id, entity);

-- Rows that could not be loaded, with a reason a person understands.
-- `retryable` rows (a document whose student waits in review, a file not
-- there yet) are read again by every run until they load.
CREATE TABLE IF NOT EXISTS ice_pipeline.rejected_rows (
    staging_table  text        NOT NULL,
    staging_id     bigint      NOT NULL,
    reason         text        NOT NULL,
    details        jsonb       NOT NULL DEFAULT '{}',
    retryable      boolean     NOT NULL DEFAULT false,
    run_id         text        NOT NULL,
    rejected_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (staging_table, staging_id)
);

-- Ambiguous identities and conflicting values wait here for a person.
--   identity_conflict : the staging row is NOT linked; it waits for a decision
--   field_conflict    : the row is linked; an incoming value differs from the stored one
--   possible_duplicate: the row is linked; it also resembles another person
-- An operator resolves an identity_conflict (`ice-pipeline review resolve`):
-- status 'resolved' + decision; the next run applies it (status 'applied').
CREATE TABLE IF NOT EXISTS ice_pipeline.review_queue (
    id                   bigserial   PRIMARY KEY,
    kind                 text        NOT NULL CHECK (kind IN ('identity_conflict', 'field_conflict', 'possible_duplicate')),
    staging_table        text        NOT NULL,
    staging_id           bigint      NOT NULL,
    person_id            uuid,
    candidate_person_id  uuid,
    field                text,
    existing_value       text,
    incoming_value       text,
    score                real,
    reason               text,
    status               text        NOT NULL DEFAULT 'open',
    decision             text,       -- identity_conflict resolved by a person: 'merge:<person uuid>' | 'new'
    run_id               text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    resolved_at          timestamptz
);
-- Columns and constraints added after the first release, for databases that have the table already.
ALTER TABLE ice_pipeline.review_queue ADD COLUMN IF NOT EXISTS decision text;
ALTER TABLE ice_pipeline.review_queue DROP CONSTRAINT IF EXISTS review_queue_status_check;
ALTER TABLE ice_pipeline.review_queue ADD CONSTRAINT review_queue_status_check
    CHECK (status IN ('open', 'resolved', 'applied', 'dismissed', 'superseded'));
-- One item per (kind, row, field): re-running never queues the same question twice.
CREATE UNIQUE INDEX IF NOT EXISTS review_queue_item_key
    ON ice_pipeline.review_queue (kind, staging_table, staging_id, field) NULLS NOT DISTINCT;
CREATE INDEX IF NOT EXISTS review_queue_open_idx ON ice_pipeline.review_queue (status, kind);

-- How far each staging table has been processed: (updated_at, id) of the last
-- row covered, advanced in the same transaction as the data it covers.
CREATE TABLE IF NOT EXISTS ice_pipeline.watermarks (
    staging_table    text        PRIMARY KEY,
    high_updated_at  timestamptz NOT NULL,
    high_id          bigint      NOT NULL,
    run_id           text        NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- One row per pipeline run: what it did, for the report and the sensor.
CREATE TABLE IF NOT EXISTS ice_pipeline.runs (
    run_id       text        PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    dry_run      boolean     NOT NULL DEFAULT false,
    status       text        NOT NULL DEFAULT 'running',
    stats        jsonb       NOT NULL DEFAULT '{}'
);

-- Match keys of every production person, computed by the pipeline
-- (ice_pipeline/logic/normalize.py is their only definition) from the values
-- stored in `persons`, including values the bot wrote without normalizing
-- ('Maria@Mail.COM ', '52.123.456'). Plain indexes make matching an increment
-- against a large production an index lookup per key. Refreshed at the start
-- of every run for persons changed since (person_updated_at tells which).
CREATE TABLE IF NOT EXISTS ice_pipeline.person_keys (
    person_id          uuid         PRIMARY KEY,
    cedula             text,
    email              text,
    name_key           text,
    birth_date         date,
    phone_tail         text,        -- last ten digits of a mobile
    person_updated_at  timestamp(3) NOT NULL
);
-- ICE's student number of the person's student: the checks tell namesakes apart by it, as resolution does.
ALTER TABLE ice_pipeline.person_keys ADD COLUMN IF NOT EXISTS student_number text;
CREATE INDEX IF NOT EXISTS person_keys_cedula_idx ON ice_pipeline.person_keys (cedula) WHERE cedula IS NOT NULL;
CREATE INDEX IF NOT EXISTS person_keys_email_idx ON ice_pipeline.person_keys (email) WHERE email IS NOT NULL;
CREATE INDEX IF NOT EXISTS person_keys_name_birth_idx ON ice_pipeline.person_keys (name_key, birth_date)
    WHERE birth_date IS NOT NULL;
CREATE INDEX IF NOT EXISTS person_keys_phone_tail_idx ON ice_pipeline.person_keys (phone_tail)
    WHERE phone_tail IS NOT NULL;

-- Earlier releases matched through expression indexes on persons; gone.
DROP INDEX IF EXISTS public.persons_ice_cedula_key_idx;
DROP INDEX IF EXISTS public.persons_ice_email_key_idx;
DROP INDEX IF EXISTS public.persons_ice_name_birth_idx;
DROP INDEX IF EXISTS public.persons_ice_phone_tail_idx;
DROP FUNCTION IF EXISTS ice_pipeline.cedula_key(text);
DROP FUNCTION IF EXISTS ice_pipeline.email_key(text);
DROP FUNCTION IF EXISTS ice_pipeline.name_key(text);
DROP FUNCTION IF EXISTS ice_pipeline.phone_tail(text);

-- The pipeline's indexes on the bot's tables (leads_ice_person_program_idx, leads_ice_source_row_idx) are
-- part of migration 20251105_add_staging_fields and declared in prisma/schema.prisma: no drift for Prisma.
