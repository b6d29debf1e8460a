"""`load`: append the demo frames to the staging database (COPY) and write the files."""

from __future__ import annotations

import csv
import io
import json
import queue
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from ice_pipeline.dev.demo_data.documents import WRITTEN_KINDS, document_bytes
from ice_pipeline.dev.demo_data.generate import DemoData


@dataclass
class LoadResult:
    """What ``load`` inserted: staging ids aligned with the frames' rows, so the
    truth (person_ref) can be joined to what the pipeline later reads."""

    student_ids: np.ndarray
    lead_ids: np.ndarray
    document_ids: np.ndarray
    counts: dict[str, int]
    files_written: int
    bytes_written: int


STUDENT_COLUMNS = [
    "full_name",
    "original_name",
    "email",
    "phone",
    "cedula",
    "birth_date",
    "address",
    "city",
    "country",
    "program",
    "student_number",
    "source",
    "csv_enriched",
]
LEAD_COLUMNS = [
    "full_name",
    "original_name",
    "email",
    "phone",
    "cedula",
    "birth_date",
    "address",
    "city",
    "country",
    "interest_program",
    "service",
    "event",
    "status",
    "notes",
    "source_file",
    "source_sheet",
    "source_row",
]
DOCUMENT_COLUMNS = [
    "document_type",
    "original_file_path",
    "staging_file_path",
    "normalized_file_name",
    "checksum",
    "file_size",
    "mime_type",
]


_NULL = "\\N"  # COPY's NULL marker; the generator never produces this text as a value


def _csv_columns(frame: pd.DataFrame) -> list[np.ndarray]:
    """Columns as object arrays for the csv module; missing values become the
    NULL marker (written unquoted, so it cannot be confused with '')."""
    out = []
    for c in frame.columns:
        s = frame[c]
        values = s.to_numpy(dtype=object, na_value=None)
        isna = s.isna().to_numpy()
        if isna.any():
            values = values.copy()
            values[isna] = _NULL
        out.append(values)
    return out


class _CsvStream:
    """File-like object for ``copy_expert``: a thread renders the CSV in chunks
    (UTF-8 bytes) while the server parses the previous ones, so rendering and
    loading overlap instead of adding up."""

    def __init__(self, columns: list[np.ndarray], chunk: int) -> None:
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._buf, self._pos, self._done = b"", 0, False
        self._thread = threading.Thread(target=self._produce, args=(columns, chunk), daemon=True)
        self._thread.start()

    def _produce(self, columns: list[np.ndarray], chunk: int) -> None:
        try:
            n = len(columns[0]) if columns else 0
            for start in range(0, n, chunk):
                if self._stop.is_set():
                    return
                text = io.StringIO()
                csv.writer(text, lineterminator="\n").writerows(
                    zip(*(c[start : start + chunk] for c in columns), strict=True)
                )
                self._put(text.getvalue().encode("utf-8"))
        except BaseException as exc:  # handed to the reading thread
            self._error = exc
        finally:
            self._put(None)

    def _put(self, item: bytes | None) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def read(self, size: int = -1) -> bytes:
        while self._pos >= len(self._buf):
            if self._done:
                return b""
            item = self._queue.get()
            if item is None:
                self._done = True
                if self._error is not None:
                    raise self._error
                return b""
            self._buf, self._pos = item, 0
        end = len(self._buf) if size is None or size < 0 else self._pos + size
        out = self._buf[self._pos : end]
        self._pos += len(out)
        return out

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _copy(cur: Any, table: str, frame: pd.DataFrame, chunk: int = 50_000) -> None:
    """COPY the frame's columns into ``table`` (CSV, streamed from memory)."""
    if not len(frame):
        return
    sql = (
        f"COPY {table} ({', '.join(frame.columns)}) FROM STDIN "
        f"WITH (FORMAT csv, NULL '{_NULL}', ENCODING 'UTF8')"
    )
    stream = _CsvStream(_csv_columns(frame), chunk)
    try:
        cur.copy_expert(sql, stream, size=1 << 20)
    finally:
        stream.close()


