"""Demo document rows and their file bytes (valid small PDFs and JPEGs, rebuilt from a key)."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd

from ice_pipeline.dev.demo_data.draw import pick
from ice_pipeline.dev.demo_data.names import DOC_ORIGINAL_NAMES, DOC_TYPES
from ice_pipeline.dev.demo_data.rates import (
    DOCUMENT_COUNT_P,
    MISSING_CHECKSUM,
    MISSING_MIME_TYPE,
    MISSING_ORIGINAL_PATH,
    P_CEDULA_AS_JPEG,
    P_STUDENT_WITH_DOCUMENTS,
)

# content kinds whose bytes ``load`` writes to disk
WRITTEN_KINDS = ("pdf", "jpeg", "bad_checksum")


def empty_documents() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "document_type": pd.Series(dtype=object),
            "original_file_path": pd.Series(dtype=object),
            "staging_file_path": pd.Series(dtype=object),
            "normalized_file_name": pd.Series(dtype=object),
            "checksum": pd.Series(dtype=object),
            "file_size": pd.Series(dtype="Int64"),
            "mime_type": pd.Series(dtype=object),
            "student_row": pd.Series(dtype="int64"),
            "content_kind": pd.Series(dtype=object),
            "content_key": pd.Series(dtype=object),
        }
    )


def _pdf_bytes(key: str, lines: int) -> bytes:
    """A valid one-page PDF (correct xref offsets) whose text makes it unique."""
    digest = hashlib.sha256(key.encode()).hexdigest()
    text = [f"ICE demo document {key}"] + [
        f"linea {i + 1}: {digest[i % 48 : i % 48 + 16]}" for i in range(lines)
    ]
    ops = ["BT", "/F1 11 Tf", "72 740 Td", "14 TL"]
    for t in text:
        safe = t.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(f"({safe}) Tj T*")
    ops.append("ET")
    stream = "\n".join(ops).encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n".encode() + b"0000000000 65535 f \n"
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def _jpeg_bytes(key: str) -> bytes:
    """A valid baseline 8x8 grey JPEG; a comment segment makes it unique."""

    def seg(marker: int, payload: bytes) -> bytes:
        return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload

    shade = hashlib.sha256(key.encode()).digest()
    comment = f"ICE demo photo {key} {shade.hex()}".encode("ascii")
    return b"".join(
        [
            b"\xff\xd8",
            seg(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"),
            seg(0xFE, comment),
            seg(0xDB, b"\x00" + b"\x01" * 64),
            seg(0xC0, b"\x08\x00\x08\x00\x08\x01\x01\x11\x00"),
            # one-symbol Huffman tables: DC category 0 and AC end-of-block, both code "00"
            seg(0xC4, b"\x00" + b"\x00\x01" + b"\x00" * 14 + b"\x00"),
            seg(0xC4, b"\x10" + b"\x00\x01" + b"\x00" * 14 + b"\x00"),
            seg(0xDA, b"\x01\x01\x00\x00\x3f\x00"),
            b"\x0f",  # DC "00" + EOB "00", padded with 1-bits
            b"\xff\xd9",
        ]
    )


def document_bytes(path: str, document_type: str, key: str) -> bytes:
    """The file's bytes, rebuilt from its key (``load`` never keeps them in memory)."""
    if path.endswith(".jpg"):
        return _jpeg_bytes(key)
    return _pdf_bytes(key, 12 if document_type == "BANK_STATEMENT" else 2)


