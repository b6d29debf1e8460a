"""Run `dagster dev` / `dagster-webserver` / `dagster-daemon` so that stopping it stops everything.

    python -m ice_pipeline.dev.launcher dev -h 127.0.0.1 -p 3000 -w workspace.yaml   (= dagster dev ...)
    python -m ice_pipeline.dev.launcher webserver ... | daemon ... | ANY-COMMAND ARGS...

Two problems this solves (ENVIRONMENT.md, and checked by test_ui_e2e.py):

1. A process started in the background by a non-interactive shell (make, a
   script, a test) inherits SIGINT ignored; `dagster dev` maps SIGTERM to its
   SIGINT handling, so it then ignores both. The server is started with the
   default signal dispositions and nothing blocked.
2. Ctrl-C in a terminal (or `kill` of a whole process group) signals every
   Dagster process at once. The code-server proxy then sees its gRPC child exit
   and *restarts* it, and that new server lingers until its 45 s heartbeat
   timeout. So the server runs in its own process group and only `dagster dev`
   itself is signalled: it shuts its webserver, daemon and code servers down
   in order (2-5 s). Whatever is still in that group after the grace period
   is killed, so nothing outlives the launcher.

A second Ctrl-C / SIGTERM kills the group at once. The exit status is the
server's. Executables are looked up in this interpreter's bin directory first
(the virtualenv), then on PATH. DAGSTER_HOME must be set, or the embedded
services must run (they provide it): without it `dagster dev` leaves
`.tmp_dagster_home_*` folders in the working directory. For Dagster commands
the launcher first chooses the services like `ice-pipeline` does (all
configured or all embedded), puts the repo's dagster.yaml into DAGSTER_HOME
when DAGSTER_PG_URL is set and the home has no PostgreSQL storage, and removes
batch pickles older versions left there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SHUTDOWN_GRACE_S = 30.0  # for the server itself to exit after the first signal
GROUP_GRACE_S = 15.0  # then for its children (code servers shut down after it)
USAGE = (
    "usage: python -m ice_pipeline.dev.launcher {dev|webserver|daemon|COMMAND} [ARGS...]"
    "   (e.g. dev -h 127.0.0.1 -p 3000 -w workspace.yaml)"
)
# Short forms, so `make ui` needs no path to the virtualenv's scripts.
SHORT_FORMS = {
    "dev": ["dagster", "dev"],
    "webserver": ["dagster-webserver"],
    "daemon": ["dagster-daemon", "run"],
}


def resolve(command: str) -> str:
    """The executable: from this virtualenv's bin directory if there, else from PATH."""
    if os.sep in command:
        return command
    local = Path(sys.executable).parent / command
    if local.exists() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which(command)
    if found is None:
        raise SystemExit(f"launcher: {command} not found in {local.parent} nor on PATH")
    return found


def group_alive(pgid: int) -> bool:
    """Whether any process of group `pgid` is still running (zombies do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    import psutil

    for proc in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) == pgid:
                return True
    return False


def _stop_with_parent() -> None:
    """In the child (Linux): SIGTERM it if the launcher dies without forwarding (e.g. SIGKILLed)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def supervise(argv: list[str]) -> int:
    """Start `argv` in its own process group; forward stop signals to it alone; leave nothing behind."""
    received: list[tuple[int, float]] = []  # (signal, when)
    child: subprocess.Popen | None = None

    def on_signal(signum: int, _frame) -> None:
        received.append((signum, time.monotonic()))
        if child is None:
            return
        if len(received) == 1:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signum)  # the server only: it stops its own children in order
        else:
            kill_group(child.pid)  # asked twice: stop now

    # Python-level handlers here mean SIG_DFL in the child after exec (an
    # inherited SIG_IGN would survive it); unblock them too.
    for sig in STOP_SIGNALS:
        signal.signal(sig, on_signal)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    # Its own group, so a terminal's Ctrl-C reaches the launcher only.
    child = subprocess.Popen(argv, process_group=0, preexec_fn=_stop_with_parent)
    if received:
        child.send_signal(received[0][0])

    while True:
        try:
            code = child.wait(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            if received and time.monotonic() - received[0][1] > SHUTDOWN_GRACE_S:
                print(
                    f"launcher: {argv[0]} did not stop within {SHUTDOWN_GRACE_S:.0f} s; killing it",
                    file=sys.stderr,
                )
                kill_group(child.pid)
    deadline = time.monotonic() + GROUP_GRACE_S
    while group_alive(child.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if group_alive(child.pid):
        print("launcher: killing processes the server left behind", file=sys.stderr)
        kill_group(child.pid)
    return code if code >= 0 else 128 - code


def prepare_dagster(home: Path) -> None:
    """What `ice-pipeline` does before a run, for the Dagster processes this starts.

    The services line on stderr; with DAGSTER_PG_URL set, the repo's
    dagster.yaml in DAGSTER_HOME (Dagster reads it from there); batch
    pickles older versions left in DAGSTER_HOME/storage removed.
    """
    from ice_pipeline.instance import ensure_home_config, remove_stale_pickles

    note = ensure_home_config(home)
    if note:
        print(f"launcher: {note}", file=sys.stderr)
    from ice_pipeline.definitions import defs

    names = [key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()]
    removed = remove_stale_pickles(home, names)
    if removed:
        print(
            f"launcher: removed {removed} batch pickle(s) an older version left in {home / 'storage'}",
            file=sys.stderr,
        )


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        args = args[1:]
    if not args or args[0] in ("-h", "--help"):
        raise SystemExit(USAGE)
    dagster = args[0] in SHORT_FORMS or Path(args[0]).name.startswith("dagster")
    args = SHORT_FORMS.get(args[0], args[:1]) + args[1:]
    if dagster:
        # Same world as the CLI: .env, then all configured or all embedded (which provide DAGSTER_HOME).
        from ice_pipeline.settings import SettingsError, apply_environment

        try:
            print(f"launcher: {apply_environment().describe()}", file=sys.stderr)
        except SettingsError as error:
            raise SystemExit(f"launcher: {error}") from None
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise SystemExit(
            "launcher: DAGSTER_HOME is not set: set it (an absolute directory holding dagster.yaml) "
            "or start the embedded services with `ice-pipeline local up`."
        )
    Path(home).mkdir(parents=True, exist_ok=True)
    if dagster:
        prepare_dagster(Path(home))
    sys.exit(supervise([resolve(args[0]), *args[1:]]))


if __name__ == "__main__":
    main()
