"""Documents: path safety, streaming hashes, keys and types (pure), then the whole job against
real PostgreSQL and the moto S3 server over HTTP with the real minio client."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import pytest
from minio.error import S3Error

from ice_pipeline.logic import documents as docs

PDF = b"%PDF-1.4\n" + b"fake pdf body " * 200 + b"\n%%EOF\n"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01" + b"\x00" * 200


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- pure: paths --------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "root"
    (base / "students" / "a").mkdir(parents=True)
    (base / "students" / "a" / "doc.pdf").write_bytes(PDF)
    (tmp_path / "outside.pdf").write_bytes(b"secret")
    return base


def refusal(root: Path, relative: str) -> str:
    with pytest.raises(docs.DocumentRefused) as caught:
        docs.resolve_inside_root(root, relative)
    return caught.value.reason


def test_a_file_inside_the_root_resolves(root: Path) -> None:
    assert docs.resolve_inside_root(root, "students/a/doc.pdf") == (root / "students/a/doc.pdf").resolve()
    assert docs.resolve_inside_root(root, "./students//a/doc.pdf").name == "doc.pdf"


@pytest.mark.parametrize(
    "relative", ["/etc/passwd", "\\\\server\\share\\x.pdf", "C:\\docs\\x.pdf", "C:x.pdf"]
)
def test_absolute_paths_are_refused(root: Path, relative: str) -> None:
    assert refusal(root, relative) == docs.ABSOLUTE_PATH


@pytest.mark.parametrize(
    "relative", ["../outside.pdf", "students/../../outside.pdf", "students/a/..\\..\\x", "students/.."]
)
def test_dot_dot_is_refused_even_when_it_would_stay_inside(root: Path, relative: str) -> None:
    assert refusal(root, relative) == docs.PATH_ESCAPES_ROOT


def test_symlinks_leading_outside_are_refused(root: Path, tmp_path: Path) -> None:
    (root / "escape.pdf").symlink_to(tmp_path / "outside.pdf")
    (root / "dir_escape").symlink_to(tmp_path)
    (root / "dangling_escape.pdf").symlink_to(tmp_path / "not-there.pdf")
    assert refusal(root, "escape.pdf") == docs.SYMLINK_ESCAPES_ROOT
    assert refusal(root, "dir_escape/outside.pdf") == docs.SYMLINK_ESCAPES_ROOT
    assert refusal(root, "dangling_escape.pdf") == docs.SYMLINK_ESCAPES_ROOT


def test_symlinks_inside_the_root_are_followed(root: Path) -> None:
    (root / "alias.pdf").symlink_to(root / "students" / "a" / "doc.pdf")
    assert docs.resolve_inside_root(root, "alias.pdf") == (root / "students/a/doc.pdf").resolve()


def test_missing_directories_and_special_files(root: Path) -> None:
    assert refusal(root, "students/a/none.pdf") == docs.FILE_MISSING
    assert refusal(root, "students/a") == docs.NOT_A_FILE
    assert refusal(root, "students/a/doc.pdf/x") in (docs.FILE_UNREADABLE, docs.FILE_MISSING)
    assert refusal(root, "") == docs.INVALID_PATH
    assert refusal(root, "a\x00b") == docs.INVALID_PATH
    os.mkfifo(root / "pipe")
    assert refusal(root, "pipe") == docs.NOT_A_FILE
    assert docs.DocumentRefused(docs.FILE_MISSING).retryable
    assert not docs.DocumentRefused(docs.PATH_ESCAPES_ROOT).retryable


def test_inspect_file_refuses_empty_files_and_checksum_mismatches(root: Path) -> None:
    (root / "empty.pdf").write_bytes(b"")
    with pytest.raises(docs.DocumentRefused, match=docs.EMPTY_FILE):
        docs.inspect_file(root, "empty.pdf", None)
    with pytest.raises(docs.DocumentRefused, match=docs.CHECKSUM_MISMATCH):
        docs.inspect_file(root, "students/a/doc.pdf", sha(b"other"))
    with pytest.raises(docs.DocumentRefused, match=docs.CHECKSUM_MISMATCH):
        docs.inspect_file(root, "students/a/doc.pdf", "not-a-checksum")
    found = docs.inspect_file(root, "students/a/doc.pdf", " SHA256:" + sha(PDF).upper())
    assert (found.sha256, found.size) == (sha(PDF), len(PDF))
    assert docs.inspect_file(root, "students/a/doc.pdf", None).sha256 == sha(PDF)


# --- pure: hashing ------------------------------------------------------------


def test_hashing_a_50_mb_file_streams_with_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    expected = hashlib.sha256()
    block = os.urandom(1024 * 1024)
    with open(path, "wb") as out:
        for i in range(50):
            chunk = bytes([i]) + block[1:]
            out.write(chunk)
            expected.update(chunk)
    tracemalloc.start()
    try:
        digest, size = docs.hash_file(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (digest, size) == (expected.hexdigest(), 50 * 1024 * 1024)
    assert peak < 20 * 1024 * 1024, f"hashing held {peak / 1e6:.1f} MB"


def test_hashing_reader_hashes_what_it_hands_out(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(PDF)
    with docs.open_regular(path) as handle:
        reader = docs.HashingReader(handle)
        while reader.read(100):
            pass
    assert (reader.hexdigest(), reader.count) == (sha(PDF), len(PDF))


# --- pure: keys and types -----------------------------------------------------

STUDENT = "0b7c6c1e-3f0a-4d7e-9a51-2f5a0f6b8c11"


def test_object_keys() -> None:
    digest = sha(PDF)
    assert (
        docs.object_key(STUDENT, "PASSPORT", digest, "pasaporte.PDF")
        == f"students/{STUDENT}/PASSPORT/{digest}.pdf"
    )
    assert (
        docs.object_key(STUDENT, "Cédula de ciudadanía", digest, "cedula.Jpeg")
        == f"students/{STUDENT}/Cedula_de_ciudadania/{digest}.jpeg"
    )
    assert docs.object_key(STUDENT, "../../etc", digest, "x") == f"students/{STUDENT}/etc/{digest}"
    assert docs.object_key(STUDENT, None, digest, "archive.tar.gz") == f"students/{STUDENT}/other/{digest}.gz"
    assert docs.object_key(STUDENT, "visa", digest, "weird.p df") == f"students/{STUDENT}/visa/{digest}"
    with pytest.raises(ValueError):
        docs.object_key(STUDENT, "visa", "abc", "x.pdf")
    with pytest.raises(ValueError):
        docs.object_key("../x", "visa", digest, "x.pdf")


def test_decide_mime(tmp_path: Path) -> None:
    assert docs.decide_mime(" Application/PDF; charset=binary", "application/pdf", "scan.pdf") == (
        "application/pdf",
        None,
    )
    assert docs.decide_mime(None, "image/png", "scan") == ("image/png", None)  # from the bytes
    assert docs.decide_mime("application/octet-stream", "image/png", "scan") == ("image/png", None)
    assert docs.decide_mime("not a mime", None, "notes.txt") == ("text/plain", None)  # from the extension
    assert docs.decide_mime(None, None, "blob") == ("application/octet-stream", None)
    mime, warning = docs.decide_mime("application/pdf", "image/png", "scan.pdf")  # the bytes win
    assert mime == "image/png" and "contradicts" in warning and "scan" not in warning


# --- the upload loop against a scripted store (the real server is below) ------


class FakeStore:
    """Just enough of the minio client: stat/put/get/remove, with scripted failures. With `verify`, it
    checks x-amz-checksum-sha256 as AWS S3 and MinIO do (moto does not)."""

    def __init__(self, failures: list[Exception] | None = None, verify: bool = False) -> None:
        self.objects: dict[str, tuple[bytes, dict]] = {}
        self.failures = list(failures or [])
        self.verify = verify
        self.puts = 0
        self.lock = threading.Lock()

    def stat_object(self, bucket, key, extra_headers=None):
        if key not in self.objects:
            raise S3Error(None, "NoSuchKey", "missing", key, "r", "h")
        data, meta = self.objects[key]
        headers = {"x-amz-meta-sha256": meta["sha256"]}
        if "x-amz-checksum-sha256" in meta and (extra_headers or {}).get("x-amz-checksum-mode") == "ENABLED":
            headers["x-amz-checksum-sha256"] = meta["x-amz-checksum-sha256"]
        if "Content-Disposition" in meta:
            headers["content-disposition"] = meta["Content-Disposition"]
        return type(
            "Stat", (), {"size": len(data), "metadata": headers, "content_type": meta["content_type"]}
        )()

    def get_object(self, bucket, key):
        data = self.objects[key][0]
        return type(
            "Response",
            (),
            {
                "stream": lambda self, n: iter([data]),
                "close": lambda self: None,
                "release_conn": lambda self: None,
            },
        )()

    def put_object(
        self, bucket, key, reader, length, content_type, metadata, part_size, num_parallel_uploads
    ):
        with self.lock:
            self.puts += 1
            if self.failures:
                raise self.failures.pop(0)
        body = b""
        while len(body) < length:
            chunk = reader.read(min(part_size, length - len(body)))
            if not chunk:
                raise OSError("stream having not enough data")
            body += chunk
        sent = metadata.get("x-amz-checksum-sha256")
        if self.verify and sent and sent != base64.b64encode(hashlib.sha256(body).digest()).decode():
            raise S3Error(None, "BadDigest", "checksum mismatch", key, "r", "h")
        self.objects[key] = (body, {**metadata, "content_type": content_type})

    def remove_object(self, bucket, key):
        self.objects.pop(key, None)


def _store(tmp_path: Path):
    from ice_pipeline.resources import DocumentStore

    return DocumentStore(
        endpoint="127.0.0.1:9", access_key="a", secret_key="b", bucket="b", files_root=str(tmp_path)
    )


def _item(tmp_path: Path, data: bytes = PDF, name: str = "a.pdf") -> docs.UploadItem:
    path = tmp_path / name
    path.write_bytes(data)
    return docs.UploadItem(
        key=f"students/{STUDENT}/x/{sha(data)}.pdf",
        path=path,
        size=len(data),
        sha256=sha(data),
        content_type="application/pdf",
    )


def test_upload_retries_transient_errors_then_skips_existing_objects(tmp_path: Path, monkeypatch) -> None:
    from ice_pipeline import resources

    monkeypatch.setattr(resources, "BACKOFF_SECONDS", 0.01)
    fake = FakeStore([S3Error(None, "SlowDown", "slow down", None, "r", "h")])
    item = _item(tmp_path)
    outcome = _store(tmp_path).upload_one(fake, item, threading.Event())
    assert (outcome.status, outcome.bytes, fake.puts) == ("put", len(PDF), 2)
    body, meta = fake.objects[item.key]
    assert (body, meta["sha256"]) == (PDF, sha(PDF))
    assert meta["x-amz-checksum-sha256"] == base64.b64encode(hashlib.sha256(PDF).digest()).decode()
    assert _store(tmp_path).upload_one(fake, item, threading.Event()).status == "present"
    assert fake.puts == 2


def test_upload_fails_clearly_on_a_permanent_error_and_stops_the_pool(tmp_path: Path) -> None:
    from ice_pipeline.resources import StoreFailure

    fake = FakeStore([S3Error(None, "AccessDenied", "no", None, "r", "h")] * 50)
    items = [_item(tmp_path, PDF + bytes([i]), f"{i}.pdf") for i in range(20)]
    with pytest.raises(StoreFailure) as caught:
        _store(tmp_path).upload(items, fake)
    assert "AccessDenied" in caught.value.summary
    assert fake.puts < 20  # the rest were never attempted
    assert len(caught.value.outcomes) == 20
    assert all(o.status in ("not_attempted", "put") for o in caught.value.outcomes)


def test_a_file_changed_after_hashing_is_not_left_under_its_key(tmp_path: Path) -> None:
    item = _item(tmp_path)
    item.path.write_bytes(b"X" * len(PDF))  # same size, other content
    outcome = _store(tmp_path).upload_one(FakeStore(), item, threading.Event())
    assert (outcome.status, outcome.reason) == ("refused", docs.FILE_CHANGED)
    item.path.write_bytes(PDF[:10])  # shrank
    fake = FakeStore()
    assert _store(tmp_path).upload_one(fake, item, threading.Event()).reason == docs.FILE_CHANGED
    assert fake.objects == {}


def test_a_server_that_verifies_the_checksum_refuses_a_file_changed_after_hashing(tmp_path: Path) -> None:
    item = _item(tmp_path)
    item.path.write_bytes(b"X" * len(PDF))
    fake = FakeStore(verify=True)
    outcome = _store(tmp_path).upload_one(fake, item, threading.Event())
    assert (outcome.status, outcome.reason, fake.puts) == ("refused", docs.FILE_CHANGED, 1)
    assert fake.objects == {}  # the server stored nothing


# --- integration --------------------------------------------------------------


@pytest.fixture
def env(pipeline):
    """The conftest's isolated staging DB + production DB + bucket + files root."""
    return pipeline


