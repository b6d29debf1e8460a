"""Checks (issues 10 and 15): one definition per rule, a duplicates and an orphans check on every asset,
and checks that mean something on their own (check-only runs, verify_production).

Real PostgreSQL and S3 (the session's services). A "check-only run" executes only asset checks, as an
operator's *Execute* on a check in the UI does: no asset is materialized in that run.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from dagster import AssetSelection, DagsterInstance, Definitions, define_asset_job, in_process_executor

from ice_pipeline.checks import RULES
from ice_pipeline.checks.engine import LATEST_RUN, THIS_RUN, WHOLE_DATABASE
from ice_pipeline.checks.rules import DUPLICATES, ORPHANS, WARN

DESIGN_CARD = (
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


# --- helpers ----------------------------------------------------------------------------------------------------


def evaluations(result) -> dict[str, dict]:
    """check name -> {passed, severity, metadata values} of a Dagster run result."""
    return {
        e.check_name: {
            "passed": e.passed,
            "severity": e.severity.value,
            **{k: getattr(v, "value", v) for k, v in e.metadata.items()},
        }
        for e in result.get_asset_check_evaluations()
    }


def migrate(instance: DagsterInstance):
    from ice_pipeline.definitions import defs
    from ice_pipeline.jobs import MIGRATION_JOB

    result = defs.resolve_job_def(MIGRATION_JOB).execute_in_process(instance=instance, raise_on_error=False)
    assert result.success
    return result


def check_only(instance: DagsterInstance, *assets: str):
    """Run the checks of `assets` only (no asset materialized), as the UI's Execute on a check does."""
    from ice_pipeline import definitions

    job = define_asset_job(
        "checks_only", selection=AssetSelection.checks_for_assets(*assets), executor_def=in_process_executor
    )
    defs = Definitions(
        assets=definitions.defs.assets,
        asset_checks=definitions.defs.asset_checks,
        jobs=[job],
        resources=definitions.build_resources(),
    )
    return defs.resolve_job_def("checks_only").execute_in_process(instance=instance, raise_on_error=False)


def verify(instance: DagsterInstance):
    from ice_pipeline.definitions import defs
    from ice_pipeline.jobs import VERIFICATION_JOB

    return defs.resolve_job_def(VERIFICATION_JOB).execute_in_process(instance=instance, raise_on_error=False)


STUDENT = {
    "full_name": "Ana María Pérez Gómez",
    "email": "ana.perez@example.com",
    "cedula": "1.020.345.678",
    "birth_date": "15/03/1995",
    "student_number": "ST-1001",
    "source": "directory+csv",
}


# --- definitions --------------------------------------------------------------------------------------------------


def test_every_asset_of_the_design_card_has_a_duplicates_and_an_orphans_check():
    from ice_pipeline.definitions import defs

    checks = {(k.asset_key.to_user_string(), k.name) for k in defs.resolve_asset_graph().asset_check_keys}
    for asset in DESIGN_CARD:
        kinds = {rule.kind for rule in RULES if rule.asset == asset}
        assert kinds == {DUPLICATES, ORPHANS}, asset
    # every rule is a check of its asset (report and checks: one definition)
    assert {(rule.asset, rule.name) for rule in RULES} <= checks
    blocking = {rule.name for rule in RULES if rule.blocking}
    assert blocking == {"persons_unique_cedula", "persons_unique_email", "persons_unique_name_birth_date"}
    assert all(rule.severity == WARN for rule in RULES if rule.database == "staging")
    # names kept from before the rules were gathered in one place
    assert {
        "students_unique_per_person",
        "students_no_orphans",
        "leads_unique_per_key",
        "leads_no_orphans",
        "documents_no_duplicates",
        "documents_no_orphans",
        "documents_objects_present",
        "documents_no_stray_objects",
        "documents_accounting",
        "accounting_staging_student",
        "accounting_staging_lead",
    } <= {name for _, name in checks}


