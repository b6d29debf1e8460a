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
from ice_pipeline.db import copy_into_temp, read_frame, write_links, write_rejections, write_reviews
from ice_pipeline.logic.identity import resolve_persons
from ice_pipeline.logic.people import prepare_person_rows
from ice_pipeline.logic.survivorship import PERSON_FIELDS, plan_persons
from ice_pipeline.resources import ProductionDatabase

KEY_COLUMNS = {"staging_table": "text", "staging_id": "bigint", "cedula": "text", "email": "text",
               "name_key": "text", "birth_date": "date", "phone_tail": "text"}
# Identity questions a person answered (`ice-pipeline review resolve`).
READ_DECISIONS = """
SELECT q.staging_table, q.staging_id,
       CASE WHEN q.decision LIKE 'merge:%%' THEN substring(q.decision from 7) END AS decided_person_id,
       q.decision = 'new' AS decided_new
FROM ice_pipeline.review_queue q
JOIN tmp_keys k ON k.staging_table = q.staging_table AND k.staging_id = q.staging_id
WHERE q.kind = 'identity_conflict' AND q.status = 'resolved' AND q.field IS NULL AND q.decision IS NOT NULL
"""
READ_LINKED = """
SELECT l.staging_table, l.staging_id, l.entity_id::text AS linked_person_id
FROM ice_pipeline.source_links l
JOIN tmp_keys k ON k.staging_table = l.staging_table AND k.staging_id = l.staging_id
WHERE l.entity = 'person'
"""
# Existing persons sharing any match key with the batch, found through the
# expression indexes of ice_pipeline_schema.sql (bot-written values too).
READ_CANDIDATES = """
SELECT p.id::text AS person_id, p.full_name, p.email, p.phone, p.cedula, p.birth_date::text AS birth_date,
       p.address, p.city, p.country, p.data_source, p.original_name, p.csv_enriched
FROM persons p
WHERE p.id IN (
    SELECT id FROM persons WHERE ice_pipeline.cedula_key(cedula) IN (SELECT cedula FROM tmp_keys WHERE cedula IS NOT NULL)
    UNION
    SELECT id FROM persons WHERE ice_pipeline.email_key(email) IN (SELECT email FROM tmp_keys WHERE email IS NOT NULL)
    UNION
    SELECT p2.id FROM persons p2 JOIN tmp_keys k
      ON ice_pipeline.name_key(p2.full_name) = k.name_key AND p2.birth_date = k.birth_date
    UNION
    SELECT id FROM persons WHERE ice_pipeline.phone_tail(phone) IN (SELECT phone_tail FROM tmp_keys WHERE phone_tail IS NOT NULL)
    UNION
    SELECT entity_id FROM ice_pipeline.source_links l
      JOIN tmp_keys k ON k.staging_table = l.staging_table AND k.staging_id = l.staging_id
     WHERE l.entity = 'person'
    UNION
    SELECT substring(q.decision from 7)::uuid FROM ice_pipeline.review_queue q
      JOIN tmp_keys k ON k.staging_table = q.staging_table AND k.staging_id = q.staging_id
     WHERE q.kind = 'identity_conflict' AND q.status = 'resolved' AND q.decision LIKE 'merge:%%'
)
ORDER BY p.id
"""
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
FILL_PERSONS = """
UPDATE persons p SET
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
KEY_FIELDS = ("cedula", "email", "name_key", "birth_date", "mobile")
ARRIVAL_RANK = {"staging_student": 0, "staging_lead": 1}


def incoming_rows(students: StagingBatch, leads: StagingBatch) -> pd.DataFrame:
    """Students and leads in arrival order: (updated_at, table, id)."""
    rows = pd.concat([students.rows, leads.rows], ignore_index=True)
    rows["arrival"] = rows["staging_table"].map(ARRIVAL_RANK)
    return rows.sort_values(["updated_at", "arrival", "staging_id"], kind="stable").reset_index(drop=True)


def existing_nodes(candidates: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Production persons as nodes: keys computed exactly as for staging rows."""
    keyed = prepare_person_rows(candidates, reference)
    nodes = keyed.assign(is_existing=True, person_id=candidates["person_id"], linked_person_id=candidates["person_id"],
                         staging_table=pd.NA, staging_id=pd.NA, source_kind=pd.NA)
    for column in [c for c, _, _ in PERSON_FIELDS] + ["data_source", "csv_enriched", "original_name"]:
        nodes[f"stored_{column}"] = candidates[column]
    return nodes


