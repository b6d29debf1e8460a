"""resolved_persons: identity resolution and the merge into `persons` (DESIGN §4).

Every loadable staging student and lead row ends linked to a person, in
review (identity_conflict), or rejected with a reason.
"""


import datetime as dt
import json
import time

import pandas as pd
from dagster import AssetExecutionContext, AssetIn, MetadataValue, Output, asset

from ice_pipeline.assets.common import (
    GROUP_PRODUCTION,
    OWNERS,
    MigrationOptions,
    StagingBatch,
    markdown_counts,
    rate,
    writer_transaction,
)
from ice_pipeline.db import (
    copy_into_temp,
    read_frame,
    record_run,
    write_links,
    write_rejections,
    write_reviews,
)
from ice_pipeline.logic.identity import cluster_name_keys, resolve_persons
from ice_pipeline.logic.people import prepare_person_rows
from ice_pipeline.logic.survivorship import PERSON_FIELDS, plan_persons
from ice_pipeline.resources import MigrationLock, ProductionDatabase

KEY_COLUMNS = {"staging_table": "text", "staging_id": "bigint", "cedula": "text", "email": "text",
               "name_key": "text", "birth_date": "date", "phone_tail": "text", "student_number": "text",
               "source_file": "text", "source_sheet": "text", "source_row": "integer"}
# Identity questions a person answered (`ice-pipeline review resolve`).
READ_DECISIONS = """
SELECT q.staging_table, q.staging_id,
       CASE WHEN q.decision LIKE 'merge:%%' THEN substring(q.decision from 7) END AS decided_person_id,
       q.decision = 'new' AS decided_new
FROM ice_pipeline.review_queue q
JOIN tmp_keys k ON k.staging_table = q.staging_table AND k.staging_id = q.staging_id
WHERE q.kind = 'identity_conflict' AND q.status = 'resolved' AND q.field IS NULL AND q.decision IS NOT NULL
"""
# The person of the lead first seen at the same file/sheet/row, when the name matches.
READ_SAME_SOURCE_ROW = """
SELECT DISTINCT ON (t.staging_table, t.staging_id) t.staging_table, t.staging_id,
       l.person_id::text AS source_row_person_id
FROM tmp_keys t
JOIN leads l ON l.source_file = t.source_file AND l.source_row = t.source_row
            AND l.source_sheet IS NOT DISTINCT FROM t.source_sheet
JOIN ice_pipeline.person_keys k ON k.person_id = l.person_id AND k.name_key = t.name_key
WHERE t.source_file IS NOT NULL AND t.source_row IS NOT NULL
ORDER BY t.staging_table, t.staging_id, l.created_at, l.id
"""
READ_LINKED = """
SELECT l.staging_table, l.staging_id, l.entity_id::text AS linked_person_id
FROM ice_pipeline.source_links l
JOIN tmp_keys k ON k.staging_table = l.staging_table AND k.staging_id = l.staging_id
WHERE l.entity = 'person'
"""
# Keys of persons written or changed outside the pipeline since the last run
# (the bot's own inserts and edits): recomputed in Python before matching.
REFRESH_MARK = "production.persons"
READ_KEYS_SINCE = """
SELECT coalesce((SELECT (high_updated_at AT TIME ZONE 'UTC')::text FROM ice_pipeline.watermarks
                 WHERE staging_table = %(mark)s), '-infinity'),
       ((now() AT TIME ZONE 'UTC') - interval '10 minutes')::text
"""
READ_CHANGED_PERSONS = """
SELECT p.id::text AS person_id, p.full_name, p.email, p.phone, p.cedula, p.birth_date::text AS birth_date,
       p.address, p.city, p.country, p.updated_at::text AS person_updated_at,
       (SELECT upper(btrim(min(s.student_number))) FROM students s WHERE s.person_id = p.id) AS student_number
FROM persons p
LEFT JOIN ice_pipeline.person_keys k ON k.person_id = p.id
WHERE k.person_id IS NULL OR (p.updated_at > %(since)s::timestamp AND k.person_updated_at <> p.updated_at)
"""
PERSON_KEY_COLUMNS = {"person_id": "uuid", "cedula": "text", "email": "text", "name_key": "text",
                      "birth_date": "date", "phone_tail": "text", "student_number": "text",
                      "person_updated_at": "timestamp(3)"}
