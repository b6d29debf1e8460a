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
-- One item per (kind, row, field): re-running never queues the same question twice. Partial: items
-- about two production persons have no staging row (review_queue_pair_key covers them).
DROP INDEX IF EXISTS ice_pipeline.review_queue_item_key;
CREATE UNIQUE INDEX IF NOT EXISTS review_queue_row_key
    ON ice_pipeline.review_queue (kind, staging_table, staging_id, field) NULLS NOT DISTINCT
    WHERE staging_table IS NOT NULL;
CREATE INDEX IF NOT EXISTS review_queue_open_idx ON ice_pipeline.review_queue (status, kind);
-- Every kind can be closed by a person (DESIGN §3.4). A decision is two columns, never a string to parse:
--   identity_conflict    : merge_into (decision_person_id) | new_person | dismiss
--   field_conflict       : keep_existing | take_incoming
--   possible_duplicate   : same_person (decision_person_id = the person that stays) | not_same
--   possible_false_merge : split | keep_together
-- `details` holds the evidence (which fields agree or differ, the rows on each side), never shown in logs.
-- Items about two production persons (a backlog duplicate) have no staging row.
ALTER TABLE ice_pipeline.review_queue DROP CONSTRAINT IF EXISTS review_queue_kind_check;
ALTER TABLE ice_pipeline.review_queue ADD CONSTRAINT review_queue_kind_check
    CHECK (kind IN ('identity_conflict', 'field_conflict', 'possible_duplicate', 'possible_false_merge'));
ALTER TABLE ice_pipeline.review_queue ADD COLUMN IF NOT EXISTS details jsonb NOT NULL DEFAULT '{}';
ALTER TABLE ice_pipeline.review_queue ADD COLUMN IF NOT EXISTS decision_kind text;
ALTER TABLE ice_pipeline.review_queue ADD COLUMN IF NOT EXISTS decision_person_id uuid;
ALTER TABLE ice_pipeline.review_queue ALTER COLUMN staging_table DROP NOT NULL;
ALTER TABLE ice_pipeline.review_queue ALTER COLUMN staging_id DROP NOT NULL;
ALTER TABLE ice_pipeline.review_queue DROP CONSTRAINT IF EXISTS review_queue_decision_kind_check;
ALTER TABLE ice_pipeline.review_queue ADD CONSTRAINT review_queue_decision_kind_check
    CHECK (decision_kind IS NULL OR decision_kind IN ('merge_into', 'new_person', 'dismiss', 'keep_existing',
        'take_incoming', 'same_person', 'not_same', 'split', 'keep_together'));
-- A pair of production persons is asked about once, whatever row or scan found it.
CREATE UNIQUE INDEX IF NOT EXISTS review_queue_pair_key
    ON ice_pipeline.review_queue (kind, least(person_id, candidate_person_id), greatest(person_id, candidate_person_id))
    WHERE kind = 'possible_duplicate' AND person_id IS NOT NULL AND candidate_person_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS review_queue_person_idx ON ice_pipeline.review_queue (person_id) WHERE person_id IS NOT NULL;

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

-- Evidence, not survivors (DESIGN §4): the normalized keys of every staging row ever linked to a
-- person, so that a run re-resolves a touched person with all of its rows, as one batch would.
-- `evidence` says what resolution decided about the row (vetoed candidates and why, values not used
-- to match because they are placeholders or shared), without personal values.
CREATE TABLE IF NOT EXISTS ice_pipeline.row_keys (
    staging_table   text        NOT NULL,
    staging_id      bigint      NOT NULL,
    person_id       uuid        NOT NULL,
    cedula          text,
    email           text,
    name_key        text,
    birth_date      date,
    phone_tail      text,        -- last ten digits of a mobile
    student_number  text,
    evidence        jsonb       NOT NULL DEFAULT '{}',
    run_id          text        NOT NULL,
    PRIMARY KEY (staging_table, staging_id)
);
CREATE INDEX IF NOT EXISTS row_keys_person_idx ON ice_pipeline.row_keys (person_id);
CREATE INDEX IF NOT EXISTS row_keys_cedula_idx ON ice_pipeline.row_keys (cedula) WHERE cedula IS NOT NULL;
CREATE INDEX IF NOT EXISTS row_keys_email_idx ON ice_pipeline.row_keys (email) WHERE email IS NOT NULL;
CREATE INDEX IF NOT EXISTS row_keys_phone_tail_idx ON ice_pipeline.row_keys (phone_tail) WHERE phone_tail IS NOT NULL;
CREATE INDEX IF NOT EXISTS row_keys_name_birth_idx ON ice_pipeline.row_keys (name_key, birth_date)
    WHERE birth_date IS NOT NULL;

