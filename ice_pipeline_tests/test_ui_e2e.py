"""End to end through the Dagster UI server (issue: "End to end").

`dagster dev` (webserver + daemon: runs launched through the API go through
the QueuedRunCoordinator, which only the daemon dequeues) is started through
`ice_pipeline.dev.launcher` exactly as `make ui` does, against the session's
embedded PostgreSQL and S3, with DAGSTER_HOME holding a copy of the repo's
dagster.yaml and Dagster's storage in a fresh database. Everything is checked
through the GraphQL API, then the process group is stopped and no process may
be left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg2
import pytest
import requests

from ice_pipeline.dev import demo_data as demo
from ice_pipeline.jobs import MIGRATION_JOB, SERIAL_TAG

REPO = Path(__file__).resolve().parents[1]
LOCATION = "ice_pipeline"
REPOSITORY = "__repository__"
START_TIMEOUT_S = 120
RUN_TIMEOUT_S = 180
STOP_TIMEOUT_S = 30


# --- fixtures -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def processes_using(home: Path) -> list[psutil.Process]:
    """Every live process whose environment points at this DAGSTER_HOME (children, grandchildren, orphans)."""
    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        if proc.pid == os.getpid() or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        with contextlib.suppress(psutil.Error):
            if proc.environ().get("DAGSTER_HOME") == str(home):
                found.append(proc)
    return found


def _signal_state(pid: int) -> str:
    with contextlib.suppress(OSError):
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        return " ".join(line for line in lines if line.startswith(("SigBlk", "SigIgn", "SigCgt", "PPid")))
    return ""


@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    home: Path
    log: Path

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        response = requests.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60
        )
        assert response.status_code == 200, f"GraphQL HTTP {response.status_code}: {response.text[:2000]}"
        body = response.json()
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def stop(self) -> list[str]:
        """SIGTERM the process group, as Ctrl-C / `kill` would; returns what is still alive after it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        left = processes_using(self.home)
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = processes_using(self.home)
        return [
            f"{p.pid} pgid={os.getpgid(p.pid)} {' '.join(p.cmdline())[:150]} {_signal_state(p.pid)}"
            for p in left
            if p.is_running()
        ]

    def kill(self) -> None:
        """Safety net: SIGKILL whatever this server left behind (only processes using its DAGSTER_HOME)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for proc in processes_using(self.home):
            with contextlib.suppress(psutil.Error):
                proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


@pytest.fixture
def dagster_ui(pipeline, pg_dagster_home, tmp_path: Path) -> Iterator[Server]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(pipeline.env)
    env.update({"DAGSTER_HOME": str(pg_dagster_home.path), "DAGSTER_PG_URL": pg_dagster_home.pg_url})
    port = free_port()
    log = tmp_path / "dagster_dev.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ice_pipeline.dev.launcher",
                "dev",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-w",
                str(REPO / "workspace.yaml"),
            ],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole, like Ctrl-C in a terminal
        )
    server = Server(proc, f"http://127.0.0.1:{port}", pg_dagster_home.path, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert proc.poll() is None, f"dagster dev exited with {proc.returncode}:\n{server.log_tail()}"
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{server.url}/server_info", timeout=2).ok:
                    break
            assert time.monotonic() < deadline, (
                f"no /server_info within {START_TIMEOUT_S} s:\n{server.log_tail()}"
            )
            time.sleep(0.25)
        yield server
    finally:
        server.kill()


# --- queries -------------------------------------------------------------------------

WORKSPACE = """
query {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message }
          ... on RepositoryLocation {
            name
            repositories {
              name
              jobs { name tags { key value } }
              schedules { name cronSchedule executionTimezone scheduleState { status } }
              sensors { id name minIntervalSeconds sensorState { status } targets { pipelineName } }
            }
          }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""
