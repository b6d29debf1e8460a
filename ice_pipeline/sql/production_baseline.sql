-- Production baseline of the ICE-Visa-Rescheduler-Bot, as `prisma migrate`
-- generates it (DESIGN §3.2): uuid ids with NO database default (Prisma
-- makes them client-side), `updated_at` with NO default (@updatedAt is
-- client-side), unique indexes named <table>_<col>_key. Every insert the
-- pipeline makes therefore supplies `id` and `updated_at` itself.
-- Used by `ice-pipeline db init` for dev/test only; a real ICE bot database
-- already has it. Guarded so that applying it twice is harmless.

DO $$ BEGIN
    CREATE TYPE "StorageProvider" AS ENUM ('MINIO', 'S3', 'LOCAL');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

CREATE TABLE IF NOT EXISTS "agencies" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "agencies_pkey" PRIMARY KEY ("id")
);

CREATE TABLE IF NOT EXISTS "persons" (
    "id" UUID NOT NULL,
    "full_name" TEXT NOT NULL,
    "email" TEXT NOT NULL,
    "phone" TEXT,
    "age" INTEGER,
    "city" TEXT,
    "agency_id" UUID,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "persons_pkey" PRIMARY KEY ("id")
);

CREATE TABLE IF NOT EXISTS "students" (
    "id" UUID NOT NULL,
    "person_id" UUID NOT NULL,
    "student_number" TEXT,
    "program" TEXT,
    "start_date" TIMESTAMP(3),
    "end_date" TIMESTAMP(3),
    "status" TEXT NOT NULL DEFAULT 'ACTIVE',
    "current_semester" TEXT,
    "gpa" DOUBLE PRECISION,
    "credits_total" INTEGER,
    "credits_completed" INTEGER,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "students_pkey" PRIMARY KEY ("id")
);

CREATE TABLE IF NOT EXISTS "services" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "description" TEXT,
    "price" DOUBLE PRECISION,
    "active" BOOLEAN NOT NULL DEFAULT true,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "services_pkey" PRIMARY KEY ("id")
);

CREATE TABLE IF NOT EXISTS "events" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "event_date" TIMESTAMP(3),
    "location" TEXT,
    "service_id" UUID,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "events_pkey" PRIMARY KEY ("id")
);

CREATE TABLE IF NOT EXISTS "leads" (
    "id" UUID NOT NULL,
    "lead_date" TIMESTAMP(3),
    "lead_status" TEXT,
    "followup_status" JSONB,
    "notes" TEXT,
    "source_sheet" TEXT,
    "source_row" INTEGER,
    "source_file" TEXT,
    "person_id" UUID NOT NULL,
    "service_id" UUID,
    "event_id" UUID,
    "assigned_agent_id" UUID,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "leads_pkey" PRIMARY KEY ("id")
);

CREATE TABLE IF NOT EXISTS "student_documents" (
    "id" UUID NOT NULL,
    "student_id" UUID NOT NULL,
    "document_type" TEXT NOT NULL,
    "file_name" TEXT NOT NULL,
    "object_key" TEXT NOT NULL,
    "bucket" TEXT NOT NULL DEFAULT 'apex-ice-docs',
    "file_size" INTEGER NOT NULL,
    "mime_type" TEXT NOT NULL,
    "storage_provider" "StorageProvider" NOT NULL DEFAULT 'MINIO',
    "status" TEXT NOT NULL DEFAULT 'PENDING',
    "uploaded_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "uploaded_by" UUID,
    "approved_at" TIMESTAMP(3),
    "approved_by" UUID,
    "comments" TEXT,
    "version" INTEGER NOT NULL DEFAULT 1,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "student_documents_pkey" PRIMARY KEY ("id")
);

CREATE UNIQUE INDEX IF NOT EXISTS "persons_email_key" ON "persons"("email");
CREATE UNIQUE INDEX IF NOT EXISTS "students_person_id_key" ON "students"("person_id");
CREATE UNIQUE INDEX IF NOT EXISTS "students_student_number_key" ON "students"("student_number");
CREATE UNIQUE INDEX IF NOT EXISTS "services_name_key" ON "services"("name");
CREATE INDEX IF NOT EXISTS "leads_person_id_idx" ON "leads"("person_id");
CREATE INDEX IF NOT EXISTS "student_documents_student_id_idx" ON "student_documents"("student_id");

DO $$ BEGIN
    ALTER TABLE "persons" ADD CONSTRAINT "persons_agency_id_fkey" FOREIGN KEY ("agency_id") REFERENCES "agencies"("id") ON DELETE SET NULL ON UPDATE CASCADE;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
DO $$ BEGIN
    ALTER TABLE "students" ADD CONSTRAINT "students_person_id_fkey" FOREIGN KEY ("person_id") REFERENCES "persons"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
DO $$ BEGIN
    ALTER TABLE "events" ADD CONSTRAINT "events_service_id_fkey" FOREIGN KEY ("service_id") REFERENCES "services"("id") ON DELETE SET NULL ON UPDATE CASCADE;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
DO $$ BEGIN
    ALTER TABLE "leads" ADD CONSTRAINT "leads_person_id_fkey" FOREIGN KEY ("person_id") REFERENCES "persons"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
DO $$ BEGIN
    ALTER TABLE "leads" ADD CONSTRAINT "leads_service_id_fkey" FOREIGN KEY ("service_id") REFERENCES "services"("id") ON DELETE SET NULL ON UPDATE CASCADE;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
DO $$ BEGIN
    ALTER TABLE "leads" ADD CONSTRAINT "leads_event_id_fkey" FOREIGN KEY ("event_id") REFERENCES "events"("id") ON DELETE SET NULL ON UPDATE CASCADE;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
DO $$ BEGIN
    ALTER TABLE "student_documents" ADD CONSTRAINT "student_documents_student_id_fkey" FOREIGN KEY ("student_id") REFERENCES "students"("id") ON DELETE CASCADE ON UPDATE CASCADE;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
