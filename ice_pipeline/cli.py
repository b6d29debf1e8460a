"""`ice-pipeline`: the fixed command-line interface of DESIGN §6."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ice_pipeline import settings
from ice_pipeline.dev.local import LocalServiceError
from ice_pipeline.resources import DatabaseUnavailable, connect
from ice_pipeline.schema import SchemaError
from ice_pipeline.settings import DEFAULT_BATCH_ROWS, SettingsError
from ice_pipeline.summary import SUMMARY_KEYS, RunSummary, combine_summaries

app = typer.Typer(
    help="Move V3 staging data into the ICE bot's production database and MinIO.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
local_app = typer.Typer(
    help="Embedded PostgreSQL + S3 server under .ice/ for development, demo and tests.", no_args_is_help=True
)
db_app = typer.Typer(
    help="Schemas: staging, production baseline + migration, ice_pipeline.", no_args_is_help=True
)
app.add_typer(local_app, name="local")
app.add_typer(db_app, name="db")
review_app = typer.Typer(
    help="The review queue: list, show, resolve, export/import in bulk, apply.", no_args_is_help=True
)
app.add_typer(review_app, name="review")
# Piped output (make, CI logs) gets a fixed width so tables are not cut to 80 columns.
err = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 160)
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)

EXPECTED_ERRORS = (SettingsError, DatabaseUnavailable, SchemaError, LocalServiceError)


def fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def check_databases(staging_conn, production_conn) -> None:
    """Both databases reachable and holding the tables the pipeline needs (raises SchemaError)."""
    from ice_pipeline.schema import check_production_schema, check_staging_schema

    check_staging_schema(staging_conn)
    check_production_schema(production_conn)
    staging_conn.rollback()
    production_conn.rollback()


# --- main: which services every command uses -------------------------------


@app.callback()
def choose_services(ctx: typer.Context) -> None:
    """Every command but `local` uses one world: the embedded services or the configured ones, never a mix."""
    if ctx.invoked_subcommand in (None, "local") or any(arg in ("--help", "-h") for arg in sys.argv[1:]):
        return
    world = settings.apply_environment()
    err.print(world.describe(), highlight=False, markup=False)


# --- local ----------------------------------------------------------------


@local_app.command("up")
def local_up() -> None:
    """Start the embedded PostgreSQL cluster and S3 server (safe to call twice)."""
    from ice_pipeline.dev import local
    from ice_pipeline.instance import REPO_DAGSTER_YAML

    services = local.up(dagster_yaml=REPO_DAGSTER_YAML if REPO_DAGSTER_YAML.exists() else None)
    out.print(
        f"PostgreSQL on 127.0.0.1:{services.pg_port}, S3 on 127.0.0.1:{services.s3_port} ({services.root}); "
        f"objects kept in {local.objects_dir(services.root)}"
    )


@local_app.command("down")
def local_down() -> None:
    """Stop the embedded services (the databases and the S3 objects stay on disk under .ice/)."""
    from ice_pipeline.dev import local

    local.down()
    out.print("embedded services stopped")


@local_app.command("status")
def local_status() -> None:
    """Say whether the embedded services run, and where their data lives."""
    from ice_pipeline.dev import local

    services = local.status()
    if services is None:
        out.print("not initialised: run `ice-pipeline local up`")
        raise typer.Exit(1)
    out.print(
        f"PostgreSQL 127.0.0.1:{services.pg_port}: {'running' if services.pg_running else 'stopped'}; "
        f"S3 127.0.0.1:{services.s3_port}: {'running' if services.s3_running else 'stopped'}; "
        f"objects in {local.objects_dir(services.root)}"
    )
    if not (services.pg_running and services.s3_running):
        raise typer.Exit(1)


@local_app.command("env")
def local_env() -> None:
    """Print `export` lines for every variable of DESIGN §3 (eval "$(ice-pipeline local env)")."""
    from ice_pipeline.dev import local

    env = local.embedded_env()
    if env is None:
        fail("the embedded services are not running: run `ice-pipeline local up` first.")
    sys.stdout.write(local.env_exports(env) + "\n")


# --- db -------------------------------------------------------------------


def _production():
    return connect(settings.require("DATABASE_URL"), "DATABASE_URL")


def _staging(read_only: bool = True):
    return connect(settings.require("STAGING_DATABASE_URL"), "STAGING_DATABASE_URL", read_only=read_only)


ALLOW_REMOTE_HELP = "Also on a database that is not the embedded one (a real database: think twice)."


def refuse_unless_embedded(conn, variable: str, command: str, allow_remote: bool) -> None:
    """`demo-data` and `db init` write demo rows / a Prisma baseline: only the embedded cluster, unless told."""
    if allow_remote or settings.is_embedded_database(conn):
        return
    fail(
        f"{variable}={settings.describe_url(os.environ.get(variable, ''))} is not a database of the embedded "
        f"services: `{command}` refuses it; pass --allow-remote to {command} there anyway."
    )


@db_app.command("init")
def db_init(
    allow_remote: Annotated[bool, typer.Option("--allow-remote", help=ALLOW_REMOTE_HELP)] = False,
) -> None:
    """Development/test: staging tables, production baseline + migration, ice_pipeline schema (idempotent)."""
    from ice_pipeline.schema import init_production, init_staging

    with closing(_staging(read_only=False)) as staging_conn, closing(_production()) as production_conn:
        refuse_unless_embedded(staging_conn, "STAGING_DATABASE_URL", "db init", allow_remote)
        refuse_unless_embedded(production_conn, "DATABASE_URL", "db init", allow_remote)
        init_staging(staging_conn)
        init_production(production_conn, baseline=True)
    out.print("schemas ready: staging, production (baseline + 20251105_add_staging_fields), ice_pipeline")


@db_app.command("migrate")
def db_migrate() -> None:
    """A real ICE bot database: apply 20251105_add_staging_fields and the ice_pipeline schema only."""
    from ice_pipeline.schema import check_production_schema, init_production

    with closing(_production()) as conn:
        init_production(conn, baseline=False)
        check_production_schema(conn)
    out.print("production migrated: 20251105_add_staging_fields + ice_pipeline schema")


# --- demo data ------------------------------------------------------------


@app.command("demo-data")
def demo_data(
    persons: Annotated[int, typer.Option(help="How many distinct people to generate.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same data.")] = 0,
    documents: Annotated[bool, typer.Option(help="Also stage document files.")] = True,
    allow_remote: Annotated[bool, typer.Option("--allow-remote", help=ALLOW_REMOTE_HELP)] = False,
) -> None:
    """Load realistic, messy staging rows (students, leads, documents, reference data, lead failures)."""
    from ice_pipeline.dev import demo_data as demo

    started = time.monotonic()
    root = Path(settings.require("STAGING_FILES_ROOT"))
    with closing(_staging(read_only=False)) as conn:
        refuse_unless_embedded(conn, "STAGING_DATABASE_URL", "demo-data", allow_remote)
        data = demo.generate(persons, seed=seed, documents=documents)
        result = demo.load(conn, data, root)
    counts = ", ".join(f"{table} {n}" for table, n in result.counts.items())
    out.print(
        f"demo data loaded in {time.monotonic() - started:.1f} s: {counts}; "
        f"{result.files_written} files ({result.bytes_written / 1e6:.1f} MB) under STAGING_FILES_ROOT"
    )


# --- migrate --------------------------------------------------------------


def _instance():
    from ice_pipeline.instance import dagster_instance

    return dagster_instance()


def remove_stale_pickles() -> None:
    """Batches pickled by older versions under DAGSTER_HOME/storage hold staging rows: delete them, say how many."""
    from ice_pipeline.definitions import defs
    from ice_pipeline.instance import remove_stale_pickles as remove

    home = os.environ.get("DAGSTER_HOME", "").strip()
    if not home:
        return
    names = [key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()]
    removed = remove(Path(home), names)
    if removed:
        err.print(
            f"removed {removed} batch pickle(s) an older version left in {Path(home) / 'storage'}",
            highlight=False,
        )


def run_migration(
    dry_run: bool = False,
    limit: int | None = None,
    full_refresh: bool = False,
    progress: Callable[[RunSummary], None] | None = None,
) -> dict:
    """Migrate the staging backlog; return the summary of DESIGN §6 (`migrate --json`), summed over the runs.

    `limit=None` takes the whole backlog in runs of DEFAULT_BATCH_ROWS staging
    rows (bounded memory; each run commits, so a failure keeps the batches before
    it), stopping at the first failed run. A dry run writes nothing, so it can
    only show the first batch (`more_pending` says when more waits). With
    `limit=N` (0 = everything at once) or `full_refresh`, exactly one run.
    """
    if limit is not None or full_refresh or dry_run:
        return run_migration_once(
            dry_run=dry_run, limit=DEFAULT_BATCH_ROWS if limit is None else limit, full_refresh=full_refresh
        ).as_dict()
    runs = []
    while True:
        runs.append(run_migration_once(limit=DEFAULT_BATCH_ROWS))
        if progress:
            progress(runs[-1])
        if not runs[-1].success or runs[-1].checks_failed or not runs[-1].more_pending:
            return combine_summaries(runs).as_dict()


def run_migration_once(dry_run: bool = False, limit: int = 0, full_refresh: bool = False) -> RunSummary:
    """Run the migrate_to_production job once, in process; return its summary (DESIGN §6)."""
    from dagster import DagsterEventType

    from ice_pipeline.definitions import defs
    from ice_pipeline.jobs import MIGRATION_JOB

    job = defs.resolve_job_def(MIGRATION_JOB)
    run_config = {
        "resources": {
            "options": {"config": {"dry_run": dry_run, "limit": limit, "full_refresh": full_refresh}}
        },
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
    }
    started = time.monotonic()
    with _instance() as instance:
        result = job.execute_in_process(
            run_config=run_config,
            instance=instance,
            raise_on_error=False,
            tags={"ice_pipeline/trigger": "cli", "ice_pipeline/dry_run": str(dry_run)},
        )
        assets: dict[str, dict] = {}
        checks: list[dict] = []
        failure = None
        for event in result.all_events:
            if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
                materialization = event.step_materialization_data.materialization
                assets[materialization.asset_key.to_user_string()] = {
                    k: v.value for k, v in materialization.metadata.items()
                }
            elif event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
                evaluation = event.event_specific_data
                checks.append(
                    {
                        "asset": evaluation.asset_key.to_user_string(),
                        "check": evaluation.check_name,
                        "passed": evaluation.passed,
                        "severity": evaluation.severity.value,
                    }
                )
            elif event.event_type == DagsterEventType.STEP_FAILURE and failure is None:
                error = event.step_failure_data.error
                while error is not None and error.cause is not None:
                    error = error.cause  # the root cause says what went wrong, not "error in op X"
                lines = (error.message or "").strip().splitlines() if error else []
                failure = lines[0] if lines else event.message  # the first line names the problem
    return RunSummary.from_assets(
        assets,
        checks,
        success=result.success,
        dry_run=dry_run,
        run_id=result.run_id,
        seconds=round(time.monotonic() - started, 2),
        error=failure,
    )


def _print_batch(summary: RunSummary) -> None:
    if summary.more_pending and summary.success:
        rows = summary.staging_rows
        err.print(
            f"run {summary.run_id}: {rows['students'] + rows['leads']:,} staging rows in "
            f"{summary.seconds} s; more rows wait, next batch",
            highlight=False,
        )


@app.command("migrate")
def migrate(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Compute exact counts, write nothing.")] = False,
    limit: Annotated[
        int | None,
        typer.Option(
            help="One run of at most N new/changed student+lead rows (arrival order) and N documents; "
            "0 = everything in one run. Default: the whole backlog, in runs of "
            f"{DEFAULT_BATCH_ROWS:,} rows."
        ),
    ] = None,
    full_refresh: Annotated[bool, typer.Option("--full-refresh", help="Ignore the watermarks.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    backup: Annotated[
        Path | None,
        typer.Option(
            help="First pg_dump -Fc the production tables into this "
            "directory; prints the command that restores it."
        ),
    ] = None,
) -> None:
    """Run the migrate_to_production job in process (the same job the UI and the schedule run)."""
    # Unreachable databases or missing schemas: one sentence, before Dagster starts.
    with closing(_staging()) as staging_conn, closing(_production()) as production_conn:
        check_databases(staging_conn, production_conn)
    remove_stale_pickles()
    if backup is not None:  # undo block below
        dump, restore = backup_production(backup)
        err.print(
            f"backup: {dump}\nrestore it (erases everything written since, the bot's writes too; "
            f"`ice-pipeline undo RUN_ID` reverts one run only): {restore}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    summary = run_migration(
        dry_run=dry_run, limit=limit, full_refresh=full_refresh, progress=None if as_json else _print_batch
    )
    if as_json:
        sys.stdout.write(json.dumps(summary, default=str) + "\n")
    else:
        table = Table(title=f"migration {'(dry run) ' if dry_run else ''}{summary['run_id']}")
        table.add_column("figure")
        table.add_column("value", justify="right")
        for key in SUMMARY_KEYS:
            table.add_row(key, str(summary[key]))
        table.add_row("seconds", str(summary["seconds"]))
        table.add_row("runs", str(summary["runs"]))
        if summary["more_pending"]:
            table.add_row("more_pending", "yes: later batches wait for the next run")
        out.print(table)
        for check in summary["failed_checks"]:
            err.print(f"check failed ({check['severity']}): {check['asset']} / {check['check']}")
    if not summary["success"]:
        err.print(f"[bold red]migration failed:[/] {summary['error']}", highlight=False)
    if not summary["success"] or summary["checks_failed"]:
        raise typer.Exit(1)


@app.command("report")
def report(as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False) -> None:
    """Duplicates, orphans, review queue and the accounting identity, over the whole database."""
    from ice_pipeline.reporting import build_report, print_report

    with closing(_staging()) as staging_conn, closing(_production()) as production_conn:
        check_databases(staging_conn, production_conn)
        figures = build_report(staging_conn, production_conn)
    if as_json:
        sys.stdout.write(json.dumps(figures, default=str) + "\n")
    else:
        print_report(out, figures)
    if not figures["healthy"]:
        raise typer.Exit(1)


# --- review (owner: h8-review; logic in ice_pipeline/review/) --------------

REVIEW_KINDS_HELP = "identity_conflict | field_conflict | possible_duplicate | possible_false_merge"
REVIEW_LIST_COLUMNS = (
    "id",
    "kind",
    "status",
    "staging_table",
    "staging_id",
    "person_id",
    "candidate_person_id",
    "field",
    "existing_value",
    "incoming_value",
    "score",
    "reason",
    "decision_kind",
)


def _cell(value) -> str:
    """A stored value as table text: escaped, so '[/]' or '[link=...]' in the data is shown, not interpreted."""
    from rich.markup import escape

    return "" if value is None else escape(str(value))


def _review_call(function, *args, **kwargs):
    from ice_pipeline.review import ReviewError

    try:
        return function(*args, **kwargs)
    except ReviewError as error:
        fail(escape_markup(str(error)))


def escape_markup(text: str) -> str:
    from rich.markup import escape

    return escape(text)


@review_app.command("list")
def review_list(
    kind: Annotated[str | None, typer.Option(help=REVIEW_KINDS_HELP)] = None,
    status: Annotated[
        str, typer.Option(help="open | resolved | applied | dismissed | superseded | all")
    ] = "open",
    limit: Annotated[int, typer.Option(help="At most this many items.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List review items (they show the values in question: for operators only)."""
    from ice_pipeline.review import list_items

    with closing(_production()) as conn:
        items = _review_call(list_items, conn, kind, None if status == "all" else status, limit)
    if as_json:
        for item in items:
            sys.stdout.write(json.dumps(item, default=str) + "\n")
        return
    table = Table(title=f"review queue ({escape_markup(status)})")
    for column in REVIEW_LIST_COLUMNS:
        table.add_column(column)
    for item in items:
        table.add_row(*(_cell(item[c]) for c in REVIEW_LIST_COLUMNS))
    out.print(table)