ASSET_NODES = """
query {
  assetNodes {
    assetKey { path }
    jobNames
    assetChecksOrError {
      __typename
      ... on AssetChecks { checks { name blocking } }
    }
  }
}
"""
LAUNCH = """
mutation Launch($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status tags { key value } } }
    ... on PythonError { message stack }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
    ... on RunConflict { message }
    ... on PipelineNotFoundError { message }
    ... on UnauthorizedError { message }
  }
}
"""
RUN = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId status tags { key value } }
    ... on RunNotFoundError { message }
    ... on PythonError { message }
  }
}
"""
CHECK_EXECUTIONS = """
query Checks($assetKey: AssetKeyInput!, $checkName: String!) {
  assetCheckExecutions(assetKey: $assetKey, checkName: $checkName, limit: 5) {
    runId
    status
    evaluation { success severity }
  }
}
"""
SENSOR_DRY_RUN = """
mutation DryRun($selectorData: SensorSelector!, $cursor: String) {
  sensorDryRun(selectorData: $selectorData, cursor: $cursor) {
    __typename
    ... on DryRunInstigationTick {
      evaluationResult { runRequests { runKey jobName } skipReason cursor error { message } }
    }
    ... on PythonError { message }
    ... on SensorNotFoundError { message }
  }
}
"""
FAILURE_EVENTS = """
query Events($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection {
      events { __typename ... on MessageEvent { message } ... on ExecutionStepFailureEvent { error { message } } }
    }
  }
}
"""


STOP_SENSOR = """
mutation StopSensor($id: String!) {
  stopSensor(id: $id) {
    __typename
    ... on StopSensorMutationResult { instigationState { status } }
    ... on PythonError { message }
  }
}
"""


def loaded_repository(server: Server) -> dict:
    """The ice_pipeline location's repository, once the code server has loaded it."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        data = server.graphql(WORKSPACE)["workspaceOrError"]
        assert data["__typename"] == "Workspace", data
        entries = {entry["name"]: entry for entry in data["locationEntries"]}
        assert LOCATION in entries, f"locations: {sorted(entries)}"
        entry = entries[LOCATION]
        location = entry["locationOrLoadError"]
        if entry["loadStatus"] == "LOADED" and location:
            assert location["__typename"] == "RepositoryLocation", location
            (repository,) = location["repositories"]
            assert repository["name"] == REPOSITORY
            return repository
        assert time.monotonic() < deadline, f"location not loaded: {entry}\n{server.log_tail()}"
        time.sleep(0.5)


def wait_for_run(server: Server, run_id: str) -> dict:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        run = server.graphql(RUN, {"runId": run_id})["runOrError"]
        assert run["__typename"] == "Run", run
        if run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            return run
        assert time.monotonic() < deadline, f"run {run_id} still {run['status']} after {RUN_TIMEOUT_S} s"
        time.sleep(0.5)


def sensor_dry_run(server: Server) -> dict:
    """The UI's "Test sensor": one evaluation in the code server, with the Definitions' resources."""
    result = server.graphql(
        SENSOR_DRY_RUN,
        {
            "selectorData": {
                "repositoryLocationName": LOCATION,
                "repositoryName": REPOSITORY,
                "sensorName": "new_staging_rows",
            },
            "cursor": None,
        },
    )  # required by this Dagster's resolver, even when empty
    tick = result["sensorDryRun"]
    assert tick["__typename"] == "DryRunInstigationTick", tick
    evaluation = tick["evaluationResult"]
    assert not evaluation["error"], evaluation["error"]
    return evaluation


def failure_messages(server: Server, run_id: str) -> list[str]:
    logs = server.graphql(FAILURE_EVENTS, {"runId": run_id})["logsForRun"]
    events = logs.get("events", []) if logs["__typename"] == "EventConnection" else []
    return [
        e.get("error", {}).get("message") or e.get("message")
        for e in events
        if e["__typename"] in ("ExecutionStepFailureEvent", "RunFailureEvent")
    ]


# --- tests ---------------------------------------------------------------------------


def test_repo_dagster_yaml_is_valid_for_this_dagster(pg_dagster_home, monkeypatch: pytest.MonkeyPatch):
    """dagster.yaml loads (storage, concurrency.runs.tag_concurrency_limits, run_retries) on this Dagster."""
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef
    from dagster._core.run_coordinator import QueuedRunCoordinator

    monkeypatch.setenv("DAGSTER_PG_URL", pg_dagster_home.pg_url)
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(pg_dagster_home.path))) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        ((key, value),) = SERIAL_TAG.items()
        assert {"key": key, "value": value, "limit": 1} in limits
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2


def test_launcher_gives_the_server_default_signal_handling(tmp_path: Path):
    """Started from a script with SIGINT/SIGTERM ignored (as `make` or `&` do), the server still gets
    the default handlers, in its own process group; its exit status comes back."""
    probe = (
        "import os, signal, sys; "
        "ok = signal.getsignal(signal.SIGINT) is signal.default_int_handler "
        "and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL and os.getpgrp() == os.getpid(); "
        "sys.exit(3 if ok else 4)"
    )

    def ignore_stop_signals() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home")}
    result = subprocess.run(
        [sys.executable, "-m", "ice_pipeline.dev.launcher", sys.executable, "-c", probe],
        env=env,
        preexec_fn=ignore_stop_signals,
        timeout=60,
    )
    assert result.returncode == 3