UPSERT_PERSON_KEYS = """
INSERT INTO ice_pipeline.person_keys (person_id, cedula, email, name_key, birth_date, phone_tail, student_number,
                                      person_updated_at)
SELECT person_id, cedula, email, name_key, birth_date, phone_tail, student_number, person_updated_at
FROM tmp_person_keys
ON CONFLICT (person_id) DO UPDATE
SET cedula = EXCLUDED.cedula, email = EXCLUDED.email, name_key = EXCLUDED.name_key, birth_date = EXCLUDED.birth_date,
    phone_tail = EXCLUDED.phone_tail, student_number = EXCLUDED.student_number,
    person_updated_at = EXCLUDED.person_updated_at
"""
# An existing person this run gives a student (number) without changing the person itself.
SET_STUDENT_NUMBERS = """
UPDATE ice_pipeline.person_keys k SET student_number = t.student_number
FROM tmp_student_numbers t
WHERE k.person_id = t.person_id AND k.student_number IS DISTINCT FROM t.student_number
"""
ADVANCE_KEYS_MARK = """
INSERT INTO ice_pipeline.watermarks (staging_table, high_updated_at, high_id, run_id)
VALUES (%(mark)s, %(since)s::timestamp AT TIME ZONE 'UTC', 0, %(run_id)s)
ON CONFLICT (staging_table) DO UPDATE SET high_updated_at = EXCLUDED.high_updated_at, run_id = EXCLUDED.run_id,
    updated_at = now()
"""
# Existing persons sharing any match key with the batch (or linked to its rows before).
FIND_CANDIDATES = """
CREATE TEMP TABLE tmp_candidates ON COMMIT DROP AS
    SELECT s2.person_id FROM students s2
      JOIN (SELECT DISTINCT student_number FROM tmp_keys WHERE student_number IS NOT NULL) t
        ON t.student_number = s2.student_number
    UNION
    SELECT k.person_id FROM ice_pipeline.person_keys k
      JOIN (SELECT DISTINCT cedula FROM tmp_keys WHERE cedula IS NOT NULL) t ON t.cedula = k.cedula
    UNION
    SELECT k.person_id FROM ice_pipeline.person_keys k
      JOIN (SELECT DISTINCT email FROM tmp_keys WHERE email IS NOT NULL) t ON t.email = k.email
    UNION
    SELECT k.person_id FROM ice_pipeline.person_keys k
      JOIN (SELECT DISTINCT name_key, birth_date FROM tmp_keys WHERE name_key IS NOT NULL AND birth_date IS NOT NULL) t
        ON t.name_key = k.name_key AND t.birth_date = k.birth_date
    UNION
    SELECT k.person_id FROM ice_pipeline.person_keys k
      JOIN (SELECT DISTINCT phone_tail FROM tmp_keys WHERE phone_tail IS NOT NULL) t ON t.phone_tail = k.phone_tail
    UNION
    SELECT entity_id FROM ice_pipeline.source_links l
      JOIN tmp_keys k ON k.staging_table = l.staging_table AND k.staging_id = l.staging_id
     WHERE l.entity = 'person'
    UNION
    SELECT l.person_id FROM leads l
      JOIN tmp_keys t ON l.source_file = t.source_file AND l.source_row = t.source_row
                     AND l.source_sheet IS NOT DISTINCT FROM t.source_sheet
      JOIN ice_pipeline.person_keys k ON k.person_id = l.person_id AND k.name_key = t.name_key
    UNION
    SELECT substring(q.decision from 7)::uuid FROM ice_pipeline.review_queue q
      JOIN tmp_keys k ON k.staging_table = q.staging_table AND k.staging_id = q.staging_id
     WHERE q.kind = 'identity_conflict' AND q.status = 'resolved' AND q.decision LIKE 'merge:%%'
"""
# Persons matching a key that only a *cluster* has: an existing person's name key with the birth
# date or mobile a batch row brings (see cluster_name_keys). Added to tmp_candidates; returns the new ones.
FIND_MORE_CANDIDATES = """
INSERT INTO tmp_candidates (person_id)
SELECT DISTINCT k.person_id FROM ice_pipeline.person_keys k
JOIN tmp_cluster_keys t ON t.name_key = k.name_key
     AND ((t.birth_date IS NOT NULL AND t.birth_date = k.birth_date)
          OR (t.phone_tail IS NOT NULL AND t.phone_tail = k.phone_tail))
WHERE k.person_id NOT IN (SELECT person_id FROM tmp_candidates)
RETURNING person_id::text
"""
CLUSTER_KEY_COLUMNS = {"name_key": "text", "birth_date": "date", "phone_tail": "text"}
READ_CANDIDATES = """
SELECT p.id::text AS person_id, p.full_name, p.email, p.phone, p.cedula, p.birth_date::text AS birth_date,
       p.address, p.city, p.country, p.data_source, p.original_name, p.csv_enriched,
       upper(btrim(s.student_number)) AS student_number,
       EXISTS (SELECT 1 FROM ice_pipeline.source_links n WHERE n.entity = 'person' AND n.entity_id = p.id
               AND n.matched_by = 'new') AS pipeline_created
FROM persons p
LEFT JOIN students s ON s.person_id = p.id
WHERE p.id IN (SELECT person_id FROM tmp_candidates WHERE person_id = ANY(%(only)s::uuid[]) OR %(only)s IS NULL)
ORDER BY p.id
"""
# At most this many extra rounds of cluster-key candidates (rarely more than one, and small).
CANDIDATE_ROUNDS = 3
NEW_PERSON_COLUMNS = {"person_id": "uuid", "full_name": "text", "email": "text", "phone": "text", "cedula": "text",
                      "birth_date": "date", "address": "text", "city": "text", "country": "text",
                      "data_source": "text", "original_name": "text", "csv_enriched": "boolean"}