def _reserve_ids(cur: Any, table: str, n: int) -> np.ndarray:
    """Take n ids from the table's own sequence up front, so the rows' ids are
    known (aligned with the frame) without relying on insertion order."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    cur.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,))
    seq = cur.fetchone()[0]
    buf = io.StringIO()
    sql = cur.mogrify("COPY (SELECT nextval(%s::regclass) FROM generate_series(1, %s)) TO STDOUT", (seq, n))
    cur.copy_expert(sql.decode() if isinstance(sql, bytes) else sql, buf)
    return np.array(buf.getvalue().split(), dtype=np.int64)


def _pg_array(values: list[str]) -> str:
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}"


def _write_files(documents: pd.DataFrame, files_root: Path) -> tuple[int, int]:
    written: set[str] = set()
    made: set[Path] = set()
    total = 0
    for path, kind, dtype_, key in zip(
        documents["staging_file_path"].tolist(),
        documents["content_kind"].tolist(),
        documents["document_type"].tolist(),
        documents["content_key"].tolist(),
        strict=True,
    ):
        if kind not in WRITTEN_KINDS or path in written:
            continue
        rel = PurePosixPath(path)
        if rel.is_absolute() or ".." in rel.parts:
            continue  # never write outside files_root
        target = files_root.joinpath(*rel.parts)
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        data = document_bytes(path, dtype_, key)
        target.write_bytes(data)
        written.add(path)
        total += len(data)
    return len(written), total


def load(conn: Any, data: DemoData, files_root: Path) -> LoadResult:
    """Append ``data`` to the staging tables in one transaction (COPY from
    in-memory CSV) and write the document files under ``files_root``.

    Ids are reserved from each table's sequence first, so ``LoadResult`` can
    align them with the frames; reference data is merged with
    ``ON CONFLICT (category, code) DO NOTHING`` so re-loading adds nothing.
    """
    files_root = Path(files_root)
    was_autocommit = conn.autocommit
    if was_autocommit:
        conn.autocommit = False
    try:
        with conn, conn.cursor() as cur:
            student_ids = _reserve_ids(cur, "staging_student", len(data.students))
            lead_ids = _reserve_ids(cur, "staging_lead", len(data.leads))
            document_ids = _reserve_ids(cur, "staging_document", len(data.documents))

            students = data.students[STUDENT_COLUMNS].copy()
            students.insert(0, "id", student_ids)
            _copy(cur, "staging_student", students)

            leads = data.leads[LEAD_COLUMNS].copy()
            leads.insert(0, "id", lead_ids)
            _copy(cur, "staging_lead", leads)

            docs = data.documents[DOCUMENT_COLUMNS].copy()
            docs.insert(
                0,
                "student_id",
                student_ids[data.documents["student_row"].to_numpy(dtype=np.int64)]
                if len(docs)
                else np.zeros(0, dtype=np.int64),
            )
            docs.insert(0, "id", document_ids)
            _copy(cur, "staging_document", docs)

            ref = data.reference_data
            cur.execute(
                "CREATE TEMP TABLE _demo_reference_data (source_file text, category text, code text, "
                "label text, aliases text[], attributes jsonb) ON COMMIT DROP"
            )
            _copy(
                cur,
                "_demo_reference_data",
                pd.DataFrame(
                    {
                        "source_file": ref["source_file"],
                        "category": ref["category"],
                        "code": ref["code"],
                        "label": ref["label"],
                        "aliases": pd.Series([_pg_array(list(a)) for a in ref["aliases"]], dtype=object),
                        "attributes": pd.Series(
                            [json.dumps(a, ensure_ascii=False) for a in ref["attributes"]], dtype=object
                        ),
                    }
                ),
            )
            cur.execute(
                "INSERT INTO staging_reference_data (source_file, category, code, label, aliases, attributes) "
                "SELECT source_file, category, code, label, aliases, attributes FROM _demo_reference_data "
                "ON CONFLICT (category, code) DO NOTHING"
            )
            ref_new = cur.rowcount
            cur.execute("DROP TABLE _demo_reference_data")

            fail = data.lead_failures
            _copy(
                cur,
                "staging_lead_failures",
                pd.DataFrame(
                    {
                        "source_file": fail["source_file"],
                        "source_sheet": fail["source_sheet"],
                        "source_row": fail["source_row"],
                        "raw_data": pd.Series(
                            [json.dumps(r, ensure_ascii=False) for r in fail["raw_data"]], dtype=object
                        ),
                        "error": fail["error"],
                    }
                ),
            )
            files_written, bytes_written = _write_files(data.documents, files_root)
    finally:
        if was_autocommit:
            conn.autocommit = True
    return LoadResult(
        student_ids=student_ids,
        lead_ids=lead_ids,
        document_ids=document_ids,
        counts={
            "staging_student": len(data.students),
            "staging_lead": len(data.leads),
            "staging_document": len(data.documents),
            "staging_reference_data": int(ref_new),
            "staging_lead_failures": len(data.lead_failures),
        },
        files_written=files_written,
        bytes_written=bytes_written,
    )


def truth_frame(data: DemoData, result: LoadResult) -> pd.DataFrame:
    """Ground truth for scoring identity resolution: staging row -> person_ref."""
    parts = [
        pd.DataFrame(
            {
                "staging_table": "staging_student",
                "staging_id": np.asarray(result.student_ids, dtype=np.int64),
                "person_ref": data.students["person_ref"].to_numpy(dtype=np.int64),
            }
        ),
        pd.DataFrame(
            {
                "staging_table": "staging_lead",
                "staging_id": np.asarray(result.lead_ids, dtype=np.int64),
                "person_ref": data.leads["person_ref"].to_numpy(dtype=np.int64),
            }
        ),
    ]
    out = pd.concat(parts, ignore_index=True)
    out["staging_table"] = out["staging_table"].astype("str")
    return out
