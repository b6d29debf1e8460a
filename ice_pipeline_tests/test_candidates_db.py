"""Duplicate candidates against a real run: queued every run by `person_candidates`, and by the full scan."""

from __future__ import annotations

import json
from contextlib import closing

import psycopg2

from ice_pipeline.assets.candidates import full_scan


def _duplicates(pipeline) -> list[tuple]:
    return pipeline.query(
        "SELECT least(person_id, candidate_person_id)::text, "
        "greatest(person_id, candidate_person_id)::text, staging_table, score, details, run_id "
        "FROM ice_pipeline.review_queue WHERE kind = 'possible_duplicate' ORDER BY 1, 2"
    )


def _scan(pipeline, run_id: str, **options) -> dict:
    with closing(psycopg2.connect(pipeline.production_url)) as conn:
        return full_scan(conn, run_id, **options)


def test_every_run_queues_candidates_for_the_persons_it_touched(pipeline):
    first = pipeline.insert(
        "staging_student",
        [
            dict(
                full_name="Carlos Alberto Pérez Díaz",
                birth_date="21/07/1985",
                cedula="1.020.345.678",
                source="csv_only",
            ),
            dict(
                full_name="CARLOS ALBERTO PEREZ DIAZ",
                birth_date="1985-07-21",
                cedula="1020345679",
                source="csv_only",
            ),
            dict(full_name="Pedro Niño Soto", birth_date="02/01/1970", source="csv_only"),
        ],
    )
    summary = pipeline.run()
    assert summary["success"] and summary["persons_created"] == 3, summary
    a, b = sorted(pipeline.linked("staging_student", i) for i in first[:2])
    rows = _duplicates(pipeline)
    assert [(r[0], r[1], r[2]) for r in rows] == [(a, b, None)]
    details = rows[0][4]
    assert "cédula differs in one digit" in details["summary"] and details["agree"] == ["name", "birth_date"]
    assert 0.5 < rows[0][3] <= 1 and rows[0][5] == summary["run_id"]
    # never a merge: both persons stay
    assert pipeline.scalar("SELECT count(*) FROM persons") == 3

    # A later run: a lead with day and month swapped makes a new person, compared with production.
    (lead,) = pipeline.insert(
        "staging_lead", [dict(full_name="Pedro Niño Soto", birth_date="01/02/1970", phone="3104445566")]
    )
    second = pipeline.run()
    assert second["success"] and second["persons_created"] == 1, second
    pedro = sorted([pipeline.linked("staging_lead", lead), pipeline.linked("staging_student", first[2])])
    rows = _duplicates(pipeline)
    assert len(rows) == 2
    (swap,) = [r for r in rows if [r[0], r[1]] == pedro]
    assert "birth date day/month swapped" in swap[4]["summary"] and swap[5] == second["run_id"]

    # The full scan finds the same pairs and asks nothing twice.
    figures = _scan(pipeline, "scan-1")
    assert (
        figures["candidates_found"] == 2
        and figures["candidates_queued"] == 0
        and figures["already_asked"] == 2
    )
    assert len(_duplicates(pipeline)) == 2
    # metadata and figures are counts, never values
    assert "Pedro" not in json.dumps(figures) and "1020345678" not in json.dumps(figures)


