"""Real-process tests of the embedded services (`ice_pipeline.dev.local`).

Each test gets its own root under tmp_path and always runs `down` on teardown,
so no PostgreSQL or S3 server process outlives the test.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg2
import pytest
from minio import Minio

from ice_pipeline.dev import local

ENV_NAMES = {
    "STAGING_DATABASE_URL",
    "DATABASE_URL",
    "DAGSTER_PG_URL",
    "MINIO_ENDPOINT",
    "MINIO_ACCESS_KEY",
    "MINIO_SECRET_KEY",
    "MINIO_BUCKET",
    "MINIO_SECURE",
    "STAGING_FILES_ROOT",
    "DAGSTER_HOME",
}


def _state(root: Path) -> dict:
    return json.loads((root / "state.json").read_text())


def _postmaster_pid(root: Path) -> int:
    pidfile = Path(_state(root)["pg_dir"]) / "data" / "postmaster.pid"
    return int(pidfile.read_text().splitlines()[0])


def _gone(pid: int) -> bool:
    """True when the process no longer runs (a not-yet-reaped zombie counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _server_pids(root: Path) -> set[int]:
    """The moto pid plus the postmaster and all its backends/workers."""
    pids = {_state(root)["s3_pid"], _postmaster_pid(root)}
    pids |= {child.pid for child in psutil.Process(_postmaster_pid(root)).children(recursive=True)}
    return pids


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / ".ice"
    try:
        yield path
    finally:
        pg_dir = None
        if (path / "state.json").exists():
            pg_dir = _state(path).get("pg_dir")
        local.down(path)
        # A cluster placed outside tmp_path (root under /root or /tmp/pytest-of-root)
        # is not cleaned by pytest: remove it here.
        if pg_dir and not Path(pg_dir).is_relative_to(tmp_path):
            shutil.rmtree(pg_dir, ignore_errors=True)


def test_status_is_none_before_first_up(root: Path) -> None:
    assert local.status(root) is None
    assert local.embedded_env(root) is None
    local.down(root)  # nothing to stop: harmless
    assert not root.exists()


def test_up_starts_postgres_and_s3(root: Path) -> None:
    services = local.up(root)
    assert services.pg_running and services.s3_running
    assert services.pg_port != services.s3_port
    env = services.env()
    assert set(env) == ENV_NAMES
    assert env["MINIO_BUCKET"] == "apex-ice-docs"
    assert env["MINIO_SECURE"] == "false"
    assert env["DAGSTER_PG_URL"].startswith("postgresql+psycopg2://postgres@127.0.0.1:")
    assert Path(env["STAGING_FILES_ROOT"]).is_dir()
    assert Path(env["DAGSTER_HOME"]).is_dir()
    assert local.embedded_env(root) == env

    for name in ("STAGING_DATABASE_URL", "DATABASE_URL", "DAGSTER_PG_URL"):
        url = env[name].replace("postgresql+psycopg2://", "postgresql://")
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute("SELECT current_database()")
            assert cur.fetchone()[0] == url.rsplit("/", 1)[1]
        conn.close()

    client = Minio(
        env["MINIO_ENDPOINT"],
        access_key=env["MINIO_ACCESS_KEY"],
        secret_key=env["MINIO_SECRET_KEY"],
        secure=False,
    )
    client.make_bucket(env["MINIO_BUCKET"])
    payload = b"%PDF-1.4 test document\n"
    client.put_object(env["MINIO_BUCKET"], "a/b.pdf", io.BytesIO(payload), len(payload))
    response = client.get_object(env["MINIO_BUCKET"], "a/b.pdf")
    try:
        assert response.read() == payload
    finally:
        response.close()
        response.release_conn()


def test_up_twice_returns_same_services_and_starts_nothing(root: Path) -> None:
    first = local.up(root)
    pids_before = (_state(root)["s3_pid"], _postmaster_pid(root))
    second = local.up(root)
    assert second == first
    assert (_state(root)["s3_pid"], _postmaster_pid(root)) == pids_before
    postmasters = [
        p
        for p in psutil.process_iter(["cmdline"])
        if _state(root)["pg_dir"] + "/data" in (p.info["cmdline"] or [])
    ]
    assert [p.pid for p in postmasters] == [pids_before[1]]
    motos = [
        p
        for p in psutil.process_iter(["cmdline"])
        if any("ice_pipeline.dev.s3server" in a for a in (p.info["cmdline"] or []))
        and str(first.s3_port) in (p.info["cmdline"] or [])
    ]
    assert len(motos) == 1


def test_down_twice_leaves_no_process_and_keeps_data(root: Path) -> None:
    first = local.up(root)
    with psycopg2.connect(first.env()["DATABASE_URL"]) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
    conn.close()
    pids = _server_pids(root)

    local.down(root)
    local.down(root)
    assert all(_gone(pid) for pid in pids)
    after = local.status(root)
    assert after is not None
    assert not after.pg_running and not after.s3_running
    assert local.embedded_env(root) is None

    again = local.up(root)  # same ports when still free; PostgreSQL data survived
    assert (again.pg_port, again.s3_port) == (first.pg_port, first.s3_port)
    with psycopg2.connect(again.env()["DATABASE_URL"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT x FROM kept")
        assert cur.fetchall() == [(42,)]
    conn.close()


def test_dead_processes_are_detected_and_restarted(root: Path) -> None:
    first = local.up(root)
    s3_pid = _state(root)["s3_pid"]
    os.killpg(s3_pid, signal.SIGKILL)
    psutil.Process(s3_pid).wait(timeout=5)  # reap it: it is this process's child
    found = local.status(root)
    assert found is not None and found.pg_running and not found.s3_running

    again = local.up(root)
    assert again.s3_running and again.s3_port == first.s3_port
    assert _state(root)["s3_pid"] != s3_pid

    # A stale postmaster.pid (its process is gone) does not block a restart.
    local.down(root)
    dead = subprocess.Popen(["true"])
    dead.wait()
    pidfile = Path(_state(root)["pg_dir"]) / "data" / "postmaster.pid"
    pidfile.write_text(f"{dead.pid}\n/nowhere\n0\n{first.pg_port}\n")
    assert local.status(root).pg_running is False
    assert local.up(root).pg_running


def test_env_exports_can_be_evaled_by_bash(root: Path, tmp_path: Path) -> None:
    env = local.up(root).env()
    tricky = {**env, "ICE_TRICKY": 'it\'s a $HOME `x` "y" value'}
    script = tmp_path / "exports.sh"
    script.write_text(local.env_exports(tricky))
    out = subprocess.run(
        ["bash", "-c", 'eval "$(cat "$1")"; echo "$DATABASE_URL"; echo "$ICE_TRICKY"', "_", str(script)],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    assert out.stdout.splitlines() == [env["DATABASE_URL"], tricky["ICE_TRICKY"]]
    assert all(line.startswith("export ") for line in local.env_exports(env).splitlines())
    with pytest.raises(ValueError):
        local.env_exports({"NOT-A-NAME": "x"})


def test_secret_lives_in_state_json_only(root: Path) -> None:
    env = local.up(root).env()
    state_file = root / "state.json"
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    secret = _state(root)["secret_key"]
    assert secret == env["MINIO_SECRET_KEY"] and len(secret) >= 32
    assert secret not in Path(local.__file__).read_text()
    assert secret not in repr(local.status(root))
    assert local.up(root).env()["MINIO_SECRET_KEY"] == secret  # generated once


def test_cluster_is_reachable_by_its_owner(root: Path) -> None:
    local.up(root)
    pg_dir = Path(_state(root)["pg_dir"])
    if os.geteuid() == 0:
        assert pg_dir.stat().st_uid == psutil.Process(_postmaster_pid(root)).uids().real
        reachable = (
            subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(root)]).returncode == 0
        )
        if reachable:
            assert pg_dir == root / "postgres"
        else:
            assert pg_dir.parent == Path("/var/tmp/ice-pipeline")
            assert (root / "postgres.log").resolve() == pg_dir / "postgres.log"
    else:
        assert pg_dir == root / "postgres"


def test_dagster_yaml_copied_only_when_absent(root: Path, tmp_path: Path) -> None:
    source = tmp_path / "dagster.yaml"
    source.write_text("telemetry:\n  enabled: false\n")
    local.up(root, dagster_yaml=source)
    target = root / "dagster_home" / "dagster.yaml"
    assert target.read_text() == source.read_text()
    target.write_text("# edited\n")
    local.up(root, dagster_yaml=source)
    assert target.read_text() == "# edited\n"


def test_local_dir_default_and_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(local.DEFAULT_LOCAL_DIR_ENV, raising=False)
    assert local.local_dir() == tmp_path / ".ice"
    monkeypatch.setenv(local.DEFAULT_LOCAL_DIR_ENV, "elsewhere/svc")
    assert local.local_dir() == tmp_path / "elsewhere" / "svc"
    assert local.local_dir().is_absolute()


def test_failing_s3_server_gives_one_sentence_naming_its_log(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    server = fake_bin / "python"  # the S3 server runs as `sys.executable -m ice_pipeline.dev.s3server`
    server.write_text("#!/bin/sh\necho 'cannot serve' >&2\nexit 3\n")
    server.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake_bin / "python"))
    with pytest.raises(local.LocalServiceError) as excinfo:
        local.up(root)
    message = str(excinfo.value)
    assert str(root / "s3.log") in message and "\n" not in message
    assert "cannot serve" in (root / "s3.log").read_text()
    assert local.status(root).s3_running is False


def _client(env: dict) -> Minio:
    return Minio(
        env["MINIO_ENDPOINT"],
        access_key=env["MINIO_ACCESS_KEY"],
        secret_key=env["MINIO_SECRET_KEY"],
        secure=False,
    )


def _stored(client: Minio, bucket: str, key: str) -> tuple[bytes, dict, int]:
    response = client.get_object(bucket, key)
    try:
        data = response.read()
    finally:
        response.close()
        response.release_conn()
    stat_ = client.stat_object(bucket, key)
    return (
        data,
        {k.lower(): v for k, v in stat_.metadata.items() if k.lower().startswith("x-amz-meta-")},
        stat_.size,
    )


def test_objects_survive_down_up_and_a_killed_server(root: Path) -> None:
    """The embedded S3 server keeps objects on disk (issue 14): `down`/`up` and kill -9 lose nothing."""
    env = local.up(root).env()
    client = _client(env)
    bucket = env["MINIO_BUCKET"]
    client.make_bucket(bucket)
    payload = b"%PDF-1.4 kept across restarts\n" * 100
    big = os.urandom(11 * 1024 * 1024)  # multipart upload (parts of 5 MiB)
    client.put_object(
        bucket,
        "students/1/passport 1.pdf",
        io.BytesIO(payload),
        len(payload),
        content_type="application/pdf",
        metadata={"sha256": "ab" * 32},
    )
    client.put_object(bucket, "students/1/big.bin", io.BytesIO(big), len(big), part_size=5 * 1024 * 1024)
    client.put_object(bucket, "students/1/removed.pdf", io.BytesIO(b"x"), 1)
    client.remove_object(bucket, "students/1/removed.pdf")
    before = _stored(client, bucket, "students/1/passport 1.pdf")
    assert before[1] == {"x-amz-meta-sha256": "ab" * 32}

    local.down(root)
    env = local.up(root).env()
    client = _client(env)
    assert _stored(client, bucket, "students/1/passport 1.pdf") == before
    assert _stored(client, bucket, "students/1/big.bin")[0] == big
    assert sorted(o.object_name for o in client.list_objects(bucket, recursive=True)) == [
        "students/1/big.bin",
        "students/1/passport 1.pdf",
    ]

    s3_pid = _state(root)["s3_pid"]
    os.killpg(s3_pid, signal.SIGKILL)  # a machine restart: no `down`
    psutil.Process(s3_pid).wait(timeout=5)
    env = local.up(root).env()
    assert _state(root)["s3_pid"] != s3_pid
    client = _client(env)
    assert _stored(client, bucket, "students/1/passport 1.pdf") == before
    assert client.stat_object(bucket, "students/1/passport 1.pdf").content_type == "application/pdf"
    assert (local.objects_dir(root) / bucket).is_dir()


def test_missing_moto_gives_one_sentence(root: Path, tmp_path: Path) -> None:
    """moto is the optional extra [local]: without it, `local up` says how to install it."""
    script = (
        "import sys; sys.modules['moto'] = None\n"
        "import importlib.util\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *a: None if name == 'moto' else real(name, *a)\n"
        "from ice_pipeline.dev import local\n"
        "try:\n    local.up(sys.argv[1])\nexcept local.LocalServiceError as e:\n    print(e); sys.exit(7)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(root)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 7, result.stderr[-2000:]
    assert "pip install -e '.[local]'" in result.stdout and result.stdout.count("\n") == 1