_student_seq = iter(range(10_000, 99_999))


def add_student(p, name: str = "Ana María Gómez") -> int:
    n = next(_student_seq)
    return p.insert(
        "staging_student",
        [
            {
                "full_name": name,
                "email": f"student{n}@example.org",
                "cedula": str(1_020_000_000 + n),
                "student_number": f"ST-{n}",
                "source": "directory+csv",
                "program": "Au Pair",
            }
        ],
    )[0]


def stage_file(p, relative: str, data: bytes) -> str:
    path = p.files_root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return relative


def add_document(
    p,
    student: int,
    relative: str,
    *,
    data: bytes | None = None,
    document_type: str = "PASSPORT",
    name: str | None = None,
    checksum: str | None = "auto",
    mime: str | None = None,
) -> int:
    if checksum == "auto":
        checksum = sha(data) if data is not None else None
    return p.insert(
        "staging_document",
        [
            {
                "student_id": student,
                "document_type": document_type,
                "original_file_path": f"/v3/in/{relative}",
                "staging_file_path": relative,
                "normalized_file_name": name or Path(relative).name,
                "checksum": checksum,
                "file_size": len(data) if data is not None else None,
                "mime_type": mime,
            }
        ],
    )[0]


def documents(p) -> list[dict]:
    rows = p.query("""SELECT d.id::text, d.student_id::text, d.document_type, d.file_name, d.object_key, d.bucket,
                             d.file_size, d.mime_type, d.checksum, d.original_file_path,
                             d.storage_provider::text, d.status FROM student_documents d ORDER BY d.object_key""")
    keys = [
        "id",
        "student_id",
        "document_type",
        "file_name",
        "object_key",
        "bucket",
        "file_size",
        "mime_type",
        "checksum",
        "original_file_path",
        "storage_provider",
        "status",
    ]
    return [dict(zip(keys, r, strict=True)) for r in rows]


