"""Configuration never mixes worlds (issue 12): all connection variables set, or none (embedded).

Every command says on stderr which services it uses, without passwords;
`demo-data` and `db init` refuse a database that is not the embedded one
unless told; `safe_url` hides passwords in query strings too; importing the
code location has no side effect. Real processes, real PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest

from ice_pipeline.settings import CONNECTION_VARS, parse_database_url, safe_url

BIN = Path(sys.executable).parent
ICE = BIN / "ice-pipeline"
PASSWORD = "Pw-n0t-Sh0wn"


def base_env(**values: str) -> dict[str, str]:
    """A clean environment: no variable of the test process leaks into the command."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root")}
    env.update(values)
    return env


def ice(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ICE), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )


def with_password(url: str) -> str:
    """The same database, with a password in the URL (the embedded cluster trusts loopback: it is ignored)."""
    return url.replace("postgres@", f"postgres:{PASSWORD}@", 1)


@pytest.mark.parametrize("present", [["DATABASE_URL"], ["STAGING_DATABASE_URL", "MINIO_ENDPOINT"]])
def test_partial_configuration_stops_naming_what_is_missing(
    services, tmp_path: Path, present: list[str]
) -> None:
    """The embedded services run, yet a half-configured environment is refused: no mixing."""
    embedded = services.env()
    env = base_env(ICE_LOCAL_DIR=str(services.root), **{name: embedded[name] for name in present})
    result = ice(["report", "--json"], env, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    for name in CONNECTION_VARS:
        assert name in message, (name, message)
    assert "using" not in message
    assert result.stdout == ""


def test_nothing_set_uses_the_embedded_services_and_says_so(services, tmp_path: Path) -> None:
    result = ice(["db", "init"], base_env(ICE_LOCAL_DIR=str(services.root)), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.splitlines()[0] == f"using the embedded services ({services.root})"


def test_nothing_set_and_nothing_running_is_one_sentence(tmp_path: Path) -> None:
    result = ice(["report"], base_env(ICE_LOCAL_DIR=str(tmp_path / "none")), tmp_path)
    assert result.returncode == 2
    assert "ice-pipeline local up" in result.stderr and "Traceback" not in result.stderr


def test_configured_services_are_named_without_passwords(pipeline, tmp_path: Path) -> None:
    env = base_env(ICE_LOCAL_DIR=str(tmp_path / "none"), **pipeline.env)
    env["DATABASE_URL"] = with_password(pipeline.production_url) + f"?password={PASSWORD}"
    env["STAGING_DATABASE_URL"] = with_password(pipeline.staging_url)
    env.pop("DAGSTER_HOME")
    result = ice(["review", "list", "--json"], env, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    line = result.stderr.splitlines()[0]
    staging_db = pipeline.staging_url.rsplit("/", 1)[1]
    production_db = pipeline.production_url.rsplit("/", 1)[1]
    port = pipeline.services.pg_port
    assert line.startswith(
        f"using STAGING_DATABASE_URL=127.0.0.1:{port}/{staging_db}, "
        f"DATABASE_URL=127.0.0.1:{port}/{production_db}"
    ), line
    assert f"MINIO_ENDPOINT={pipeline.env['MINIO_ENDPOINT']}/{pipeline.bucket}" in line
    assert PASSWORD not in result.stdout + result.stderr


def _remote_like(scratch_databases, name: str, template: str | None) -> str:
    """A database on which the embedded marker is off: to the commands, a real (non-embedded) database."""
    url = scratch_databases(name, template)
    with closing(psycopg2.connect(url)) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"ALTER DATABASE \"{name}\" SET ice_pipeline.embedded = 'off'")
    return url


def test_demo_data_and_db_init_refuse_a_database_that_is_not_embedded(
    pipeline, scratch_databases, tmp_path: Path
) -> None:
    staging = _remote_like(scratch_databases, f"remote_stg_{os.getpid()}", "tpl_staging")
    env = base_env(ICE_LOCAL_DIR=str(tmp_path / "none"), **{**pipeline.env, "STAGING_DATABASE_URL": staging})
    env.pop("DAGSTER_HOME")

    refused = ice(["demo-data", "--persons", "50", "--no-documents"], env, tmp_path)
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert "--allow-remote" in refused.stderr and "STAGING_DATABASE_URL" in refused.stderr
    with closing(psycopg2.connect(staging)) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM staging_student")
        assert cur.fetchone()[0] == 0

    init = ice(["db", "init"], env, tmp_path)
    assert init.returncode == 2 and "--allow-remote" in init.stderr

    allowed = ice(["demo-data", "--persons", "50", "--no-documents", "--allow-remote"], env, tmp_path)
    assert allowed.returncode == 0, allowed.stderr[-3000:]
    with closing(psycopg2.connect(staging)) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM staging_student")
        assert cur.fetchone()[0] > 0

    # The embedded cluster's own databases are accepted without the flag.
    embedded = ice(
        ["demo-data", "--persons", "50", "--no-documents"],
        base_env(
            ICE_LOCAL_DIR=str(tmp_path / "none"),
            **{k: v for k, v in pipeline.env.items() if k != "DAGSTER_HOME"},
        ),
        tmp_path,
    )
    assert embedded.returncode == 0, embedded.stderr[-3000:]


def test_safe_url_hides_passwords_in_the_query_string_too() -> None:
    raw = (
        f"postgresql://ice:{PASSWORD}@db.example:5432/ice_bot?schema=public&sslmode=require"
        f"&password={PASSWORD}1&sslpassword={PASSWORD}2&application_name=ice"
    )
    shown = safe_url(parse_database_url(raw, "DATABASE_URL"))
    assert PASSWORD not in shown
    assert (
        "db.example:5432/ice_bot" in shown and "sslmode=require" in shown and "application_name=ice" in shown
    )
    assert "password=***" in shown


def test_importing_the_code_location_has_no_side_effects(services, tmp_path: Path) -> None:
    """No `.env` read, no environment written, no embedded service probed: definitions only define."""
    (tmp_path / ".env").write_text("DATABASE_URL=postgresql://from-dotenv@127.0.0.1:1/x\n")
    probe = (
        "import json, os, sys; before = dict(os.environ); import psutil\n"
        "import ice_pipeline.definitions\n"
        "print(json.dumps({'same': dict(os.environ) == before, "
        "'modules': sorted(m for m in sys.modules if m.startswith('ice_pipeline.dev') or m == 'dotenv')}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env=base_env(ICE_LOCAL_DIR=str(services.root)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen == {"same": True, "modules": []}


def test_local_status_says_where_objects_live(services, tmp_path: Path) -> None:
    result = ice(["local", "status"], base_env(ICE_LOCAL_DIR=str(services.root)), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"objects in {services.root / 's3'}" in " ".join(result.stdout.split())
