"""Staged document files: where they may be read from, their SHA-256, their object key and type.

Pure file-system logic and the batch planner (no Dagster, no database, no
object store): the asset `prod_documents` calls these, the tests call them
directly. A document is only
ever read from inside STAGING_FILES_ROOT, streaming, so a large file never
sits in memory.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import re
import stat
import unicodedata
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO

import filetype
import pandas as pd

from ice_pipeline.logic import normalize as nz

CHUNK = 1024 * 1024  # 1 MiB: what hashing holds in memory at a time
SNIFF_BYTES = 8192  # what type sniffing looks at
# student_documents.file_size is a Prisma Int (PostgreSQL integer).
MAX_FILE_SIZE = 2**31 - 1

# Rejection reasons (ice_pipeline.rejected_rows.reason). Short, stable, no personal data.
INVALID_PATH = "invalid path"
ABSOLUTE_PATH = "absolute path"
PATH_ESCAPES_ROOT = "path leaves the files root"
SYMLINK_ESCAPES_ROOT = "symlink points outside the files root"
FILE_MISSING = "file missing"
FILE_UNREADABLE = "file unreadable"
NOT_A_FILE = "not a regular file"
EMPTY_FILE = "empty file"
FILE_TOO_LARGE = "file too large"
CHECKSUM_MISMATCH = "checksum mismatch"
FILE_CHANGED = "file changed while uploading"
STUDENT_REJECTED = "student rejected"
STUDENT_IN_REVIEW = "student in review"
STUDENT_NOT_LOADED = "student not loaded yet"

# Refusals that may go away by themselves (the file arrives, the student
# resolves): such rows are read again by every run until they load.
RETRYABLE_REASONS = frozenset(
    {FILE_MISSING, FILE_UNREADABLE, FILE_CHANGED, STUDENT_REJECTED, STUDENT_IN_REVIEW, STUDENT_NOT_LOADED}
)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MIME = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
_UNINFORMATIVE_MIME = frozenset({"application/octet-stream", "binary/octet-stream", "application/unknown"})
_EXTENSION = re.compile(r"^\.[a-z0-9]{1,10}$")


class DocumentRefused(Exception):  # noqa: N818 - a refusal, not a programming error
    """A staged document that cannot be loaded; `reason` is one of the constants above."""

    def __init__(self, reason: str, retryable: bool | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = reason in RETRYABLE_REASONS if retryable is None else retryable


def resolve_inside_root(root: Path, relative: str) -> Path:
    """The real path of `relative` under `root`, or DocumentRefused.

    Refused: an empty path or one with a NUL byte, an absolute path (POSIX or
    Windows style), any `..` component, a path whose symlinks lead outside
    the root, a missing path, anything that is not a regular file.
    """
    if relative is None or not str(relative).strip() or "\x00" in str(relative):
        raise DocumentRefused(INVALID_PATH)
    relative = str(relative)
    if (
        PurePosixPath(relative).is_absolute()
        or PureWindowsPath(relative).is_absolute()
        or PureWindowsPath(relative).drive
        or relative.startswith("\\")
    ):
        raise DocumentRefused(ABSOLUTE_PATH)
    if any(part == ".." for part in re.split(r"[\\/]+", relative)):
        raise DocumentRefused(PATH_ESCAPES_ROOT)
    real_root = Path(root).resolve()
    candidate = real_root / relative
    try:
        resolved = candidate.resolve(strict=True)
    except FileNotFoundError:
        # A dangling symlink pointing outside is still an escape, not "missing".
        loose = candidate.resolve(strict=False)
        if not loose.is_relative_to(real_root):
            raise DocumentRefused(SYMLINK_ESCAPES_ROOT) from None
        raise DocumentRefused(FILE_MISSING) from None
    except (PermissionError, NotADirectoryError):
        raise DocumentRefused(FILE_UNREADABLE) from None
    except (RuntimeError, OSError):  # symlink loop, name too long
        raise DocumentRefused(INVALID_PATH) from None
    if not resolved.is_relative_to(real_root):
        raise DocumentRefused(SYMLINK_ESCAPES_ROOT)
    try:
        mode = resolved.stat().st_mode
    except PermissionError:
        raise DocumentRefused(FILE_UNREADABLE) from None
    except FileNotFoundError:
        raise DocumentRefused(FILE_MISSING) from None
    if not stat.S_ISREG(mode):
        raise DocumentRefused(NOT_A_FILE)
    return resolved


def open_regular(path: Path) -> BinaryIO:
    """Open `path` for reading without following a final symlink, and only if it is a regular file.

    `resolve_inside_root` returned a symlink-free path; O_NOFOLLOW keeps a
    symlink swapped in since then from being read. O_NONBLOCK keeps a FIFO
    from blocking the open; a non-regular file is refused after fstat.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise DocumentRefused(FILE_MISSING) from None
    except OSError:  # PermissionError, ELOOP (a symlink appeared), EISDIR...
        raise DocumentRefused(FILE_UNREADABLE) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise DocumentRefused(NOT_A_FILE)
        return os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise


def hash_file(path: Path, chunk: int = CHUNK, max_size: int | None = None) -> tuple[str, int]:
    """(SHA-256 hex, size in bytes) of the file, read `chunk` bytes at a time."""
    digest, size, _ = hash_and_sniff(path, chunk, max_size)
    return digest, size


def hash_and_sniff(path: Path, chunk: int = CHUNK, max_size: int | None = None) -> tuple[str, int, bytes]:
    """(SHA-256 hex, size, first SNIFF_BYTES bytes) of the file, in one streaming read.

    With `max_size`, a file that grows past it while being read is refused
    (FILE_TOO_LARGE) instead of being read to its end.
    """
    digest = hashlib.sha256()
    size = 0
    head = b""
    buffer = bytearray(chunk)
    view = memoryview(buffer)
    with open_regular(Path(path)) as handle:
        try:
            while True:
                read = handle.readinto(buffer)
                if not read:
                    break
                if len(head) < SNIFF_BYTES:
                    head += bytes(view[: min(read, SNIFF_BYTES - len(head))])
                digest.update(view[:read])
                size += read
                if max_size is not None and size > max_size:
                    raise DocumentRefused(FILE_TOO_LARGE)
        except OSError:
            raise DocumentRefused(FILE_UNREADABLE) from None
    return digest.hexdigest(), size, head


