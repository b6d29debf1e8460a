"""Documents hardening (issue 12): the MIME type comes from the content, active content is only ever
downloaded, the size limit is checked before hashing, uploads carry a SHA-256 the server keeps, and
"already uploaded" rests on the server's checksum (or on the content read back), never on metadata alone.

Pure parts first, then the whole job against real PostgreSQL and the moto S3 server over HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from pathlib import Path

import pytest
from test_documents import (
    JPEG,
    PDF,
    PNG,
    add_document,
    add_student,
    documents,
    links,
    ok,
    rejections,
    sha,
    spy_uploads,
    stage_file,
)

from ice_pipeline.logic import documents as docs

HTML = b"\xef\xbb\xbf  <!DOCTYPE html>\n<html><body><script>alert(document.cookie)</script></body></html>\n"
SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>\n'
JS = b"fetch('/steal?c=' + document.cookie);\n"


def b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


# --- pure: sniffing and deciding the type ---------------------------------------


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (PDF, "application/pdf"),
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (HTML, "text/html"),
        (b"<script>x()</script>", "text/html"),
        (b"\n\t<HTML>", "text/html"),
        (b"<!-- a comment --><p>x</p>", "text/html"),
        (SVG, "image/svg+xml"),
        (b"<svg viewBox='0 0 1 1'/>", "image/svg+xml"),
        (b"<?xml version='1.0'?><invoice/>", "text/xml"),
        (b"plain words", None),
        (b"<bogus>", None),
        (b"", None),
    ],
)
def test_sniff_mime(head: bytes, expected: str | None) -> None:
    assert docs.sniff_mime(head) == expected


def test_the_content_wins_over_a_contradicting_staged_type() -> None:
    assert docs.decide_mime("application/pdf", "text/html", "cv.pdf")[0] == "text/html"
    mime, warning = docs.decide_mime("application/pdf", "image/png", "Pasaporte Ana.pdf")
    assert mime == "image/png"
    assert warning == "staged type application/pdf contradicts the content (image/png): stored as image/png"
    # the extension, when nothing was staged, is held to the same rule
    assert docs.decide_mime(None, "text/html", "cv.pdf") == (
        "text/html",
        "extension type application/pdf contradicts the content (text/html): stored as text/html",
    )
    # a type that needs a signature the bytes lack is not believed
    assert docs.decide_mime("image/png", None, "x.png")[0] == "application/octet-stream"


def test_compatible_staged_types_are_kept() -> None:
    docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    assert docs.decide_mime(docx, "application/zip", "cv.docx") == (docx, None)
    assert docs.decide_mime("image/jpg", "image/jpeg", "f.jpg") == ("image/jpg", None)
    assert docs.decide_mime("application/vnd.ms-excel", "application/msword", "x.xls") == (
        "application/vnd.ms-excel",
        None,
    )
    assert docs.decide_mime("text/csv", None, "notas.csv") == ("text/csv", None)
    assert docs.decide_mime(None, None, "notes.txt") == ("text/plain", None)


@pytest.mark.parametrize(
    "mime",
    [
        "text/html",
        "image/svg+xml",
        "text/xml",
        "application/xml",
        "text/javascript",
        "application/javascript",
        "application/xhtml+xml",
        "application/rss+xml",
        "Text/HTML; charset=utf-8",
    ],
)
def test_active_types_are_served_as_opaque_downloads(mime: str) -> None:
    assert docs.served_headers(mime) == ("application/octet-stream", "attachment")


@pytest.mark.parametrize("mime", ["application/pdf", "image/png", "image/jpeg", "text/plain", "text/csv"])
def test_passive_types_are_served_as_themselves(mime: str) -> None:
    assert docs.served_headers(mime) == (mime, None)


# --- pure: the size limit before hashing ------------------------------------------


def test_a_file_over_the_limit_is_refused_without_reading_it(tmp_path: Path, monkeypatch) -> None:
    big = tmp_path / "huge.pdf"
    with open(big, "wb") as out:  # sparse: 2 GiB on paper, no disk used
        out.truncate(docs.MAX_FILE_SIZE + 1)
    read: list[Path] = []
    real = docs.hash_and_sniff

    def spy(path, *args, **kwargs):
        read.append(Path(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(docs, "hash_and_sniff", spy)
    with pytest.raises(docs.DocumentRefused) as caught:
        docs.inspect_file(tmp_path, "huge.pdf", None)
    assert (caught.value.reason, caught.value.retryable) == (docs.FILE_TOO_LARGE, False)
    assert read == []  # never opened for hashing
    (tmp_path / "small.pdf").write_bytes(PDF)
    with pytest.raises(docs.DocumentRefused, match=docs.FILE_TOO_LARGE):
        docs.inspect_file(tmp_path, "small.pdf", None, max_size=len(PDF) - 1)
    assert read == []
    assert docs.inspect_file(tmp_path, "small.pdf", None, max_size=len(PDF)).sniffed_mime == "application/pdf"
    assert read == [(tmp_path / "small.pdf").resolve()]


def test_a_file_growing_past_the_limit_while_hashed_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "growing.bin"
    path.write_bytes(b"x" * 5000)
    with pytest.raises(docs.DocumentRefused, match=docs.FILE_TOO_LARGE):
        docs.hash_and_sniff(path, chunk=1024, max_size=4096)  # stat said less; the read finds more
    digest, size, head = docs.hash_and_sniff(path, chunk=1024, max_size=5000)
    assert (digest, size, head) == (sha(b"x" * 5000), 5000, b"x" * 5000)


# --- integration: the real job, the real S3 server ----------------------------------


@pytest.fixture
def env(pipeline):
    return pipeline


def _served(p, key: str) -> tuple[str | None, str | None]:
    response = p.minio.get_object(p.bucket, key)
    try:
        return response.headers.get("content-type"), response.headers.get("content-disposition")
    finally:
        response.close()
        response.release_conn()


def test_stored_types_come_from_the_content_and_active_content_is_only_downloaded(env) -> None:
    ana = add_student(env)
    html = add_document(
        env, ana, stage_file(env, "ana/cv.pdf", HTML), data=HTML, mime="application/pdf", document_type="CV"
    )
    png = add_document(
        env, ana, stage_file(env, "ana/Pasaporte Ana.pdf", PNG), data=PNG, mime="application/pdf"
    )
    svg = add_document(
        env, ana, stage_file(env, "ana/logo.svg", SVG), data=SVG, mime="image/svg+xml", document_type="LOGO"
    )
    js = add_document(
        env, ana, stage_file(env, "ana/notes.js", JS), data=JS, mime=None, document_type="NOTES"
    )
    pdf = add_document(
        env, ana, stage_file(env, "ana/visa.pdf", PDF), data=PDF, mime="application/pdf", document_type="VISA"
    )

    summary = ok(env.run())
    assert summary["documents_uploaded"] == 5
    by_checksum = {r["checksum"]: r for r in documents(env)}
    assert {data: by_checksum[sha(data)]["mime_type"] for data in (HTML, PNG, SVG, JS, PDF)} == {
        HTML: "text/html",
        PNG: "image/png",
        SVG: "image/svg+xml",
        JS: "text/javascript",
        PDF: "application/pdf",
    }

    warnings = dict(
        env.query("SELECT staging_id, warnings FROM ice_pipeline.source_links WHERE entity = 'document'")
    )
    assert warnings[html] == [
        "staged type application/pdf contradicts the content (text/html): stored as text/html"
    ]
    assert warnings[png] == [
        "staged type application/pdf contradicts the content (image/png): stored as image/png"
    ]
    assert warnings[svg] == warnings[js] == warnings[pdf] == []
    assert not any(name in str(warnings) for name in ("cv.pdf", "Pasaporte", "Ana"))  # types only, no names

    for data in (HTML, SVG, JS):
        assert _served(env, by_checksum[sha(data)]["object_key"]) == (
            "application/octet-stream",
            "attachment",
        )
    assert _served(env, by_checksum[sha(PNG)]["object_key"]) == ("image/png", None)
    assert _served(env, by_checksum[sha(PDF)]["object_key"]) == ("application/pdf", None)
    assert rejections(env) == {}


def test_a_file_over_the_limit_is_refused_in_a_run_without_being_read(env, monkeypatch) -> None:
    ana = add_student(env)
    big = env.files_root / "ana" / "scan.pdf"
    big.parent.mkdir(parents=True)
    with open(big, "wb") as out:
        out.truncate(docs.MAX_FILE_SIZE + 1)
    too_large = add_document(env, ana, "ana/scan.pdf", mime="application/pdf")
    fine = add_document(env, ana, stage_file(env, "ana/visa.pdf", PDF), data=PDF)
    read: list[str] = []
    real = docs.hash_and_sniff
    monkeypatch.setattr(
        docs, "hash_and_sniff", lambda path, *a, **k: read.append(Path(path).name) or real(path, *a, **k)
    )

    summary = ok(env.run())
    assert summary["documents_uploaded"] == 1
    assert rejections(env)[too_large][:2] == (docs.FILE_TOO_LARGE, False)
    assert set(links(env)) == {fine}
    assert read == ["visa.pdf"]  # the 2 GiB file was never read


def _key_for_next_document(
    env, student: int, data: bytes, document_type: str = "PASSPORT", name: str = "x.pdf"
) -> str:
    """Load the student first, so the key the document will get is known before its run."""
    ok(env.run())
    student_id = env.scalar(
        "SELECT entity_id::text FROM ice_pipeline.source_links WHERE entity = 'student' "
        "AND staging_table = 'staging_student' AND staging_id = %s",
        (student,),
    )
    if not env.minio.bucket_exists(env.bucket):
        env.minio.make_bucket(env.bucket)
    return docs.object_key(student_id, document_type, sha(data), name)


def test_uploads_carry_a_sha256_checksum_the_server_keeps(env) -> None:
    ana = add_student(env)
    add_document(env, ana, stage_file(env, "a/x.pdf", PDF), data=PDF)
    add_document(env, ana, stage_file(env, "a/y.png", PNG), data=PNG, document_type="PHOTO")
    ok(env.run())
    for row in documents(env):
        stat = env.minio.stat_object(
            env.bucket, row["object_key"], extra_headers={"x-amz-checksum-mode": "ENABLED"}
        )
        data = PDF if row["checksum"] == sha(PDF) else PNG
        assert stat.metadata["x-amz-checksum-sha256"] == b64(data)
        assert stat.metadata["x-amz-meta-sha256"] == row["checksum"]


def test_moto_stores_a_wrong_checksum_without_verifying_it(env) -> None:
    """What the test server does (ENVIRONMENT.md): AWS S3 and MinIO answer BadDigest here (the upload loop's
    handling of that answer is tested with a verifying fake in test_documents.py). If this starts failing,
    moto verifies: turn it into a test that the wrong checksum is refused."""
    env.minio.make_bucket(env.bucket)
    env.minio.put_object(
        env.bucket,
        "probe",
        io.BytesIO(PDF),
        len(PDF),
        metadata={"x-amz-sdk-checksum-algorithm": "SHA256", "x-amz-checksum-sha256": b64(b"other")},
    )
    stat = env.minio.stat_object(env.bucket, "probe", extra_headers={"x-amz-checksum-mode": "ENABLED"})
    assert stat.metadata["x-amz-checksum-sha256"] == b64(b"other")


def test_an_object_whose_server_checksum_differs_is_uploaded_again(env, monkeypatch) -> None:
    """Right size and right x-amz-meta-sha256, but the server's checksum says other bytes: not 'present'."""
    ana = add_student(env)
    key = _key_for_next_document(env, ana, PDF)
    forged = b"F" * len(PDF)
    env.minio.put_object(
        env.bucket,
        key,
        io.BytesIO(forged),
        len(forged),
        content_type="application/pdf",
        metadata={
            "sha256": sha(PDF),
            "x-amz-sdk-checksum-algorithm": "SHA256",
            "x-amz-checksum-sha256": b64(forged),
        },
    )
    add_document(env, ana, stage_file(env, "a/x.pdf", PDF), data=PDF)
    statuses = spy_uploads(monkeypatch)
    assert ok(env.run())["documents_uploaded"] == 1
    assert statuses == ["put"]
    assert env.minio.get_object(env.bucket, key).read() == PDF
    stat = env.minio.stat_object(env.bucket, key, extra_headers={"x-amz-checksum-mode": "ENABLED"})
    assert stat.metadata["x-amz-checksum-sha256"] == b64(PDF)