def test_ui_loads_everything_and_runs_the_job(pipeline, dagster_ui: Server):
    server = dagster_ui
    # The sensor is on by default; this test launches the run itself, so it stops the sensor first
    # (else the daemon could launch one as soon as the rows below land).
    sensor = {s["name"]: s for s in loaded_repository(server)["sensors"]}["new_staging_rows"]
    assert sensor["sensorState"]["status"] == "RUNNING"
    stopped = server.graphql(STOP_SENSOR, {"id": sensor["id"]})["stopSensor"]
    assert stopped.get("instigationState", {}).get("status") == "STOPPED", stopped
    data = demo.generate(60, seed=11, documents=True)
    with closing(psycopg2.connect(pipeline.staging_url)) as conn:
        demo.load(conn, data, pipeline.files_root)

    # Loaded: the job (with its serial tag), the schedule, the sensor.
    repository = loaded_repository(server)
    jobs = {job["name"]: job for job in repository["jobs"]}
    assert MIGRATION_JOB in jobs
    job_tags = {tag["key"]: tag["value"] for tag in jobs[MIGRATION_JOB]["tags"]}
    assert job_tags.items() >= SERIAL_TAG.items()
    schedules = {s["name"]: s for s in repository["schedules"]}
    assert schedules["daily_migration"]["cronSchedule"] == "0 2 * * *"
    assert schedules["daily_migration"]["executionTimezone"] == "America/Bogota"
    sensors = {s["name"]: s for s in repository["sensors"]}
    assert "new_staging_rows" in sensors
    assert {t["pipelineName"] for t in sensors["new_staging_rows"]["targets"]} == {MIGRATION_JOB}

    # The assets and their checks (the duplicate checks on resolved_persons block).
    nodes = {"/".join(n["assetKey"]["path"]): n for n in server.graphql(ASSET_NODES)["assetNodes"]}
    for asset in (
        "staging_students",
        "staging_leads",
        "staging_documents",
        "staging_reference_data",
        "resolved_persons",
        "prod_students",
        "prod_leads",
        "prod_documents",
    ):
        assert asset in nodes, f"asset {asset} not loaded: {sorted(nodes)}"
        assert MIGRATION_JOB in nodes[asset]["jobNames"]
    checks = {
        name: {c["name"]: c for c in node["assetChecksOrError"].get("checks", [])}
        for name, node in nodes.items()
    }
    assert checks["resolved_persons"]["persons_unique_cedula"]["blocking"] is True
    for asset in ("resolved_persons", "prod_students", "prod_leads", "prod_documents"):
        assert checks[asset], f"{asset} has no asset checks"

    # The sensor, evaluated by the code server against the same databases, sees the new rows.
    before = sensor_dry_run(server)
    assert [r["jobName"] for r in before["runRequests"]] == [MIGRATION_JOB], before

    # Launch the job through the API, as the UI's "Materialize all" / launchpad does.
    launched = server.graphql(
        LAUNCH,
        {
            "executionParams": {
                "selector": {
                    "repositoryLocationName": LOCATION,
                    "repositoryName": REPOSITORY,
                    "jobName": MIGRATION_JOB,
                },
                "runConfigData": {},
                "executionMetadata": {"tags": [{"key": "ice_pipeline/trigger", "value": "e2e"}]},
            }
        },
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    run = wait_for_run(server, run_id)
    assert run["status"] == "SUCCESS", f"{failure_messages(server, run_id)}\n{server.log_tail()}"
    run_tags = {tag["key"]: tag["value"] for tag in run["tags"]}
    assert run_tags.items() >= SERIAL_TAG.items()  # what the tag concurrency limit keys on

    # The check results are recorded against this run.
    executions = server.graphql(
        CHECK_EXECUTIONS, {"assetKey": {"path": ["resolved_persons"]}, "checkName": "persons_unique_cedula"}
    )["assetCheckExecutions"]
    mine = [e for e in executions if e["runId"] == run_id]
    assert mine and mine[0]["status"] == "SUCCEEDED" and mine[0]["evaluation"]["success"] is True, executions

    # The run wrote production.
    assert pipeline.scalar("SELECT count(*) FROM persons") > 0
    assert pipeline.scalar("SELECT count(*) FROM ice_pipeline.watermarks") >= 2

    # Nothing new since: the sensor skips, saying why.
    after = sensor_dry_run(server)
    assert not after["runRequests"] and "watermarks are up to date" in after["skipReason"], after

    # Stop it as a terminal would: nothing may be left behind.
    left = server.stop()
    assert server.proc.returncode is not None, "dagster dev did not exit on SIGTERM"
    assert not left, f"processes left behind after SIGTERM: {left}"