class HashingReader:
    """A read-only stream over an open file that hashes what is read, for uploads.

    The object store receives exactly the bytes hashed here, so after an
    upload the caller can verify that the stored content is the content the
    key (which contains the SHA-256) promises. Read errors become
    DocumentRefused(FILE_UNREADABLE), so they are told apart from store errors.
    """

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._digest = hashlib.sha256()
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._handle.read(size)
        except OSError:
            raise DocumentRefused(FILE_UNREADABLE) from None
        if data:
            self._digest.update(data)
            self.count += len(data)
        return data

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def normalize_checksum(value: str | None) -> str | None:
    """A staged checksum as lower-case hex ('SHA256:ABC…' -> 'abc…'); None when absent."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text.startswith("sha256:"):
        text = text[len("sha256:") :].strip()
    return text or None


def checksum_matches(staged: str | None, computed: str) -> bool:
    """True when no checksum was staged, or the staged one equals the computed SHA-256."""
    expected = normalize_checksum(staged)
    return expected is None or (bool(_SHA256.match(expected)) and expected == computed)


def sanitize_document_type(document_type: str | None) -> str:
    """A document type as a key segment: accents folded, only [A-Za-z0-9_-], never empty."""
    text = unicodedata.normalize("NFKD", str(document_type or "")).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^A-Za-z0-9_-]+", "_", text.strip()).strip("_-")
    return text[:64] or "other"


def file_extension(file_name: str | None) -> str:
    """Lower-case extension of a file name ('Pasaporte.PDF' -> '.pdf'); '' when none or odd."""
    suffix = PurePosixPath(str(file_name or "").replace("\\", "/")).suffix.lower()
    return suffix if _EXTENSION.match(suffix) else ""


def object_key(student_id: str, document_type: str | None, sha256: str, file_name: str | None) -> str:
    """`students/<student_id>/<document_type>/<sha256><ext>`: content-addressed, so re-uploads are idempotent."""
    if not _SHA256.match(sha256):
        raise ValueError("sha256 must be 64 lower-case hex digits")
    student = str(student_id).strip().lower()
    if not re.fullmatch(r"[0-9a-f-]{1,64}", student):
        raise ValueError("student_id must be a UUID")
    return f"students/{student}/{sanitize_document_type(document_type)}/{sha256}{file_extension(file_name)}"


def staged_mime(value: str | None) -> str | None:
    """The staged MIME type when it looks like one ('Application/PDF; x=y' -> 'application/pdf')."""
    if value is None:
        return None
    text = str(value).split(";", 1)[0].strip().lower()
    return text if _MIME.match(text) and text not in _UNINFORMATIVE_MIME else None


# WHATWG MIME sniffing: the HTML signatures (each followed by a space or '>').
_HTML_TAGS = (
    b"<!doctype html",
    b"<html",
    b"<head",
    b"<script",
    b"<iframe",
    b"<h1",
    b"<div",
    b"<font",
    b"<table",
    b"<a",
    b"<style",
    b"<title",
    b"<b",
    b"<body",
    b"<br",
    b"<p",
)


def sniff_mime(head: bytes) -> str | None:
    """The type the first bytes show: magic numbers (`filetype`), then the markup a browser would
    execute (HTML, SVG, XML), which `filetype` does not know. None when the bytes say nothing."""
    if not head:
        return None
    kind = filetype.guess(head)
    if kind is not None and kind.mime and kind.mime not in _UNINFORMATIVE_MIME:
        return kind.mime
    text = head.lstrip(b"\xef\xbb\xbf").lstrip(b" \t\r\n\x0c").lower()
    if text.startswith(b"<?xml"):
        if b"<svg" in text:
            return "image/svg+xml"
        return "application/xhtml+xml" if b"<html" in text else "text/xml"
    if text.startswith(b"<svg") and text[4:5] in (b" ", b">", b"\n", b"\t", b"\r", b"/"):
        return "image/svg+xml"
    if text.startswith(b"<!--"):
        return "text/html"
    for tag in _HTML_TAGS:
        if text.startswith(tag) and text[len(tag) : len(tag) + 1] in (b" ", b">"):
            return "text/html"
    return None


# Staged types that name the same content as what `filetype` reports.
_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "application/x-pdf": "application/pdf",
    "application/acrobat": "application/pdf",
    "application/x-zip-compressed": "application/zip",
    "image/x-ms-bmp": "image/bmp",
    "image/x-bmp": "image/bmp",
    "image/tif": "image/tiff",
}
_OLE = frozenset(
    {
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/vnd.ms-outlook",
        "application/x-ole-storage",
        "application/x-cfb",
    }
)
# Types whose content always starts with a signature `filetype` knows: a file
# staged (or named) as one of these whose bytes show nothing is not one.
_SIGNED = frozenset(
    {
        "application/pdf",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/tiff",
        "image/bmp",
        "image/heic",
        "image/avif",
    }
)
# Types a browser executes when served inline: never served as themselves.
ACTIVE_TYPES = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "text/xml",
        "application/xml",
        "text/javascript",
        "application/javascript",
        "application/x-javascript",
        "application/ecmascript",
        "text/ecmascript",
        "text/xsl",
        "application/xslt+xml",
        "text/x-javascript",
        "application/x-shockwave-flash",
    }
)
SAFE_CONTENT_TYPE = "application/octet-stream"
ATTACHMENT = "attachment"


def _same_content(claimed: str, sniffed: str) -> bool:
    claimed = _ALIASES.get(claimed, claimed)
    if claimed == sniffed:
        return True
    if sniffed == "application/zip":  # docx, xlsx, odt, epub, jar...: zip containers
        return (
            claimed.endswith("+zip")
            or "openxmlformats" in claimed
            or "opendocument" in claimed
            or claimed in ("application/java-archive", "application/vnd.android.package-archive")
        )
    if sniffed in _OLE:
        return claimed in _OLE
    if sniffed == "application/xhtml+xml":
        return claimed in ("text/html", "application/xml", "text/xml")
    if sniffed == "text/xml":
        return claimed == "application/xml" or claimed.endswith("+xml")
    return False


def decide_mime(staged: str | None, sniffed: str | None, file_name: str | None) -> tuple[str, str | None]:
    """(MIME type to store, warning or None). The content wins over what was staged or the name says.

    A staged type the bytes contradict (staged `application/pdf`, the bytes are
    HTML or a PNG) gives way to the sniffed one, with a warning; a type that
    needs a signature the bytes do not carry becomes application/octet-stream.
    The warning names types only, never the file.
    """
    claimed = staged_mime(staged)
    source = "staged"
    if claimed is None and file_name:
        claimed, _ = mimetypes.guess_type(str(file_name).replace("\\", "/"), strict=False)
        source = "extension"
    if sniffed is not None:
        if claimed is None or _same_content(claimed, sniffed):
            return (claimed if claimed and source == "staged" else sniffed), None
        return sniffed, f"{source} type {claimed} contradicts the content ({sniffed}): stored as {sniffed}"
    if claimed is None:
        return SAFE_CONTENT_TYPE, None
    if _ALIASES.get(claimed, claimed) in _SIGNED:
        return (
            SAFE_CONTENT_TYPE,
            f"{source} type {claimed} contradicts the content (unrecognized): stored as {SAFE_CONTENT_TYPE}",
        )
    return claimed, None


def is_active(mime: str | None) -> bool:
    """True for types a browser runs (HTML, SVG, XML, JavaScript): they are only ever downloaded."""
    text = str(mime or "").split(";", 1)[0].strip().lower()
    return text in ACTIVE_TYPES or text.endswith("+xml")


def served_headers(mime: str) -> tuple[str, str | None]:
    """(Content-Type, Content-Disposition) of the object: active types as an opaque download.

    No file name in Content-Disposition: names may carry a person's name.
    """
    return (SAFE_CONTENT_TYPE, ATTACHMENT) if is_active(mime) else (mime, None)


@dataclass(frozen=True)
class InspectedFile:
    path: Path  # real path, inside the root
    sha256: str
    size: int
    sniffed_mime: str | None = None


def inspect_file(
    root: Path, relative: str, staged_checksum: str | None, max_size: int = MAX_FILE_SIZE
) -> InspectedFile:
    """Resolve, size-check, hash and validate one staged file, or raise DocumentRefused.

    The size comes from stat() first: a file over the limit is refused without
    reading a byte of it.
    """
    path = resolve_inside_root(root, relative)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DocumentRefused(FILE_MISSING) from None
    except OSError:
        raise DocumentRefused(FILE_UNREADABLE) from None
    if size > max_size:
        raise DocumentRefused(FILE_TOO_LARGE)
    if size == 0:
        raise DocumentRefused(EMPTY_FILE)
    sha256, size, head = hash_and_sniff(path, max_size=max_size)
    if size == 0:
        raise DocumentRefused(EMPTY_FILE)
    if not checksum_matches(staged_checksum, sha256):
        raise DocumentRefused(CHECKSUM_MISMATCH)
    return InspectedFile(path=path, sha256=sha256, size=size, sniffed_mime=sniff_mime(head))


def student_refusal(state: str) -> DocumentRefused:
    """Why a document waits: its staging student is 'rejected', 'in_review' or not loaded yet."""
    reason = {"rejected": STUDENT_REJECTED, "in_review": STUDENT_IN_REVIEW}.get(state, STUDENT_NOT_LOADED)
    return DocumentRefused(reason, retryable=True)


# --- planning a batch ---------------------------------------------------------

STAGING_TABLE = "staging_document"
HASH_WORKERS = 4
ACCEPTED_COLUMNS = [
    "staging_id",
    "student_id",
    "path",
    "staging_file_path",
    "staging_student_id",
    "checksum",
    "file_size",
    "document_type",
    "file_name",
    "original_file_path",
    "staged_mime",
    "mime_type",
    "warnings",
]
REJECTION_COLUMNS = ["staging_table", "staging_id", "reason", "details", "retryable"]


@dataclass
class DocumentPlan:
    """What to do with one batch: files that passed, refusals, and the groups per (student, sha256)."""

    accepted: pd.DataFrame  # one row per staging document that passed (ACCEPTED_COLUMNS)
    rejections: list[dict] = field(default_factory=list)
    left_as_linked: int = 0  # already linked rows whose file/student now fails: link kept, not rejected
    hashed_bytes: int = 0

    def rejection_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rejections, columns=REJECTION_COLUMNS)


def _text(value) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


def _int_or_none(value) -> int | None:
    text = _text(value)
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def rejection(
    staging_id: int, path: str | None, staging_student_id: int | None, reason: str, retryable: bool, **details
) -> dict:
    """A rejected_rows record. Its details hold the staged path (it may carry a name): the database
    keeps it for operators; it never goes to logs or run metadata."""
    payload = {"path": path, "staging_student_id": staging_student_id, **details}
    return {
        "staging_table": STAGING_TABLE,
        "staging_id": int(staging_id),
        "reason": reason,
        "details": json.dumps(payload, sort_keys=True),
        "retryable": retryable,
    }


def student_states(rows: pd.DataFrame, prod_students: pd.DataFrame, states: pd.DataFrame) -> pd.DataFrame:
    """Per staging student: production student id (this run's output first, then earlier links) and state
    (linked | in_review | rejected | not_loaded), indexed by staging student id."""
    states = states.copy()
    states["staging_id"] = states["staging_id"].astype("int64")
    if len(prod_students):
        this_run = prod_students[["staging_id", "student_id"]].dropna().copy()
        this_run["staging_id"] = pd.to_numeric(this_run["staging_id"]).astype("int64")
        this_run = this_run.drop_duplicates("staging_id", keep="last").set_index("staging_id")["student_id"]
        fresh = states["staging_id"].map(this_run)
        states["student_id"] = fresh.astype("string").fillna(states["student_id"])
    states["state"] = "linked"
    states.loc[states["student_id"].isna() & (states["in_review"] == "t"), "state"] = "in_review"
    states.loc[states["student_id"].isna() & (states["rejected"] == "t"), "state"] = "rejected"
    states.loc[states["student_id"].isna() & ~states["state"].isin(["in_review", "rejected"]), "state"] = (
        "not_loaded"
    )
    return states.set_index("staging_id")


def _warnings(*items: str | None) -> str | None:
    found = [w for w in items if w]
    return "; ".join(found) if found else None


def plan_batch(
    rows: pd.DataFrame,
    students: pd.DataFrame,
    linked_docs: set[int],
    root: Path,
    inspect: Callable = inspect_file,
) -> DocumentPlan:
    """Validate every staged document: student state first, then the file (hashed in a small pool).

    A row already linked whose student or file now fails keeps its link (counted, not rejected).
    """
    plan = DocumentPlan(accepted=pd.DataFrame(columns=ACCEPTED_COLUMNS))
    state_of = dict(
        zip(students.index, zip(students["state"], students["student_id"], strict=True), strict=True)
    )
    candidates = []
    for row in rows.itertuples(index=False):
        state, student_id = state_of.get(_int_or_none(row.student_id), ("not_loaded", None))
        if state == "linked":
            candidates.append((row, str(student_id)))
        elif int(row.id) in linked_docs:
            plan.left_as_linked += 1
        else:
            plan.rejections.append(
                rejection(
                    row.id,
                    _text(row.staging_file_path),
                    _int_or_none(row.student_id),
                    student_refusal(state).reason,
                    True,
                    student_state=state,
                )
            )

    def _inspect(item):
        row, _ = item
        try:
            return inspect(root, _text(row.staging_file_path), _text(row.checksum))
        except DocumentRefused as refusal:
            return refusal

    accepted = []
    with ThreadPoolExecutor(max_workers=HASH_WORKERS, thread_name_prefix="hash") as pool:
        for (row, student_id), found in zip(candidates, pool.map(_inspect, candidates), strict=True):
            if isinstance(found, DocumentRefused):
                if int(row.id) in linked_docs:
                    plan.left_as_linked += 1
                    continue
                extra = {}
                if found.reason == CHECKSUM_MISMATCH:
                    extra = {"staged_checksum": normalize_checksum(_text(row.checksum))}
                plan.rejections.append(
                    rejection(
                        row.id,
                        _text(row.staging_file_path),
                        _int_or_none(row.student_id),
                        found.reason,
                        found.retryable,
                        **extra,
                    )
                )
                continue
            plan.hashed_bytes += found.size
            staged_size = _int_or_none(row.file_size)
            file_name = _text(row.normalized_file_name)
            mime, mime_warning = decide_mime(
                _text(row.mime_type), found.sniffed_mime, file_name or Path(found.path).name
            )
            accepted.append(
                {
                    "staging_id": int(row.id),
                    "student_id": student_id,
                    "path": found.path,
                    "staging_file_path": _text(row.staging_file_path),
                    "staging_student_id": _int_or_none(row.student_id),
                    "checksum": found.sha256,
                    "file_size": found.size,
                    "document_type": _text(row.document_type),
                    "file_name": file_name,
                    "original_file_path": _text(row.original_file_path),
                    "staged_mime": _text(row.mime_type),
                    "mime_type": mime,
                    "warnings": _warnings(
                        "staged file_size differs from the file"
                        if staged_size not in (None, found.size)
                        else None,
                        mime_warning,
                    ),
                }
            )
    plan.accepted = pd.DataFrame(accepted, columns=ACCEPTED_COLUMNS)
    return plan


def present_in(frame: pd.DataFrame, existing: pd.DataFrame) -> pd.Series:
    """Which rows of `frame` have their (student_id, checksum) among `existing`'s."""
    present = set(zip(existing["student_id"], existing["checksum"], strict=True))
    return pd.Series(
        [(s, c) in present for s, c in zip(frame["student_id"], frame["checksum"], strict=True)],
        index=frame.index,
        dtype=bool,
    )


def new_documents(accepted: pd.DataFrame, existing: pd.DataFrame, bucket: str) -> pd.DataFrame:
    """One new document per (student, sha256) not already in production: the first staging row of each group."""
    heads = accepted.drop_duplicates(["student_id", "checksum"], keep="first")
    fresh = heads[~present_in(heads, existing)].copy()
    fresh["document_type"] = nz.clean_text(fresh["document_type"].astype("string"), max_length=100).fillna(
        "other"
    )
    names = nz.clean_text(fresh["file_name"].astype("string"), max_length=255)
    fresh["file_name"] = names.fillna(
        pd.Series([Path(p).name for p in fresh["path"]], index=fresh.index, dtype="string")
    )
    fresh["object_key"] = [
        object_key(s, t, c, n)
        for s, t, c, n in zip(
            fresh["student_id"], fresh["document_type"], fresh["checksum"], fresh["file_name"], strict=True
        )
    ]
    fresh["bucket"] = bucket
    fresh["document_id"] = [str(uuid.uuid4()) for _ in range(len(fresh))]
    return fresh.reset_index(drop=True)


@dataclass(frozen=True)
class UploadItem:
    """One object to put: the file, the key its SHA-256 names, and how the object is served."""

    key: str
    path: Path
    size: int
    sha256: str
    content_type: str
    disposition: str | None = None  # "attachment" for types a browser would execute


def upload_items(fresh: pd.DataFrame) -> list[UploadItem]:
    items = []
    for row in fresh.itertuples(index=False):
        content_type, disposition = served_headers(str(row.mime_type))
        items.append(
            UploadItem(
                key=row.object_key,
                path=Path(row.path),
                size=int(row.file_size),
                sha256=row.checksum,
                content_type=content_type,
                disposition=disposition,
            )
        )
    return items


def drop_refused(
    plan: DocumentPlan, fresh: pd.DataFrame, outcomes: list, linked_docs: set[int]
) -> pd.DataFrame:
    """Take the groups the store refused (file changed while uploading) out of the plan: every staging
    row of such a group waits for the next run (a retryable rejection). `outcomes` are the uploads of
    `fresh`, in order (none on a dry run). Returns the fresh rows left."""
    refused = {
        (r.student_id, r.checksum): o.reason
        for r, o in zip(fresh.itertuples(index=False), outcomes, strict=False)
        if o.status == "refused"
    }
    if not refused:
        return fresh
    accepted = plan.accepted
    keys = list(zip(accepted["student_id"], accepted["checksum"], strict=True))
    hit = pd.Series([k in refused for k in keys], index=accepted.index, dtype=bool)
    for row, key in zip(
        accepted[hit].itertuples(index=False), [k for k in keys if k in refused], strict=True
    ):
        if row.staging_id in linked_docs:
            plan.left_as_linked += 1
            continue
        student = None if pd.isna(row.staging_student_id) else int(row.staging_student_id)
        plan.rejections.append(rejection(row.staging_id, row.staging_file_path, student, refused[key], True))
    plan.accepted = accepted[~hit].reset_index(drop=True)
    fresh_hit = [k in refused for k in zip(fresh["student_id"], fresh["checksum"], strict=True)]
    return fresh[~pd.Series(fresh_hit, index=fresh.index, dtype=bool)].reset_index(drop=True)


def document_links(
    accepted: pd.DataFrame, document_of: dict[tuple[str, str], str], inserted: set[str]
) -> pd.DataFrame:
    """Lineage of every accepted staging row: `new` for the first row of a group whose row this run
    inserted, `student_checksum` for the rest (same student, same bytes: one document)."""
    document_ids = [
        document_of.get((s, c)) for s, c in zip(accepted["student_id"], accepted["checksum"], strict=True)
    ]
    first_of_group = ~accepted.duplicated(["student_id", "checksum"], keep="first")
    return pd.DataFrame(
        {
            "staging_table": STAGING_TABLE,
            "staging_id": accepted["staging_id"],
            "entity": "document",
            "entity_id": document_ids,
            "warnings": accepted["warnings"],
            "matched_by": [
                "new" if first and d in inserted else "student_checksum"
                for first, d in zip(first_of_group, document_ids, strict=True)
            ],
        }
    )


def document_ids(existing: pd.DataFrame, planned: pd.DataFrame | None = None) -> dict[tuple[str, str], str]:
    """(student, sha256) -> document id, from rows found in production and (dry run) rows planned."""
    found = {
        (s, c): d for d, s, c in existing[["document_id", "student_id", "checksum"]].itertuples(index=False)
    }
    if planned is not None:
        for d, s, c in planned[["document_id", "student_id", "checksum"]].itertuples(index=False):
            found[(s, c)] = d
    return found