def test_an_object_without_a_server_checksum_is_read_back_before_it_counts(env, monkeypatch) -> None:
    """Objects from before (or uploaded in parts) carry only client metadata: their content is hashed."""
    ana, luis = add_student(env), add_student(env, "Luis Pérez")
    wrong_key = _key_for_next_document(env, ana, PDF)
    luis_id = env.scalar(
        "SELECT entity_id::text FROM ice_pipeline.source_links WHERE entity = 'student' AND staging_id = %s",
        (luis,),
    )
    right_key = docs.object_key(luis_id, "PASSPORT", sha(PDF), "x.pdf")
    forged = b"F" * len(PDF)
    env.minio.put_object(
        env.bucket,
        wrong_key,
        io.BytesIO(forged),
        len(forged),
        content_type="application/pdf",
        metadata={"sha256": sha(PDF)},
    )  # metadata lies, no server checksum
    env.minio.put_object(
        env.bucket,
        right_key,
        io.BytesIO(PDF),
        len(PDF),
        content_type="application/pdf",
        metadata={"sha256": sha(PDF)},
    )  # an honest object from an older run
    add_document(env, ana, stage_file(env, "a/x.pdf", PDF), data=PDF)
    add_document(env, luis, stage_file(env, "l/x.pdf", PDF), data=PDF)
    statuses = spy_uploads(monkeypatch)
    assert ok(env.run())["documents_uploaded"] == 2
    assert sorted(statuses) == ["present", "put"]
    assert env.minio.get_object(env.bucket, wrong_key).read() == PDF