def apply_decisions(nodes: pd.DataFrame, decisions: pd.DataFrame) -> pd.DataFrame:
    """The match keys as resolution sees them, after a person's decisions.

    'merge:<id>' links the row to that person; 'new' makes it a person of its
    own: its keys are hidden from matching (its values still fill the person,
    except unique ones another person holds).
    """
    keys = nodes[["is_existing", "linked_person_id", *KEY_FIELDS]].copy()
    if decisions.empty:
        return keys
    decided = nodes[["staging_table", "staging_id"]].merge(decisions, on=["staging_table", "staging_id"], how="left")
    merge_into = decided["decided_person_id"].to_numpy()
    keys["linked_person_id"] = keys["linked_person_id"].where(pd.isna(merge_into), merge_into)
    pinned = decided["decided_new"].fillna("f").eq("t").to_numpy(dtype=bool)
    keys.loc[pinned, list(KEY_FIELDS)] = pd.NA
    return keys


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
                     options: MigrationOptions) -> Output[pd.DataFrame]:
    started = time.monotonic()
    run_id = context.run_id
    rows = incoming_rows(staging_students, staging_leads)
    rejections = person_rejections(rows)
    loadable = rows[rows["reject_reason"].isna()].reset_index(drop=True)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)

    with production_db.connection() as conn, writer_transaction(conn, options) as cur:
        keys = loadable.assign(phone_tail=loadable["mobile"].str.slice(-10))
        copy_into_temp(cur, "tmp_keys", KEY_COLUMNS, keys)
        cur.execute("ANALYZE tmp_keys")
        linked = read_frame(cur, READ_LINKED).astype({"staging_id": "int64"})
        decisions = read_frame(cur, READ_DECISIONS).astype({"staging_id": "int64"})
        candidates = read_frame(cur, READ_CANDIDATES)
        context.log.info(f"resolving {len(loadable)} rows against {len(candidates)} existing persons")

        staging_nodes = loadable.merge(linked, on=["staging_table", "staging_id"], how="left") if len(linked) else \
            loadable.assign(linked_person_id=pd.NA)
        staging_nodes["staging_id"] = staging_nodes["staging_id"].astype("int64")
        nodes = pd.concat([existing_nodes(candidates, staging_reference_data),
                           staging_nodes.assign(is_existing=False, person_id=pd.NA)], ignore_index=True)
        nodes["is_existing"] = nodes["is_existing"].astype(bool)
        resolution = resolve_persons(apply_decisions(nodes, decisions))
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
        linked_rows = write_links(cur, links, run_id)
        reviews_added = write_reviews(cur, pd.concat([identity_reviews, field_reviews], ignore_index=True), run_id)
        write_rejections(cur, rejections, run_id)

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
                                                    "field_conflict": len(plan.field_conflicts)}),
        "field_conflicts_by_field": markdown_counts("field", plan.field_conflicts["field"].value_counts()),
        "csv_enrichment_rate": rate(int(plan.new_persons["csv_enriched"].sum()) + len(plan.updates), touched),
        "failed_rows_rate": rate(len(rejections), len(rows)),
        "vetoed_joins": resolution.stats["vetoed_joins"],
        "seconds": round(time.monotonic() - started, 2),
    }
    context.log.info(
        f"persons: {metadata['persons_created']} created, {metadata['persons_updated']} enriched, "
        f"{metadata['rows_in_review']} rows to review, {len(rejections)} rejected"
    )
    output = plan.assignment[["staging_table", "staging_id", "person_id", "matched_by", "is_new_person"]]
    return Output(output, metadata={k: (MetadataValue.bool(v) if isinstance(v, bool) else v) for k, v in metadata.items()})
