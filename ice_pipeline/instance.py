"""The Dagster instance every entry point uses, and the clean-up of stale run outputs.

- With DAGSTER_PG_URL set, the instance is the PostgreSQL one of the repo's
  `dagster.yaml`, whatever DAGSTER_HOME holds (an empty directory, or a
  dagster.yaml of SQLite days): runs from the CLI, the UI and the daemon all
  land in the same database.
- Without it, DAGSTER_HOME's own configuration (SQLite when it has none);
  without DAGSTER_HOME either, an ephemeral instance (nothing kept).

Creating an instance creates its schema on first use; two processes starting
together on a fresh home or database would race on it (`table run_tags
already exists`), so creation is serialised: a PostgreSQL advisory lock on
Dagster's database, a file lock in DAGSTER_HOME for SQLite.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from ice_pipeline.locks import INSTANCE_SCHEMA_LOCK_KEY

# The repo's instance configuration (an editable install, `make install`); a
# wheel install (the Docker image) has it in DAGSTER_HOME already.
REPO_DAGSTER_YAML = Path(__file__).resolve().parents[1] / "dagster.yaml"
POSTGRES_STORAGE = {"storage": {"postgres": {"postgres_url": {"env": "DAGSTER_PG_URL"}}}}
_MISSING_YAML_NOTICE = "No dagster instance configuration file"


class _DropMissingYamlNotice(logging.Filter):
    """Dagster's 'No dagster instance configuration file' notice: the CLI chose that on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return _MISSING_YAML_NOTICE not in record.getMessage()


def _uses_postgres(yaml_path: Path) -> bool:
    import yaml

    try:
        config = yaml.safe_load(yaml_path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return False
    storage = config.get("storage") if isinstance(config, dict) else None
    return isinstance(storage, dict) and "postgres" in storage


@contextlib.contextmanager
def _pg_schema_lock(url: str) -> Iterator[None]:
    """Hold a session advisory lock on Dagster's database while its schema is created."""
    import psycopg2

    from ice_pipeline.settings import SettingsError, parse_database_url, safe_url

    parsed = parse_database_url(url, "DAGSTER_PG_URL")
    try:
        conn = psycopg2.connect(
            parsed.set(drivername="postgresql").render_as_string(hide_password=False), connect_timeout=10
        )
    except psycopg2.Error as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise SettingsError(
            f"Dagster's database DAGSTER_PG_URL={safe_url(parsed)} is unreachable ({first})."
        ) from None
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(hashtext(%s))", (INSTANCE_SCHEMA_LOCK_KEY,))
        yield
    finally:
        conn.close()  # ends the session: releases the lock


@contextlib.contextmanager
def _file_lock(home: Path) -> Iterator[None]:
    with open(home / ".ice_pipeline_instance.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def dagster_instance():
    """The instance for in-process runs (see the module docstring); use it as a context manager."""
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    home_raw = os.environ.get("DAGSTER_HOME", "").strip()
    pg_url = os.environ.get("DAGSTER_PG_URL", "").strip()
    if not home_raw and not pg_url:
        return DagsterInstance.ephemeral()
    home = Path(home_raw).expanduser().absolute() if home_raw else default_home()
    home.mkdir(parents=True, exist_ok=True)
    notice = _DropMissingYamlNotice()
    logging.getLogger("dagster").addFilter(notice)
    try:
        if pg_url:
            if _uses_postgres(home / "dagster.yaml"):
                ref = InstanceRef.from_dir(str(home))
            elif REPO_DAGSTER_YAML.exists():
                ref = InstanceRef.from_dir(str(home), config_dir=str(REPO_DAGSTER_YAML.parent))
            else:
                ref = InstanceRef.from_dir(str(home), overrides=POSTGRES_STORAGE)
            lock = _pg_schema_lock(pg_url)
        else:
            ref = InstanceRef.from_dir(str(home))
            lock = _file_lock(home)
        with lock:
            instance = DagsterInstance.from_ref(ref)
            # Touch every storage inside the lock: this is where the schema is created.
            instance.run_storage, instance.event_log_storage, instance.schedule_storage  # noqa: B018
            instance.get_runs(limit=1)
        return instance
    finally:
        logging.getLogger("dagster").removeFilter(notice)


def default_home() -> Path:
    """DAGSTER_HOME when none is set but DAGSTER_PG_URL is: `.ice/dagster_home` (ICE_LOCAL_DIR)."""
    root = os.environ.get("ICE_LOCAL_DIR", "").strip() or ".ice"
    return Path(root).expanduser().absolute() / "dagster_home"


def ensure_home_config(home: Path) -> str | None:
    """For `dagster dev`/webserver/daemon (which read DAGSTER_HOME/dagster.yaml themselves).

    With DAGSTER_PG_URL set, make the home's dagster.yaml the repo's when it
    has none or one without PostgreSQL storage; returns what was done, for the
    launcher to say.
    """
    target = home / "dagster.yaml"
    if not os.environ.get("DAGSTER_PG_URL") or _uses_postgres(target) or not REPO_DAGSTER_YAML.exists():
        return None
    existed = target.exists()
    if existed:
        target.replace(home / "dagster.yaml.sqlite-backup")
    target.write_bytes(REPO_DAGSTER_YAML.read_bytes())
    return (
        f"{target} had no PostgreSQL storage: replaced by the repo's dagster.yaml (old one kept as "
        "dagster.yaml.sqlite-backup)"
        if existed
        else f"wrote the repo's dagster.yaml to {target}"
    )


def remove_stale_pickles(home: Path, asset_names: Iterable[str]) -> int:
    """Delete the pickled batches older versions left in DAGSTER_HOME/storage/<asset> (personal data).

    Batches now stay in memory (definitions.py); a pickle left from a
    multiprocess run would only hold staging rows on disk. Returns how many
    files were removed.
    """
    storage = home / "storage"
    removed = 0
    for name in asset_names:
        path = storage / name
        if path.is_file():
            path.unlink()
            removed += 1
        elif path.is_dir():  # a multi-part asset key: storage/<a>/<b>
            for child in sorted(path.rglob("*"), reverse=True):
                if child.is_file():
                    child.unlink()
                    removed += 1
                else:
                    child.rmdir()
            path.rmdir()
    return removed