def test_verify_production_job_runs_every_check_and_is_scheduled_daily():
    from ice_pipeline.definitions import defs
    from ice_pipeline.jobs import VERIFICATION_JOB

    job = defs.resolve_job_def(VERIFICATION_JOB)
    assert job.tags["ice_pipeline/check_scope"] == "database"
    selected = job.asset_layer.asset_graph.asset_check_keys
    assert selected == defs.resolve_asset_graph().asset_check_keys
    schedule = defs.resolve_schedule_def("daily_verification")
    assert schedule.job_name == VERIFICATION_JOB and schedule.execution_timezone == "America/Bogota"


# --- checks on their own ---------------------------------------------------------------------------------------------


def test_a_duplicate_the_bot_writes_is_found_by_a_check_only_run_and_by_verify_production(pipeline):
    pipeline.insert("staging_student", [STUDENT])
    instance = DagsterInstance.ephemeral()
    run = migrate(instance)
    in_run = evaluations(run)
    assert in_run["persons_unique_cedula"]["passed"]
    assert in_run["persons_unique_cedula"]["scope"] == THIS_RUN
    assert in_run["persons_unique_cedula"]["scope_run_id"] == run.run_id

    # The bot writes a second person with the same cédula, spelled its own way (the unique index on
    # persons.cedula cannot see it), outside any pipeline run.
    twin = pipeline.insert_bot_person(
        refresh_keys=True, full_name="ANA MARIA PEREZ", cedula="CC 1.020.345.678"
    )
    (original,) = pipeline.query("SELECT id::text FROM persons WHERE id <> %s", (twin,))[0]

    alone = evaluations(check_only(instance, "resolved_persons"))
    cedula = alone["persons_unique_cedula"]
    assert not cedula["passed"] and cedula["severity"] == "ERROR"
    assert cedula["scope"] == LATEST_RUN and cedula["scope_run_id"] == run.run_id
    assert sorted(cedula["offending_ids"]) == sorted([original, twin]) and cedula["violations"] == 1

    verified = evaluations(verify(instance))
    assert set(verified) == {k.name for k in _all_check_keys()}
    assert not verified["persons_unique_cedula"]["passed"]
    assert verified["persons_unique_cedula"]["scope"] == WHOLE_DATABASE
    assert twin in verified["persons_unique_cedula"]["offending_ids"]

    # A check run where its asset was never materialized (another instance) looks at the whole database.
    fresh = evaluations(check_only(DagsterInstance.ephemeral(), "resolved_persons"))
    assert (
        fresh["persons_unique_cedula"]["scope"] == WHOLE_DATABASE
        and not fresh["persons_unique_cedula"]["passed"]
    )

    # `ice-pipeline report` says the same, with the same rule.
    from ice_pipeline.reporting import build_report

    report = build_report(pipeline.staging, pipeline.production)
    assert report["duplicates"]["persons_unique_cedula"] == 1 and not report["healthy"]


def _all_check_keys():
    from ice_pipeline.definitions import defs

    return defs.resolve_asset_graph().asset_check_keys


def test_an_orphan_the_bot_leaves_is_found_by_a_check_only_run(pipeline):
    pipeline.insert("staging_lead", [{"full_name": "Carlos Ruiz", "email": "carlos@example.com"}])
    instance = DagsterInstance.ephemeral()
    run = migrate(instance)
    assert evaluations(run)["persons_no_orphans"]["passed"]
    (person,) = pipeline.query("SELECT id::text FROM persons")[0]
    # The bot deletes the lead, then the person (the foreign key forbids the other order).
    pipeline.query("DELETE FROM leads WHERE person_id = %s", (person,))
    pipeline.query("DELETE FROM persons WHERE id = %s", (person,))

    alone = evaluations(check_only(instance, "resolved_persons", "prod_leads"))
    orphans = alone["persons_no_orphans"]
    assert not orphans["passed"] and orphans["offending_ids"] == [person]
    assert orphans["scope"] == LATEST_RUN and orphans["scope_run_id"] == run.run_id
    # the accounting check still holds: the lead row is linked (to a lead the bot deleted since)
    assert alone["accounting_staging_lead"]["passed"]
    assert not evaluations(verify(instance))["persons_no_orphans"]["passed"]