def links(p) -> dict[int, tuple[str, str]]:
    return {
        sid: (eid, by)
        for sid, eid, by in p.query(
            "SELECT staging_id, entity_id::text, matched_by FROM ice_pipeline.source_links WHERE entity = 'document'"
        )
    }


def rejections(p) -> dict[int, tuple[str, bool, dict]]:
    return {
        sid: (reason, retryable, details)
        for sid, reason, retryable, details in p.query(
            "SELECT staging_id, reason, retryable, details FROM ice_pipeline.rejected_rows "
            "WHERE staging_table = 'staging_document'"
        )
    }


def objects(p) -> dict[str, object]:
    client = p.minio
    if not client.bucket_exists(p.bucket):
        return {}
    return {
        o.object_name: client.stat_object(p.bucket, o.object_name)
        for o in client.list_objects(p.bucket, prefix="students/", recursive=True)
    }


def document_checks(summary: dict) -> list[dict]:
    """Failed checks of prod_documents in this run (the other assets have their own tests)."""
    return [c for c in summary["failed_checks"] if c["asset"] == "prod_documents"]


def ok(summary: dict) -> dict:
    assert summary["success"], summary["error"]
    assert document_checks(summary) == [], document_checks(summary)
    return summary


def test_upload_then_rerun_uploads_nothing(env) -> None:
    ana, luis = add_student(env), add_student(env, "Luis Pérez")
    pdf = add_document(
        env,
        ana,
        stage_file(env, "ana/Pasaporte.PDF", PDF),
        data=PDF,
        mime="application/pdf",
        name="Pasaporte.PDF",
    )
    png = add_document(
        env, ana, stage_file(env, "ana/scan", PNG), data=PNG, document_type="Cédula", name="cedula"
    )
    copy = add_document(env, ana, stage_file(env, "ana/copy-of-passport.pdf", PDF), data=PDF, checksum=None)
    jpg = add_document(
        env, luis, stage_file(env, "luis/foto.jpg", JPEG), data=JPEG, document_type="PHOTO", mime="garbage"
    )

    first = ok(env.run())
    assert (first["documents_uploaded"], first["documents_skipped"]) == (3, 1)
    rows = documents(env)
    assert len(rows) == 3
    by_checksum = {r["checksum"]: r for r in rows}
    passport = by_checksum[sha(PDF)]
    ana_student = passport["student_id"]
    assert passport["object_key"] == f"students/{ana_student}/PASSPORT/{sha(PDF)}.pdf"
    assert (passport["file_name"], passport["bucket"], passport["file_size"], passport["mime_type"]) == (
        "Pasaporte.PDF",
        env.bucket,
        len(PDF),
        "application/pdf",
    )
    assert (passport["storage_provider"], passport["status"]) == ("MINIO", "PENDING")
    assert passport["original_file_path"] == "/v3/in/ana/Pasaporte.PDF"
    assert by_checksum[sha(PNG)]["object_key"] == f"students/{ana_student}/Cedula/{sha(PNG)}"
    assert by_checksum[sha(PNG)]["mime_type"] == "image/png"
    assert by_checksum[sha(JPEG)]["mime_type"] == "image/jpeg"
    assert by_checksum[sha(JPEG)]["student_id"] != ana_student

    stored = objects(env)
    assert set(stored) == {r["object_key"] for r in rows}
    for row in rows:
        meta = stored[row["object_key"]]
        assert meta.size == row["file_size"]
        assert meta.metadata["x-amz-meta-sha256"] == row["checksum"]
        assert meta.content_type == row["mime_type"]
    assert env.minio.get_object(env.bucket, passport["object_key"]).read() == PDF
    with pytest.raises(S3Error) as no_policy:
        env.minio.get_bucket_policy(env.bucket)  # private: no bucket policy at all
    assert no_policy.value.code == "NoSuchBucketPolicy"

    linked = links(env)
    assert linked[pdf] == (passport["id"], "new")
    assert linked[copy] == (passport["id"], "student_checksum")  # same student, same bytes: one document
    assert {linked[png][1], linked[jpg][1]} == {"new"}
    assert rejections(env) == {}

    before = (documents(env), links(env), {k: v.etag for k, v in objects(env).items()})
    again = ok(env.run())
    assert (again["documents_uploaded"], again["documents_skipped"]) == (0, 0)
    refreshed = ok(env.run(full_refresh=True))
    assert (refreshed["documents_uploaded"], refreshed["documents_skipped"]) == (0, 4)
    assert (documents(env), links(env), {k: v.etag for k, v in objects(env).items()}) == before