def test_the_full_scan_queues_backlog_duplicates_once_and_never_a_pair_decided_not_same(
    pipeline, monkeypatch
):
    ids = pipeline.insert(
        "staging_student",
        [
            dict(
                full_name="Laura Marcela Gómez Ríos",
                birth_date="1994-05-17",
                email="laura.g@mail.com",
                source="csv_only",
            ),
            dict(
                full_name="Valentina Moreno Castro",
                birth_date="2004-06-30",
                email="fam.moreno@mail.com",
                source="csv_only",
            ),
        ],
    )
    assert pipeline.run()["success"]
    # Written by the bot, not the pipeline: a backlog duplicate (second surname missing) and a twin.
    laura_bot, twin_bot = "9b2f4c1e-0000-4000-8000-000000000001", "9b2f4c1e-0000-4000-8000-000000000002"
    pipeline.query(
        "INSERT INTO persons (id, full_name, birth_date, updated_at) VALUES "
        "(%s, 'Laura Marcela Gómez', '1994-05-17', now()), (%s, 'Isabella Moreno Castro', '2004-06-30', now())",
        (laura_bot, twin_bot),
    )
    pipeline.query(
        "INSERT INTO ice_pipeline.person_keys (person_id, name_key, birth_date, person_updated_at) VALUES "
        "(%s, 'gomez laura marcela', '1994-05-17', now()), "
        "(%s, 'castro isabella moreno', '2004-06-30', now())",
        (laura_bot, twin_bot),
    )
    laura = pipeline.linked("staging_student", ids[0])

    dry = _scan(pipeline, "scan-dry", dry_run=True)
    assert dry["candidates_found"] == 1 and dry["candidates_queued"] == 1 and _duplicates(pipeline) == []
    figures = _scan(pipeline, "scan-1")
    assert figures["persons"] == 4 and figures["candidates_queued"] == 1
    (row,) = _duplicates(pipeline)
    assert {row[0], row[1]} == {laura, laura_bot} and "second surname missing" in row[4]["summary"]
    assert row[2] is None and row[5] == "scan-1"
    pipeline.query(
        "UPDATE ice_pipeline.review_queue SET status = 'resolved', decision_kind = 'not_same', "
        "resolved_at = now() WHERE kind = 'possible_duplicate'"
    )
    again = _scan(pipeline, "scan-2")
    assert again["candidates_found"] == 1 and again["candidates_queued"] == 0
    assert (
        pipeline.scalar("SELECT count(*) FROM ice_pipeline.review_queue WHERE kind = 'possible_duplicate'")
        == 1
    )

    # The per-run comparison, by key lookups and (a large run) by one read of everyone: the same pair.
    from ice_pipeline.assets import candidates as module

    for limit in (20_000, 0):
        monkeypatch.setattr(module, "FOCUS_LOOKUP_LIMIT", limit)
        with closing(psycopg2.connect(pipeline.production_url)) as conn, conn.cursor() as cur:
            figures = module.run_candidates(cur, [laura_bot], "run-x")
            conn.rollback()
        assert figures["persons_checked"] == 1 and figures["candidates_found"] == 1, (limit, figures)
        assert figures["candidates_queued"] == 0


def test_the_review_queue_check_warns_when_items_wait_too_long(pipeline, monkeypatch):
    pipeline.query(
        "INSERT INTO ice_pipeline.review_queue (kind, staging_table, staging_id, reason, created_at) "
        "VALUES ('identity_conflict', 'staging_lead', 1, 'x', now() - interval '20 days'), "
        "('field_conflict', 'staging_lead', 2, 'y', now() - interval '2 days'), "
        "('field_conflict', 'staging_lead', 3, 'z', now() - interval '40 days')"
    )
    pipeline.query("UPDATE ice_pipeline.review_queue SET status = 'applied' WHERE staging_id = 3")
    pipeline.insert("staging_student", [dict(full_name="Ana Gómez", cedula="52123456", source="csv_only")])
    summary = pipeline.run()
    assert summary["success"] and summary["checks_failed"] == 0, summary
    assert {
        "asset": "resolved_persons",
        "check": "review_queue_age",
        "passed": False,
        "severity": "WARN",
    } in summary["failed_checks"]

    from ice_pipeline.assets.candidates import review_queue_figures

    with closing(psycopg2.connect(pipeline.production_url)) as conn:
        figures = review_queue_figures(conn, 14)
    assert figures["open_items"] == 2 and figures["older_than_max"] == 1
    assert figures["by_kind"] == {"field_conflict": 1, "identity_conflict": 1}
    assert figures["by_age"] == {"under_1_day": 0, "days_1_to_7": 1, "days_7_to_30": 1, "over_30_days": 0}
    assert 19.9 < figures["oldest_days"] < 20.1

    monkeypatch.setenv("ICE_REVIEW_MAX_AGE_DAYS", "30")
    pipeline.insert("staging_student", [dict(full_name="Luis Mora", cedula="79123456", source="csv_only")])
    again = pipeline.run()
    assert again["success"] and not [c for c in again["failed_checks"] if c["check"] == "review_queue_age"], (
        again
    )
