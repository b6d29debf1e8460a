"""From raw staging rows to person records ready for identity resolution.

One function for students, leads and the existing production persons, so
the three are compared on exactly the same normalized keys.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ice_pipeline.logic import identifiers
from ice_pipeline.logic import normalize as nz

MAX_ADDRESS_LENGTH = 1000
MAX_COUNTRY_LENGTH = 100  # persons.country is VARCHAR(100)


def alias_map(reference: pd.DataFrame, category: str) -> dict[str, str]:
    """label_key(code | label | alias) -> label, for one reference-data category."""
    rows = reference[reference["category"] == category]
    mapping: dict[str, str] = {}
    for code, label, aliases in zip(rows["code"], rows["label"], rows["aliases"], strict=True):
        names = [code, label, *(aliases or [])]
        keys = nz.label_key(pd.Series(names, dtype="string"))
        for key in keys.dropna():
            mapping.setdefault(key, label)
    return mapping


def _warn(condition: pd.Series | np.ndarray, text: str) -> pd.Series:
    return pd.Series(np.where(np.asarray(condition, dtype=bool), text + "; ", ""))


def prepare_person_rows(raw: pd.DataFrame, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """Normalize identity and contact fields; decide rejections and warnings.

    Returns one row per input row (same order) with display values, match
    keys, `reject_reason` (NA when the row can be loaded) and `warnings`
    (what was dropped or cut, without personal values).
    """
    reference = (
        reference if reference is not None else pd.DataFrame(columns=["category", "code", "label", "aliases"])
    )
    out = pd.DataFrame(index=raw.index)
    raw_name = raw["full_name"].astype("string")
    out["display_name"] = nz.display_name(raw_name)
    out["name_key"] = nz.name_key(out["display_name"])
    cleaned_name = nz.clean_text(raw_name)
    # How well written the name is *as it would be stored* (the display form): with its
    # accents (0) or without (1). Ranked on the display form so that a batch and its
    # increments compare the same spellings (survivorship.better_spelling).
    non_ascii = out["display_name"].str.contains(r"[^\x00-\x7f]", regex=True).fillna(False)
    out["name_rank"] = np.where(non_ascii.to_numpy(dtype=bool), 0, 1)
    original = raw["original_name"].astype("string") if "original_name" in raw else raw_name
    out["original_name"] = nz.clean_text(original.fillna(raw_name), max_length=nz.MAX_NAME_LENGTH)

    out["email"], email_status = nz.email_key(raw["email"])
    out["cedula"], cedula_status = nz.cedula_key(raw["cedula"])
    out["phone"], phone_kind = nz.phone_e164(raw["phone"])
    # Placeholders identify nobody (DESIGN §4). An e-mail or cédula typed for someone who has none is
    # not stored (persons.email and persons.cedula are unique: one person would "own" it); a
    # placeholder phone stays the person's phone but never matches.
    fake_email = identifiers.placeholder_email(out["email"])
    fake_cedula = identifiers.placeholder_cedula(out["cedula"])
    fake_phone = identifiers.placeholder_phone(out["phone"])
    out["email"] = out["email"].mask(fake_email)
    out["cedula"] = out["cedula"].mask(fake_cedula)
    out["mobile"] = out["phone"].where((phone_kind == "mobile") & ~fake_phone.to_numpy())
    dates, date_status = nz.by_unique(raw["birth_date"], nz.birth_date)
    out["birth_date"] = pd.Series(dates, index=raw.index).astype("string")
    out["address"] = nz.clean_text(raw["address"], max_length=MAX_ADDRESS_LENGTH)
    out["address_key"] = nz.label_key(out["address"])
    out["city"] = nz.canonical_label(raw["city"], alias_map(reference, "city"))
    out["city_key"] = nz.by_unique(out["city"], nz.label_key)
    out["country"] = nz.canonical_label(raw["country"], alias_map(reference, "country")).str.slice(
        0, MAX_COUNTRY_LENGTH
    )
    out["country_key"] = nz.by_unique(out["country"], nz.label_key)

    has_letter = out["display_name"].str.contains(r"[^\W\d_]", regex=True).fillna(False)
    too_long = (cleaned_name.str.len() > nz.MAX_NAME_LENGTH).fillna(False)
    out["reject_reason"] = (
        pd.Series(
            np.select(
                [out["display_name"].isna().to_numpy(), too_long.to_numpy(), ~has_letter.to_numpy()],
                ["no name", f"name longer than {nz.MAX_NAME_LENGTH} characters", "name has no letters"],
                "",
            ),
            index=raw.index,
        )
        .replace("", pd.NA)
        .astype("string")
    )
    address_len = nz.clean_text(raw["address"]).str.len().fillna(0)
    warnings = (
        _warn(date_status == "impossible", "birth date impossible: dropped")
        + _warn(date_status == "unparseable", "birth date unreadable: dropped")
        + _warn(email_status == "invalid", "e-mail invalid: not used")
        + _warn(cedula_status == "implausible", "cédula implausible: kept in staging, not used to match")
        + _warn((cedula_status == "old") & ~fake_cedula, "cédula old-style (6-7 digits)")
        + _warn(fake_email, "e-mail is a placeholder: not stored, not used to match")
        + _warn(fake_cedula, "cédula is a placeholder: not stored, not used to match")
        + _warn(fake_phone, "phone is a placeholder: not used to match")
        + _warn(phone_kind == "invalid", "phone not recognised: dropped")
        + _warn(address_len > MAX_ADDRESS_LENGTH, f"address cut to {MAX_ADDRESS_LENGTH} characters")
    )
    warnings.index = raw.index
    out["warnings"] = warnings.str.rstrip("; ").replace("", pd.NA).astype("string")
    return out
