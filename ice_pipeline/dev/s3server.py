"""The embedded S3 server: moto's S3 over HTTP, with every object kept on disk under `.ice/s3/`.

    python -m ice_pipeline.dev.s3server -H 127.0.0.1 -p PORT --data DIR

moto keeps objects in memory only: `local down`, a killed process or a
machine restart would empty the bucket while `student_documents` still
points at it. This wraps moto's WSGI application: before a mutating request
(PUT, POST, DELETE) is answered, the bucket or object it touched is written
to (or removed from) DIR; at start every stored object is put back into
moto's backend, with its metadata (the SHA-256 the pipeline records), ETag
and modification time. So a client that got its 200 finds the object again
after any restart.

Layout: DIR/<bucket>/<sha256 of the key>.json (key name, ETag, time,
metadata) next to <same>.bin (the bytes), each written atomically.
Development and tests only: moto accepts any credentials and verifies no
checksum (ENVIRONMENT.md).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

MISSING_MOTO = (
    "the embedded S3 server needs moto, an optional extra: install it with "
    "`pip install -e '.[local]'` (`make install` does)."
)
_ACCOUNT = "123456789012"  # moto's default account: every access key maps to it
_REGION = "us-east-1"
_MUTATING = ("PUT", "POST", "DELETE")


def _backend():
    from moto.s3.models import s3_backends

    return s3_backends[_ACCOUNT]["aws"]


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)  # no fsync: like the embedded cluster (fsync=off), a dev store
    os.replace(tmp, path)


class ObjectStore:
    """The on-disk copy of moto's buckets and objects."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.Lock()
        root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _stem(key: str) -> str:
        return hashlib.sha256(key.encode("utf-8")).hexdigest()

    def _bucket_dir(self, bucket: str) -> Path:
        if not bucket or "/" in bucket or bucket in (".", ".."):
            raise ValueError(f"not a bucket name: {bucket!r}")
        return self.root / bucket

    def save_bucket(self, bucket: str) -> None:
        self._bucket_dir(bucket).mkdir(exist_ok=True)

    def drop_bucket(self, bucket: str) -> None:
        folder = self._bucket_dir(bucket)
        if folder.is_dir():
            for child in folder.iterdir():
                child.unlink()
            folder.rmdir()

    def save_key(self, bucket: str, fake_key: Any) -> None:
        folder = self._bucket_dir(bucket)
        folder.mkdir(exist_ok=True)
        stem = self._stem(fake_key.name)
        _atomic_write(folder / f"{stem}.bin", fake_key.value)
        meta = {
            "key": fake_key.name,
            "etag": fake_key.etag.strip('"'),
            "last_modified": fake_key.last_modified.isoformat(),
            "metadata": dict(fake_key.metadata),
        }
        _atomic_write(folder / f"{stem}.json", json.dumps(meta, ensure_ascii=False).encode("utf-8"))

    def drop_key(self, bucket: str, key: str) -> None:
        folder = self._bucket_dir(bucket)
        stem = self._stem(key)
        for suffix in (".json", ".bin"):
            (folder / f"{stem}{suffix}").unlink(missing_ok=True)

    def sync_bucket(self, bucket: str) -> None:
        """Make DIR/<bucket> what moto holds (after a request whose object we could not name)."""
        backend = _backend()
        if bucket not in backend.buckets:
            self.drop_bucket(bucket)
            return
        self.save_bucket(bucket)
        live = {
            name: backend.buckets[bucket].keys[name] for name in list(backend.buckets[bucket].keys.keys())
        }
        folder = self._bucket_dir(bucket)
        stored: dict[str, dict] = {}
        for meta_path in folder.glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                stored[json.loads(meta_path.read_text(encoding="utf-8"))["key"]] = json.loads(
                    meta_path.read_text(encoding="utf-8")
                )
        for name in set(stored) - set(live):
            self.drop_key(bucket, name)
        for name, fake_key in live.items():
            known = stored.get(name)
            if (
                known is None
                or known["etag"] != fake_key.etag.strip('"')
                or known["last_modified"] != fake_key.last_modified.isoformat()
            ):
                self.save_key(bucket, fake_key)

    def sync_key(self, bucket: str, key: str) -> None:
        backend = _backend()
        if bucket not in backend.buckets:
            self.drop_bucket(bucket)
            return
        keys = backend.buckets[bucket].keys
        if key in keys:
            self.save_key(bucket, keys[key])
        else:
            self.drop_key(bucket, key)

    def restore(self) -> tuple[int, int]:
        """Put every stored bucket and object back into moto; returns (buckets, objects)."""
        backend = _backend()
        buckets = objects = 0
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            if folder.name not in backend.buckets:
                backend.create_bucket(folder.name, _REGION)
            buckets += 1
            for meta_path in sorted(folder.glob("*.json")):
                data_path = meta_path.with_suffix(".bin")
                try:
                    meta = json.loads(meta_path.read_text(encoding="utf-8"))
                    value = data_path.read_bytes()
                except (OSError, ValueError):
                    continue  # a half-written pair: the client never got its 200
                fake_key = backend.put_object(
                    folder.name, meta["key"], value, etag=meta["etag"], disable_notification=True
                )
                fake_key.set_metadata(dict(meta["metadata"]))
                fake_key.last_modified = dt.datetime.fromisoformat(meta["last_modified"])
                objects += 1
        return buckets, objects


