"""Identity quality: false merges and recall, in one batch and over k runs, on hard and on clean data.

    .venv/bin/python -m benchmarks.identity_quality --households 2000 --runs 3 --seed 11 --demo-persons 5000

Hard data: `ice_pipeline.dev.hard_people` (placeholders, family e-mails, twins, namesakes, office
phones), loaded once as one batch and once in `--runs` increments of random size in random order.
Clean data: the demo generator with its ground truth, one batch (the recall DESIGN compares with).
Printed: persons, rows linked / in review, false merges (persons holding two true people; in the
increments: how many are *not* flagged `possible_false_merge`), pairwise precision and recall.
Runs on a private embedded cluster and S3 server (`ice_pipeline.dev.local.up`), stopped at the end.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import shutil
import tempfile
import time
from contextlib import closing
from pathlib import Path

import pandas as pd
import psycopg2
from psycopg2 import sql

from ice_pipeline.dev.hard_people import Row, false_merges, hard_rows, pair_recall

COLUMNS = ("full_name", "email", "phone", "cedula", "birth_date")


class Databases:
    """A staging and a production database on the private cluster, schemas applied."""

    def __init__(self, services, tag: str, files_root: Path):
        from ice_pipeline.schema import init_production, init_staging

        self.port = services.pg_port
        self.names = (f"qs_{tag}", f"qp_{tag}")
        with closing(self._admin()) as admin, admin.cursor() as cur:
            for name in self.names:
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.staging_url, self.production_url = (self.url(n) for n in self.names)
        with closing(psycopg2.connect(self.staging_url)) as conn:
            init_staging(conn)
        with closing(psycopg2.connect(self.production_url)) as conn:
            init_production(conn, baseline=True)
        env = services.env()
        env.update(
            STAGING_DATABASE_URL=self.staging_url,
            DATABASE_URL=self.production_url,
            STAGING_FILES_ROOT=str(files_root),
            MINIO_BUCKET=f"q-{tag}",
        )
        env.pop("DAGSTER_HOME", None)
        env.pop("DAGSTER_PG_URL", None)  # in-process runs on an ephemeral instance
        self.env = env

    def _admin(self):
        conn = psycopg2.connect(self.url("postgres"))
        conn.autocommit = True
        return conn

    def url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def load(self, rows: list[Row]) -> dict[tuple[str, int], int]:
        """Insert in order (one transaction per table chunk keeps arrival = list order)."""
        truth: dict[tuple[str, int], int] = {}
        with closing(psycopg2.connect(self.staging_url)) as conn, conn.cursor() as cur:
            for row in rows:  # one row at a time: updated_at increases with the list order
                cur.execute(
                    sql.SQL(
                        "INSERT INTO {} (full_name, email, phone, cedula, birth_date) "
                        "VALUES (%s, %s, %s, %s, %s) RETURNING id"
                    ).format(sql.Identifier(row.table)),
                    [row.fields.get(c) for c in COLUMNS],
                )
                truth[(row.table, cur.fetchone()[0])] = row.truth
                conn.commit()
        return truth

    def migrate(self) -> dict:
        from ice_pipeline.cli import run_migration

        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        os.environ.pop("DAGSTER_HOME", None)
        os.environ.pop("DAGSTER_PG_URL", None)
        try:
            summary = run_migration(limit=0)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        if not summary["success"]:
            raise RuntimeError(summary["error"])
        return summary

    def outcome(self) -> tuple[dict[tuple[str, int], str], set[str], int]:
        with closing(psycopg2.connect(self.production_url)) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT staging_table, staging_id, entity_id::text FROM ice_pipeline.source_links "
                "WHERE entity = 'person'"
            )
            person = {(t, int(i)): p for t, i, p in cur.fetchall()}
            cur.execute(
                "SELECT DISTINCT person_id::text FROM ice_pipeline.review_queue "
                "WHERE kind = 'possible_false_merge'"
            )
            flagged = {p for (p,) in cur.fetchall()}
            cur.execute(
                "SELECT count(*) FROM ice_pipeline.review_queue WHERE kind = 'identity_conflict' "
                "AND status = 'open'"
            )
            waiting = int(cur.fetchone()[0])
        return person, flagged, waiting

    def drop(self) -> None:
        with closing(self._admin()) as admin, admin.cursor() as cur:
            for name in self.names:
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def score(person: dict, truth: dict, flagged: set[str]) -> dict:
    merged = false_merges(person, truth)
    found, total = pair_recall(person, truth)
    linked = len(person)
    return {
        "rows": len(truth),
        "linked": linked,
        "persons": len(set(person.values())),
        "false_merges": len(merged),
        "unflagged_false_merges": len(set(merged) - flagged),
        "pair_recall": round(found / total, 4) if total else 1.0,
        "true_pairs": total,
    }


def hard(services, args, work: Path) -> list[tuple[str, dict]]:
    rows = hard_rows(args.seed, households=args.households)
    out = []
    db = Databases(services, "one", work)
    try:
        truth = db.load(rows)
        started = time.monotonic()
        db.migrate()
        person, flagged, waiting = db.outcome()
        out.append(
            (
                "hard data, one batch",
                {
                    **score(person, truth, flagged),
                    "in_review": waiting,
                    "seconds": round(time.monotonic() - started, 1),
                },
            )
        )
    finally:
        db.drop()
    shuffled = rows[:]
    random.Random(args.seed + 1).shuffle(shuffled)
    cuts = sorted(random.Random(args.seed + 2).sample(range(1, len(shuffled)), args.runs - 1))
    db = Databases(services, "inc", work)
    try:
        truth = {}
        started = time.monotonic()
        for a, b in zip([0, *cuts], [*cuts, len(shuffled)], strict=True):
            truth.update(db.load(shuffled[a:b]))
            db.migrate()
        person, flagged, waiting = db.outcome()
        out.append(
            (
                f"hard data, {args.runs} runs, other order",
                {
                    **score(person, truth, flagged),
                    "in_review": waiting,
                    "seconds": round(time.monotonic() - started, 1),
                },
            )
        )
    finally:
        db.drop()
    return out


def demo(services, args, work: Path) -> list[tuple[str, dict]]:
    from ice_pipeline.dev import demo_data

    db = Databases(services, "demo", work)
    try:
        data = demo_data.generate(args.demo_persons, seed=args.seed, documents=False)
        with closing(psycopg2.connect(db.staging_url)) as conn:
            loaded = demo_data.load(conn, data, work)
        truth_frame = demo_data.truth_frame(data, loaded)
        started = time.monotonic()
        db.migrate()
        person, flagged, waiting = db.outcome()
        frame = truth_frame.reset_index(drop=True).reset_index().rename(columns={"index": "row"})
        links = pd.DataFrame(
            [(t, i, p) for (t, i), p in person.items()], columns=["staging_table", "staging_id", "person_id"]
        )
        frame = frame.merge(links, on=["staging_table", "staging_id"], how="left")

        def pairs(groups) -> set:
            return {p for members in groups for p in itertools.combinations(sorted(members), 2)}

        predicted = pairs(frame.dropna(subset=["person_id"]).groupby("person_id")["row"].apply(list))
        actual = pairs(frame.groupby("person_ref")["row"].apply(list))
        hit = len(predicted & actual)
        return [
            (
                "demo (clean) data, one batch",
                {
                    "rows": len(frame),
                    "linked": int(frame["person_id"].notna().sum()),
                    "persons": int(frame["person_id"].nunique()),
                    "wrong_pairs": len(predicted) - hit,
                    "pair_precision": round(hit / len(predicted), 4) if predicted else 1.0,
                    "pair_recall": round(hit / len(actual), 4) if actual else 1.0,
                    "in_review": waiting,
                    "seconds": round(time.monotonic() - started, 1),
                },
            )
        ]
    finally:
        db.drop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--households", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--demo-persons", type=int, default=3000, help="0 to skip the clean-data measurement")
    parser.add_argument("--skip-hard", action="store_true", help="only the clean-data measurement")
    args = parser.parse_args(argv)
    from ice_pipeline.dev import local

    root = Path(tempfile.mkdtemp(prefix="ice-quality-", dir="/var/tmp"))
    services = local.up(root)
    try:
        work = root / "files"
        work.mkdir()
        results = [] if args.skip_hard else hard(services, args, work)
        if args.demo_persons:
            results += demo(services, args, work)
    finally:
        state = root / "state.json"
        pg_dir = None
        if state.exists():
            import json

            pg_dir = json.loads(state.read_text()).get("pg_dir")
        local.down(root)
        shutil.rmtree(root, ignore_errors=True)
        if pg_dir and not Path(pg_dir).is_relative_to(root):
            shutil.rmtree(pg_dir, ignore_errors=True)
    for name, figures in results:
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
