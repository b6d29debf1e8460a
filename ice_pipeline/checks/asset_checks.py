"""The asset checks of the design card, built from the rules (ice_pipeline/checks/rules.py).

Every asset carries a duplicates and an orphans check; `resolved_persons`' duplicate checks
are blocking. Each result says what it looked at (`scope`, see checks/scope.py) and lists
the offending ids (never names).
"""

from contextlib import ExitStack

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    MetadataValue,
    asset_check,
)

from ice_pipeline.checks.accounting import accounting
from ice_pipeline.checks.engine import Scope, find_violations, offending_ids
from ice_pipeline.checks.rules import PRODUCTION, RULES, Rule
from ice_pipeline.checks.scope import resolve_scope
from ice_pipeline.resources import ProductionDatabase, StagingDatabase

SEVERITY = {"ERROR": AssetCheckSeverity.ERROR, "WARN": AssetCheckSeverity.WARN}
# Rules whose asset check lives elsewhere (checks/documents.py adds metadata of its own).
CUSTOM_CHECKS = frozenset({"documents_no_duplicates", "documents_no_orphans"})


def scope_metadata(rule: Rule, scope: Scope) -> dict:
    """The scope a rule's check used, said in its metadata."""
    table = rule.scope == "table"
    return {
        "scope": scope.label_for(rule),
        "scope_run_id": "" if table or scope.run_id is None else scope.run_id,
        "scope_reason": "this rule always reads the whole table" if table else scope.why,
    }


def rule_result(rule: Rule, production_conn, staging_conn, scope: Scope, **extra) -> AssetCheckResult:
    """Run one rule in one scope and explain the outcome."""
    return explain(rule, find_violations(rule, production_conn, staging_conn, scope), scope, **extra)


def explain(rule: Rule, found: pd.DataFrame, scope: Scope, **extra) -> AssetCheckResult:
    """A rule's violations as a check result: how many, which ids, in what scope."""
    return AssetCheckResult(
        passed=found.empty,
        severity=SEVERITY[rule.severity],
        description=None
        if found.empty
        else f"{len(found)} {rule.kind[:-1]} violation(s) in scope "
        f"'{scope.label_for(rule)}': see offending_ids.",
        metadata={
            "violations": len(found),
            "offending_ids": MetadataValue.json(offending_ids(found)),
            **scope_metadata(rule, scope),
            **extra,
        },
    )


SCOPE_NOTE = (
    " Scope (metadata `scope`): in a migration, the rows this run took; run on its own (Execute in the "
    "UI), the rows of the asset's latest materialization's run, or the whole database when there is none; "
    "in verify_production, the whole database."
)


def _rule_check(rule: Rule) -> AssetChecksDefinition:
    description = rule.description + ("" if rule.scope == "table" else SCOPE_NOTE)

    @asset_check(asset=rule.asset, name=rule.name, description=description, blocking=rule.blocking)
    def _check(
        context: AssetCheckExecutionContext, staging_db: StagingDatabase, production_db: ProductionDatabase
    ) -> AssetCheckResult:
        scope = resolve_scope(context, rule.asset)
        with ExitStack() as stack:
            production = stack.enter_context(production_db.connection())
            staging = None if rule.database == PRODUCTION else stack.enter_context(staging_db.connection())
            return rule_result(rule, production, staging, scope)

    return _check


def accounting_result(
    staging_conn, production_conn, table: str, severity: AssetCheckSeverity | None = None
) -> AssetCheckResult:
    """The accounting identity of one staging table as a check result (always the whole table)."""
    figures = accounting(staging_conn, production_conn, table)
    passed = figures["unaccounted"] == 0 and figures["in_two_places"] == 0
    metadata = {k: (MetadataValue.json(v) if isinstance(v, list) else v) for k, v in figures.items()}
    metadata["scope"] = "whole table"
    kwargs = {"severity": severity} if severity is not None else {}
    return AssetCheckResult(passed=passed, metadata=metadata, **kwargs)


def _accounting_check(asset: str, table: str) -> AssetChecksDefinition:
    @asset_check(
        asset=asset,
        name=f"accounting_{table}",
        description=f"Every {table} row is linked, rejected with a reason, or waiting in review "
        "(or beyond the watermark, not processed yet) — and in only one of those places. "
        "A failure means rows were lost or double-counted: the listed staging ids say which. "
        "Always the whole table.",
    )
    def _check(staging_db: StagingDatabase, production_db: ProductionDatabase) -> AssetCheckResult:
        with staging_db.connection() as s, production_db.connection() as p:
            return accounting_result(s, p, table)

    return _check


def build_checks() -> list[AssetChecksDefinition]:
    """Every asset check of the code location (the document checks included)."""
    from ice_pipeline.checks.documents import document_checks

    checks = [_rule_check(rule) for rule in RULES if rule.name not in CUSTOM_CHECKS]
    checks.append(_accounting_check("prod_students", "staging_student"))
    checks.append(_accounting_check("prod_leads", "staging_lead"))
    checks.append(_accounting_check("prod_leads", "staging_lead_failures"))
    return [*checks, *document_checks]
