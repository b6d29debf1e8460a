"""Demo staging data: realistic, messy Colombian V3 staging rows with known truth (dev/test/demo only).

Why this exists: the pipeline (DESIGN §4) must resolve identities in data
that looks like what V3 really captures (cédulas as ``1.020.345.678`` or
``CC 1020345678``, phones in every local format, names with and without
accents, people who appear as students *and* in several lead files, plus a
few genuinely hard cases). Tests and benchmarks need that data at any size,
deterministically for a seed, and need the ground truth (which staging rows
are the same person) to score identity resolution.

``generate`` builds the frames with vectorised numpy/pandas (no Python loop per
row for the bulk columns); ``load`` appends them to the staging database with
COPY in one transaction and writes the document files; ``truth_frame`` maps
the staging ids that ``load`` assigned to the ground-truth person index.

Parts: ``names`` (vocabularies), ``rates`` (every probability, named),
``draw`` (random helpers), ``persons`` (the true people and hard cases),
``values`` (messy renderings), ``documents`` (files), ``generate``, ``load``.
"""

from ice_pipeline.dev.demo_data.generate import DemoData, generate
from ice_pipeline.dev.demo_data.load import (
    DOCUMENT_COLUMNS,
    LEAD_COLUMNS,
    STUDENT_COLUMNS,
    LoadResult,
    load,
    truth_frame,
)

__all__ = [
    "DOCUMENT_COLUMNS",
    "LEAD_COLUMNS",
    "STUDENT_COLUMNS",
    "DemoData",
    "LoadResult",
    "generate",
    "load",
    "truth_frame",
]
