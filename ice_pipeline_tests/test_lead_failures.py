"""Issue 15: rows V3 could not parse (staging_lead_failures) recovered as leads, or rejected with a reason.

Pure tests of the header matching and the recovery decision, then the migration on a real PostgreSQL:
recovered rows take the staging_lead path (same normalization, same identity resolution), the others
are rejected with a reason a person understands, accounting holds, a second run changes nothing, and
the sensor launches for a new failure row.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from dagster import SkipReason, build_sensor_context

from ice_pipeline.logic import failures as lf
from ice_pipeline.resources import ProductionDatabase, StagingDatabase
from ice_pipeline.sensors import new_staging_rows

# --- pure -------------------------------------------------------------------------------


def failures_frame(*raws: tuple[dict, str]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "id": i + 1,
                "source_file": "leads.xlsx",
                "source_sheet": "Hoja1",
                "source_row": i + 2,
                "raw_data": json.dumps(raw),
                "error": error,
                "created_at": "2025-01-01 00:00:00+00",
            }
            for i, (raw, error) in enumerate(raws)
        ]
    )


def test_headers_are_folded_accents_case_punctuation_and_spaces_ignored():
    aliases = lf.default_aliases()
    assert lf.fold("  Correo  Electrónico ") == lf.fold("correo_electronico") == "correoelectronico"
    expected = {
        "Nombres": "given_names",
        "APELLIDOS": "surnames",
        "Correo electrónico": "email",
        "e-mail": "email",
        "Celular": "mobile",
        "WHATSAPP": "whatsapp",
        "Cédula": "cedula",
        "No. documento": "document",
        "Programa de interés": "program",
        "Observaciones": "notes",
        "Full Name": "full_name",
        "First name": "given_names",
        "Last name": "surnames",
        "Phone number": "phone",
        "Teléfono": "phone",
    }
    assert {header: aliases.get(lf.fold(header)) for header in expected} == expected


def test_a_header_listed_under_two_fields_is_refused():
    with pytest.raises(ValueError, match="listed under"):
        lf.header_aliases('email = ["Correo"]\nphone = ["correo"]\n')


def test_recovery_joins_given_names_and_surnames_and_ignores_sheet_errors():
    rows, rejected = lf.recover_failures(
        failures_frame(
            (
                {
                    "NOMBRES": "Ana María",
                    "apellidos": "Pérez",
                    "Correo electrónico": "#N/A",
                    "Celular": "300 555 1234",
                    "WhatsApp": "315 000 1111",
                    "No. documento": 79555444.0,
                },
                "bad date",
            ),
            ({"Nombre completo": "#REF!", "Correo": "ana@example.com"}, "formula error value in row"),
            ({"_line": ";3005551234;ana@example.com", "_columns": 3}, "row 4: expected 12 columns, got 3"),
            # An unsplit line: cells told apart by shape; a number that is no mobile is left out.
            (
                {"_line": "Luis Ortiz;+57 315 987 6543;luis.ortiz@gmail.com;79555444", "_columns": 4},
                "row 5: expected 12 columns, got 4",
            ),
        )
    )
    assert rows["full_name"].tolist() == ["Ana María Pérez", "Luis Ortiz"]
    row = rows.iloc[0]
    assert pd.isna(row["email"]) and (row["phone"], row["cedula"]) == ("300 555 1234", "79555444")
    assert "WhatsApp" in row["notes"]  # the second number is kept where a person can read it
    line = rows.iloc[1]
    assert (line["email"], line["phone"]) == ("luis.ortiz@gmail.com", "+57 315 987 6543") and pd.isna(
        line["cedula"]
    )
    assert rejected["staging_id"].tolist() == [2, 3]
    assert rejected["reason"].tolist() == [
        "no name in the raw cells (V3: formula error value in row)",
        "no name in the raw cells (V3: row 4: expected 12 columns, got 3)",
    ]
    assert (
        not rejected["reason"].str.contains("ana@example.com|3005551234").any()
    )  # no cell values in reasons


# --- on PostgreSQL ------------------------------------------------------------------------

RAW = {
    # Matches the existing student by e-mail (different case): enriches her, gets a lead.
    "enriches": (
        {
            "NOMBRES": "Ana María",
            "Apellidos": "Pérez Gómez",
            "Correo electrónico": "ANA.PEREZ@gmail.com",
            "Celular": "300 555 1234",
            "Programa de interés": "Au Pair",
            "Observaciones": "llamar en la tarde",
        },
        "could not parse Excel serial date '45123.5' in column 'Fecha de nacimiento'",
    ),
    "new_by_document": (
        {"Nombre completo": "Jorge Luis Castaño", "No. documento": "79.555.444", "Teléfono": "601 345 6789"},
        "row 7: expected 12 columns, got 9",
    ),
    "new_english": (
        {
            "Full Name": "Luisa Fernanda Ortiz",
            "WhatsApp": "+57 315 987 6543",
            "Program": "Work and Travel",
            "Notes": "from the fair",
        },
        "unknown status 'pendiente'",
    ),
    "unsplit_line": (
        {"_line": "Sofía Restrepo;320 987 6543;sofia.restrepo@gmail.com", "_columns": 3},
        "row 9: expected 12 columns, got 3",
    ),
    # Ana's namesake with another cédula and e-mail: another person, never merged into Ana.
    "namesake": (
        {
            "Nombres": "Ana María",
            "Apellidos": "Pérez Gómez",
            "Cédula": "52.987.654",
            "Correo": "amperez.g@hotmail.com",
        },
        "unknown status 'x'",
    ),
    "name_only": ({"Nombre": "Pedro Gómez", "Ciudad": "Cali"}, "missing required field: email"),
    "no_name": (
        {"Nombre completo": None, "Correo": "sin.nombre@gmail.com", "Celular": "3001112233"},
        "missing required field: full_name",
    ),
    "formula": (
        {"Nombre completo": "#REF!", "Correo": "#N/A", "Celular": "=+57 300 000 0000"},
        "formula error value in row",
    ),
    "placeholder": (
        {"Nombre completo": "María López", "Correo": "sincorreo@gmail.com"},
        "missing required field: phone",
    ),
}


def insert_failures(pipeline, names: list[str]) -> dict[str, int]:
    ids = pipeline.insert(
        "staging_lead_failures",
        [
            {
                "source_file": "ferias_2024.xlsx",
                "source_sheet": "Hoja1",
                "source_row": n + 2,
                "raw_data": json.dumps(RAW[name][0]),
                "error": RAW[name][1],
            }
            for n, name in enumerate(names)
        ],
    )
    return dict(zip(names, ids, strict=True))


def test_failures_become_leads_or_rejections_and_a_second_run_changes_nothing(pipeline):
    pipeline.insert(
        "staging_student",
        [
            {
                "full_name": "Ana María Pérez Gómez",
                "email": "ana.perez@gmail.com",
                "cedula": "1.020.345.678",
                "student_number": "ST-1001",
                "source": "directory",
            }
        ],
    )
    pipeline.run_ok()
    ana = pipeline.linked("staging_student", 1, "person")
    assert ana is not None

    # A staging_lead row in the same run: its id overlaps the failures' ids, each keeps its own lead.
    (lead_id,) = pipeline.insert(
        "staging_lead",
        [{"full_name": "Carlos Ruiz", "email": "carlos.ruiz@gmail.com", "interest_program": "Au Pair"}],
    )
    ids = insert_failures(pipeline, list(RAW))
    assert lead_id in ids.values()
    pipeline.run_ok()

    # Recovered: a person and a lead each, through the same identity resolution.
    assert pipeline.linked("staging_lead_failures", ids["enriches"], "person") == ana
    assert pipeline.scalar("SELECT phone FROM persons WHERE id = %s", (ana,)) is not None  # enriched
    for name in ("enriches", "new_by_document", "new_english", "unsplit_line", "namesake"):
        lead = pipeline.linked("staging_lead_failures", ids[name], "lead")
        person = pipeline.linked("staging_lead_failures", ids[name], "person")
        assert lead is not None and person is not None, name
        assert pipeline.scalar("SELECT person_id::text FROM leads WHERE id = %s", (lead,)) == person
    assert (
        pipeline.scalar(
            "SELECT notes FROM leads WHERE id = %s",
            (pipeline.linked("staging_lead_failures", ids["enriches"], "lead"),),
        )
        == "llamar en la tarde"
    )
    carlos_lead = pipeline.linked("staging_lead", lead_id, "lead")
    assert carlos_lead is not None and carlos_lead not in {
        pipeline.linked("staging_lead_failures", i, "lead") for i in ids.values()
    }
    # No false merge: six different people, six persons; the namesake is not Ana.
    assert pipeline.linked("staging_lead_failures", ids["namesake"], "person") != ana
    assert pipeline.scalar("SELECT count(*) FROM persons") == 6
    assert (
        pipeline.scalar(
            "SELECT count(DISTINCT entity_id) FROM ice_pipeline.source_links "
            "WHERE staging_table = 'staging_lead_failures' AND entity = 'person'"
        )
        == 5
    )

    # Unrecoverable: rejected with a reason a person understands, V3's error kept, no cell value.
    reasons = dict(
        pipeline.query(
            "SELECT staging_id, reason FROM ice_pipeline.rejected_rows "
            "WHERE staging_table = 'staging_lead_failures'"
        )
    )
    assert reasons == {
        ids["name_only"]: f"{lf.NO_IDENTIFIER} (V3: missing required field: email)",
        ids["no_name"]: "no name in the raw cells (V3: missing required field: full_name)",
        ids["formula"]: "no name in the raw cells (V3: formula error value in row)",
        ids["placeholder"]: f"{lf.NO_IDENTIFIER} (V3: missing required field: phone)",
    }
    stats = pipeline.scalar("SELECT stats FROM ice_pipeline.runs ORDER BY started_at DESC LIMIT 1")
    assert (stats["failures_recovered"], stats["failures_unrecoverable"]) == (5, 4)
    pipeline.assert_accounted()

    before = pipeline.dump()
    summary = pipeline.run_ok()
    assert summary["leads_created"] == 0 and summary["persons_created"] == 0
    assert pipeline.dump() == before
    pipeline.assert_accounted()


def test_sensor_launches_for_a_new_failure_row(pipeline):
    def tick():
        return new_staging_rows.evaluate_tick(
            build_sensor_context(
                resources={
                    "staging_db": StagingDatabase(url=pipeline.staging_url),
                    "production_db": ProductionDatabase(url=pipeline.production_url),
                }
            )
        )

    insert_failures(pipeline, ["new_english"])
    assert len(tick().run_requests) == 1
    pipeline.run_ok()
    assert not tick().run_requests
    insert_failures(pipeline, ["no_name"])
    assert len(tick().run_requests) == 1  # only the failures table moved
    pipeline.run_ok()
    assert not tick().run_requests
    pipeline.assert_accounted()


def test_nothing_to_launch_on_an_empty_failures_table(pipeline):
    result = new_staging_rows(
        build_sensor_context(
            resources={
                "staging_db": StagingDatabase(url=pipeline.staging_url),
                "production_db": ProductionDatabase(url=pipeline.production_url),
            }
        )
    )
    assert isinstance(result, SkipReason)


def test_a_failure_row_of_an_open_v3_transaction_is_read_once_it_commits(pipeline):
    """created_at is the start of V3's transaction: a run while it is open reads below it, and the row
    it commits later (dated before the watermark of rows written meanwhile) is still read next run."""
    import psycopg2

    v3 = psycopg2.connect(pipeline.staging_url)
    try:
        with v3.cursor() as cur:
            cur.execute(
                "INSERT INTO staging_lead_failures (source_file, raw_data, error) VALUES ('late.xlsx', %s, "
                "'row 3: expected 12 columns, got 2')",
                (json.dumps(RAW["new_english"][0]),),
            )
        late = insert_failures(pipeline, ["new_by_document"])  # committed, dated after the open transaction
        pipeline.run_ok()
        assert pipeline.linked("staging_lead_failures", late["new_by_document"], "lead") is None  # waits
        v3.commit()
    finally:
        v3.close()
    pipeline.run_ok()
    assert (
        pipeline.scalar(
            "SELECT count(*) FROM ice_pipeline.source_links "
            "WHERE staging_table = 'staging_lead_failures' AND entity = 'lead'"
        )
        == 2
    )
    pipeline.assert_accounted()
