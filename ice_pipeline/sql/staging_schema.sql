-- Staging schema written by the V3 ingestion pipeline (DESIGN §3.1).
-- ice_pipeline only reads these tables; `ice-pipeline db init` creates them in
-- dev/test so the demo and the tests have somewhere to put staging rows.
-- Safe to apply twice.

CREATE TABLE IF NOT EXISTS staging_student (
    id              bigserial PRIMARY KEY,
    full_name       text NOT NULL,
    original_name   text,
    email           text,
    phone           text,
    cedula          text,
    birth_date      text,
    address         text,
    city            text,
    country         text,
    program         text,
    student_number  text,
    source          text,          -- directory+csv | csv_only | directory_only
    csv_enriched    boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS staging_lead (
    id                bigserial PRIMARY KEY,
    full_name         text NOT NULL,
    original_name     text,
    email             text,
    phone             text,
    cedula            text,
    birth_date        text,
    address           text,
    city              text,
    country           text,
    interest_program  text,
    service           text,
    event             text,
    status            text,
    notes             text,
    source_file       text,
    source_sheet      text,
    source_row        integer,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS staging_document (
    id                    bigserial PRIMARY KEY,
    student_id            bigint NOT NULL REFERENCES staging_student (id),
    document_type         text NOT NULL,
    original_file_path    text,
    staging_file_path     text NOT NULL,   -- relative to STAGING_FILES_ROOT
    normalized_file_name  text NOT NULL,
    checksum              text,            -- sha256 hex, may be null
    file_size             bigint,
    mime_type             text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS staging_reference_data (
    id           bigserial PRIMARY KEY,
    source_file  text NOT NULL,
    category     text NOT NULL,           -- program | service | event | city | country | ...
    code         text NOT NULL,
    label        text NOT NULL,
    aliases      text[] NOT NULL DEFAULT '{}',
    attributes   jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (category, code)
);

CREATE TABLE IF NOT EXISTS staging_lead_failures (
    id            bigserial PRIMARY KEY,
    source_file   text,
    source_sheet  text,
    source_row    integer,
    raw_data      jsonb NOT NULL,
    error         text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- The pipeline reads "rows changed since the watermark" ordered by
-- (updated_at, id); the sensor polls max(updated_at) and max(id). These
-- indexes keep both cheap at millions of rows.
CREATE INDEX IF NOT EXISTS staging_student_updated_at_id_idx ON staging_student (updated_at, id);
CREATE INDEX IF NOT EXISTS staging_lead_updated_at_id_idx ON staging_lead (updated_at, id);
CREATE INDEX IF NOT EXISTS staging_document_updated_at_id_idx ON staging_document (updated_at, id);
CREATE INDEX IF NOT EXISTS staging_document_student_id_idx ON staging_document (student_id);
CREATE INDEX IF NOT EXISTS staging_reference_data_updated_at_idx ON staging_reference_data (updated_at);