def _target(environ: dict) -> tuple[str | None, str | None]:
    """(bucket, key) of a path-style request; key None for bucket-level requests."""
    path = urllib.parse.unquote(environ.get("PATH_INFO", ""))
    host = environ.get("HTTP_HOST", "").split(":")[0]
    parts = path.lstrip("/").split("/", 1)
    if (
        host.count(".")
        and not host.replace(".", "").isdigit()
        and host.split(".")[0] not in ("localhost", "s3")
    ):
        # virtual-host style: bucket.host/key
        return host.split(".")[0], path.lstrip("/") or None
    bucket = parts[0] or None
    key = parts[1] if len(parts) > 1 and parts[1] else None
    return bucket, key


class PersistingApp:
    """WSGI middleware: answer with moto, but only after the change is on disk."""

    def __init__(self, app: Callable, store: ObjectStore) -> None:
        self.app = app
        self.store = store

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in _MUTATING:
            return self.app(environ, start_response)
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list, exc_info: Any = None) -> Callable:
            captured["status"], captured["headers"], captured["exc_info"] = status, headers, exc_info
            return lambda data: None

        with self.store.lock:
            body = b"".join(self.app(environ, capture))
            if int(captured["status"].split()[0]) < 300:
                self._persist(environ, method)
        start_response(captured["status"], captured["headers"], captured["exc_info"])
        return [body]

    def _persist(self, environ: dict, method: str) -> None:
        bucket, key = _target(environ)
        if not bucket:
            return
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        if key is None:
            self.store.sync_bucket(bucket)  # create/delete bucket, multi-object delete
        elif method == "PUT" and "uploadId" in query:
            return  # a multipart part: the object exists at completion
        else:
            self.store.sync_key(bucket, key)  # put, copy, complete multipart, delete


def serve(host: str, port: int, data: Path) -> None:
    try:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server
    except ImportError:
        raise SystemExit(f"s3server: {MISSING_MOTO}") from None
    store = ObjectStore(data)
    buckets, objects = store.restore()
    print(f"s3server: restored {objects} objects in {buckets} buckets from {data}", flush=True)
    app = PersistingApp(DomainDispatcherApplication(create_backend_app), store)
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    print(f"s3server: listening on http://{host}:{port}", flush=True)
    server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ice_pipeline.dev.s3server", description=__doc__.splitlines()[0]
    )
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    parser.add_argument("--data", type=Path, required=True, help="directory holding the objects")
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.data.absolute())


if __name__ == "__main__":
    sys.exit(main())
