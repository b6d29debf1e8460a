"""Identity conflicts wait in review until a person decides; the next run applies the decision."""

from __future__ import annotations

import uuid
from contextlib import closing

import psycopg2
import pytest

from ice_pipeline.checks import accounting
from ice_pipeline.review import ReviewError, list_items, resolve_item


def _existing_person(pipeline, **values) -> str:
    person_id = str(uuid.uuid4())
    columns = ["id", "updated_at", *values]
    pipeline.query(
        f"INSERT INTO persons ({', '.join(columns)}) VALUES (%s, now(), {', '.join(['%s'] * len(values))})",
        [person_id, *values.values()],
    )
    return person_id


def _open_conflict(pipeline) -> tuple[str, int, int]:
    """An existing person owns the e-mail; a staging student brings it with another cédula."""
    owner = _existing_person(pipeline, full_name="Ana Gómez", email="ana@mail.com", cedula="52123456")
    (staging_id,) = pipeline.insert("staging_student", [dict(
        full_name="ANA GOMEZ", email=" Ana@Mail.com ", cedula="1.020.345.678", source="csv_only")])
    summary = pipeline.run()
    assert summary["success"] and summary["rows_in_review"] == 1, summary
    with closing(psycopg2.connect(pipeline.production_url)) as conn:
        (item,) = list_items(conn, kind="identity_conflict")
    assert item["staging_id"] == staging_id and item["candidate_person_id"] == owner
    return owner, staging_id, int(item["id"])


def _accounted(pipeline, table: str) -> dict:
    with closing(psycopg2.connect(pipeline.staging_url)) as s, closing(psycopg2.connect(pipeline.production_url)) as p:
        return accounting(s, p, table)


def test_new_person_decision_creates_a_person_without_the_contested_email(pipeline):
    owner, staging_id, item = _open_conflict(pipeline)
    with closing(psycopg2.connect(pipeline.production_url)) as conn:
        resolve_item(conn, item, new_person=True)
    summary = pipeline.run()
    assert summary["success"] and summary["persons_created"] == 1 and summary["students_created"] == 1, summary
    person = pipeline.scalar("SELECT entity_id::text FROM ice_pipeline.source_links "
                             "WHERE staging_table = 'staging_student' AND staging_id = %s AND entity = 'person'",
                             (staging_id,))
    assert person != owner
    assert pipeline.query("SELECT cedula, email FROM persons WHERE id = %s", (person,)) == [("1020345678", None)]
    assert pipeline.scalar("SELECT status FROM ice_pipeline.review_queue WHERE id = %s", (item,)) == "applied"
    figures = _accounted(pipeline, "staging_student")
    assert (figures["linked"], figures["in_review"], figures["unaccounted"]) == (1, 0, 0)
    assert pipeline.run()["persons_created"] == 0


def test_merge_decision_links_the_row_to_the_chosen_person(pipeline):
    owner, staging_id, item = _open_conflict(pipeline)
    with closing(psycopg2.connect(pipeline.production_url)) as conn:
        resolve_item(conn, item, merge_into=owner)
    summary = pipeline.run()
    assert summary["success"] and summary["persons_created"] == 0 and summary["students_created"] == 1, summary
    assert pipeline.scalar("SELECT entity_id::text FROM ice_pipeline.source_links WHERE staging_table = "
                           "'staging_student' AND staging_id = %s AND entity = 'person'", (staging_id,)) == owner
    # the owner keeps its cédula; the incoming one is a conflict for review, not an overwrite
    assert pipeline.scalar("SELECT cedula FROM persons WHERE id = %s", (owner,)) == "52123456"
    assert pipeline.scalar("SELECT count(*) FROM ice_pipeline.review_queue WHERE kind = 'field_conflict' "
                           "AND field = 'cedula' AND staging_id = %s", (staging_id,)) == 1


def test_dismissed_row_counts_as_rejected(pipeline):
    _, staging_id, item = _open_conflict(pipeline)
    with closing(psycopg2.connect(pipeline.production_url)) as conn:
        resolve_item(conn, item, dismiss=True)
    assert pipeline.run()["success"]
    assert pipeline.scalar("SELECT reason FROM ice_pipeline.rejected_rows WHERE staging_id = %s",
                           (staging_id,)) == "dismissed in review"
    figures = _accounted(pipeline, "staging_student")
    assert (figures["rejected"], figures["in_review"], figures["unaccounted"]) == (1, 0, 0)


def test_bad_decisions_are_refused_with_a_reason(pipeline):
    _, _, item = _open_conflict(pipeline)
    with closing(psycopg2.connect(pipeline.production_url)) as conn:
        with pytest.raises(ReviewError, match="exactly one"):
            resolve_item(conn, item)
        with pytest.raises(ReviewError, match="No person has id"):
            resolve_item(conn, item, merge_into=str(uuid.uuid4()))
        with pytest.raises(ReviewError, match="not a person id"):
            resolve_item(conn, item, merge_into="nope")
        with pytest.raises(ReviewError, match="does not exist"):
            resolve_item(conn, 999999, new_person=True)
        resolve_item(conn, item, new_person=True)
        with pytest.raises(ReviewError, match="only open identity conflicts"):
            resolve_item(conn, item, new_person=True)