def test_staging_checks_warn_about_rows_ingested_twice_and_pointing_nowhere(pipeline):
    students = pipeline.insert("staging_student", [STUDENT, {**STUDENT, "student_number": " st-1001 "}])
    leads = pipeline.insert(
        "staging_lead",
        [
            {
                "full_name": "Carlos Ruiz",
                "email": "carlos@example.com",
                "source_file": "a.csv",
                "source_row": 7,
            },
            {
                "full_name": "Carlos Ruiz",
                "email": "carlos@example.com",
                "source_file": "a.csv",
                "source_row": 7,
            },
            {
                "full_name": "Diana Torres",
                "email": "diana@example.com",
                "source_file": "a.csv",
                "source_row": 8,
            },
        ],
    )
    # A document whose student is not there: V3's schema has a foreign key, so load it as a bulk loader
    # that bypasses triggers would (a V3 database without the constraint behaves the same).
    ((missing_student_doc,),) = pipeline.query(
        "SET session_replication_role = replica; "
        "INSERT INTO staging_document (student_id, document_type, staging_file_path, normalized_file_name) "
        "VALUES (%s, 'PASSPORT', 'x/p.pdf', 'p.pdf') RETURNING id; ",
        (max(students) + 1000,),
        db="staging",
    )
    instance = DagsterInstance.ephemeral()
    run = migrate(instance)
    found = evaluations(run)
    assert found["staging_students_no_duplicates"]["severity"] == "WARN"
    assert not found["staging_students_no_duplicates"]["passed"]
    assert sorted(found["staging_students_no_duplicates"]["offending_ids"]) == sorted(map(str, students))
    assert found["staging_students_no_duplicates"]["scope"] == THIS_RUN
    assert sorted(found["staging_leads_no_duplicates"]["offending_ids"]) == sorted(map(str, leads[:2]))
    assert found["staging_documents_no_orphans"]["offending_ids"] == [str(missing_student_doc)]
    assert found["staging_leads_no_orphans"]["passed"] and found["staging_students_no_orphans"]["passed"]
    # a warning does not fail the run, and the pipeline still made one person per identity
    assert pipeline.scalar("SELECT count(*) FROM persons") == 3  # Ana, Carlos, Diana

    # V3 deletes a lead row the pipeline linked: its lineage points nowhere.
    pipeline.query("DELETE FROM staging_lead WHERE id = %s", (leads[2],), db="staging")
    alone = evaluations(check_only(instance, "staging_leads"))
    assert alone["staging_leads_no_orphans"]["offending_ids"] == [str(leads[2])]
    assert alone["staging_leads_no_orphans"]["scope"] == LATEST_RUN


def test_services_and_events_duplicates_and_orphans(pipeline):
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    service, twin = str(uuid.uuid4()), str(uuid.uuid4())
    pipeline.query(
        "INSERT INTO services (id, name, updated_at) VALUES (%s, 'Au Pair', %s), (%s, 'AU PAIR ', %s)",
        (service, now, twin, now),
    )
    pipeline.insert("staging_lead", [{"full_name": "Carlos Ruiz", "email": "carlos@example.com"}])
    found = evaluations(migrate(DagsterInstance.ephemeral()))
    duplicates = found["services_events_no_duplicates"]
    assert not duplicates["passed"] and duplicates["severity"] == "WARN"
    assert (
        sorted(duplicates["offending_ids"]) == sorted([service, twin])
        and duplicates["scope"] == "whole table"
    )
    assert found["services_events_no_orphans"]["passed"]


@pytest.mark.parametrize(
    "rule", [r for r in RULES if r.scope == "run" and r.database == "production"], ids=lambda r: r.name
)
def test_run_scoped_rules_plan_the_whole_database_without_a_run_id(pipeline, rule):
    """One SQL text per rule: with a run id it reads that run's lineage, without one the whole table."""
    from ice_pipeline.checks.engine import EVERYTHING, Scope, find_violations

    conn = pipeline.production
    assert find_violations(rule, conn, None, EVERYTHING).empty
    assert find_violations(rule, conn, None, Scope(THIS_RUN, "no-such-run")).empty
    with conn.cursor() as cur:
        cur.execute("EXPLAIN " + rule.query, {"run_id": None, "ids": None})
        plan = "\n".join(row[0] for row in cur.fetchall())
    assert "source_links" not in plan or rule.name == "persons_no_orphans", plan