INSERT_PERSONS = """
INSERT INTO persons (id, full_name, email, phone, cedula, birth_date, address, city, country,
                     data_source, original_name, csv_enriched, created_at, updated_at)
SELECT person_id, full_name, email, phone, cedula, birth_date, address, city, country,
       data_source, original_name, csv_enriched, %(now)s, %(now)s
FROM tmp_new_persons
"""
# Fill NULLs only: COALESCE keeps whatever is stored, even if it changed since we read it.
# The one exception is the name of a person the pipeline created (see survivorship).
FILL_PERSONS = """
UPDATE persons p SET
    full_name = coalesce(f.full_name, p.full_name),  -- set only for a better-written spelling of the same name
    email = coalesce(p.email, f.email),
    phone = coalesce(p.phone, f.phone),
    cedula = coalesce(p.cedula, f.cedula),
    birth_date = coalesce(p.birth_date, f.birth_date),
    address = coalesce(p.address, f.address),
    city = coalesce(p.city, f.city),
    country = coalesce(p.country, f.country),
    original_name = coalesce(p.original_name, f.original_name),
    data_source = coalesce(f.data_source, p.data_source),
    csv_enriched = p.csv_enriched OR f.csv_enriched,
    updated_at = %(now)s
FROM tmp_person_fills f
WHERE p.id = f.person_id
"""
KEY_FIELDS = ("cedula", "student_number", "email", "name_key", "birth_date", "mobile")
# The staging columns a node carries into resolution and survivorship (PERSON_FIELDS and keys).
NODE_COLUMNS = ("staging_table", "staging_id", "display_name", "name_key", "name_rank", "original_name", "email",
                "cedula", "phone", "mobile", "birth_date", "address", "address_key", "city", "city_key", "country",
                "country_key", "student_number", "source_kind", "warnings")
ARRIVAL_RANK = {"staging_student": 0, "staging_lead": 1}


def person_key_frame(prepared: pd.DataFrame) -> pd.DataFrame:
    """The person_keys columns of prepared person rows (only mobiles identify by phone)."""
    return pd.DataFrame({"cedula": prepared["cedula"], "email": prepared["email"], "name_key": prepared["name_key"],
                         "birth_date": prepared["birth_date"], "phone_tail": prepared["mobile"].str.slice(-10)})