def test_an_html_object_served_inline_from_before_is_put_again_as_a_download(env, monkeypatch) -> None:
    ana = add_student(env)
    key = _key_for_next_document(env, ana, HTML, "CV", "cv.html")
    env.minio.put_object(
        env.bucket,
        key,
        io.BytesIO(HTML),
        len(HTML),
        content_type="text/html",
        metadata={
            "sha256": sha(HTML),
            "x-amz-sdk-checksum-algorithm": "SHA256",
            "x-amz-checksum-sha256": b64(HTML),
        },
    )
    add_document(env, ana, stage_file(env, "a/cv.html", HTML), data=HTML, document_type="CV")
    statuses = spy_uploads(monkeypatch)
    ok(env.run())
    assert statuses == ["put"]
    assert _served(env, key) == ("application/octet-stream", "attachment")


def test_a_file_changed_while_uploading_waits_for_the_next_run(env, monkeypatch) -> None:
    from ice_pipeline.resources import DocumentStore

    ana = add_student(env)
    changing = add_document(env, ana, stage_file(env, "a/draft.pdf", PDF), data=PDF, checksum=None)
    steady = add_document(env, ana, stage_file(env, "a/visa.pdf", PDF + b"2"), data=PDF + b"2")
    real = DocumentStore.upload_one
    edited = PDF.replace(b"fake", b"FAKE")

    def edit_then_upload(self, client, item, abort):
        if item.path.name == "draft.pdf":
            item.path.write_bytes(edited)  # same size, other bytes, after hashing
        return real(self, client, item, abort)

    monkeypatch.setattr(DocumentStore, "upload_one", edit_then_upload)
    summary = ok(env.run())
    assert summary["documents_uploaded"] == 1
    assert rejections(env)[changing][:2] == (docs.FILE_CHANGED, True)
    assert set(links(env)) == {steady}
    assert {r["checksum"] for r in documents(env)} == {sha(PDF + b"2")}
    assert all(
        sha(PDF) not in key
        for key in (
            o.object_name for o in env.minio.list_objects(env.bucket, prefix="students/", recursive=True)
        )
    )

    monkeypatch.setattr(DocumentStore, "upload_one", real)
    later = ok(env.run())
    assert later["documents_uploaded"] == 1
    assert changing in links(env) and rejections(env) == {}
    assert sha(edited) in {r["checksum"] for r in documents(env)}