def test_the_same_file_for_two_students_is_two_documents(env) -> None:
    ana, luis = add_student(env), add_student(env, "Luis Pérez")
    shared = stage_file(env, "shared/contract.pdf", PDF)
    a = add_document(env, ana, shared, data=PDF, document_type="CONTRACT")
    b = add_document(env, luis, shared, data=PDF, document_type="CONTRACT")
    summary = ok(env.run())
    assert (summary["documents_uploaded"], summary["documents_skipped"]) == (2, 0)
    rows = documents(env)
    assert len(rows) == 2 and len({r["student_id"] for r in rows}) == 2
    assert {r["checksum"] for r in rows} == {sha(PDF)}
    assert len(objects(env)) == 2
    assert {links(env)[a][1], links(env)[b][1]} == {"new"}


def test_unsafe_corrupt_and_missing_files_are_refused_and_the_rest_loads(env, tmp_path: Path) -> None:
    ana = add_student(env)
    (tmp_path / "outside.pdf").write_bytes(b"not yours")
    (env.files_root / "escape.pdf").symlink_to(tmp_path / "outside.pdf")
    good = add_document(env, ana, stage_file(env, "ana/good.pdf", PDF), data=PDF)
    absolute = add_document(env, ana, str(tmp_path / "outside.pdf"))
    traversal = add_document(env, ana, "../outside.pdf")
    symlink = add_document(env, ana, "escape.pdf")
    corrupt = add_document(env, ana, stage_file(env, "ana/changed.pdf", PDF + b"tampered"), data=PDF)
    empty = add_document(env, ana, stage_file(env, "ana/empty.pdf", b""))
    missing = add_document(env, ana, "ana/not-yet.pdf")

    summary = ok(env.run())
    assert summary["documents_uploaded"] == 1
    refused = rejections(env)
    assert {k: v[:2] for k, v in refused.items()} == {
        absolute: (docs.ABSOLUTE_PATH, False),
        traversal: (docs.PATH_ESCAPES_ROOT, False),
        symlink: (docs.SYMLINK_ESCAPES_ROOT, False),
        corrupt: (docs.CHECKSUM_MISMATCH, False),
        empty: (docs.EMPTY_FILE, False),
        missing: (docs.FILE_MISSING, True),
    }
    assert refused[missing][2]["path"] == "ana/not-yet.pdf"
    assert "Ana" not in json.dumps([v[2] for v in refused.values()])  # no personal data in details
    assert set(links(env)) == {good}
    assert len(objects(env)) == 1

    # The missing file arrives: the next run picks the row up (retryable) and clears its rejection.
    data = b"%PDF-1.4 arrived later"
    stage_file(env, "ana/not-yet.pdf", data)
    later = ok(env.run())
    assert later["documents_uploaded"] == 1
    assert missing in links(env) and missing not in rejections(env)
    assert set(rejections(env)) == {absolute, traversal, symlink, corrupt, empty}