def refresh_person_keys(cur, reference: pd.DataFrame, run_id: str) -> int:
    """Recompute the keys of persons changed outside the pipeline since the last run."""
    cur.execute(READ_KEYS_SINCE, {"mark": REFRESH_MARK})
    since, next_since = cur.fetchone()
    changed = read_frame(cur, READ_CHANGED_PERSONS, {"since": since})
    if len(changed):
        keys = person_key_frame(prepare_person_rows(changed, reference)).assign(
            person_id=changed["person_id"], person_updated_at=changed["person_updated_at"],
            student_number=changed["student_number"])
        copy_into_temp(cur, "tmp_person_keys", PERSON_KEY_COLUMNS, keys)
        cur.execute(UPSERT_PERSON_KEYS)
        cur.execute("DROP TABLE tmp_person_keys")
        # Only an optimisation (unkeyed persons are always read): moved only when
        # there was something to refresh, so a run with nothing new writes nothing.
        cur.execute(ADVANCE_KEYS_MARK, {"mark": REFRESH_MARK, "since": next_since, "run_id": run_id})
    return len(changed)


def incoming_rows(students: StagingBatch, leads: StagingBatch) -> pd.DataFrame:
    """Students and leads in arrival order: (updated_at, table, id)."""
    rows = pd.concat([students.rows, leads.rows], ignore_index=True)
    for column in ("student_number", "source_file", "source_sheet", "source_row"):
        if column not in rows:  # a batch without students or without leads
            rows[column] = pd.NA
    rows["arrival"] = rows["staging_table"].map(ARRIVAL_RANK)
    return rows.sort_values(["updated_at", "arrival", "staging_id"], kind="stable").reset_index(drop=True)


CANDIDATE_EXTRAS = ("student_number", "pipeline_created", "data_source", "csv_enriched", "original_name")


