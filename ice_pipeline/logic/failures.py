"""Rows V3 could not parse (staging_lead_failures): which can still be a lead, and why the rest cannot.

Pure logic: a failure's `raw_data` (the sheet's header -> cell) becomes a row shaped like
staging_lead, which then goes through `normalize_leads` and identity resolution exactly as a
staging_lead row does. Headers are matched through `ice_pipeline/data/lead_headers.toml`
(spellings as data), folded so that accents, case, punctuation and spaces do not matter.

A row is recoverable when its raw cells give a name and at least one usable identifier (an
e-mail, a phone or a cédula that normalization keeps and that is no placeholder). The others
are rejected with a reason a person understands, followed by V3's own error text. Reasons never
carry cell values.
"""

from __future__ import annotations

import json
import re
import tomllib
import unicodedata
from functools import lru_cache
from importlib import resources

import pandas as pd

from ice_pipeline.logic import identifiers

TABLE = "staging_lead_failures"
# The staging_lead columns a recovered row carries (READ_LEADS' columns, without in_window).
LEAD_COLUMNS = (
    "id",
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
    "created_at",
    "updated_at",
)
# Cells a spreadsheet shows for a broken formula: no data.
SHEET_ERRORS = frozenset(
    {
        "#ref!",
        "#n/a",
        "#value!",
        "#name?",
        "#div/0!",
        "#null!",
        "#num!",
        "#spill!",
        "#calc!",
        "#getting_data",
        "#field!",
        "#blocked!",
        "#unknown!",
        "#busy!",
    }
)
NO_NAME = "no name in the raw cells"
NO_IDENTIFIER = "a name but no usable e-mail, phone or cédula in the raw cells"
UNREADABLE = "raw cells unreadable"
ENCODING_WARNING = "name had characters lost to an encoding error"


def fold(header: str) -> str:
    """'Correo electrónico' -> 'correoelectronico': accents, case, punctuation and spaces ignored."""
    decomposed = unicodedata.normalize("NFKD", str(header))
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[\W_]+", "", plain.casefold())


def header_aliases(text: str) -> dict[str, str]:
    """Folded spelling -> canonical field, from the TOML text; a spelling under two fields is an error."""
    aliases: dict[str, str] = {}
    for field, spellings in tomllib.loads(text).items():
        for spelling in [field, *spellings]:
            key = fold(spelling)
            if aliases.get(key, field) != field:
                raise ValueError(
                    f"lead_headers.toml: header {spelling!r} is listed under {aliases[key]!r} and {field!r}"
                )
            aliases[key] = field
    return aliases


@lru_cache(maxsize=1)
def default_aliases() -> dict[str, str]:
    """The spellings of `ice_pipeline/data/lead_headers.toml` (read once per process)."""
    return header_aliases(
        resources.files("ice_pipeline.data").joinpath("lead_headers.toml").read_text(encoding="utf-8")
    )


def _cell(value) -> str | None:
    """A cell's text, or None for an empty cell, a spreadsheet error or a formula (V3 kept no value)."""
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 1023456789.0 from a numeric cell
    text = str(value).strip()
    if not text or text.casefold() in SHEET_ERRORS or text.startswith("="):
        return None
    return text


