"""Embedded default services: a PostgreSQL 15 cluster and a loopback S3 server.

`ice-pipeline local up|down|status|env` calls these functions so that, with no
configuration at all, the pipeline has a staging database, a production
database, Dagster's storage and an object store to talk to. Everything lives
under one directory (`$ICE_LOCAL_DIR`, default `./.ice`):

    state.json        ports, the generated S3 secret, pids (mode 0600)
    postgres/         the cluster (data/, unix socket, postgres.log); when the
                      `postgres` user cannot reach the directory (running as
                      root under /root), it lives in /var/tmp/ice-pipeline/
                      instead and `postgres.log` here is a symlink to its log
    initdb.log        output of the one-time initdb
    s3.log            S3 server output
    s3/               the S3 server's buckets and objects (kept across down/up and restarts)
    staging_files/    STAGING_FILES_ROOT
    dagster_home/     DAGSTER_HOME

The S3 server is moto's S3 (no MinIO binary can be installed here) run by
`ice_pipeline.dev.s3server`, which writes every object to `s3/` before it
answers and restores them at start: objects outlive `down`, a killed server
and a machine restart, like the PostgreSQL data. moto is the optional extra
`ice_pipeline[local]` (`make install` installs it).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

__all__ = [
    "DEFAULT_LOCAL_DIR_ENV",
    "LocalServiceError",
    "LocalServices",
    "down",
    "embedded_env",
    "env_exports",
    "local_dir",
    "objects_dir",
    "status",
    "up",
]

DEFAULT_LOCAL_DIR_ENV = "ICE_LOCAL_DIR"

_HOST = "127.0.0.1"
_PG_USER = "postgres"  # superuser name created by initdb, and the OS user when root
_DATABASES = ("leads_project", "ice_bot", "dagster")
_ACCESS_KEY = "ice-local"  # not a secret: moto accepts any key pair
_BUCKET = "apex-ice-docs"
_FALLBACK_BASE = Path("/var/tmp/ice-pipeline")
_PG_TIMEOUT_S = 60
_S3_TIMEOUT_S = 60.0  # moto's import, then restoring the stored objects
_STOP_TIMEOUT_S = 10.0
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; keep room for ".s.PGSQL.NNNNN"
_CONF_NAME = "ice_local.conf"

# Embedded dev/test cluster only: durability is traded for bulk-load speed
# (fsync, synchronous_commit and full_page_writes off). A crash can corrupt
# this cluster; never use these settings for a real database.
_PG_SETTINGS: dict[str, str] = {
    "listen_addresses": f"'{_HOST}'",
    "max_connections": "200",
    "shared_buffers": "'512MB'",
    "work_mem": "'32MB'",
    "maintenance_work_mem": "'512MB'",
    "max_wal_size": "'4GB'",
    "checkpoint_timeout": "'30min'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "logging_collector": "off",
    # Marks this cluster as the embedded one: `demo-data` and `db init` refuse others (settings.py).
    "ice_pipeline.embedded": "'on'",
}


class LocalServiceError(RuntimeError):
    """An embedded service could not be started, checked or stopped.

    The message is one sentence naming what failed and which log to read, so
    the CLI can print it instead of a traceback.
    """


def local_dir() -> Path:
    """Where the embedded services live: $ICE_LOCAL_DIR, else ./.ice (absolute)."""
    raw = os.environ.get(DEFAULT_LOCAL_DIR_ENV, "").strip()
    return Path(raw or ".ice").expanduser().absolute()


@dataclass(frozen=True)
class LocalServices:
    """What `up` started or `status` found under `root`."""

    root: Path
    pg_port: int
    s3_port: int
    pg_running: bool
    s3_running: bool

    def env(self) -> dict[str, str]:
        """Every environment variable of DESIGN §3, pointing at these services.

        The S3 secret is read from state.json so that it never sits in code or
        in this object's repr.
        """
        state = _read_state(self.root)
        if state is None or not state.get("secret_key"):
            raise LocalServiceError(
                f"The embedded services under {self.root} were never initialised "
                f"(no {self.root / 'state.json'}); run `ice-pipeline local up` first."
            )
        pg = f"{_PG_USER}@{_HOST}:{self.pg_port}"
        return {
            "STAGING_DATABASE_URL": f"postgresql://{pg}/leads_project",
            "DATABASE_URL": f"postgresql://{pg}/ice_bot",
            "DAGSTER_PG_URL": f"postgresql+psycopg2://{pg}/dagster",
            "MINIO_ENDPOINT": f"{_HOST}:{self.s3_port}",
            "MINIO_ACCESS_KEY": str(state.get("access_key") or _ACCESS_KEY),
            "MINIO_SECRET_KEY": str(state["secret_key"]),
            "MINIO_BUCKET": _BUCKET,
            "MINIO_SECURE": "false",
            "STAGING_FILES_ROOT": str(self.root / "staging_files"),
            "DAGSTER_HOME": str(self.root / "dagster_home"),
        }


# --------------------------------------------------------------------------
# public operations


def up(root: Path | None = None, dagster_yaml: Path | None = None) -> LocalServices:
    """Start PostgreSQL and the S3 server under `root`; idempotent.

    Whatever already runs is left alone and reported with its ports, so a
    second call starts nothing. `dagster_yaml`, when given, is copied into
    DAGSTER_HOME only if no dagster.yaml is there yet. Objects stored in the
    S3 server are kept under `root/s3` and restored on the next `up`.
    """
    root = _resolve_root(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        with _locked(root):
            return _up_locked(root, dagster_yaml)
    except OSError as exc:
        raise LocalServiceError(_os_error_sentence("Starting the embedded services", root, exc)) from None


def _up_locked(root: Path, dagster_yaml: Path | None) -> LocalServices:
    state = _read_state(root) or {}
    if not state.get("secret_key"):
        state["secret_key"] = secrets.token_urlsafe(32)
    state["access_key"] = _ACCESS_KEY
    state.setdefault("version", 1)
    for sub in ("staging_files", "dagster_home"):
        (root / sub).mkdir(exist_ok=True)
    if dagster_yaml is not None:
        target = root / "dagster_home" / "dagster.yaml"
        if not target.exists():
            shutil.copyfile(dagster_yaml, target)

    cluster = _cluster_dir(root, state)
    state["pg_dir"] = str(cluster)

    # Pick ports: keep the running ones, else the stored ones when still free.
    pg_port = _pg_running_port(cluster)
    s3_old = _s3_process(state)
    s3_running = s3_old is not None and _tcp_open(int(state.get("s3_port") or 0))
    if s3_old is not None and not s3_running:
        _kill_group(s3_old.pid)  # alive but not serving: replace it
    held: list[socket.socket] = []
    try:
        if pg_port is None:
            pg_port = _choose_port(state.get("pg_port"), held)
        if s3_running:
            s3_port = int(state["s3_port"])
        else:
            s3_port = _choose_port(state.get("s3_port"), held, avoid=pg_port)
    finally:
        for sock in held:
            sock.close()
    state["pg_port"] = pg_port
    state["s3_port"] = s3_port
    _write_state(root, state)

    # Start the S3 server first (moto takes a second or two to import) and let it
    # boot while PostgreSQL starts.
    s3_proc: subprocess.Popen[bytes] | None = None
    if not s3_running:
        if isinstance(state.get("s3_pid"), int):
            _reap(state["s3_pid"])  # a dead server this process started
        state.pop("s3_pid", None)
        s3_proc = _start_s3(root, s3_port)
        state["s3_pid"] = s3_proc.pid
        state["s3_create_time"] = _create_time(s3_proc.pid)
        _write_state(root, state)
    try:
        if _pg_running_port(cluster) is None:
            _start_pg(root, cluster, pg_port)
        _ensure_databases(cluster, pg_port)
        if s3_proc is not None:
            _wait_s3(root, s3_proc, s3_port)
    except BaseException:
        if s3_proc is not None:
            _kill_group(s3_proc.pid)
            state.pop("s3_pid", None)
            state.pop("s3_create_time", None)
            _write_state(root, state)
        raise
    return _status_from(root, state)


def down(root: Path | None = None) -> None:
    """Stop both services; harmless when nothing runs.

    The PostgreSQL data and the S3 objects stay on disk.
    """
    root = _resolve_root(root)
    if not (root / "state.json").exists():
        return
    try:
        with _locked(root):
            _down_locked(root)
    except OSError as exc:
        raise LocalServiceError(_os_error_sentence("Stopping the embedded services", root, exc)) from None


def _down_locked(root: Path) -> None:
    state = _read_state(root) or {}
    proc = _s3_process(state)
    if proc is not None:
        _kill_group(proc.pid)
    if "s3_pid" in state:
        state.pop("s3_pid", None)
        state.pop("s3_create_time", None)
        _write_state(root, state)
    if state.get("pg_dir"):
        _stop_pg(root, Path(state["pg_dir"]))


def status(root: Path | None = None) -> LocalServices | None:
    """What runs under `root` now, asked of the processes; None if never initialised."""
    root = _resolve_root(root)
    state = _read_state(root)
    if state is None:
        return None
    return _status_from(root, state)


def embedded_env(root: Path | None = None) -> dict[str, str] | None:
    """The §3 variables of the embedded services, or None unless both are up.

    Lets the settings loader fall back to the embedded services only when
    they can actually be reached.
    """
    found = status(root)
    if found is None or not (found.pg_running and found.s3_running):
        return None
    return found.env()


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def env_exports(env: dict[str, str]) -> str:
    """`export NAME='value'` lines a shell can `eval`; values are shlex-quoted."""
    lines = []
    for name, value in env.items():
        if not _ENV_NAME.match(name):
            raise ValueError(f"not a valid environment variable name: {name!r}")
        lines.append(f"export {name}={shlex.quote(str(value))}")
    return "\n".join(lines) + ("\n" if lines else "")


# --------------------------------------------------------------------------
# state, paths and locking


def _resolve_root(root: Path | None) -> Path:
    return (Path(root).expanduser().absolute()) if root is not None else local_dir()


def _os_error_sentence(what: str, root: Path, exc: OSError) -> str:
    where = f" on {exc.filename}" if exc.filename else ""
    return f"{what} under {root} failed{where} ({exc.strerror or exc}); see the logs in {root}."


def _read_state(root: Path) -> dict[str, Any] | None:
    path = root / "state.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LocalServiceError(f"Could not read {path}: {exc.strerror}.") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise LocalServiceError(
            f"{path} is not valid JSON; fix it or run `ice-pipeline local down` and delete it."
        ) from None
    return data if isinstance(data, dict) else None


def _write_state(root: Path, state: dict[str, Any]) -> None:
    """Write state.json atomically, readable by the owner only (it holds the secret)."""
    path = root / "state.json"
    tmp = root / f".state.json.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(state, fh, indent=2, sort_keys=True)
            fh.write("\n")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Serialise up/down on one root (two terminals, parallel test workers)."""
    with open(root / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _is_root() -> bool:
    return os.geteuid() == 0


def _pg_prefix() -> list[str]:
    """initdb and pg_ctl refuse to run as root: drop to the postgres user then."""
    return ["runuser", "-u", _PG_USER, "--"] if _is_root() else []


def _postgres_ids() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(_PG_USER)
    except KeyError:
        raise LocalServiceError(
            f"Running as root needs the '{_PG_USER}' OS user to own the PostgreSQL "
            "cluster, and it does not exist."
        ) from None
    return entry.pw_uid, entry.pw_gid


def _postgres_can_reach(path: Path) -> bool:
    """Ask the kernel (as the postgres user) whether it can traverse to `path`."""
    result = subprocess.run(
        [*_pg_prefix(), "test", "-x", str(path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        cwd="/",
    )
    return result.returncode == 0


def _cluster_dir(root: Path, state: dict[str, Any]) -> Path:
    """Where the cluster lives: recorded, else <root>/postgres, else /var/tmp/…."""
    recorded = state.get("pg_dir")
    if recorded and (Path(recorded) / "data" / "PG_VERSION").exists():
        return Path(recorded)
    if not _is_root() or _postgres_can_reach(root):
        return root / "postgres"
    digest = hashlib.sha1(str(root).encode("utf-8")).hexdigest()[:12]
    return _FALLBACK_BASE / digest


def _prepare_cluster_dir(root: Path, cluster: Path) -> None:
    if not _is_root():
        cluster.mkdir(mode=0o700, parents=True, exist_ok=True)
        return
    uid, gid = _postgres_ids()
    if cluster.parent == _FALLBACK_BASE:
        _FALLBACK_BASE.mkdir(mode=0o755, parents=True, exist_ok=True)
        info = _FALLBACK_BASE.lstat()
        # /var/tmp is world-writable: refuse a base someone else planted.
        if not _FALLBACK_BASE.is_dir() or _FALLBACK_BASE.is_symlink() or info.st_uid != 0:
            raise LocalServiceError(
                f"{_FALLBACK_BASE} exists but is not a root-owned directory, so the "
                "PostgreSQL cluster cannot safely be placed there."
            )
        os.chmod(_FALLBACK_BASE, 0o755)
    cluster.mkdir(mode=0o700, exist_ok=True)
    os.chown(cluster, uid, gid)
    os.chmod(cluster, 0o700)
    link = root / "postgres.log"
    if cluster != root / "postgres" and not link.exists() and not link.is_symlink():
        link.symlink_to(cluster / "postgres.log")


def _pg_env() -> dict[str, str]:
    """Environment for initdb/pg_ctl without PG* variables that could redirect them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C.UTF-8"
    return env


# --------------------------------------------------------------------------
# ports


def _port_free(port: int) -> bool:
    # SO_REUSEADDR: a port whose last connections sit in TIME_WAIT (a server
    # just killed) is free to listen on again; keep it so clients keep working.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((_HOST, port))
        except OSError:
            return False
    return True


def _choose_port(stored: Any, held: list[socket.socket], avoid: int | None = None) -> int:
    """The stored port when still free, else a fresh one from the kernel (port 0).

    Fresh picks stay bound in `held` until both ports are chosen, so the two
    services never get the same port.
    """
    if isinstance(stored, int) and 0 < stored < 65536 and stored != avoid and _port_free(stored):
        return stored
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((_HOST, 0))
    held.append(sock)
    return int(sock.getsockname()[1])


def _tcp_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((_HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------
# PostgreSQL


def _postmaster(cluster: Path) -> tuple[psutil.Process, int] | None:
    """The live postmaster of `cluster` and its port, from postmaster.pid.

    A pid file whose process is gone (or is not a postgres) is stale: it is
    removed so the next start is clean.
    """
    pidfile = cluster / "data" / "postmaster.pid"
    try:
        lines = pidfile.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return None
    except PermissionError:
        raise LocalServiceError(f"Cannot read {pidfile}; run as the user who started the services.") from None
    try:
        pid, port = int(lines[0]), int(lines[3])
    except (IndexError, ValueError):
        return None  # being written right now, or garbage: treat as not running
    try:
        proc = psutil.Process(pid)
        alive = proc.status() != psutil.STATUS_ZOMBIE and "postgres" in proc.name()
    except psutil.Error:
        alive = False
    if not alive:
        with contextlib.suppress(OSError):
            pidfile.unlink()
        return None
    return proc, port


def _pg_running_port(cluster: Path) -> int | None:
    found = _postmaster(cluster)
    if found is None or not _tcp_open(found[1]):
        return None
    return found[1]


def _run_pg_tool(args: list[str], cluster: Path) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [*_pg_prefix(), *args],
            cwd=cluster,  # the postgres user may not be able to enter our cwd
            env=_pg_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_PG_TIMEOUT_S + 30,
        )
    except FileNotFoundError as exc:
        raise LocalServiceError(
            f"Could not run {exc.filename}: install the PostgreSQL 15 server "
            "binaries (initdb, pg_ctl) on PATH."
        ) from None
    except subprocess.TimeoutExpired:
        raise LocalServiceError(
            f"{args[0]} did not finish within {_PG_TIMEOUT_S + 30} s; see {cluster / 'postgres.log'}."
        ) from None


def _write_conf(cluster: Path, port: int) -> None:
    settings = dict(_PG_SETTINGS)
    settings["port"] = str(port)
    sock_dir = str(cluster)
    # Unix socket paths are limited to ~107 bytes; over that, TCP only.
    settings["unix_socket_directories"] = (
        "'" + sock_dir.replace("'", "''") + "'"
        if len(sock_dir) + len("/.s.PGSQL.65535") <= _SOCKET_PATH_MAX
        else "''"
    )
    body = "# Written by ice_pipeline.local on every `up`; edits are overwritten.\n"
    body += "".join(f"{k} = {v}\n" for k, v in settings.items())
    conf = cluster / "data" / _CONF_NAME
    conf.write_text(body, encoding="utf-8")
    if _is_root():
        uid, gid = _postgres_ids()
        os.chown(conf, uid, gid)


def _initdb(root: Path, cluster: Path) -> None:
    log = root / "initdb.log"
    result = _run_pg_tool(
        [
            "initdb",
            "-D",
            str(cluster / "data"),
            "-U",
            _PG_USER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ],
        cluster,
    )
    log.write_text(result.stdout + result.stderr, encoding="utf-8")
    if result.returncode != 0:
        raise LocalServiceError(f"PostgreSQL initdb failed for {cluster / 'data'}; see {log}.")
    main_conf = cluster / "data" / "postgresql.conf"
    with main_conf.open("a", encoding="utf-8") as fh:
        fh.write(f"\n# ice_pipeline embedded settings\ninclude_if_exists = '{_CONF_NAME}'\n")


def _start_pg(root: Path, cluster: Path, port: int) -> None:
    _prepare_cluster_dir(root, cluster)
    if not (cluster / "data" / "PG_VERSION").exists():
        data = cluster / "data"
        if data.exists():
            # A half-finished initdb: initdb refuses a non-empty directory.
            shutil.rmtree(data)
        _initdb(root, cluster)
    _write_conf(cluster, port)
    log = cluster / "postgres.log"
    result = _run_pg_tool(
        [
            "pg_ctl",
            "-D",
            str(cluster / "data"),
            "-l",
            str(log),
            "-w",
            "-t",
            str(_PG_TIMEOUT_S),
            "start",
        ],
        cluster,
    )
    if result.returncode != 0 or _pg_running_port(cluster) is None:
        raise LocalServiceError(f"PostgreSQL did not start on {_HOST}:{port}; see {log}.")


def _stop_pg(root: Path, cluster: Path) -> None:
    if not (cluster / "data" / "PG_VERSION").exists():
        return
    if _postmaster(cluster) is None:
        return
    log = cluster / "postgres.log"
    result = _run_pg_tool(
        ["pg_ctl", "-D", str(cluster / "data"), "-m", "fast", "-w", "-t", str(_PG_TIMEOUT_S), "stop"],
        cluster,
    )
    if result.returncode != 0 and _postmaster(cluster) is not None:
        raise LocalServiceError(f"PostgreSQL in {cluster / 'data'} did not stop; see {log}.")


def _ensure_databases(cluster: Path, port: int) -> None:
    import psycopg2
    from psycopg2 import sql

    log = cluster / "postgres.log"
    try:
        conn = psycopg2.connect(host=_HOST, port=port, user=_PG_USER, dbname="postgres", connect_timeout=10)
    except psycopg2.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LocalServiceError(
            f"Could not connect to PostgreSQL on {_HOST}:{port} ({first}); see {log}."
        ) from None
    try:
        conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
        with conn.cursor() as cur:
            for name in _DATABASES:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg2.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LocalServiceError(
            f"Could not create the databases on {_HOST}:{port} ({first}); see {log}."
        ) from None
    finally:
        conn.close()


# --------------------------------------------------------------------------
# S3 (ice_pipeline.dev.s3server: moto + objects on disk)

# Popen objects of servers this process started, kept so they are reaped
# (no zombies, no "still running" ResourceWarning) when `down` runs here.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


_S3_MODULE = "ice_pipeline.dev.s3server"


def _require_moto() -> None:
    """moto is an optional extra: say so in one sentence when it is missing."""
    import importlib.util

    from ice_pipeline.dev.s3server import MISSING_MOTO

    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        raise LocalServiceError(MISSING_MOTO[0].upper() + MISSING_MOTO[1:])


def objects_dir(root: Path) -> Path:
    """Where the embedded S3 server keeps its buckets and objects."""
    return root / "s3"


def _create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _s3_process(state: dict[str, Any]) -> psutil.Process | None:
    """The recorded moto process if it is still that process and alive.

    Checks the command line and start time so a recycled pid is never taken
    for (or killed as) our server.
    """
    pid = state.get("s3_pid")
    if not isinstance(pid, int):
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            _reap(pid)
            return None
        if not any(_S3_MODULE in part for part in proc.cmdline()):
            return None
        recorded = state.get("s3_create_time")
        if isinstance(recorded, (int, float)) and abs(proc.create_time() - recorded) > 1.0:
            return None
        return proc
    except psutil.Error:
        return None


def _start_s3(root: Path, port: int) -> subprocess.Popen[bytes]:
    _require_moto()
    exe = sys.executable
    log = root / "s3.log"
    with open(log, "ab") as out:
        try:
            proc = subprocess.Popen(
                [exe, "-m", _S3_MODULE, "-H", _HOST, "-p", str(port), "--data", str(objects_dir(root))],
                cwd=root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: killed as a whole by `down`
                close_fds=True,
            )
        except OSError as exc:
            raise LocalServiceError(f"Could not start {exe} ({exc.strerror}); see {log}.") from None
    _CHILDREN[proc.pid] = proc
    return proc


def _wait_s3(root: Path, proc: subprocess.Popen[bytes], port: int) -> None:
    log = root / "s3.log"
    deadline = time.monotonic() + _S3_TIMEOUT_S
    url = f"http://{_HOST}:{port}/"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LocalServiceError(
                f"The S3 server ({_S3_MODULE}) exited with code {proc.returncode} "
                f"before listening on {_HOST}:{port}; see {log}."
            )
        try:
            with urllib.request.urlopen(url, timeout=1.0):
                return
        except urllib.error.HTTPError:
            return  # any HTTP answer means it is serving
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise LocalServiceError(
        f"The S3 server ({_S3_MODULE}) did not answer on {_HOST}:{port} within "
        f"{_S3_TIMEOUT_S:.0f} s; see {log}."
    )


def _reap(pid: int) -> None:
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=1.0)


def _kill_group(pid: int) -> None:
    """SIGTERM the server's process group, SIGKILL it if it lingers, reap it."""
    try:
        proc = psutil.Process(pid)
        group = os.getpgid(pid)
    except (psutil.Error, ProcessLookupError):
        _reap(pid)
        return

    # Only signal the whole group when the server leads it (start_new_session).
    def send(sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group == pid:
                os.killpg(group, sig)
            else:
                os.kill(pid, sig)

    send(signal.SIGTERM)
    child = _CHILDREN.get(pid)
    try:
        if child is not None:
            child.wait(timeout=_STOP_TIMEOUT_S)
        else:
            proc.wait(timeout=_STOP_TIMEOUT_S)
    except (subprocess.TimeoutExpired, psutil.TimeoutExpired):
        send(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired, psutil.Error):
            if child is not None:
                child.wait(timeout=_STOP_TIMEOUT_S)
            else:
                proc.wait(timeout=_STOP_TIMEOUT_S)
    except psutil.Error:
        pass
    _reap(pid)


# --------------------------------------------------------------------------
# status


def _status_from(root: Path, state: dict[str, Any]) -> LocalServices:
    pg_running = False
    pg_port = int(state.get("pg_port") or 0)
    if state.get("pg_dir"):
        running_port = _pg_running_port(Path(state["pg_dir"]))
        if running_port is not None:
            pg_running, pg_port = True, running_port
    s3_port = int(state.get("s3_port") or 0)
    s3_running = _s3_process(state) is not None and s3_port > 0 and _tcp_open(s3_port)
    return LocalServices(
        root=root,
        pg_port=pg_port,
        s3_port=s3_port,
        pg_running=pg_running,
        s3_running=s3_running,
    )