@review_app.command("show")
def review_show(
    item_id: Annotated[int, typer.Argument(help="The review item id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """One item: its values, its evidence, the persons it is about with their current fields."""
    from ice_pipeline.review import show_item

    with closing(_production()) as conn:
        item = _review_call(show_item, conn, item_id)
    if as_json:
        sys.stdout.write(json.dumps(item, default=str) + "\n")
        return
    table = Table(title=f"review item {item_id}", show_header=False)
    table.add_column("what")
    table.add_column("value")
    for key, value in item.items():
        if key in ("persons", "details", "valid_decisions"):
            continue
        table.add_row(key, _cell(value))
    table.add_row("valid decisions", _cell(" | ".join(item["valid_decisions"]) or "(none: not open)"))
    table.add_row("evidence", _cell(json.dumps(item["details"], ensure_ascii=False, indent=1, default=str)))
    out.print(table)
    for person in item["persons"]:
        fields = Table(title=f"person {person['person_id']}", show_header=False)
        fields.add_column("field")
        fields.add_column("value")
        for key, value in person.items():
            fields.add_row(key, _cell(value))
        out.print(fields)


@review_app.command("resolve")
def review_resolve(
    item_id: Annotated[int, typer.Argument(help="The review item id.")],
    decision: Annotated[
        str | None,
        typer.Argument(
            help="merge_into | new_person | dismiss (identity_conflict); keep_existing | take_incoming "
            "(field_conflict); same_person | not_same (possible_duplicate); split | keep_together "
            "(possible_false_merge)."
        ),
    ] = None,
    person: Annotated[
        str | None,
        typer.Option(
            help="merge_into: the person to link the row to; same_person: the person that stays "
            "(default: the older one)."
        ),
    ] = None,
    merge_into: Annotated[str | None, typer.Option(help="Same as: merge_into --person ID.")] = None,
    new_person: Annotated[bool, typer.Option("--new-person", help="Same as: new_person.")] = False,
    dismiss: Annotated[bool, typer.Option("--dismiss", help="Same as: dismiss.")] = False,
) -> None:
    """Answer an open review item; the next migration run (or `review apply`) applies it."""
    from ice_pipeline.review import resolve_item

    with closing(_production()) as conn:
        out.print(
            _cell(
                _review_call(
                    resolve_item,
                    conn,
                    item_id,
                    decision,
                    person=person,
                    merge_into=merge_into,
                    new_person=new_person,
                    dismiss=dismiss,
                )
            )
        )


@review_app.command("export")
def review_export(
    csv_path: Annotated[Path, typer.Option("--csv", help="The CSV file to write.")],
    kind: Annotated[str | None, typer.Option(help=REVIEW_KINDS_HELP)] = None,
) -> None:
    """Write the open items to a CSV with empty `decision` and `decision_person_id` columns to fill."""
    from ice_pipeline.review.sheet import export_items

    with closing(_production()) as conn:
        count = _review_call(export_items, conn, csv_path, kind)
    out.print(
        f"{count} open items written to {_cell(csv_path)}: fill `decision` (and `decision_person_id` for "
        "merge_into / same_person), then `ice-pipeline review import` it"
    )


@review_app.command("import")
def review_import(
    csv_path: Annotated[Path, typer.Argument(help="A CSV from `review export` with decisions filled.")],
) -> None:
    """Record the decisions of a CSV: every line is checked first; one bad line records nothing."""
    from ice_pipeline.review import ReviewError
    from ice_pipeline.review.sheet import ImportErrors, import_decisions

    with closing(_production()) as conn:
        try:
            report = import_decisions(conn, csv_path)
        except ImportErrors as errors:
            for line, message in errors.errors:
                err.print(f"line {line}: {_cell(message)}", highlight=False)
            fail(f"{len(errors.errors)} line(s) cannot be recorded: nothing was recorded.")
        except ReviewError as error:
            fail(escape_markup(str(error)))
    out.print(
        f"{report.recorded} decisions recorded ({report.skipped} lines without a decision); the next migration "
        "run (or `ice-pipeline review apply`) applies them"
    )


@review_app.command("apply")
def review_apply(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Apply the recorded decisions now (the migration run does the same first thing)."""
    from ice_pipeline.review.apply import MigrationRunning, apply_now

    with closing(_production()) as conn:
        try:
            run_id, result = apply_now(conn)
        except MigrationRunning as error:
            fail(str(error))
    figures = {
        "run_id": run_id,
        **result.as_metadata(),
        "refused": {str(k): v for k, v in result.refused.items()},
    }
    if as_json:
        sys.stdout.write(json.dumps(figures) + "\n")
    else:
        out.print(
            f"{result.total} decisions applied ({', '.join(f'{k} {n}' for k, n in sorted(result.applied.items())) or 'none'})"
            f", {len(result.refused)} refused"
        )
        for item_id, reason in result.refused.items():
            err.print(f"item {item_id}: not applied, back in the queue: {_cell(reason)}", highlight=False)
    if result.refused:
        raise typer.Exit(1)


# --- end review --------------------------------------------------------------


# --- undo and backups (ice_pipeline/undo.py; issue 15) ---------------------------------

BACKUP_TABLES = (
    "public.persons",
    "public.students",
    "public.leads",
    "public.student_documents",
    "public.services",
    "public.events",
    "ice_pipeline.*",
)


def backup_production(directory: Path) -> tuple[Path, str]:
    """`pg_dump -Fc` of the tables a migration writes (and the pipeline's own); returns (file, restore command).

    The password goes through PGPASSWORD, never the command line (other users see that in `ps`).
    """
    import shutil
    import subprocess

    url = settings.parse_database_url(settings.require("DATABASE_URL"), "DATABASE_URL")
    if shutil.which("pg_dump") is None:
        raise SettingsError("--backup needs pg_dump (PostgreSQL client tools) on PATH.")
    directory.mkdir(parents=True, exist_ok=True)
    path = (directory / time.strftime("ice-production-%Y%m%dT%H%M%SZ.dump", time.gmtime())).resolve()
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    dsn = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    command = ["pg_dump", "--format=custom", "--no-owner", "--file", str(path), "--dbname", dsn]
    for table in BACKUP_TABLES:
        command += ["--table", table]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["no message"])[0]
        raise SettingsError(f"pg_dump failed ({first}); nothing was migrated.")
    restore = (
        f'pg_restore --clean --if-exists --single-transaction --no-owner --dbname "$DATABASE_URL" {path}'
    )
    return path, restore


def _print_undo(result, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result.as_dict(), default=str) + "\n")
        return
    verb = "would" if result.dry_run or result.refused else "did"
    table = Table(title=f"undo {'(dry run) ' if result.dry_run else ''}{result.run_id}")
    for column in ("table", "delete created", "restore changed", "re-insert deleted"):
        table.add_column(column, justify="left" if column == "table" else "right")
    for row in result.tables:
        table.add_row(
            row["table_name"],
            str(row["delete_created"]),
            str(row["restore_changed"]),
            str(row["reinsert_deleted"]),
        )
    out.print(table)
    for mark in result.watermarks:
        target = (
            f"{mark['to_updated_at']} #{mark['to_id']}" if mark["to_updated_at"] else "none (from the start)"
        )
        out.print(f"watermark {mark['staging_table']}: {verb} move back to {target}", highlight=False)
    out.print(f"objects: {verb} remove {len(result.objects)}", highlight=False)
    if result.refused:
        err.print(
            f"[bold red]refused:[/] {len(result.blockers)} rows depend on run {result.run_id}; "
            "nothing was changed:",
            highlight=False,
        )
        from ice_pipeline.undo import MAX_BLOCKERS_SHOWN

        for blocker in result.blockers[:MAX_BLOCKERS_SHOWN]:
            err.print(f"  {blocker['table_name']} {blocker['row_key']}: {blocker['reason']}", highlight=False)
        if len(result.blockers) > MAX_BLOCKERS_SHOWN:
            err.print(f"  ... and {len(result.blockers) - MAX_BLOCKERS_SHOWN} more (--json lists all)")
    elif result.undone:
        out.print(
            f"run {result.run_id} undone in {result.seconds} s; the next run redoes its staging rows",
            highlight=False,
        )
        if result.objects_failed:
            err.print(
                f"[bold red]warning:[/] {result.objects_failed} objects could not be removed from the store "
                "(the database is undone; the stray-objects check lists them)."
            )


@app.command("undo")
def undo(
    run_id: Annotated[str, typer.Argument(help="The run to undo (ice_pipeline.runs, or the Dagster UI).")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be done, change nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Revert one run: delete what it created (and its objects), restore what it changed, move watermarks back.

    Refused, listing what blocks, when something since depends on the run (a later run, a bot edit).
    Exit 0 when done (or, with --dry-run, when it could be done), 1 when refused, 2 on errors.
    """
    from ice_pipeline.resources import DocumentStore
    from ice_pipeline.undo import UndoError, store_remover, undo_run

    def remove(bucket: str, keys: list[str]) -> int:
        # The same variables as the code location's document_store resource (definitions.py).
        client = DocumentStore(
            endpoint=settings.require("MINIO_ENDPOINT"),
            access_key=settings.require("MINIO_ACCESS_KEY"),
            secret_key=settings.require("MINIO_SECRET_KEY"),
            bucket=bucket,
            secure=os.environ.get("MINIO_SECURE") or "false",
            files_root=settings.require("STAGING_FILES_ROOT"),
        ).client()
        return store_remover(client)(bucket, keys)

    with closing(_production()) as conn:
        try:
            result = undo_run(conn, run_id, dry_run=dry_run, remove_objects=remove)
        except UndoError as error:
            fail(str(error))
    _print_undo(result, as_json)
    if result.refused:
        raise typer.Exit(1)
    if result.objects_failed:
        raise typer.Exit(1)


# --- end undo and backups ------------------------------------------------------------

# --- candidates (issue 13) --------------------------------------------------


@app.command("candidates")
def candidates(
    full: Annotated[
        bool, typer.Option("--full", help="Scan every production person (with blocking, never all pairs).")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Find and count, queue nothing.")] = False,
    max_block: Annotated[
        int,
        typer.Option(
            help="Skip blocking keys shared by more persons than this (placeholders, very common names)."
        ),
    ] = 400,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Queue possible duplicates among production persons for review (never merged). Counts only."""
    import datetime as dt

    from ice_pipeline.assets.candidates import full_scan

    if not full:
        fail(
            "give --full to scan all persons; every migration run already compares the persons it created or "
            "touched (asset person_candidates)."
        )
    run_id = "candidates-" + dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    with closing(_production()) as conn:
        from ice_pipeline.schema import check_production_schema

        check_production_schema(conn)
        conn.rollback()
        figures = full_scan(conn, run_id, dry_run=dry_run, max_block=max_block)
    if as_json:
        sys.stdout.write(json.dumps(figures, default=str) + "\n")
        return
    table = Table(title=f"possible duplicates {'(dry run) ' if dry_run else ''}{run_id}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        if key not in ("run_id", "dry_run", "blocks_skipped_by_key"):
            table.add_row(key, str(value))
    out.print(table)
    if figures["blocks_skipped"]:
        skipped = ", ".join(f"{k} {v}" for k, v in figures["blocks_skipped_by_key"].items() if v)
        err.print(
            f"blocks larger than {max_block} persons skipped (not compared): {skipped}", highlight=False
        )


# --- end candidates ---------------------------------------------------------


# --- explain (issue 13) -----------------------------------------------------


@app.command("explain")
def explain_command(
    target: Annotated[
        str, typer.Argument(help="<staging_table>:<id> (e.g. staging_lead:123) or person:<uuid>.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Which person a row went to and why (vetoes, rejection, review); what a person is made of."""
    from ice_pipeline.explain import ExplainError, explain, found, print_explanation

    with closing(_production()) as conn:
        try:
            result = explain(conn, target)
        except ExplainError as error:
            fail(str(error))
    if as_json:
        sys.stdout.write(json.dumps(result, default=str, ensure_ascii=False) + "\n")
    else:
        print_explanation(out, result)
    if not found(result):
        raise typer.Exit(1)


# --- end explain ------------------------------------------------------------


def main() -> None:
    """Entry point: settings from the environment (`choose_services`), one clear sentence on expected errors."""
    try:
        app()
    except EXPECTED_ERRORS as error:
        err.print(f"[bold red]error:[/] {error}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
