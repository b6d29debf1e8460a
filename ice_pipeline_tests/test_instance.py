"""The Dagster instance and one process everywhere (issue 14), no batch on disk (issue 12).

- With DAGSTER_PG_URL set, `ice-pipeline migrate` uses the PostgreSQL
  instance of the repo's dagster.yaml, whatever DAGSTER_HOME holds; two
  started together on a fresh home and a fresh database both succeed.
- Every launch path runs in one process with in-memory batches: a whole-graph
  materialization (`dagster asset materialize`, as the UI's "Materialize all")
  leaves no pickle under DAGSTER_HOME; one asset without its upstream fails
  with a sentence saying what to materialize; pickles of older versions are
  removed by the CLI, which says how many.
Real processes, real PostgreSQL and S3.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest

from ice_pipeline.dev import demo_data as demo

BIN = Path(sys.executable).parent
ICE = BIN / "ice-pipeline"
NOTICE = "No dagster instance configuration file"
ASSET_NAMES = (
    "staging_students",
    "staging_leads",
    "staging_documents",
    "staging_reference_data",
    "resolved_persons",
    "prod_services_events",
    "prod_students",
    "prod_leads",
    "prod_documents",
)


def cli_env(pipeline, tmp_path: Path, **values: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(pipeline.env)
    env["ICE_LOCAL_DIR"] = str(tmp_path / "no-embedded-services")
    for name, value in values.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def load_demo(pipeline, persons: int = 60) -> None:
    with closing(psycopg2.connect(pipeline.staging_url)) as conn:
        demo.load(conn, demo.generate(persons, seed=5), pipeline.files_root)


def fresh_dagster_database(scratch_databases) -> str:
    url = scratch_databases(f"dagster_{uuid.uuid4().hex[:10]}")  # no table yet
    return url.replace("postgresql://", "postgresql+psycopg2://", 1)


def run_ids_in(pg_url: str) -> set[str]:
    with closing(psycopg2.connect(pg_url.replace("postgresql+psycopg2://", "postgresql://", 1))) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT run_id FROM runs")
            return {row[0] for row in cur.fetchall()}


def two_at_once(command: list[str], env: dict[str, str], cwd: Path) -> list[subprocess.CompletedProcess]:
    procs = [
        subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


def summary(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert NOTICE not in result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_two_migrates_at_once_on_a_fresh_home_land_in_postgres(
    pipeline, scratch_databases, tmp_path: Path
) -> None:
    load_demo(pipeline)
    pg_url = fresh_dagster_database(scratch_databases)
    home = tmp_path / "fresh_home"
    home.mkdir()
    env = cli_env(pipeline, tmp_path, DAGSTER_HOME=str(home), DAGSTER_PG_URL=pg_url)
    first, second = (summary(r) for r in two_at_once([str(ICE), "migrate", "--json"], env, tmp_path))
    assert first["run_id"] != second["run_id"]
    assert {first["run_id"], second["run_id"]} <= run_ids_in(pg_url)
    assert first["persons_created"] + second["persons_created"] > 0
    assert not (home / "history").exists() and not (home / "schedules").exists()  # no SQLite instance


def test_two_migrates_at_once_on_a_fresh_sqlite_home(pipeline, tmp_path: Path) -> None:
    """Without DAGSTER_PG_URL the instance is SQLite in DAGSTER_HOME: creating it is serialised."""
    load_demo(pipeline, persons=40)
    home = tmp_path / "fresh_sqlite_home"
    home.mkdir()
    env = cli_env(pipeline, tmp_path, DAGSTER_HOME=str(home), DAGSTER_PG_URL=None)
    first, second = (summary(r) for r in two_at_once([str(ICE), "migrate", "--json"], env, tmp_path))
    assert first["run_id"] != second["run_id"]
    assert (home / "history" / "runs.db").exists()


def test_dagster_pg_url_wins_over_a_sqlite_dagster_yaml(pipeline, pg_dagster_home, tmp_path: Path) -> None:
    home = tmp_path / "old_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # SQLite storage by default
    env = cli_env(pipeline, tmp_path, DAGSTER_HOME=str(home), DAGSTER_PG_URL=pg_dagster_home.pg_url)
    result = summary(
        subprocess.run(
            [str(ICE), "migrate", "--json"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
    )
    assert result["run_id"] in run_ids_in(pg_dagster_home.pg_url)


def stored_pickles(home: Path) -> list[Path]:
    storage = home / "storage"
    return (
        [p for p in storage.rglob("*") if p.is_file() and p.name in ASSET_NAMES] if storage.exists() else []
    )


def test_cli_removes_pickles_older_versions_left(pipeline, pg_dagster_home, tmp_path: Path) -> None:
    load_demo(pipeline, persons=40)
    storage = pg_dagster_home.path / "storage"
    storage.mkdir(exist_ok=True)
    for name in ("staging_students", "resolved_persons"):
        (storage / name).write_bytes(b"\x80\x04pickled staging rows")
    unrelated = storage / "not_ours"
    unrelated.write_bytes(b"kept")
    env = cli_env(
        pipeline, tmp_path, DAGSTER_HOME=str(pg_dagster_home.path), DAGSTER_PG_URL=pg_dagster_home.pg_url
    )
    result = subprocess.run(
        [str(ICE), "migrate", "--json"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert summary(result)["success"]
    assert f"removed 2 batch pickle(s) an older version left in {storage}" in " ".join(result.stderr.split())
    assert stored_pickles(pg_dagster_home.path) == []
    assert unrelated.read_bytes() == b"kept"


def dagster_materialize(selection: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(BIN / "dagster"),
            "asset",
            "materialize",
            "-m",
            "ice_pipeline.definitions",
            "--select",
            selection,
        ],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_materialize_all_runs_in_memory_and_one_asset_alone_says_what_to_do(
    pipeline, pg_dagster_home, tmp_path: Path
) -> None:
    """The implicit asset job (the UI's "Materialize all") with the Definitions' executor and IO manager."""
    load_demo(pipeline, persons=40)
    env = cli_env(
        pipeline, tmp_path, DAGSTER_HOME=str(pg_dagster_home.path), DAGSTER_PG_URL=pg_dagster_home.pg_url
    )
    whole = dagster_materialize("*", env, tmp_path)
    assert whole.returncode == 0, (whole.stdout + whole.stderr)[-3000:]
    assert "RUN_SUCCESS" in whole.stdout + whole.stderr
    assert pipeline.scalar("SELECT count(*) FROM persons") > 0
    assert stored_pickles(pg_dagster_home.path) == []
    # One process: no step was started in a process of its own.
    assert "STEP_WORKER_STARTED" not in whole.stdout + whole.stderr

    alone = dagster_materialize("prod_leads", env, tmp_path)
    assert alone.returncode != 0
    text = " ".join((alone.stdout + alone.stderr).split())
    assert "was not computed in this run" in text and "Materialize from staging_*" in text, text[-3000:]
    assert stored_pickles(pg_dagster_home.path) == []


@pytest.mark.parametrize("executor_of", ["__ASSET_JOB", "migrate_to_production"])
def test_every_job_runs_in_one_process(executor_of: str) -> None:
    from ice_pipeline.definitions import defs

    assert defs.resolve_job_def(executor_of).executor_def.name == "in_process"


def test_launcher_gives_a_sqlite_home_the_repos_dagster_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dagster dev` reads DAGSTER_HOME/dagster.yaml itself: with DAGSTER_PG_URL set the launcher makes it the repo's."""
    from ice_pipeline.instance import REPO_DAGSTER_YAML, ensure_home_config

    home = tmp_path / "home"
    home.mkdir()
    old = "telemetry:\n  enabled: false\n"
    (home / "dagster.yaml").write_text(old)
    monkeypatch.delenv("DAGSTER_PG_URL", raising=False)
    assert ensure_home_config(home) is None  # no PostgreSQL asked for: left alone
    assert (home / "dagster.yaml").read_text() == old

    monkeypatch.setenv("DAGSTER_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:1/dagster")
    assert "replaced" in ensure_home_config(home)
    assert (home / "dagster.yaml").read_bytes() == REPO_DAGSTER_YAML.read_bytes()
    assert (home / "dagster.yaml.sqlite-backup").read_text() == old
    assert ensure_home_config(home) is None  # already PostgreSQL: nothing to do

    empty = tmp_path / "empty"
    empty.mkdir()
    assert "wrote" in ensure_home_config(empty)
    assert (empty / "dagster.yaml").read_bytes() == REPO_DAGSTER_YAML.read_bytes()
