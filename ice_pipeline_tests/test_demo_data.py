"""Tests for the demo staging data generator (ice_pipeline.dev.demo_data).

The generator is the pipeline's test bed: these tests pin that every kind of
mess DESIGN §3.1/§4 talks about is really in the data, that the ground truth
is consistent with it, that it is deterministic per seed, and that ``load``
puts it into a real PostgreSQL exactly (NULL vs '' included) and appends.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import unicodedata
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg2
import pytest

from ice_pipeline.dev.demo_data import (
    DOCUMENT_COLUMNS,
    LEAD_COLUMNS,
    STUDENT_COLUMNS,
    DemoData,
    LoadResult,
    generate,
    load,
    truth_frame,
)

SCHEMA = Path(__file__).resolve().parents[1] / "ice_pipeline" / "sql" / "staging_schema.sql"
PERSON_FIELDS = ["email", "phone", "cedula", "birth_date", "address", "city", "country"]


@pytest.fixture(scope="module")
def data() -> DemoData:
    """Big enough that every rare item (0.5% rates, ~0.1% hard cases) is present."""
    return generate(4000, seed=11)


def rows(d: DemoData) -> pd.DataFrame:
    """Students and leads stacked, with the table they came from."""
    return pd.concat([d.students.assign(table="student"), d.leads.assign(table="lead")], ignore_index=True)


def values(series: pd.Series) -> list[str]:
    return series.dropna().astype(str).tolist()


def name_key(name: str) -> str:
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(text.lower().split())


def digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def any_match(pattern: str, items: list[str]) -> bool:
    rx = re.compile(pattern)
    return any(rx.search(v) for v in items)


# --------------------------------------------------------------------------- shape


def test_frames_have_the_staging_columns(data: DemoData) -> None:
    assert list(data.students.columns) == STUDENT_COLUMNS + ["person_ref"]
    assert list(data.leads.columns) == LEAD_COLUMNS + ["person_ref"]
    assert list(data.documents.columns)[: len(DOCUMENT_COLUMNS)] == DOCUMENT_COLUMNS
    assert {"student_row", "content_kind"} <= set(data.documents.columns)
    assert list(data.reference_data.columns) == [
        "source_file",
        "category",
        "code",
        "label",
        "aliases",
        "attributes",
    ]
    assert list(data.lead_failures.columns) == [
        "source_file",
        "source_sheet",
        "source_row",
        "raw_data",
        "error",
    ]
    assert data.students["person_ref"].between(0, 3999).all()
    assert data.leads["person_ref"].between(0, 3999).all()


def test_missing_values_are_null_not_empty_strings(data: DemoData) -> None:
    both = rows(data)
    for column in [c for c in both.columns if c not in ("full_name", "person_ref", "table", "csv_enriched")]:
        assert not (both[column].dropna().astype(str) == "").any(), column
    for frame, columns in (
        (data.students, PERSON_FIELDS + ["program", "student_number", "original_name"]),
        (data.leads, PERSON_FIELDS + ["interest_program", "original_name"]),
    ):
        for column in columns:
            share = frame[column].isna().mean()
            assert 0.05 <= share <= 0.45, (column, share)
    assert data.students["full_name"].notna().all() and data.leads["full_name"].notna().all()


def test_no_nul_bytes_anywhere(data: DemoData) -> None:
    for frame in (data.students, data.leads, data.documents):
        for column in frame.columns:
            assert not any("\x00" in v for v in values(frame[column])), column
    assert "\\u0000" not in json.dumps(data.lead_failures["raw_data"].tolist())


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_frames() -> None:
    a, b = generate(1500, seed=5), generate(1500, seed=5)
    for name in ("students", "leads", "documents", "reference_data", "lead_failures", "hard_cases"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), obj=name)


def test_different_seeds_make_different_people() -> None:
    a, b = generate(1500, seed=1), generate(1500, seed=2)
    assert not a.students["full_name"].equals(b.students["full_name"])

    def cedulas(d: DemoData) -> set[str]:
        found = {digits(v) for v in values(rows(d)["cedula"])}
        return {c for c in found if 6 <= len(c) <= 10 and len(set(c)) > 1}  # junk like 1111111111 aside

    def emails(d: DemoData) -> set[str]:
        return {v.strip().lower() for v in values(rows(d)["email"]) if "@" in v}

    assert not cedulas(a) & cedulas(b)
    assert len(emails(a) & emails(b)) <= 0.01 * len(emails(a))
    numbers_a, numbers_b = (
        set(values(a.students["student_number"])),
        set(values(b.students["student_number"])),
    )
    assert not numbers_a & numbers_b


def test_small_and_empty_sizes() -> None:
    empty = generate(0)
    assert len(empty.students) == len(empty.leads) == len(empty.documents) == 0
    tiny = generate(3, seed=4)
    assert set(tiny.students["person_ref"]) | set(tiny.leads["person_ref"]) <= {0, 1, 2}
    assert len(generate(10, seed=4, documents=False).documents) == 0


# --------------------------------------------------------------------------- overlap / truth


def test_people_overlap_across_students_and_lead_files(data: DemoData) -> None:
    students = set(data.students["person_ref"])
    leads = set(data.leads["person_ref"])
    assert len(students & leads) > 0.2 * 4000
    assert students - leads and leads - students
    per_person = data.leads.groupby("person_ref").agg(
        n=("source_file", "size"), files=("source_file", "nunique")
    )
    assert (per_person["n"] == 1).mean() > 0.5
    assert (per_person["n"] == 2).any() and (per_person["n"] >= 3).any()
    assert (per_person["files"] >= 2).any()
    assert {"leads_2024_ferias.csv", "leads_web_form.csv", "Base Au Pair 2023.xlsx"} <= set(
        data.leads["source_file"]
    )
    xlsx = data.leads[data.leads["source_file"].str.endswith(".xlsx")]
    assert xlsx["source_sheet"].notna().all()
    assert data.leads.loc[data.leads["source_file"].str.endswith(".csv"), "source_sheet"].isna().all()
    # row numbers are unique inside each file/sheet, failed rows included
    numbered = pd.concat(
        [
            data.leads[["source_file", "source_sheet", "source_row"]],
            data.lead_failures[["source_file", "source_sheet", "source_row"]],
        ]
    )
    assert not numbered.fillna({"source_sheet": "-"}).duplicated().any()
    assert numbered["source_row"].min() >= 2


def test_students_fields(data: DemoData) -> None:
    s = data.students
    assert set(s["source"]) == {"directory+csv", "csv_only", "directory_only"}
    assert (s["csv_enriched"] == (s["source"] != "directory_only")).all()
    numbers = s.dropna(subset=["student_number"])
    assert numbers["student_number"].str.fullmatch(r"ICE-20\d\d-\d{7}").all()
    # one number per student person (a person listed twice keeps the same number)
    assert (numbers.groupby("student_number")["person_ref"].nunique() == 1).all()
    assert (numbers.groupby("person_ref")["student_number"].nunique() == 1).all()
    assert s["person_ref"].duplicated().any()  # some students are listed twice
    programs = set(values(s["program"]))
    assert {"AU PAIR", "Au-Pair", "au pair", "Work & Travel", "Work and Travel", "Camp Counselor"} <= programs
    assert any(p.startswith("Intercambio") for p in programs)


def test_leads_fields(data: DemoData) -> None:
    lead = data.leads
    interest = set(values(lead["interest_program"]))
    assert {"Au Pair", "AU PAIR", "aupair", "Work&Travel"} <= interest
    services = set(values(lead["service"]))
    assert {"Au Pair", "AU PAIR", "au pair"} & services and "Tiquetes aéreos" in services
    events = set(values(lead["event"]))
    reference_labels = set(data.reference_data["label"])
    assert events & reference_labels and events - reference_labels
    assert any(e.upper() == e and e.lower() != e for e in events)
    statuses = set(values(lead["status"]))
    assert {"NEW", "CONTACTED", "nuevo", "Interesado"} <= statuses
    notes = values(lead["notes"])
    assert any("," in n for n in notes) and any('"' in n for n in notes) and any("\n" in n for n in notes)


# --------------------------------------------------------------------------- messiness


def test_cedula_formats(data: DemoData) -> None:
    ced = values(rows(data)["cedula"])
    assert any_match(r"^\d{10}$", ced)
    assert any_match(r"^\d{1,3}\.\d{3}\.\d{3}\.\d{3}$", ced)  # 1.020.345.678
    assert any_match(r"^\d{2}\.\d{3}\.\d{3}$", ced)  # 52.345.678
    assert any_match(r"^CC \d+$", ced)
    assert any_match(r"^C\.C\. \d{1,3}(\.\d{3})+$", ced)  # C.C. 1.020.345.678
    assert any_match(r"^\d+ $", ced) and any_match(r"^ \d+$", ced)  # stray spaces
    lengths = pd.Series([len(digits(v)) for v in ced if digits(v) and v not in ("0", "12", "1111111111")])
    assert lengths.between(8, 10).mean() > 0.85
    assert lengths.isin([6, 7]).any()  # old-style numbers
    assert {"N/A", "0", "1111111111", "12"} & set(ced)
    assert any(v in ("N/A", "no tiene", "NA", "-") for v in ced)
    assert rows(data)["cedula"].isna().any()


def test_phone_formats(data: DemoData) -> None:
    phones = values(rows(data)["phone"])
    for pattern in (
        r"^3\d{9}$",
        r"^3\d\d \d{3} \d{4}$",
        r"^\+57 3\d\d \d{3} \d{4}$",
        r"^\(\+57\) 3\d\d-\d{3}-\d{4}$",
        r"^573\d{9}$",
        r"^3\d\d\.\d{3}\.\d{4}$",
        # landlines
        r"^60\d \d{7}$",
        r"^\(\d\) \d{3} \d{4}$",
        r"^[2-7]\d{6}$",
        r"^\+57 60\d \d{7}$",
    ):
        assert any_match(pattern, phones), pattern
    assert rows(data)["phone"].isna().any()


def test_email_mess(data: DemoData) -> None:
    emails = values(rows(data)["email"])
    assert any(e != e.strip() for e in emails)
    assert any(e.strip() != e.strip().lower() and "@" in e for e in emails)
    assert any_match(
        r"^ [A-Z][a-z]+\.[A-Z][a-z]+\d+@[A-Z][a-z]+\.[A-Z]+ $", emails
    )  # ' Maria.Rodriguez1@Gmail.COM '
    assert any("@" not in e for e in emails)
    assert rows(data)["email"].isna().any()


def test_name_mess(data: DemoData) -> None:
    both = rows(data)
    names = values(both["full_name"])
    assert any(n.isupper() for n in names) and any(n.islower() for n in names)
    assert any("í" in n or "é" in n or "á" in n for n in names)
    assert any("Rodriguez" in n for n in names) and any("Rodríguez" in n for n in names)
    assert any("  " in n or n != n.strip() for n in names)
    # surnames first: the row's name key starts with the person's surnames, seen in another row
    keys = both.assign(key=[name_key(n) for n in both["full_name"]])
    flipped = 0
    for _, group in keys.groupby("person_ref"):
        ks = [k.split() for k in group["key"] if k]
        if any(a[0] != b[0] and sorted(a) == sorted(b) for a in ks for b in ks):
            flipped += 1
    assert flipped > 0
    original = both.dropna(subset=["original_name"])
    assert (original["original_name"] != original["full_name"]).any()
    assert both["original_name"].isna().any()


def test_birth_dates(data: DemoData) -> None:
    dates = values(rows(data)["birth_date"])
    assert any_match(r"^(19|20)\d\d-\d\d-\d\d$", dates)
    assert any_match(r"^\d\d/\d\d/(19|20)\d\d$", dates)
    assert any_match(r"^\d\d-\d\d-(19|20)\d\d$", dates)
    impossible = [d for d in dates if re.match(r"^(31/02|30/02|31/04|31-06)|-02-30$", d)]
    assert impossible
    assert rows(data)["birth_date"].isna().any()


def test_places(data: DemoData) -> None:
    both = rows(data)
    cities = set(values(both["city"]))
    assert {"Bogotá", "Bogota", "BOGOTA", "Medellín", "Medellin"} <= cities
    assert {"Cali", "Barranquilla", "Bucaramanga"} <= {c.strip().title() for c in cities}
    assert {"Colombia", "COLOMBIA", "co"} <= set(values(both["country"]))
    assert any_match(
        r"^(Calle|Carrera|Cra\.|Cl\.|Av\.|Avenida|Diagonal|Transversal|Kr|Cll) \d+", values(both["address"])
    )


def test_nasty_values(data: DemoData) -> None:
    both = rows(data)
    names = both["full_name"].tolist()
    assert "'; DROP TABLE persons; --" in names
    assert any(any(ord(c) >= 0x1F300 for c in n) for n in names)  # emoji
    assert any(re.search(r"[\u0600-\u06FF]", n) for n in names)  # Arabic
    assert any(re.search(r"[\u0590-\u05FF]", n) for n in names)  # Hebrew
    assert "" in names and any(n and not n.strip() for n in names)
    long_fields = [v for c in ("notes", "address") for v in values(both[c]) if len(v) >= 10_000]
    assert len(long_fields) >= 2


# --------------------------------------------------------------------------- hard identity cases


def test_hard_cases_are_in_the_data(data: DemoData) -> None:
    both = rows(data)
    by_person = {p: g for p, g in both.groupby("person_ref")}
    cases = data.hard_cases
    assert {"father_son_landline", "siblings_shared_email", "namesakes", "cedula_then_email"} <= set(
        cases["kind"]
    )

    def ced_digits(group: pd.DataFrame) -> set[str]:
        return {digits(v) for v in values(group["cedula"])}

    for _, case in cases[cases["kind"] == "father_son_landline"].iterrows():
        son, father = by_person[case["person_ref"]], by_person[int(case["other_person_ref"])]
        keys = {name_key(n) for n in pd.concat([son, father])["full_name"]}
        assert len(keys) == 1  # same full name
        landlines = {digits(p)[-7:] for p in values(pd.concat([son, father])["phone"])}
        assert len(landlines) == 1  # one shared landline
        assert all(not digits(p).lstrip("57").startswith("3") for p in values(son["phone"]))
        assert ced_digits(son) and ced_digits(father) and not ced_digits(son) & ced_digits(father)

    for _, case in cases[cases["kind"] == "siblings_shared_email"].iterrows():
        a, b = by_person[case["person_ref"]], by_person[int(case["other_person_ref"])]
        mails = {e.strip().lower() for e in values(pd.concat([a, b])["email"])}
        assert len(mails) == 1
        assert not ced_digits(a) & ced_digits(b)
        assert {name_key(n) for n in a["full_name"]} != {name_key(n) for n in b["full_name"]}

    for _, case in cases[cases["kind"] == "namesakes"].iterrows():
        a, b = by_person[case["person_ref"]], by_person[int(case["other_person_ref"])]
        assert {name_key(n) for n in a["full_name"]} == {name_key(n) for n in b["full_name"]}
        assert not ced_digits(a) & ced_digits(b)

    for _, case in cases[cases["kind"] == "cedula_then_email"].iterrows():
        g = by_person[case["person_ref"]]
        assert ((g["table"] == "student") & g["cedula"].notna() & g["email"].notna()).any()
        assert ((g["table"] == "lead") & g["cedula"].isna() & g["email"].notna()).any()
        assert ((g["table"] == "lead") & g["cedula"].notna() & g["email"].isna()).any()


# --------------------------------------------------------------------------- reference data, failures, documents


def test_reference_data(data: DemoData) -> None:
    ref = data.reference_data
    assert {"program", "service", "event", "city", "country"} <= set(ref["category"])
    assert not ref.duplicated(subset=["category", "code"]).any()
    au = ref[(ref["category"] == "program") & (ref["code"] == "AU_PAIR")].iloc[0]
    assert au["label"] == "Au Pair" and {"AU PAIR", "Au-Pair", "au pair", "aupair"} <= set(au["aliases"])
    assert "programas.csv" in set(ref["source_file"])
    event = ref[ref["category"] == "event"].iloc[0]["attributes"]
    assert {"date", "city", "service"} <= set(event)
    bogota = ref[(ref["category"] == "city") & (ref["label"] == "Bogotá")].iloc[0]
    assert "Bogota" in bogota["aliases"]
    co = ref[(ref["category"] == "country") & (ref["code"] == "CO")].iloc[0]
    assert {"COLOMBIA", "co"} <= set(co["aliases"])


def test_lead_failures(data: DemoData) -> None:
    fail = data.lead_failures
    assert len(fail) >= 3
    assert fail["error"].str.len().gt(0).all()
    for raw in fail["raw_data"]:
        assert isinstance(raw, dict)
        json.dumps(raw)


def test_documents_frame(data: DemoData) -> None:
    docs = data.documents
    share = docs["student_row"].nunique() / len(data.students)
    assert 0.3 < share < 0.5
    assert docs.groupby("student_row").size().max() <= 5  # 3 documents + a duplicate + a bad path
    assert set(_ for _ in docs["document_type"]) == {
        "PASSPORT",
        "CEDULA",
        "VISA_FORM",
        "PHOTO",
        "BANK_STATEMENT",
    }
    kinds = set(docs["content_kind"])
    assert {"pdf", "jpeg", "missing", "bad_checksum", "outside_root"} <= kinds
    good = docs[docs["content_kind"] != "outside_root"]
    assert good["staging_file_path"].str.fullmatch(r"demo/s11/\d+/[A-Z_]+_\d\.(pdf|jpg)").all()
    assert 0.1 < docs["checksum"].isna().mean() < 0.3
    assert docs["mime_type"].isna().any() and docs["mime_type"].notna().any()
    assert values(docs["original_file_path"])[0].startswith("C:\\Users\\ice\\Documentos\\")
    # the same file staged twice for one student: same bytes (content_key), same sha256
    dup = docs[docs.duplicated(subset=["student_row", "content_key"], keep=False)]
    assert len(dup) >= 2
    assert dup["staging_file_path"].duplicated().any()  # listed twice
    assert not dup.drop_duplicates("staging_file_path")["content_key"].is_unique  # copied under a second name
    # unique bytes per document otherwise
    assert docs.drop_duplicates(subset=["student_row", "content_key"])["content_key"].is_unique


# --------------------------------------------------------------------------- loading into PostgreSQL


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def staging_dsn() -> Iterator[str]:
    """A throwaway PostgreSQL cluster for this module (ENVIRONMENT.md recipe).

    initdb/pg_ctl refuse to run as root, so as root only the server runs as the
    ``postgres`` user (``runuser``); the tests connect over TCP. The cluster and
    its directory are removed on teardown.
    """
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    root = Path(tempfile.mkdtemp(prefix="ice-demo-pg-", dir="/var/tmp"))
    if as_root:
        shutil.chown(root, "postgres", "postgres")
    data_dir, log = root / "data", root / "server.log"
    port = _free_port()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    started = False
    try:
        subprocess.run(
            prefix
            + [
                "initdb",
                "-D",
                str(data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
            check=True,
            **quiet,
        )
        subprocess.run(
            prefix
            + [
                "pg_ctl",
                "-D",
                str(data_dir),
                "-l",
                str(log),
                "-o",
                f"-p {port} -k {root} -c listen_addresses=127.0.0.1",
                "-w",
                "start",
            ],
            check=True,
            **quiet,
        )
        started = True
        yield f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    finally:
        if started:
            subprocess.run(
                prefix + ["pg_ctl", "-D", str(data_dir), "-m", "fast", "-w", "stop"], check=False, **quiet
            )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def staging_conn(staging_dsn: str) -> Iterator[psycopg2.extensions.connection]:
    """A fresh staging schema (tables dropped and re-created from staging_schema.sql)."""
    with closing(psycopg2.connect(staging_dsn)) as conn:
        with conn, conn.cursor() as cur:
            cur.execute(
                "DROP TABLE IF EXISTS staging_document, staging_student, staging_lead, "
                "staging_reference_data, staging_lead_failures"
            )
            cur.execute(SCHEMA.read_text())
        yield conn


def _table(conn: psycopg2.extensions.connection, table: str, columns: list[str]) -> pd.DataFrame:
    with conn.cursor() as cur:
        cur.execute(f"SELECT id, {', '.join(columns)} FROM {table} ORDER BY id")
        return pd.DataFrame(cur.fetchall(), columns=["id"] + columns)


def _as_python(frame: pd.DataFrame, columns: list[str]) -> list[tuple]:
    out = frame[columns].astype(object)
    return [
        tuple(None if (v is None or (not isinstance(v, (list, dict)) and pd.isna(v))) else v for v in row)
        for row in out.itertuples(index=False)
    ]


def test_load_round_trips_and_appends(staging_conn: psycopg2.extensions.connection, tmp_path: Path) -> None:
    data = generate(1500, seed=21)
    files_root = tmp_path / "files"
    first = load(staging_conn, data, files_root)
    assert isinstance(first, LoadResult)
    assert first.counts == {
        "staging_student": len(data.students),
        "staging_lead": len(data.leads),
        "staging_document": len(data.documents),
        "staging_reference_data": len(data.reference_data),
        "staging_lead_failures": len(data.lead_failures),
    }
    for table, n in first.counts.items():
        with staging_conn.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {table}")
            assert cur.fetchone()[0] == n, table

    # exact round trip, aligned ids: NULL stays NULL, '' stays '', quotes/newlines/emoji/RTL intact
    students = _table(staging_conn, "staging_student", STUDENT_COLUMNS)
    assert students["id"].tolist() == sorted(first.student_ids.tolist())
    order = np.argsort(first.student_ids)
    assert _as_python(students, STUDENT_COLUMNS) == _as_python(data.students.iloc[order], STUDENT_COLUMNS)
    leads = _table(staging_conn, "staging_lead", LEAD_COLUMNS)
    order = np.argsort(first.lead_ids)
    assert _as_python(leads, LEAD_COLUMNS) == _as_python(data.leads.iloc[order], LEAD_COLUMNS)
    assert (students["full_name"] == "").any() and (leads["full_name"] == "").any()
    assert students["email"].isna().any() and leads["cedula"].isna().any()
    docs = _table(staging_conn, "staging_document", ["student_id"] + DOCUMENT_COLUMNS)
    expected_student_ids = first.student_ids[data.documents["student_row"].to_numpy()]
    assert dict(zip(docs["id"], docs["student_id"], strict=True)) == dict(
        zip(first.document_ids.tolist(), expected_student_ids.tolist(), strict=True)
    )
    with staging_conn.cursor() as cur:
        cur.execute(
            "SELECT aliases, attributes FROM staging_reference_data "
            "WHERE category = 'program' AND code = 'AU_PAIR'"
        )
        aliases, attributes = cur.fetchone()
        assert {"AU PAIR", "Au-Pair", "au pair", "aupair"} <= set(aliases) and attributes == {}
        cur.execute("SELECT attributes FROM staging_reference_data WHERE category = 'event' LIMIT 1")
        assert {"date", "city", "service"} <= set(cur.fetchone()[0])
        cur.execute("SELECT raw_data FROM staging_lead_failures ORDER BY id")
        assert [r[0] for r in cur.fetchall()] == data.lead_failures["raw_data"].tolist()

    # document files: real bytes at staging_file_path, matching the staged size / sha256
    written = set()
    for doc in data.documents.itertuples(index=False):
        path = files_root / doc.staging_file_path
        if doc.content_kind in ("missing", "outside_root"):
            if doc.content_kind == "missing":
                assert not path.exists()
            continue
        blob = path.read_bytes()
        written.add(doc.staging_file_path)
        assert len(blob) == doc.file_size
        digest = hashlib.sha256(blob).hexdigest()
        if doc.content_kind == "bad_checksum":
            assert doc.checksum != digest
        elif isinstance(doc.checksum, str):
            assert doc.checksum == digest
        if doc.content_kind == "jpeg":
            assert blob.startswith(b"\xff\xd8\xff") and blob.endswith(b"\xff\xd9")
        else:
            assert blob.startswith(b"%PDF-1.4") and blob.rstrip().endswith(b"%%EOF")
    assert first.files_written == len(written)
    assert first.bytes_written == sum((files_root / p).stat().st_size for p in written)
    assert not (files_root.parent / "etc").exists()

    # truth: one row per staging student/lead row
    truth = truth_frame(data, first)
    assert len(truth) == len(data.students) + len(data.leads)
    assert set(truth["staging_table"]) == {"staging_student", "staging_lead"}
    assert not truth.duplicated(subset=["staging_table", "staging_id"]).any()
    both_tables = truth.groupby("person_ref")["staging_table"].nunique()
    assert (both_tables == 2).any()

    # loading again appends the same people again; reference data is not duplicated
    second = load(staging_conn, data, files_root)
    assert second.student_ids.min() > first.student_ids.max()
    assert second.lead_ids.min() > first.lead_ids.max()
    assert second.counts["staging_reference_data"] == 0
    assert second.counts["staging_student"] == len(data.students)
    with staging_conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM staging_student")
        assert cur.fetchone()[0] == 2 * len(data.students)
        cur.execute("SELECT count(*) FROM staging_reference_data")
        assert cur.fetchone()[0] == len(data.reference_data)
        cur.execute("SELECT count(*) FROM staging_document")
        assert cur.fetchone()[0] == 2 * len(data.documents)


def test_load_is_one_transaction(staging_conn: psycopg2.extensions.connection, tmp_path: Path) -> None:
    data = generate(200, seed=3)
    broken = DemoData(
        students=data.students,
        leads=data.leads.assign(source_row="not a number"),
        documents=data.documents,
        reference_data=data.reference_data,
        lead_failures=data.lead_failures,
    )
    with pytest.raises(psycopg2.Error):
        load(staging_conn, broken, tmp_path)
    with staging_conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM staging_student")
        assert cur.fetchone()[0] == 0
    staging_conn.rollback()
    staging_conn.autocommit = True  # load also works on an autocommit connection
    result = load(staging_conn, data, tmp_path)
    assert result.counts["staging_student"] == len(data.students)
    assert staging_conn.autocommit


def test_generate_timing_100k() -> None:
    started = time.perf_counter()
    d = generate(100_000, seed=0)
    elapsed = time.perf_counter() - started
    print(
        f"\ngenerate(100_000): {elapsed:.2f} s — {len(d.students)} students, {len(d.leads)} leads, "
        f"{len(d.documents)} documents, {len(d.lead_failures)} lead failures"
    )