def test_documents_wait_for_a_rejected_student(env) -> None:
    nameless = add_student(env, "12345")  # rejected: a name without letters
    doc = add_document(env, nameless, stage_file(env, "x/visa.pdf", PDF), data=PDF)
    summary = ok(env.run())
    assert summary["documents_uploaded"] == 0
    assert rejections(env)[doc][:2] == (docs.STUDENT_REJECTED, True)
    assert rejections(env)[doc][2]["student_state"] == "rejected"

    env.query(
        "UPDATE staging_student SET full_name = 'Carla Ruiz', updated_at = now() WHERE id = %s",
        (nameless,),
        db="staging",
    )
    resolved = ok(env.run())
    assert resolved["documents_uploaded"] == 1
    assert doc in links(env) and rejections(env) == {}


def _start_moto(port: int) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"moto_server did not start on port {port}")


@pytest.fixture
def own_s3(env, monkeypatch):
    """A moto server for this test alone, so it can be killed and restarted without
    touching the session's (restarting on the same port keeps the endpoint)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = {"proc": _start_moto(port), "port": port}
    monkeypatch.setenv("MINIO_ENDPOINT", f"127.0.0.1:{port}")
    env.env["MINIO_ENDPOINT"] = f"127.0.0.1:{port}"
    try:
        yield server
    finally:
        server["proc"].kill()
        server["proc"].wait(10)


def test_s3_stopping_mid_run_fails_clearly_writes_nothing_and_the_next_run_completes(
    env, own_s3, monkeypatch
) -> None:
    from ice_pipeline.resources import DocumentStore

    student = add_student(env)
    payloads = {f"d{i}/file{i}.pdf": PDF + str(i).encode() * 1000 for i in range(12)}
    ids = [
        add_document(env, student, stage_file(env, rel, data), data=data) for rel, data in payloads.items()
    ]

    done, lock = [], threading.Lock()
    real_upload = DocumentStore.upload_one

    def upload_then_crash(self, client, item, abort):
        outcome = real_upload(self, client, item, abort)
        with lock:
            done.append(outcome.status)
            if len(done) == 3:
                own_s3["proc"].kill()  # S3 goes down in the middle of the uploads
                own_s3["proc"].wait(10)
        return outcome

    monkeypatch.setattr(DocumentStore, "upload_one", upload_then_crash)
    started = time.monotonic()
    failed = env.run()
    assert not failed["success"]
    assert time.monotonic() - started < 120  # fails after bounded retries, not hours
    assert "failed after retries" in failed["error"] and "next run completes the rest" in failed["error"]
    assert env.scalar("SELECT count(*) FROM student_documents") == 0  # no row without its object
    assert links(env) == {} and rejections(env) == {}
    assert (
        env.scalar("SELECT count(*) FROM ice_pipeline.watermarks WHERE staging_table = 'staging_document'")
        == 0
    )

    monkeypatch.setattr(DocumentStore, "upload_one", real_upload)
    own_s3["proc"] = _start_moto(own_s3["port"])  # back, and empty: moto keeps objects in memory
    resumed = ok(env.run())
    assert resumed["documents_uploaded"] == 12
    rows = documents(env)
    assert len(rows) == 12 and len({r["checksum"] for r in rows}) == 12
    assert set(links(env)) == set(ids)
    assert set(objects(env)) == {r["object_key"] for r in rows}
    again = ok(env.run(full_refresh=True))
    assert (again["documents_uploaded"], again["documents_skipped"]) == (0, 12)


def test_an_interrupted_upload_is_completed_without_uploading_twice(env, monkeypatch) -> None:
    """Objects uploaded by a run that died before its transaction are linked, not uploaded again."""
    from ice_pipeline.assets import documents as asset

    student = add_student(env)
    for i in range(4):
        data = PDF + bytes([i])
        add_document(env, student, stage_file(env, f"s/{i}.pdf", data), data=data)
    real_transaction = asset.writer_transaction

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash after the uploads")

    monkeypatch.setattr(asset, "writer_transaction", crash)
    assert not env.run()["success"]
    assert len(objects(env)) == 4 and env.scalar("SELECT count(*) FROM student_documents") == 0

    monkeypatch.setattr(asset, "writer_transaction", real_transaction)
    statuses = spy_uploads(monkeypatch)
    summary = ok(env.run())
    assert summary["documents_uploaded"] == 4
    assert statuses == ["present"] * 4  # found in the bucket, not uploaded again
    assert len(documents(env)) == 4 and len(objects(env)) == 4


def spy_uploads(monkeypatch) -> list[str]:
    """The outcome of every upload the DocumentStore makes from now on, in order of completion."""
    from ice_pipeline.resources import DocumentStore

    statuses: list[str] = []
    real_upload = DocumentStore.upload_one

    def spy(self, *args):
        outcome = real_upload(self, *args)
        statuses.append(outcome.status)
        return outcome

    monkeypatch.setattr(DocumentStore, "upload_one", spy)
    return statuses


def test_a_50_mb_file_goes_through(env) -> None:
    student = add_student(env)
    digest = hashlib.sha256()
    path = env.files_root / "big" / "scan.pdf"
    path.parent.mkdir()
    block = os.urandom(1024 * 1024)
    with open(path, "wb") as out:
        for i in range(50):
            chunk = bytes([i]) + block[1:]
            out.write(chunk)
            digest.update(chunk)
    add_document(env, student, "big/scan.pdf", checksum=digest.hexdigest(), mime="application/pdf")
    summary = ok(env.run())
    assert summary["documents_uploaded"] == 1
    (row,) = documents(env)
    stat = env.minio.stat_object(env.bucket, row["object_key"])
    assert stat.size == row["file_size"] == 50 * 1024 * 1024
    assert stat.metadata["x-amz-meta-sha256"] == digest.hexdigest()
    assert "-" in stat.etag  # multipart: never one 50 MB request body


def test_a_dry_run_uploads_nothing_writes_nothing_and_predicts_the_counts(env) -> None:
    ana, luis = add_student(env), add_student(env, "Luis Pérez")
    ok(env.run())  # the students exist; their documents arrive later
    add_document(env, ana, stage_file(env, "a/1.pdf", PDF), data=PDF)
    add_document(env, ana, stage_file(env, "a/1-copy.pdf", PDF), data=PDF)
    add_document(env, luis, stage_file(env, "l/2.png", PNG), data=PNG)
    add_document(env, luis, "l/missing.pdf")

    predicted = env.run(dry_run=True)
    assert predicted["success"], predicted["error"]
    assert (predicted["documents_uploaded"], predicted["documents_skipped"]) == (2, 1)
    assert not env.minio.bucket_exists(env.bucket)
    assert env.scalar("SELECT count(*) FROM student_documents") == 0
    assert env.scalar("SELECT count(*) FROM ice_pipeline.rejected_rows") == 0
    assert (
        env.scalar("SELECT count(*) FROM ice_pipeline.watermarks WHERE staging_table = 'staging_document'")
        == 0
    )

    real = ok(env.run())
    for key in ("documents_uploaded", "documents_skipped", "rows_rejected"):
        assert real[key] == predicted[key], key
    assert len(objects(env)) == 2


def test_a_dry_run_predicts_documents_of_students_the_same_dry_run_would_create(env) -> None:
    """In a dry run the new students exist only in prod_students' output: predicted, never inserted."""
    import uuid

    import pandas as pd
    from dagster import build_asset_context

    from ice_pipeline.assets.common import MigrationOptions, StagingBatch
    from ice_pipeline.assets.documents import prod_documents
    from ice_pipeline.db import read_frame
    from ice_pipeline.resources import DocumentStore, ProductionDatabase

    student = add_student(env)
    add_document(env, student, stage_file(env, "n/1.pdf", PDF), data=PDF)
    add_document(env, student, stage_file(env, "n/2.pdf", PNG), data=PNG, checksum=sha(PDF))  # corrupt
    with env.staging.cursor() as cur:
        rows = read_frame(cur, "SELECT * FROM staging_document ORDER BY updated_at, id")
    rows["id"] = rows["id"].astype("int64")
    batch = StagingBatch(
        "staging_document", rows, (str(rows["updated_at"].iloc[-1]), int(rows["id"].iloc[-1]))
    )
    planned = pd.DataFrame({"staging_id": [student], "student_id": [str(uuid.uuid4())]})
    store = DocumentStore(
        endpoint=env.env["MINIO_ENDPOINT"],
        access_key=env.env["MINIO_ACCESS_KEY"],
        secret_key=env.env["MINIO_SECRET_KEY"],
        bucket=env.bucket,
        files_root=str(env.files_root),
    )
    result = prod_documents(
        context=build_asset_context(),
        staging_documents=batch,
        prod_students=planned,
        production_db=ProductionDatabase(url=env.production_url),
        document_store=store,
        options=MigrationOptions(dry_run=True),
    )
    meta = {k: getattr(v, "value", v) for k, v in result.metadata.items()}
    assert (meta["documents_uploaded"], meta["documents_skipped"], meta["documents_rejected"]) == (1, 0, 1)
    assert meta["bytes_uploaded"] == len(PDF) and meta["dry_run"] is True
    assert "checksum mismatch" in meta["rejection_reasons"]
    assert env.scalar("SELECT count(*) FROM student_documents") == 0
    assert env.scalar("SELECT count(*) FROM ice_pipeline.rejected_rows") == 0
    assert not env.minio.bucket_exists(env.bucket)


