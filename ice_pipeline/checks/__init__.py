"""Integrity checks: each rule defined once (rules.py), run in a scope (engine.py, scope.py) by the
asset checks (asset_checks.py, documents.py), the job verify_production and `ice-pipeline report`."""

from ice_pipeline.checks.accounting import FINAL_ENTITY, accounting
from ice_pipeline.checks.asset_checks import build_checks
from ice_pipeline.checks.rules import RULE, RULES, Rule

__all__ = ["FINAL_ENTITY", "RULE", "RULES", "Rule", "accounting", "build_checks"]