-- Which staging row brought each value a person holds (written when the pipeline sets a field):
-- `explain person:<uuid>` shows it, a split moves the values the moved rows brought.
CREATE TABLE IF NOT EXISTS ice_pipeline.field_sources (
    person_id      uuid        NOT NULL,
    field          text        NOT NULL,
    staging_table  text        NOT NULL,
    staging_id     bigint      NOT NULL,
    run_id         text        NOT NULL,
    set_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (person_id, field)
);

-- Production persons merged or split by a person's decision (never by the pipeline on its own):
-- where an absorbed person went, which rows a split moved.
CREATE TABLE IF NOT EXISTS ice_pipeline.person_moves (
    id              bigserial   PRIMARY KEY,
    kind            text        NOT NULL CHECK (kind IN ('merge', 'split')),
    from_person_id  uuid        NOT NULL,
    to_person_id    uuid        NOT NULL,
    review_id       bigint,
    run_id          text        NOT NULL,
    staging_rows    jsonb       NOT NULL DEFAULT '[]',
    moved_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS person_moves_from_idx ON ice_pipeline.person_moves (from_person_id);
-- Arrival of a linked row ((updated_at) of the staging row): evidence is re-resolved in the order one batch has.
ALTER TABLE ice_pipeline.row_keys ADD COLUMN IF NOT EXISTS arrival timestamptz;

-- Values that identify nobody because clearly different people carry them (a family e-mail, an
-- office phone, a cédula typed for someone else): found from the evidence, kept as data on the
-- rows, never matched on again. `kind`: email | cedula | mobile (last ten digits).
CREATE TABLE IF NOT EXISTS ice_pipeline.shared_values (
    kind      text        NOT NULL,
    value     text        NOT NULL,
    reason    text        NOT NULL,
    run_id    text        NOT NULL,
    found_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, value)
);

-- The pipeline's keys, evidence and field sources leave with their person (the bot may delete
-- persons): cascades, after purging what an earlier release left for deleted persons.
DELETE FROM ice_pipeline.person_keys k WHERE NOT EXISTS (SELECT 1 FROM public.persons p WHERE p.id = k.person_id);
DELETE FROM ice_pipeline.row_keys k WHERE NOT EXISTS (SELECT 1 FROM public.persons p WHERE p.id = k.person_id);
DELETE FROM ice_pipeline.field_sources k WHERE NOT EXISTS (SELECT 1 FROM public.persons p WHERE p.id = k.person_id);
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'person_keys_person_fkey') THEN
        ALTER TABLE ice_pipeline.person_keys ADD CONSTRAINT person_keys_person_fkey
            FOREIGN KEY (person_id) REFERENCES public.persons (id) ON DELETE CASCADE ON UPDATE CASCADE;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'row_keys_person_fkey') THEN
        ALTER TABLE ice_pipeline.row_keys ADD CONSTRAINT row_keys_person_fkey
            FOREIGN KEY (person_id) REFERENCES public.persons (id) ON DELETE CASCADE ON UPDATE CASCADE;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'field_sources_person_fkey') THEN
        ALTER TABLE ice_pipeline.field_sources ADD CONSTRAINT field_sources_person_fkey
            FOREIGN KEY (person_id) REFERENCES public.persons (id) ON DELETE CASCADE ON UPDATE CASCADE;
    END IF;
END $$;
