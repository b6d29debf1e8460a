-- Migration 20251105_add_staging_fields (DESIGN §3.3): the V3 staging fields
-- of the integration plan §1.3, written so that applying it twice is safe,
-- plus two decisions:
--   * persons.email becomes nullable: CSV leads without e-mail are real
--     people, and a fake e-mail would poison a unique identifier;
--   * student_documents gets unique (student_id, checksum).
-- This file is the Prisma migration the ICE bot applies
-- (prisma/migrations/20251105_add_staging_fields/migration.sql links here)
-- and the one `ice-pipeline db init|migrate` applies in dev/test.

-- Person
ALTER TABLE "persons" ADD COLUMN IF NOT EXISTS "address" TEXT;
ALTER TABLE "persons" ADD COLUMN IF NOT EXISTS "cedula" VARCHAR(50);
ALTER TABLE "persons" ADD COLUMN IF NOT EXISTS "birth_date" DATE;
ALTER TABLE "persons" ADD COLUMN IF NOT EXISTS "country" VARCHAR(100);
ALTER TABLE "persons" ADD COLUMN IF NOT EXISTS "data_source" VARCHAR(50);
ALTER TABLE "persons" ADD COLUMN IF NOT EXISTS "original_name" TEXT;
ALTER TABLE "persons" ADD COLUMN IF NOT EXISTS "csv_enriched" BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE "persons" ALTER COLUMN "email" DROP NOT NULL;

CREATE UNIQUE INDEX IF NOT EXISTS "persons_cedula_key" ON "persons"("cedula");
CREATE INDEX IF NOT EXISTS "persons_birth_date_idx" ON "persons"("birth_date");
CREATE INDEX IF NOT EXISTS "persons_data_source_idx" ON "persons"("data_source");

-- Student
ALTER TABLE "students" ADD COLUMN IF NOT EXISTS "data_source" VARCHAR(50);
ALTER TABLE "students" ADD COLUMN IF NOT EXISTS "csv_enriched" BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS "students_data_source_idx" ON "students"("data_source");

-- Lead
ALTER TABLE "leads" ADD COLUMN IF NOT EXISTS "program_type" VARCHAR(100);
CREATE INDEX IF NOT EXISTS "leads_program_type_idx" ON "leads"("program_type");
-- The pipeline's lookups (declared in schema.prisma too, so `prisma migrate diff` shows no drift):
-- leads of a person by program (the (person, program type) lead key);
CREATE INDEX IF NOT EXISTS "leads_ice_person_program_idx" ON "leads"("person_id", "program_type");
-- the lead first seen at a file/sheet/row (a re-imported row keeps its person), looked up for every
-- batch: its cost must follow the batch, not the number of leads in production.
CREATE INDEX IF NOT EXISTS "leads_ice_source_row_idx" ON "leads"("source_file", "source_row");

-- StudentDocument
ALTER TABLE "student_documents" ADD COLUMN IF NOT EXISTS "checksum" VARCHAR(64);
ALTER TABLE "student_documents" ADD COLUMN IF NOT EXISTS "original_file_path" TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS "student_documents_student_id_checksum_key" ON "student_documents"("student_id", "checksum");
CREATE INDEX IF NOT EXISTS "student_documents_checksum_idx" ON "student_documents"("checksum");

COMMENT ON COLUMN "persons"."cedula" IS 'Colombian national ID number (digits only when written by ice_pipeline)';
COMMENT ON COLUMN "persons"."csv_enriched" IS 'Person data was enriched from V3 CSV staging data';
COMMENT ON COLUMN "students"."data_source" IS 'Set of staging sources: directory+csv, csv_only, directory_only';
COMMENT ON COLUMN "leads"."program_type" IS 'Program the lead is interested in (Au Pair, Camp, ...)';
COMMENT ON COLUMN "student_documents"."checksum" IS 'SHA-256 of the file, for deduplication';
