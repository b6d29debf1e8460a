"""No drift between the bot's Prisma schema and what `ice-pipeline db init` builds (issue 15).

Runs the real Prisma CLI (6.19.3, WebAssembly engine, from npm: tools/prisma-drift) in both
directions: `prisma db pull` of a database with the baseline, migration 20251105_add_staging_fields
and the ice_pipeline schema, diffed against prisma/schema.prisma. Every index the pipeline needs on
a Prisma table must be declared there, or this fails and prints the SQL of the difference.
`make install` installs Node.js (Debian) and the CLI into .venv/prisma-drift; without Node.js the
test is skipped. About 1.5 min on a loaded 2-core machine with the CLI installed (npx starts four times).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO / "tools" / "prisma-drift" / "run-check.sh"
DRIFT_DIR = REPO / ".venv" / "prisma-drift"


@pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npx") is None,
    reason="Node.js/npm not installed: `make install` installs them (apt-get nodejs npm) as root",
)
def test_prisma_schema_matches_the_database_db_init_builds(scratch_databases, tmp_path):
    # tpl_production holds exactly what `ice-pipeline db init` creates in production (conftest).
    url = scratch_databases(f"prisma_{uuid.uuid4().hex[:10]}", "tpl_production")
    work = DRIFT_DIR if (DRIFT_DIR / "node_modules" / "prisma").is_dir() else tmp_path / "prisma-drift"
    env = {**os.environ, "DATABASE_URL": url, "PRISMA_DRIFT_DIR": str(work)}
    done = subprocess.run(
        [str(TOOL), str(REPO / "prisma" / "schema.prisma")],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
    )
    assert done.returncode == 0, (
        f"Prisma drift (exit {done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
    )
    assert "database -> schema: exit 0; schema -> database: exit 0" in done.stdout
