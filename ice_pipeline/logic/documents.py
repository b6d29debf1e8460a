"""Staged document files: where they may be read from, their SHA-256, their object key and type.

Pure file-system logic (no Dagster, no database, no object store): the asset
`prod_documents` calls these, the tests call them directly. A document is only
ever read from inside STAGING_FILES_ROOT, streaming, so a large file never
sits in memory.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO

import filetype

CHUNK = 1024 * 1024  # 1 MiB: what hashing holds in memory at a time
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
RETRYABLE_REASONS = frozenset({FILE_MISSING, FILE_UNREADABLE, FILE_CHANGED,
                               STUDENT_REJECTED, STUDENT_IN_REVIEW, STUDENT_NOT_LOADED})

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
    if (PurePosixPath(relative).is_absolute() or PureWindowsPath(relative).is_absolute()
            or PureWindowsPath(relative).drive or relative.startswith("\\")):
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


def hash_file(path: Path, chunk: int = CHUNK) -> tuple[str, int]:
    """(SHA-256 hex, size in bytes) of the file, read `chunk` bytes at a time."""
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(chunk)
    view = memoryview(buffer)
    with open_regular(Path(path)) as handle:
        try:
            while True:
                read = handle.readinto(buffer)
                if not read:
                    break
                digest.update(view[:read])
                size += read
        except OSError:
            raise DocumentRefused(FILE_UNREADABLE) from None
    return digest.hexdigest(), size


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
        text = text[len("sha256:"):].strip()
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


def guess_mime(staged: str | None, path: Path | None, file_name: str | None) -> str:
    """Content type: the staged one when valid, else from the first bytes, else the extension."""
    found = staged_mime(staged)
    if found:
        return found
    if path is not None:
        try:
            kind = filetype.guess(str(path))  # reads only the first few KiB
        except (OSError, TypeError):
            kind = None
        if kind is not None and kind.mime:
            return kind.mime
    for name in (file_name, path.name if path is not None else None):
        if name:
            guessed, _ = mimetypes.guess_type(str(name).replace("\\", "/"), strict=False)
            if guessed:
                return guessed
    return "application/octet-stream"


@dataclass(frozen=True)
class InspectedFile:
    path: Path          # real path, inside the root
    sha256: str
    size: int


def inspect_file(root: Path, relative: str, staged_checksum: str | None) -> InspectedFile:
    """Resolve, hash and validate one staged file, or raise DocumentRefused."""
    path = resolve_inside_root(root, relative)
    sha256, size = hash_file(path)
    if size == 0:
        raise DocumentRefused(EMPTY_FILE)
    if not checksum_matches(staged_checksum, sha256):
        raise DocumentRefused(CHECKSUM_MISMATCH)
    if size > MAX_FILE_SIZE:
        raise DocumentRefused(FILE_TOO_LARGE)
    return InspectedFile(path=path, sha256=sha256, size=size)


def student_refusal(state: str) -> DocumentRefused:
    """Why a document waits: its staging student is 'rejected', 'in_review' or not loaded yet."""
    reason = {"rejected": STUDENT_REJECTED, "in_review": STUDENT_IN_REVIEW}.get(state, STUDENT_NOT_LOADED)
    return DocumentRefused(reason, retryable=True)
