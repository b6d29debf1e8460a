"""The checks of prod_documents: duplicates, orphans, objects present, stray objects, accounting.

Duplicates and orphans are rules of checks/rules.py (the report runs the same ones); the
object checks read the bucket. Always the whole table / bucket, as they always were.
"""

from concurrent.futures import ThreadPoolExecutor

import pandas as pd
from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check
from minio import Minio

from ice_pipeline.assets.common import markdown_counts
from ice_pipeline.checks.asset_checks import accounting_result, explain
from ice_pipeline.checks.engine import EVERYTHING, MAX_LISTED, find_violations
from ice_pipeline.checks.rules import DOCUMENT_LINKS_WITHOUT_DOCUMENT, RULE
from ice_pipeline.db import read_frame
from ice_pipeline.resources import (
    DocumentStore,
    ProductionDatabase,
    StagingDatabase,
    stat_object,
    store_error_summary,
)

ASSET = "prod_documents"
STAGING_TABLE = "staging_document"
FULL_SCAN_LIMIT = 2000  # documents_objects_present: full scan up to this many rows...
SAMPLE_SIZE = 500  # ...else a random sample of this many
VERIFY_WORKERS = 8
COUNT_OBJECT_ROWS = (
    "SELECT count(*) FROM student_documents WHERE storage_provider = 'MINIO' AND bucket = %(bucket)s"
)
OBJECT_ROWS = """
SELECT id::text AS id, object_key, file_size, checksum FROM student_documents
WHERE storage_provider = 'MINIO' AND bucket = %(bucket)s
"""
SAMPLE_OBJECT_ROWS = OBJECT_ROWS + " ORDER BY random() LIMIT %(sample)s"
OBJECT_KEYS = "SELECT object_key FROM student_documents WHERE bucket = %(bucket)s"


def duplicates_result(production_conn) -> AssetCheckResult:
    rule = RULE["documents_no_duplicates"]
    found = find_violations(rule, production_conn, None, EVERYTHING)
    return explain(rule, found, EVERYTHING, duplicate_groups=len(found))


def orphans_result(production_conn) -> AssetCheckResult:
    with production_conn.cursor() as cur:
        cur.execute(DOCUMENT_LINKS_WITHOUT_DOCUMENT)
        dangling = int(cur.fetchone()[0])
    production_conn.rollback()
    rule = RULE["documents_no_orphans"]
    found = find_violations(rule, production_conn, None, EVERYTHING)
    return explain(rule, found, EVERYTHING, orphans=len(found), links_to_deleted_documents=dangling)


@asset_check(
    asset=ASSET,
    name="documents_no_duplicates",
    blocking=False,
    description=RULE["documents_no_duplicates"].description,
)
def documents_no_duplicates(production_db: ProductionDatabase) -> AssetCheckResult:
    with production_db.connection() as conn:
        return duplicates_result(conn)


@asset_check(asset=ASSET, name="documents_no_orphans", description=RULE["documents_no_orphans"].description)
def documents_no_orphans(production_db: ProductionDatabase) -> AssetCheckResult:
    with production_db.connection() as conn:
        return orphans_result(conn)


def _verify_object(client: Minio, bucket: str, row) -> str | None:
    """Why a document row's object is not right, or None."""
    try:
        stored = stat_object(client, bucket, row.object_key)  # the server's checksum when it reports one
    except Exception as error:  # noqa: BLE001 - reported per row
        return f"store error ({store_error_summary(error)})"
    if stored is None:
        return "object missing"
    size, sha256 = stored.size, stored.sha256
    if pd.notna(row.file_size) and size != int(row.file_size):
        return "size differs"
    if pd.notna(row.checksum):
        if not sha256:
            return "no sha256 metadata"
        if sha256 != row.checksum:
            return "sha256 differs"
    return None


def _probe(client: Minio, bucket: str) -> bool | str:
    """True when the bucket can be read, else why not (for check metadata)."""
    try:
        return True if client.bucket_exists(bucket) else "bucket does not exist"
    except Exception as error:  # noqa: BLE001 - reported in the check's metadata
        return f"store unreachable ({store_error_summary(error)})"