def test_s3_down_from_the_start_fails_before_writing(env, own_s3) -> None:
    student = add_student(env)
    add_document(env, student, stage_file(env, "x/1.pdf", PDF), data=PDF)
    own_s3["proc"].kill()
    own_s3["proc"].wait(10)
    failed = env.run()
    assert not failed["success"]
    assert "nothing was written to the database" in failed["error"]
    assert env.scalar("SELECT count(*) FROM student_documents") == 0
    assert env.scalar("SELECT count(*) FROM ice_pipeline.source_links WHERE entity = 'document'") == 0
    own_s3["proc"] = _start_moto(own_s3["port"])
    assert ok(env.run())["documents_uploaded"] == 1


def test_checks_catch_missing_objects_and_list_stray_ones(env, monkeypatch) -> None:
    import io

    from ice_pipeline.checks import documents as asset
    from ice_pipeline.resources import DocumentStore, ProductionDatabase

    student = add_student(env)
    for i in range(3):
        data = PDF + bytes([i])
        add_document(env, student, stage_file(env, f"c/{i}.pdf", data), data=data)
    ok(env.run())
    rows = documents(env)
    env.minio.remove_object(env.bucket, rows[0]["object_key"])
    stray = f"students/{rows[0]['student_id']}/PASSPORT/{'0' * 64}.pdf"
    env.minio.put_object(env.bucket, stray, io.BytesIO(b"x"), 1)

    summary = env.run()
    failed = {c["check"]: c["severity"] for c in document_checks(summary)}
    assert failed == {"documents_objects_present": "ERROR", "documents_no_stray_objects": "WARN"}

    store = DocumentStore(
        endpoint=env.env["MINIO_ENDPOINT"],
        access_key=env.env["MINIO_ACCESS_KEY"],
        secret_key=env.env["MINIO_SECRET_KEY"],
        bucket=env.bucket,
        files_root=str(env.files_root),
    )
    production = ProductionDatabase(url=env.production_url)
    full = asset.documents_objects_present(production_db=production, document_store=store)
    assert not full.passed and full.metadata["mode"].value == "full scan of 3 rows"
    assert full.metadata["offending_ids"].value == [rows[0]["id"]]
    monkeypatch.setattr(asset, "FULL_SCAN_LIMIT", 2)
    monkeypatch.setattr(asset, "SAMPLE_SIZE", 2)
    sampled = asset.documents_objects_present(production_db=production, document_store=store)
    assert sampled.metadata["mode"].value == "random sample of 2 of 3 rows"
    strays = asset.documents_no_stray_objects(production_db=production, document_store=store)
    assert strays.metadata["stray_keys"].value == [stray]