def test_no_path_or_name_reaches_the_run_metadata_or_logs(env, caplog, capsys) -> None:
    import logging

    import pandas as pd
    from dagster import build_asset_context

    from ice_pipeline.assets.common import MigrationOptions, StagingBatch
    from ice_pipeline.assets.documents import prod_documents
    from ice_pipeline.db import read_frame
    from ice_pipeline.resources import DocumentStore, ProductionDatabase

    ana = add_student(env, "Ana María Gómez")
    ok(env.run())  # the student exists; the documents come now
    folder = "ANA MARIA GOMEZ"
    add_document(env, ana, stage_file(env, f"{folder}/Pasaporte Ana María.pdf", PDF), data=PDF)
    add_document(env, ana, f"{folder}/missing.pdf")
    add_document(env, ana, stage_file(env, f"{folder}/cv.pdf", HTML), data=HTML, mime="application/pdf")
    add_document(env, ana, "../GOMEZ-outside.pdf")
    with env.staging.cursor() as cur:
        rows = read_frame(cur, "SELECT * FROM staging_document ORDER BY updated_at, id")
    rows["id"] = rows["id"].astype("int64")
    batch = StagingBatch(
        "staging_document", rows, (str(rows["updated_at"].iloc[-1]), int(rows["id"].iloc[-1]))
    )
    store = DocumentStore(
        endpoint=env.env["MINIO_ENDPOINT"],
        access_key=env.env["MINIO_ACCESS_KEY"],
        secret_key=env.env["MINIO_SECRET_KEY"],
        bucket=env.bucket,
        files_root=str(env.files_root),
    )
    caplog.set_level(logging.DEBUG)
    result = prod_documents(
        context=build_asset_context(),
        staging_documents=batch,
        prod_students=pd.DataFrame(columns=["staging_id", "student_id"]),
        production_db=ProductionDatabase(url=env.production_url),
        document_store=store,
        options=MigrationOptions(),
    )
    meta = {k: getattr(v, "value", v) for k, v in result.metadata.items()}
    assert (meta["documents_uploaded"], meta["documents_rejected"], meta["documents_with_warnings"]) == (
        2,
        2,
        1,
    )
    captured = capsys.readouterr()
    logs = caplog.text + captured.out + captured.err
    assert "documents: 2 new" in logs  # the log line was captured
    text = str(meta) + logs + str(result.value.to_dict())
    for secret in ("GOMEZ", "Gómez", "Pasaporte", "Ana", "missing.pdf", "cv.pdf", os.fspath(env.files_root)):
        assert secret not in text, secret
    # the paths are where an operator needs them: the database's rejection details
    assert any("GOMEZ" in str(details) for _, _, details in rejections(env).values())