@asset_check(
    asset=ASSET,
    name="documents_objects_present",
    description=f"Every document row's object exists in the bucket with the recorded size and SHA-256 "
    f"(object metadata): a full scan up to {FULL_SCAN_LIMIT} rows, else a random sample of "
    f"{SAMPLE_SIZE}. A row without its object is not allowed. Lists the offending document ids.",
)
def documents_objects_present(
    production_db: ProductionDatabase, document_store: DocumentStore
) -> AssetCheckResult:
    bucket = document_store.bucket
    with production_db.connection() as conn, conn.cursor() as cur:
        cur.execute(COUNT_OBJECT_ROWS, {"bucket": bucket})
        total = int(cur.fetchone()[0])
        full = total <= FULL_SCAN_LIMIT
        rows = read_frame(
            cur, OBJECT_ROWS if full else SAMPLE_OBJECT_ROWS, {"bucket": bucket, "sample": SAMPLE_SIZE}
        )
        conn.rollback()
    rows["file_size"] = pd.to_numeric(rows["file_size"])
    mode = f"full scan of {total} rows" if full else f"random sample of {len(rows)} of {total} rows"
    client = document_store.client()
    reachable = _probe(client, bucket)
    if reachable is not True:
        return AssetCheckResult(
            passed=rows.empty,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "mode": mode,
                "rows_checked": 0,
                "rows_failing": len(rows),
                "store": reachable,
                "scope": "whole bucket",
                "offending_ids": MetadataValue.json(rows["id"].head(MAX_LISTED).tolist()),
            },
        )
    with ThreadPoolExecutor(max_workers=VERIFY_WORKERS, thread_name_prefix="verify") as pool:
        problems = list(pool.map(lambda r: _verify_object(client, bucket, r), rows.itertuples(index=False)))
    bad = rows.assign(problem=problems).dropna(subset=["problem"])
    return AssetCheckResult(
        passed=bad.empty,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "mode": mode,
            "scope": "whole bucket",
            "rows_checked": len(rows),
            "rows_failing": len(bad),
            "problems": markdown_counts("problem", bad["problem"].value_counts()),
            "offending_ids": MetadataValue.json(bad["id"].head(MAX_LISTED).tolist()),
        },
    )


@asset_check(
    asset=ASSET,
    name="documents_no_stray_objects",
    description="Objects under students/ with no document row (e.g. left by a run interrupted after "
    f"uploading; the next run links them). A warning; lists up to {MAX_LISTED} keys.",
)
def documents_no_stray_objects(
    production_db: ProductionDatabase, document_store: DocumentStore
) -> AssetCheckResult:
    bucket = document_store.bucket
    client = document_store.client()
    reachable = _probe(client, bucket)
    if reachable is not True:
        return AssetCheckResult(
            passed=reachable == "bucket does not exist",
            severity=AssetCheckSeverity.WARN,
            metadata={"objects": 0, "store": reachable, "scope": "whole bucket"},
        )
    with production_db.connection() as conn, conn.cursor() as cur:
        known = set(read_frame(cur, OBJECT_KEYS, {"bucket": bucket})["object_key"].dropna())
        conn.rollback()
    objects = 0
    stray: list[str] = []
    stray_count = 0
    for item in client.list_objects(bucket, prefix="students/", recursive=True):
        objects += 1
        if item.object_name not in known:
            stray_count += 1
            if len(stray) < MAX_LISTED:
                stray.append(item.object_name)
    return AssetCheckResult(
        passed=stray_count == 0,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "objects": objects,
            "stray_objects": stray_count,
            "stray_keys": MetadataValue.json(stray),
            "scope": "whole bucket",
        },
    )


@asset_check(
    asset=ASSET,
    name="documents_accounting",
    description="Every staging_document row is linked to a document or rejected with a reason (or beyond "
    "the watermark, not processed yet), and in only one of those places. Lists unaccounted staging ids.",
)
def documents_accounting(staging_db: StagingDatabase, production_db: ProductionDatabase) -> AssetCheckResult:
    with staging_db.connection() as s, production_db.connection() as p:
        return accounting_result(s, p, STAGING_TABLE, severity=AssetCheckSeverity.ERROR)


document_checks = [
    documents_no_duplicates,
    documents_no_orphans,
    documents_objects_present,
    documents_no_stray_objects,
    documents_accounting,
]
