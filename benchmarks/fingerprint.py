"""Behaviour fingerprint: a demo migration's production dump, canonical, to show a refactor changes nothing.

    .venv/bin/python -m benchmarks.fingerprint --persons 3000 --seed 7 > after.txt
    git worktree add /tmp/before <rev>
    PYTHONPATH=/tmp/before .venv/bin/python benchmarks/fingerprint.py --persons 3000 --seed 7 > before.txt
    diff before.txt after.txt && echo identical

On a private embedded cluster and S3 server (`ice_pipeline.dev.local.up` on a temp directory): demo data
with documents, `ice-pipeline migrate`, then a 1% increment (new rows and changed rows, as the migration
benchmark makes it) and `migrate` again. Prints every table of `public` and `ice_pipeline` (bookkeeping
of runs and the undo log aside) and the bucket's object list, sorted, in a form that does not depend on
what is random from one run to the next:
- an id the pipeline drew (uuid4 of persons, students, leads, documents) is replaced by the staging rows
  linked to it (`ice_pipeline.source_links`), e.g. `<person staging_student:12|staging_lead:40>`, and a
  service's or event's id by its name;
- run ids become `<run>`, and timestamps written by the migration (after it started) `<now>`.
Everything else -- which rows merged, every value kept, every review item and rejection with its reason
and details -- is compared as it is. The program that writes this is ice_pipeline as imported (set
PYTHONPATH to the tree under test).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from contextlib import closing
from pathlib import Path

import psycopg2

from benchmarks.migration import apply_increment
from ice_pipeline.dev import demo_data as demo
from ice_pipeline.dev import local
from ice_pipeline.schema import init_production, init_staging

# Bookkeeping that differs from run to run by nature (durations, run ids, the undo log).
SKIPPED_TABLES = {
    "ice_pipeline.runs",
    "ice_pipeline.change_log",
    "ice_pipeline.schema_migrations",
    "public._prisma_migrations",
}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
LIST_TABLES = """
SELECT table_schema || '.' || table_name FROM information_schema.tables
WHERE table_schema IN ('public', 'ice_pipeline') AND table_type = 'BASE TABLE' ORDER BY 1
"""
LINKS = """
SELECT entity_id::text, entity, string_agg(staging_table || ':' || staging_id, '|' ORDER BY staging_table, staging_id)
FROM ice_pipeline.source_links GROUP BY entity_id, entity
"""
# Reference rows the pipeline creates from staging reference data: named by their natural key.
REFERENCE_NAMES = """
SELECT id::text, '<service ' || name || '>' FROM services
UNION ALL SELECT id::text, '<event ' || name || ' ' || event_date::date || '>' FROM events
"""


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "ice_pipeline.cli", "migrate", "--json"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def canonical(value: object, names: dict[str, str], runs: set[str], since: dt.datetime) -> str:
    if isinstance(value, dt.datetime):
        naive = (
            value.replace(tzinfo=None)
            if value.tzinfo is None
            else value.astimezone(dt.UTC).replace(tzinfo=None)
        )
        return "<now>" if naive >= since else naive.isoformat()
    text = str(value)
    if text in runs:
        return "<run>"
    return UUID.sub(lambda m: names.get(m.group(0), "<unlinked>"), text)


def canonical_row(row: dict[str, object], names: dict[str, str], runs: set[str], since: dt.datetime) -> str:
    """One row as `column=value` pairs. Serial ids are left out (their order follows uuid order, which is
    random), and a pair of persons is written in one orientation (which side is `person_id` follows
    uuid order too)."""
    values = {
        c: canonical(v, names, runs, since) for c, v in row.items() if not (c == "id" and isinstance(v, int))
    }
    if (
        values.get("candidate_person_id", "None") != "None"
        and values["candidate_person_id"] < values["person_id"]
    ):
        values["person_id"], values["candidate_person_id"] = (
            values["candidate_person_id"],
            values["person_id"],
        )
    return "\t".join(f"{c}={v}" for c, v in values.items())


def dump(production_url: str, objects: list[str], since: dt.datetime) -> list[str]:
    lines: list[str] = []
    with closing(psycopg2.connect(production_url)) as conn, conn.cursor() as cur:
        cur.execute(LINKS)
        names = {entity_id: f"<{entity} {rows}>" for entity_id, entity, rows in cur.fetchall()}
        cur.execute(REFERENCE_NAMES)
        names.update(dict(cur.fetchall()))
        cur.execute("SELECT DISTINCT run_id FROM ice_pipeline.source_links")
        runs = {r for (r,) in cur.fetchall()}
        cur.execute(LIST_TABLES)
        for (table,) in cur.fetchall():
            if table in SKIPPED_TABLES:
                continue
            cur.execute(f"SELECT * FROM {table}")  # noqa: S608 - table names from the catalogue
            columns = [d.name for d in cur.description]
            rows = sorted(
                canonical_row(dict(zip(columns, row, strict=True)), names, runs, since)
                for row in cur.fetchall()
            )
            lines.append(f"## {table} ({len(rows)} rows)")
            lines += rows
    lines.append(f"## bucket ({len(objects)} objects)")
    lines += sorted(UUID.sub(lambda m: names.get(m.group(0), "<unlinked>"), o) for o in objects)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--persons", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="ice-fingerprint-", dir="/var/tmp"))
    services = local.up(root)
    try:
        admin = psycopg2.connect(f"postgresql://postgres@127.0.0.1:{services.pg_port}/postgres")
        admin.autocommit = True
        with admin.cursor() as cur:
            for name in ("fp_staging", "fp_production"):
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                cur.execute(f'CREATE DATABASE "{name}"')
        admin.close()
        url = f"postgresql://postgres@127.0.0.1:{services.pg_port}/"
        staging_url, production_url = url + "fp_staging", url + "fp_production"
        with closing(psycopg2.connect(staging_url)) as conn:
            init_staging(conn)
        with closing(psycopg2.connect(production_url)) as conn:
            init_production(conn, baseline=True)
        files_root = root / "files"
        files_root.mkdir()
        since = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=1)
        with closing(psycopg2.connect(staging_url)) as conn:
            demo.load(conn, demo.generate(args.persons, seed=args.seed, documents=True), files_root)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DAGSTER"))}
        env.update(services.env())
        bucket = "fingerprint"
        env.update(
            {
                "STAGING_DATABASE_URL": staging_url,
                "DATABASE_URL": production_url,
                "MINIO_BUCKET": bucket,
                "STAGING_FILES_ROOT": str(files_root),
                "ICE_LOCAL_DIR": str(root),
            }
        )
        env.pop("DAGSTER_PG_URL", None)
        migrate(env)
        with closing(psycopg2.connect(staging_url)) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM staging_student")
            students = cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM staging_lead")
            leads = cur.fetchone()[0]
        apply_increment(
            staging_url,
            args.persons,
            args.seed,
            files_root,
            {"staging_student": students, "staging_lead": leads},
        )
        migrate(env)
        from minio import Minio

        minio = Minio(
            env["MINIO_ENDPOINT"],
            access_key=env["MINIO_ACCESS_KEY"],
            secret_key=env["MINIO_SECRET_KEY"],
            secure=False,
        )
        objects = [f"{o.object_name} {o.size}" for o in minio.list_objects(bucket, recursive=True)]
        lines = dump(production_url, objects, since)
    finally:
        local.down(root)
        shutil.rmtree(root, ignore_errors=True)
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    print(f"# sha256 {hashlib.sha256(text.encode()).hexdigest()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
