"""Pure logic of the staging step (logic/staging.py): no database, no Dagster.

Rows are built as the store returns them: text columns ('t'/'f' for booleans,
timestamps as PostgreSQL prints them), in (updated_at, id) order.
"""

from __future__ import annotations

import pandas as pd
import pytest

from ice_pipeline.logic.staging import batch_extent, canonical_status, normalize_leads, normalize_students

PERSON = {
    "full_name": "  maria   JOSÉ pérez ",
    "original_name": None,
    "email": " Maria.Perez@Mail.COM ",
    "phone": "300 123 4567",
    "cedula": "1.020.345.678",
    "birth_date": "15/03/1995",
    "address": "Calle 1 # 2-3",
    "city": "bogota",
    "country": "colombia",
}
REFERENCE = pd.DataFrame(
    [
        {"category": "program", "code": "AU_PAIR", "label": "Au Pair", "aliases": ["aupair", "au-pair"]},
        {"category": "city", "code": "BOG", "label": "Bogotá", "aliases": ["bogota"]},
        {"category": "country", "code": "CO", "label": "Colombia", "aliases": []},
    ]
)


def frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows).astype("string")


def extent_rows(*rows: tuple[str, int, str]) -> pd.DataFrame:
    """(updated_at, id, in_window) rows as the store reads them."""
    out = pd.DataFrame(rows, columns=["updated_at", "id", "in_window"]).astype(
        {"updated_at": "string", "in_window": "string"}
    )
    out["id"] = out["id"].astype("int64")
    return out


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("nuevo", "NEW"),
        ("New ", "NEW"),
        ("NEW", "NEW"),
        ("Contactado", "CONTACTED"),
        ("inscrito", "ENROLLED"),
        ("No responde", "NO_ANSWER"),
        ("en espera", "EN ESPERA"),
        (None, None),
    ],
)
def test_canonical_status(raw, expected):
    result = canonical_status(pd.Series([raw], dtype="string")).iloc[0]
    assert (result is pd.NA and expected is None) or result == expected


def test_normalize_students_keeps_order_and_reads_the_source():
    rows = frame(
        [
            {
                **PERSON,
                "id": "7",
                "program": "au-pair",
                "student_number": " st-1001 ",
                "source": "Directory+CSV",
                "csv_enriched": "f",
                "created_at": "2025-01-01 00:00:00+00",
                "updated_at": "2025-01-02 00:00:00+00",
            },
            {
                **PERSON,
                "id": "3",
                "program": "Ingeniería",
                "student_number": None,
                "source": "directory_only",
                "csv_enriched": "f",
                "created_at": "2025-01-01 00:00:00+00",
                "updated_at": "2025-01-03 00:00:00+00",
            },
            {
                **PERSON,
                "id": "9",
                "program": None,
                "student_number": "x9",
                "source": None,
                "csv_enriched": "t",
                "created_at": "2025-01-01 00:00:00+00",
                "updated_at": "2025-01-04 00:00:00+00",
            },
        ]
    )
    out = normalize_students(rows, REFERENCE)
    assert out["staging_table"].tolist() == ["staging_student"] * 3
    assert out["staging_id"].tolist() == ["7", "3", "9"]
    assert out["program"].tolist()[:2] == ["Au Pair", "Ingeniería"]  # alias -> label; unknown kept
    assert pd.isna(out["program"].iloc[2])
    assert out["student_number"].iloc[0] == "ST-1001"
    assert out["data_source"].iloc[0] == "directory+csv"
    # CSV data contributed: by the source, or by V3's csv_enriched flag.
    assert out["csv_enriched"].tolist() == [True, False, True]
    assert out["source_kind"].tolist() == ["CSV", "DIRECTORY", "CSV"]
    # The person fields went through the shared normalization.
    assert out["email"].iloc[0] == "maria.perez@mail.com" and out["cedula"].iloc[0] == "1020345678"
    assert out["city"].iloc[0] == "Bogotá"


def test_normalize_leads_maps_status_service_and_provenance():
    rows = frame(
        [
            {
                **PERSON,
                "id": "4",
                "interest_program": "AUPAIR",
                "service": " Visa  de Estudiante ",
                "event": "Feria Bogotá 2025",
                "status": "interesado",
                "notes": "  llamar  luego ",
                "source_file": "leads.xlsx",
                "source_sheet": "Hoja1",
                "source_row": "12",
                "created_at": "2025-02-01 10:00:00+00",
                "updated_at": "2025-02-02 00:00:00+00",
            },
            {
                **PERSON,
                "id": "5",
                "interest_program": None,
                "service": None,
                "event": None,
                "status": None,
                "notes": None,
                "source_file": None,
                "source_sheet": None,
                "source_row": "not a number",
                "created_at": "2025-02-01 11:00:00+00",
                "updated_at": "2025-02-03 00:00:00+00",
            },
        ]
    )
    out = normalize_leads(rows, REFERENCE)
    assert out["staging_table"].tolist() == ["staging_lead", "staging_lead"]
    assert out["program_type"].iloc[0] == "Au Pair"
    assert out["service_key"].iloc[0] == "visadeestudiante"
    assert out["event_key"].iloc[0] == "feriabogota2025"
    assert out["lead_status"].iloc[0] == "INTERESTED"
    assert out["notes"].iloc[0] == "llamar luego"
    assert out["source_row"].tolist()[0] == 12 and pd.isna(
        out["source_row"].iloc[1]
    )  # a bad number costs the value
    assert out["lead_date"].tolist() == ["2025-02-01 10:00:00+00", "2025-02-01 11:00:00+00"]
    assert (out["source_kind"] == "CSV").all()


def test_batch_extent_moves_the_watermark_to_the_last_row_of_the_window():
    rows = extent_rows(("2025-01-01 00:00:00+00", 10, "t"), ("2025-01-02 00:00:00+00", 11, "t"))
    extent = batch_extent(rows, retry=[])
    assert extent.high == ("2025-01-02 00:00:00+00", 11)
    assert (extent.retried, extent.limited) == (0, False)


def test_batch_extent_never_moves_the_watermark_to_a_retried_row_outside_the_window():
    """A retried row V3 changed while one of its transactions is open lies above the cap: the watermark
    must stay on the window's last row, or that transaction's rows would fall behind it."""
    rows = extent_rows(("2025-01-01 00:00:00+00", 10, "t"), ("2025-01-05 00:00:00+00", 3, "f"))
    extent = batch_extent(rows, retry=[3])
    assert extent.high == ("2025-01-01 00:00:00+00", 10)
    assert extent.retried == 1


def test_batch_extent_of_retried_rows_only_leaves_the_watermark():
    assert batch_extent(extent_rows(("2025-01-05 00:00:00+00", 3, "f")), retry=[3]).high is None
    empty = extent_rows()
    assert batch_extent(empty, retry=[]) == batch_extent(empty, retry=[1])
    assert batch_extent(empty, retry=[]).high is None


def test_batch_extent_says_when_more_rows_wait():
    rows = extent_rows(("2025-01-01 00:00:00+00", 1, "t"), ("2025-01-01 00:00:00+00", 2, "t"))
    assert batch_extent(rows, retry=[], limit=2).limited  # the per-table limit was reached
    assert not batch_extent(rows, retry=[], limit=3).limited
    assert not batch_extent(rows, retry=[2], limit=2).limited  # a retried row does not count
    assert batch_extent(rows, retry=[], cut=("2025-01-01", 0, 2)).limited  # the arrival cut fell in it
    assert batch_extent(rows.assign(in_window=[True, True]), retry=[]).high == ("2025-01-01 00:00:00+00", 2)