def raw_fields(raw: object, aliases: dict[str, str]) -> dict[str, str]:
    """Canonical field -> first non-empty cell under one of its spellings (sheet column order)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    if not isinstance(raw, dict):
        return {}
    fields: dict[str, str] = {}
    for header, value in raw.items():
        field = aliases.get(fold(header))
        text = _cell(value)
        if field and text is not None and field not in fields:
            fields[field] = text
    line = fields.pop("line", None)
    if line is not None:  # named columns win over what the unsplit line's shapes suggest
        fields = line_fields(line) | fields
    return fields


LINE_SEPARATORS = re.compile(r"[;\t|]|,(?=\s*\S)")
DIGITS = re.compile(r"\d")


def line_fields(line: str) -> dict[str, str]:
    """Fields of a headerless line by each cell's shape: '@' -> e-mail; digits -> a mobile when it reads
    as one (10 digits from 3, or +57 3...); the first cell of letters without digits -> the name. Cells
    of no clear shape are left out."""
    fields: dict[str, str] = {}
    for part in (p.strip() for p in LINE_SEPARATORS.split(line)):
        cell = _cell(part)
        if cell is None:
            continue
        digits = "".join(DIGITS.findall(cell))
        if "@" in cell:
            fields.setdefault("email", cell)
        elif digits and re.fullmatch(r"[\d\s+().-]+", cell):
            national = digits[2:] if digits.startswith("57") and len(digits) == 12 else digits
            if len(national) == 10 and national.startswith("3"):
                fields.setdefault("mobile", cell)
            # Other numbers are left out: a landline and a document number look alike without their
            # header, and a misread document number would be a strong, wrong identifier.
        elif not digits and re.search(r"[^\W\d_]", cell):
            fields.setdefault("full_name", cell)
    return fields


def _name(fields: dict[str, str]) -> str | None:
    name = fields.get("full_name") or " ".join(
        p for p in (fields.get("given_names"), fields.get("surnames")) if p
    )
    name = (name or "").replace("\ufffd", "").strip()
    return name if re.search(r"[^\W\d_]", name) else None


def recover_failures(
    failures: pd.DataFrame, aliases: dict[str, str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows shaped like staging_lead, rejections) for the failures read.

    `failures` has id, source_file, source_sheet, source_row, raw_data, error, created_at. A row
    without a name is rejected here; whether one with a name has a usable identifier is decided
    after normalization (`unidentified`), on the same keys identity resolution uses.
    """
    aliases = aliases if aliases is not None else default_aliases()
    leads, rejected = [], []
    for row in failures.itertuples(index=False):
        fields = raw_fields(row.raw_data, aliases)
        name = _name(fields)
        if name is None:
            rejected.append(
                (int(row.id), reason(NO_NAME if fields or row.raw_data else UNREADABLE, row.error))
            )
            continue
        phone = fields.get("mobile") or fields.get("whatsapp") or fields.get("phone")
        notes = fields.get("notes")
        if fields.get("whatsapp") and phone != fields["whatsapp"]:
            notes = "; ".join(p for p in (notes, f"WhatsApp: {fields['whatsapp']}") if p)
        leads.append(
            {
                "id": int(row.id),
                "full_name": name,
                "original_name": name,
                "email": fields.get("email"),
                "phone": phone,
                "cedula": fields.get("cedula") or fields.get("document"),
                "birth_date": fields.get("birth_date"),
                "address": fields.get("address"),
                "city": fields.get("city"),
                "country": fields.get("country"),
                "interest_program": fields.get("program"),
                "service": None,
                "event": None,
                "status": fields.get("status"),
                "notes": notes,
                "source_file": row.source_file,
                "source_sheet": row.source_sheet,
                "source_row": row.source_row,
                "created_at": row.created_at,
                "updated_at": row.created_at,
                "_encoding_damage": "\ufffd"
                in (fields.get("full_name") or "")
                + (fields.get("given_names") or "")
                + (fields.get("surnames") or ""),
            }
        )
    rows = pd.DataFrame(leads, columns=[*LEAD_COLUMNS, "_encoding_damage"])
    rows["id"] = rows["id"].astype("int64")
    rows = rows.astype({c: "object" for c in LEAD_COLUMNS if c not in ("id",)})
    return rows, rejections(rejected)


def reason(what: str, error: object) -> str:
    """What is missing, then V3's error as V3 wrote it."""
    return f"{what} (V3: {error})" if error else what


def rejections(items: list[tuple[int, str]]) -> pd.DataFrame:
    """rejected_rows' shape: not retryable (a raw row never changes; V3 writes a new one)."""
    return pd.DataFrame(
        {
            "staging_table": TABLE,
            "staging_id": [i for i, _ in items],
            "reason": [r for _, r in items],
            "details": "{}",
            "retryable": False,
        },
        columns=["staging_table", "staging_id", "reason", "details", "retryable"],
    )


def unidentified(normalized: pd.DataFrame) -> pd.Series:
    """Recovered rows left with no identifier after normalization (invalid or placeholder values)."""
    phone = normalized["phone"].astype("string")
    usable_phone = phone.notna() & ~identifiers.placeholder_phone(phone).to_numpy(dtype=bool)
    has = normalized["email"].notna() | normalized["cedula"].notna() | usable_phone
    return ~has.fillna(False).astype(bool)
