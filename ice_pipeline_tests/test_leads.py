"""Lead identity: (person, service, event) where both resolve, else (person, program type)."""

from __future__ import annotations

import pandas as pd

from ice_pipeline.logic.leads import FILL_FIELDS, plan_leads


def _rows(*rows: dict) -> pd.DataFrame:
    base = {f: None for f in FILL_FIELDS} | {"warnings": None}
    return pd.DataFrame([base | {"staging_id": i + 1} | row for i, row in enumerate(rows)])


def test_program_lead_never_gains_the_service_and_event_of_another_sighting():
    plan = plan_leads(
        _rows(
            {
                "person_id": "P",
                "service_id": "S",
                "program_type": "Work and Travel",
            },  # (person, program) lead
            {"person_id": "P", "event_id": "E", "program_type": "WORK-AND-TRAVEL"},  # same program: joins it
            {
                "person_id": "P",
                "service_id": "S",
                "event_id": "E",
                "program_type": "Work and Travel",
            },  # (P, S, E)
        ),
        pd.DataFrame(columns=["lead_id", "person_id", *FILL_FIELDS]),
    )
    assert len(plan.new_leads) == 2
    by_lead = plan.links.groupby("lead_id")["staging_id"].apply(sorted).to_dict()
    assert sorted(by_lead.values()) == [[1, 2], [3]]
    program_lead = plan.new_leads[plan.new_leads["lead_id"] == plan.links.loc[0, "lead_id"]].iloc[0]
    assert program_lead["service_id"] == "S" and pd.isna(program_lead["event_id"])  # not filled from row 2


def test_existing_program_lead_is_not_filled_with_service_or_event():
    existing = pd.DataFrame([{"lead_id": "L1", "person_id": "P", "program_type": "Au Pair"}]).reindex(
        columns=["lead_id", "person_id", *FILL_FIELDS]
    )
    plan = plan_leads(
        _rows({"person_id": "P", "event_id": "E", "program_type": "AU PAIR", "notes": "llamar"}), existing
    )
    assert plan.new_leads.empty and plan.links["lead_id"].tolist() == ["L1"]
    assert plan.updates["notes"].tolist() == ["llamar"] and plan.updates["event_id"].isna().all()