def existing_nodes(candidates: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Production persons as nodes: keys computed exactly as for staging rows."""
    candidates = candidates.reindex(columns=[*candidates.columns,
                                             *(c for c in CANDIDATE_EXTRAS if c not in candidates.columns)])
    keyed = prepare_person_rows(candidates, reference)
    nodes = keyed.assign(is_existing=True, person_id=candidates["person_id"], linked_person_id=candidates["person_id"],
                         source_row_person_id=candidates["person_id"], student_number=candidates["student_number"],
                         staging_table=pd.NA, staging_id=pd.NA, source_kind=pd.NA)
    for column in [c for c, _, _ in PERSON_FIELDS] + ["data_source", "csv_enriched", "original_name",
                                                      "pipeline_created"]:
        nodes[f"stored_{column}"] = candidates[column]
    return nodes


def apply_decisions(nodes: pd.DataFrame, decisions: pd.DataFrame) -> pd.DataFrame:
    """The match keys as resolution sees them, after a person's decisions.

    'merge:<id>' links the row to that person; 'new' makes it a person of its
    own: its keys are hidden from matching (its values still fill the person,
    except unique ones another person holds).
    """
    keys = nodes[["is_existing", "linked_person_id", "source_row_person_id", *KEY_FIELDS]].copy()
    if decisions.empty:
        return keys
    decided = nodes[["staging_table", "staging_id"]].merge(decisions, on=["staging_table", "staging_id"], how="left")
    merge_into = decided["decided_person_id"].to_numpy()
    keys["linked_person_id"] = keys["linked_person_id"].where(pd.isna(merge_into), merge_into)
    pinned = decided["decided_new"].fillna("f").eq("t").to_numpy(dtype=bool)
    keys.loc[pinned, list(KEY_FIELDS)] = pd.NA
    return keys


def possible_duplicate_reviews(nodes: pd.DataFrame, pairs: list[tuple[int, int, int, str]]) -> pd.DataFrame:
    """Two production persons a staging row shows to be one: flagged, never merged automatically."""
    return pd.DataFrame([{
        "kind": "possible_duplicate", "staging_table": nodes.at[witness, "staging_table"],
        "staging_id": int(nodes.at[witness, "staging_id"]), "person_id": nodes.at[a, "person_id"],
        "candidate_person_id": nodes.at[b, "person_id"],
        "reason": f"this row matches two persons ({level.replace('_', ' + ')}): probably one person recorded twice",
    } for a, b, witness, level in pairs], columns=["kind", "staging_table", "staging_id", "person_id",
                                                   "candidate_person_id", "reason"])


def person_rejections(rows: pd.DataFrame) -> pd.DataFrame:
    bad = rows[rows["reject_reason"].notna()]
    return pd.DataFrame({
        "staging_table": bad["staging_table"], "staging_id": bad["staging_id"], "reason": bad["reject_reason"],
        "details": [json.dumps({"warnings": w}) if isinstance(w, str) else "{}" for w in bad["warnings"]],
        "retryable": False,
    })


@asset(
    ins={"staging_students": AssetIn(), "staging_leads": AssetIn(), "staging_reference_data": AssetIn()},
    group_name=GROUP_PRODUCTION,
    owners=OWNERS,
    kinds={"postgres"},
    description="Resolves who is who (cédula > e-mail > name+birth date > name+mobile, with vetoes) and merges "
    "staging students and leads into `persons`: new persons created, existing ones filled (NULLs only), "
    "ambiguous rows sent to review. Output: staging row -> person.",
)
def resolved_persons(context: AssetExecutionContext, staging_students: StagingBatch, staging_leads: StagingBatch,
                     staging_reference_data: pd.DataFrame, production_db: ProductionDatabase,
                     migration_lock: MigrationLock,
                     options: MigrationOptions) -> Output[pd.DataFrame]:
    started = time.monotonic()
    run_id = context.run_id
    rows = incoming_rows(staging_students, staging_leads)
    rejections = person_rejections(rows)
    loadable = rows[rows["reject_reason"].isna()].reset_index(drop=True)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # timestamp(3): keys compare equal to persons

    with production_db.connection() as conn, writer_transaction(conn, options) as cur:
        refreshed = refresh_person_keys(cur, staging_reference_data, run_id)
        keys = loadable.assign(phone_tail=loadable["mobile"].str.slice(-10))
        copy_into_temp(cur, "tmp_keys", KEY_COLUMNS, keys)
        cur.execute("ANALYZE tmp_keys")
        linked = read_frame(cur, READ_LINKED).astype({"staging_id": "int64"})
        decisions = read_frame(cur, READ_DECISIONS).astype({"staging_id": "int64"})
        same_row = read_frame(cur, READ_SAME_SOURCE_ROW).astype({"staging_id": "int64"})
        cur.execute(FIND_CANDIDATES)
        candidates = read_frame(cur, READ_CANDIDATES, {"only": None})
        context.log.info(f"resolving {len(loadable)} rows against {len(candidates)} existing persons")

        # Only what identity and survivorship read: every column of a node frame is copied by each
        # filter and sort below, and the lead/student columns are the widest (memory at 200k rows).
        person_rows = loadable[list(NODE_COLUMNS)]
        staging_nodes = person_rows.merge(linked, on=["staging_table", "staging_id"], how="left") if len(linked) \
            else person_rows.assign(linked_person_id=pd.NA)
        staging_nodes["staging_id"] = staging_nodes["staging_id"].astype("int64")
        staging_nodes = staging_nodes.merge(same_row, on=["staging_table", "staging_id"], how="left")
        staging_nodes = staging_nodes.assign(is_existing=False, person_id=pd.NA)
        for round_ in range(CANDIDATE_ROUNDS + 1):
            nodes = pd.concat([existing_nodes(candidates, staging_reference_data), staging_nodes], ignore_index=True)
            nodes["is_existing"] = nodes["is_existing"].astype(bool)
            resolution = resolve_persons(apply_decisions(nodes, decisions))
            if round_ == CANDIDATE_ROUNDS:
                break
            # A stored person can match a key only the cluster has (its stored name with a birth date
            # a row brings): read those too, or increments would miss what one batch finds.
            copy_into_temp(cur, "tmp_cluster_keys", CLUSTER_KEY_COLUMNS,
                           cluster_name_keys(nodes, resolution.anchor, resolution.in_review))
            cur.execute(FIND_MORE_CANDIDATES)
            more = [person_id for (person_id,) in cur.fetchall()]
            cur.execute("DROP TABLE tmp_cluster_keys")
            if not more:
                break
            candidates = pd.concat([candidates, read_frame(cur, READ_CANDIDATES, {"only": more})], ignore_index=True)
            context.log.info(f"{len(more)} more existing persons share a key of a resolved cluster: resolving again")
        plan = plan_persons(nodes, resolution.anchor, resolution.matched_by, resolution.in_review)

        staged = nodes.index[~nodes["is_existing"]]
        review_nodes = nodes[resolution.in_review]
        identity_reviews = pd.DataFrame({
            "kind": "identity_conflict",
            "staging_table": review_nodes["staging_table"],
            "staging_id": review_nodes["staging_id"],
            "candidate_person_id": [plan.person_of_anchor.get(int(c)) for c in resolution.review_candidate[resolution.in_review]],
            "reason": resolution.review_reason[resolution.in_review],
        })
        field_reviews = plan.field_conflicts.assign(kind="field_conflict")
        duplicate_reviews = possible_duplicate_reviews(nodes, resolution.possible_duplicates)
        warnings = nodes.loc[staged, ["staging_table", "staging_id", "warnings"]]
        links = plan.assignment.merge(warnings, on=["staging_table", "staging_id"], how="left").assign(
            entity="person", entity_id=plan.assignment["person_id"])

        copy_into_temp(cur, "tmp_new_persons", NEW_PERSON_COLUMNS, plan.new_persons)
        cur.execute(INSERT_PERSONS, {"now": now})
        persons_created = cur.rowcount if len(plan.new_persons) else 0
        fills = plan.updates
        copy_into_temp(cur, "tmp_person_fills", NEW_PERSON_COLUMNS, fills)
        cur.execute(FILL_PERSONS, {"now": now})
        persons_updated = cur.rowcount if len(fills) else 0
        copy_into_temp(cur, "tmp_person_keys", PERSON_KEY_COLUMNS, plan.keys.assign(person_updated_at=now))
        cur.execute(UPSERT_PERSON_KEYS)
        if len(plan.student_numbers):
            copy_into_temp(cur, "tmp_student_numbers", {"person_id": "uuid", "student_number": "text"},
                           plan.student_numbers)
            cur.execute(SET_STUDENT_NUMBERS)
        linked_rows = write_links(cur, links, run_id)
        reviews_added = write_reviews(
            cur, pd.concat([identity_reviews, field_reviews, duplicate_reviews], ignore_index=True), run_id)
        write_rejections(cur, rejections, run_id)
        record_run(cur, run_id, {"persons_created": len(plan.new_persons), "persons_updated": len(plan.updates),
                                 "person_rows_in_review": int(resolution.in_review.sum()),
                                 "person_rows_rejected": len(rejections)})

    matched_existing = plan.assignment[~plan.assignment["is_new_person"]]["person_id"].nunique()
    touched = plan.assignment["person_id"].nunique()
    metadata = {
        "dry_run": options.dry_run,
        "staging_rows": len(rows),
        "persons_created": persons_created if not options.dry_run else len(plan.new_persons),
        "persons_updated": persons_updated if not options.dry_run else len(plan.updates),
        "persons_unchanged": int(matched_existing - len(plan.updates)),
        "rows_linked": len(plan.assignment),
        "rows_newly_linked": linked_rows,
        "rows_in_review": int(resolution.in_review.sum()),
        "rows_rejected": len(rejections),
        "field_conflicts": len(plan.field_conflicts),
        "review_items_added": reviews_added,
        "matched_by": markdown_counts("matched by", plan.assignment["matched_by"].value_counts()),
        "rejection_reasons": markdown_counts("reason", rejections["reason"].value_counts()),
        "review_by_kind": markdown_counts("kind", {"identity_conflict": int(resolution.in_review.sum()),
                                                    "field_conflict": len(plan.field_conflicts),
                                                    "possible_duplicate": len(resolution.possible_duplicates)}),
        "field_conflicts_by_field": markdown_counts("field", plan.field_conflicts["field"].value_counts()),
        "csv_enrichment_rate": rate(int(plan.new_persons["csv_enriched"].sum()) + len(plan.updates), touched),
        "failed_rows_rate": rate(len(rejections), len(rows)),
        "vetoed_joins": resolution.stats["vetoed_joins"],
        "person_keys_refreshed": refreshed,
        "seconds": round(time.monotonic() - started, 2),
    }
    context.log.info(
        f"persons: {metadata['persons_created']} created, {metadata['persons_updated']} enriched, "
        f"{metadata['rows_in_review']} rows to review, {len(rejections)} rejected"
    )
    output = plan.assignment[["staging_table", "staging_id", "person_id", "matched_by", "is_new_person"]]
    return Output(output, metadata={k: (MetadataValue.bool(v) if isinstance(v, bool) else v) for k, v in metadata.items()})
