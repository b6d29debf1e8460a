"""No personal data on disk, in Dagster's database or in what the CLI prints (issue 12).

A demo data set is migrated with a real DAGSTER_HOME on PostgreSQL, then a
dry run covers a second batch; then every file under DAGSTER_HOME, every row
of Dagster's database (pg_dump, as text) and everything the CLI printed are
searched for every e-mail, cédula and mobile phone of the data set, read back
from staging. None may be found.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import psycopg2

BIN = Path(sys.executable).parent
ICE = BIN / "ice-pipeline"


def identifiers(staging_url: str) -> dict[str, set[str]]:
    """E-mails (lower-cased), cédulas (digits, 8+: shorter ones are ordinary numbers) and mobiles (10 digits)."""
    with closing(psycopg2.connect(staging_url)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT email, cedula, phone FROM staging_student UNION ALL "
            "SELECT email, cedula, phone FROM staging_lead"
        )
        rows = cur.fetchall()
    emails, cedulas, phones = set(), set(), set()
    for email, cedula, phone in rows:
        if email and "@" in email:
            emails.add(email.strip().lower())
        digits = re.sub(r"\D", "", cedula or "")
        if 8 <= len(digits) <= 10 and len(set(digits)) > 1:
            cedulas.add(digits)
        digits = re.sub(r"\D", "", phone or "")
        if len(digits) >= 10 and digits[-10] == "3":
            phones.add(digits[-10:])
    return {"email": emails, "cedula": cedulas, "phone": phones}


def find(values: dict[str, set[str]], text: str) -> dict[str, list[str]]:
    """The values present in `text`; digits only when not part of a longer number."""
    lowered = text.lower()
    digit_runs = set(re.findall(r"\d+", text))
    # a phone may be printed as +57 3001234567 or 573001234567: strip the country code
    digit_runs |= {run[2:] for run in digit_runs if len(run) == 12 and run.startswith("57")}
    found = {
        "email": sorted(e for e in values["email"] if e in lowered),
        "cedula": sorted(values["cedula"] & digit_runs),
        "phone": sorted(values["phone"] & digit_runs),
    }
    return {kind: hits for kind, hits in found.items() if hits}


def test_no_personal_data_in_dagster_home_database_or_output(
    pipeline, pg_dagster_home, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(pipeline.env)
    env.update(
        DAGSTER_HOME=str(pg_dagster_home.path),
        DAGSTER_PG_URL=pg_dagster_home.pg_url,
        ICE_LOCAL_DIR=str(tmp_path / "no-embedded-services"),
    )
    printed = []

    def ice(*args: str) -> None:
        result = subprocess.run(
            [str(ICE), *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=900,
            stdin=subprocess.DEVNULL,
        )
        printed.append(result.stdout + result.stderr)
        assert result.returncode == 0, (args, (result.stdout + result.stderr)[-3000:])

    ice("demo-data", "--persons", "200", "--seed", "21")
    ice("migrate")
    ice("migrate", "--json")
    ice("demo-data", "--persons", "200", "--seed", "22")  # new people for the dry run to read
    ice("migrate", "--dry-run", "--json")
    ice("report")

    values = identifiers(pipeline.staging_url)
    assert len(values["email"]) > 200 and len(values["cedula"]) > 200 and len(values["phone"]) > 200
    # The scanner finds what is there: production holds every kind (normalized e-mails, cédulas, E.164 phones).
    production_dump = subprocess.run(
        ["pg_dump", "--data-only", "--table=persons", pipeline.production_url],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    assert set(find(values, production_dump)) == {"email", "cedula", "phone"}

    leaks: dict[str, dict[str, list[str]]] = {}
    files = [p for p in pg_dagster_home.path.rglob("*") if p.is_file()]
    for path in files:
        hits = find(values, path.read_bytes().decode("utf-8", errors="replace"))
        if hits:
            leaks[str(path)] = hits
    dump = subprocess.run(
        [
            "pg_dump",
            "--data-only",
            "--no-owner",
            pg_dagster_home.pg_url.replace("postgresql+psycopg2://", "postgresql://", 1),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    assert "event_logs" in dump and "runs" in dump
    if hits := find(values, dump):
        leaks["dagster database"] = hits
    if hits := find(values, "\n".join(printed)):
        leaks["CLI output"] = hits
    assert leaks == {}, {
        where: {kind: found[:5] for kind, found in hits.items()} for where, hits in leaks.items()
    }