def document_rows(rng: np.random.Generator, students: pd.DataFrame, seed: int) -> pd.DataFrame:
    """~40% of students get 1–3 documents; a small share are bad on purpose
    (staged twice, listed but missing, wrong checksum, path outside the root)."""
    n_s = len(students)
    has = np.flatnonzero(rng.random(n_s) < P_STUDENT_WITH_DOCUMENTS)
    ndocs = 1 + pick(rng, len(has), DOCUMENT_COUNT_P)
    types = np.argsort(rng.random((len(has), len(DOC_TYPES))), axis=1)
    cedula_jpeg = rng.random(len(has)) < P_CEDULA_AS_JPEG
    names = students["full_name"].to_numpy(dtype=object, na_value=None)
    rows: list[dict[str, Any]] = []
    for i, srow in enumerate(has.tolist()):
        folder = " ".join(str(names[srow]).split()).upper() or "SIN NOMBRE"
        for j in range(int(ndocs[i])):
            dtype_ = DOC_TYPES[int(types[i, j])]
            jpeg = dtype_ == "PHOTO" or (dtype_ == "CEDULA" and bool(cedula_jpeg[i]))
            ext = "jpg" if jpeg else "pdf"
            key = f"s{seed}-r{srow}-{dtype_}-1"
            orig = DOC_ORIGINAL_NAMES[dtype_][(srow + j) % 4]
            rows.append(
                {
                    "document_type": dtype_,
                    "original_file_path": f"C:\\Users\\ice\\Documentos\\Estudiantes {2019 + srow % 6}\\{folder}\\{orig}.{ext}",
                    "staging_file_path": f"demo/s{seed}/{srow}/{dtype_}_1.{ext}",
                    "normalized_file_name": f"{dtype_.lower()}_1.{ext}",
                    "mime_type": "image/jpeg" if jpeg else "application/pdf",
                    "student_row": srow,
                    "content_kind": "jpeg" if jpeg else "pdf",
                    "content_key": key,
                }
            )
    nd = len(rows)
    if nd:
        u = rng.random(nd)
        # disjoint picks, at least one (two for duplicates) of each bad kind
        bad_pool = rng.permutation(nd)
        n_bad = max(2, nd // 50)
        pdfs = [i for i in bad_pool.tolist() if rows[i]["content_kind"] == "pdf"]
        wrong = pdfs[: n_bad // 2]
        wrong_set = set(wrong)
        rest = [i for i in bad_pool.tolist() if i not in wrong_set]
        missing, dups = rest[: n_bad // 2], rest[n_bad // 2 : n_bad // 2 + n_bad]
        for i in missing:
            rows[i]["content_kind"] = "missing"
        for i in wrong:
            rows[i]["content_kind"] = "bad_checksum"
        extra = []
        for t, i in enumerate(dups):
            copy = dict(rows[i])
            if t % 2:  # the same file copied under a second name
                copy["staging_file_path"] = copy["staging_file_path"].replace("_1.", "_2.")
                copy["normalized_file_name"] = copy["normalized_file_name"].replace("_1.", "_2.")
            extra.append(copy)
        rows.extend(extra)
        outside = dict(rows[int(bad_pool[-1])])
        outside.update(
            staging_file_path=f"demo/s{seed}/../../../etc/passwd",
            content_kind="outside_root",
            normalized_file_name="passwd",
            mime_type=None,
        )
        rows.append(outside)
        # checksums / sizes as V3 recorded them
        no_sum = np.r_[u, rng.random(len(rows) - nd)] < MISSING_CHECKSUM
        no_mime = rng.random(len(rows)) < MISSING_MIME_TYPE
        no_orig = rng.random(len(rows)) < MISSING_ORIGINAL_PATH
        for i, row in enumerate(rows):
            kind = row["content_kind"]
            if kind == "outside_root":
                row.update(checksum=None, file_size=None)
                continue
            data = document_bytes(row["staging_file_path"], row["document_type"], row["content_key"])
            digest = hashlib.sha256(data).hexdigest()
            if kind == "bad_checksum":
                digest = hashlib.sha256(data + b"stale").hexdigest()
            row["checksum"] = None if (no_sum[i] and kind != "bad_checksum") else digest
            row["file_size"] = len(data)
            if no_mime[i]:
                row["mime_type"] = None
            if no_orig[i]:
                row["original_file_path"] = None
        rows.sort(key=lambda d: (d["student_row"], d["staging_file_path"]))
    frame = empty_documents()
    if not rows:
        return frame
    return pd.DataFrame(
        {
            c: (
                pd.array([row.get(c) for row in rows], dtype="Int64")
                if c == "file_size"
                else pd.Series([row[c] for row in rows], dtype="int64")
                if c == "student_row"
                else pd.Series([row.get(c) for row in rows], dtype=object)
            )
            for c in frame.columns
        }
    )
