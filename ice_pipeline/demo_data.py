"""Demo staging data: realistic, messy Colombian V3 staging rows with known truth.

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
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import queue
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["DemoData", "LoadResult", "generate", "load", "truth_frame"]

_S = np.dtypes.StringDType()
_AT = np.array("@", dtype=_S)

# ---------------------------------------------------------------------------
# Vocabularies (weights are rough Colombian frequencies; only relative values
# matter). Accented spellings are the canonical ones; rows strip accents at
# random, as people do when they type.
# ---------------------------------------------------------------------------

_FEMALE = [
    ("María", 12), ("Laura", 6), ("Valentina", 6), ("Daniela", 6), ("Camila", 6),
    ("Sofía", 5), ("Natalia", 5), ("Paula", 5), ("Andrea", 5), ("Carolina", 4),
    ("Juliana", 4), ("Mariana", 4), ("Alejandra", 4), ("Catalina", 3), ("Luisa", 3),
    ("Diana", 3), ("Sara", 3), ("Isabella", 3), ("Manuela", 3), ("Gabriela", 3),
    ("Lina", 2), ("Angélica", 2), ("Mónica", 2), ("Verónica", 2), ("Lucía", 2),
    ("Ximena", 2), ("Tatiana", 2), ("Melissa", 2), ("Estefanía", 2), ("Leidy", 2),
    ("Viviana", 2), ("Paola", 2), ("Johana", 2), ("Karen", 2), ("Ángela", 2),
    ("Salomé", 2), ("Valeria", 3), ("Yuliana", 1), ("Inés", 1), ("Nicole", 1),
]
_MALE = [
    ("Juan", 12), ("Carlos", 6), ("Andrés", 6), ("Santiago", 6), ("Sebastián", 5),
    ("Alejandro", 4), ("Felipe", 4), ("David", 5), ("Daniel", 5), ("Diego", 4),
    ("Luis", 5), ("Jorge", 3), ("José", 4), ("Miguel", 3), ("Nicolás", 4),
    ("Camilo", 4), ("Esteban", 3), ("Mateo", 3), ("Samuel", 3), ("Julián", 3),
    ("Óscar", 2), ("Jesús", 2), ("Fernando", 2), ("Ricardo", 2), ("Álvaro", 2),
    ("Héctor", 2), ("Iván", 2), ("Jhon", 2), ("Brayan", 2), ("Cristian", 3),
    ("Kevin", 2), ("Mauricio", 2), ("Germán", 1), ("Rubén", 1), ("Simón", 2),
    ("Tomás", 2), ("Martín", 2), ("Joaquín", 1), ("Hernán", 1), ("Fabián", 1),
]
_FEMALE_2 = [
    ("José", 4), ("Fernanda", 4), ("Camila", 3), ("Alejandra", 3), ("Paula", 2),
    ("Isabel", 3), ("Victoria", 2), ("Lucía", 2), ("Andrea", 2), ("Marcela", 2),
    ("Cristina", 2), ("del Pilar", 2), ("Ángel", 1),
]
_MALE_2 = [
    ("Carlos", 5), ("David", 4), ("José", 3), ("Felipe", 4), ("Andrés", 3),
    ("Esteban", 3), ("Camilo", 3), ("Sebastián", 3), ("Alejandro", 2), ("Manuel", 3),
    ("Fernando", 2), ("Eduardo", 2), ("Antonio", 2), ("Ignacio", 1), ("de Jesús", 1),
]
_SURNAMES = [
    ("Rodríguez", 30), ("Gómez", 25), ("González", 24), ("Martínez", 22), ("García", 22),
    ("López", 20), ("Hernández", 18), ("Sánchez", 17), ("Ramírez", 17), ("Pérez", 16),
    ("Díaz", 15), ("Torres", 14), ("Moreno", 14), ("Rojas", 13), ("Vargas", 12),
    ("Jiménez", 11), ("Muñoz", 11), ("Castro", 10), ("Ortiz", 10), ("Álvarez", 10),
    ("Ruiz", 9), ("Suárez", 9), ("Romero", 9), ("Herrera", 9), ("Valencia", 8),
    ("Quintero", 7), ("Restrepo", 7), ("Cárdenas", 7), ("Ospina", 6), ("Gutiérrez", 8),
    ("Castaño", 5), ("Mejía", 6), ("Zapata", 6), ("Ríos", 6), ("Osorio", 6),
    ("Agudelo", 4), ("Salazar", 6), ("Londoño", 5), ("Giraldo", 6), ("Arango", 5),
    ("Montoya", 5), ("Henao", 4), ("Duque", 4), ("Gaviria", 3), ("Bermúdez", 3),
    ("Peña", 5), ("Cabrera", 4), ("Parra", 5), ("Acosta", 5), ("Rincón", 4),
    ("Camacho", 4), ("Beltrán", 4), ("Niño", 3), ("Ibáñez", 2), ("Córdoba", 4),
    ("Chávez", 3), ("Patiño", 4), ("Escobar", 4), ("Bernal", 4), ("Guzmán", 5),
    ("Aguilar", 4), ("Mendoza", 4), ("Rueda", 3), ("Villamizar", 3), ("Barrera", 3),
    ("Forero", 3), ("Cortés", 4), ("Caicedo", 3), ("Mosquera", 3), ("Palacios", 3),
    ("Pineda", 3), ("Sierra", 3), ("Vélez", 4), ("Uribe", 3), ("Núñez", 2),
    ("De la Hoz", 1), ("Del Castillo", 1),
]

# (label, department, DANE code, landline area digit, extra alias, weight)
_CITIES = [
    ("Bogotá", "Bogotá D.C.", "11001", "1", "Bogotá D.C.", 35),
    ("Medellín", "Antioquia", "05001", "4", "Medellin, Antioquia", 15),
    ("Cali", "Valle del Cauca", "76001", "2", "Santiago de Cali", 10),
    ("Barranquilla", "Atlántico", "08001", "5", "B/quilla", 7),
    ("Cartagena", "Bolívar", "13001", "5", "Cartagena de Indias", 4),
    ("Bucaramanga", "Santander", "68001", "7", "B/manga", 5),
    ("Pereira", "Risaralda", "66001", "6", "Pereira, Risaralda", 4),
    ("Manizales", "Caldas", "17001", "6", "Manizales, Caldas", 3),
    ("Cúcuta", "Norte de Santander", "54001", "7", "San José de Cúcuta", 3),
    ("Ibagué", "Tolima", "73001", "8", "Ibague, Tolima", 3),
    ("Santa Marta", "Magdalena", "47001", "5", "Sta. Marta", 2),
    ("Villavicencio", "Meta", "50001", "8", "Villavo", 2),
    ("Pasto", "Nariño", "52001", "2", "San Juan de Pasto", 2),
    ("Armenia", "Quindío", "63001", "6", "Armenia, Quindío", 2),
    ("Chía", "Cundinamarca", "25175", "1", "Chia, Cundinamarca", 1.5),
    ("Soacha", "Cundinamarca", "25754", "1", "Soacha, Cundinamarca", 1.5),
    ("Envigado", "Antioquia", "05266", "4", "Envigado, Antioquia", 1.5),
    ("Popayán", "Cauca", "19001", "2", "Popayan, Cauca", 1),
    ("Tunja", "Boyacá", "15001", "8", "Tunja, Boyacá", 1),
    ("Neiva", "Huila", "41001", "8", "Neiva, Huila", 1),
]
_CITY_VARIANT_P = [0.40, 0.22, 0.08, 0.12, 0.06, 0.06, 0.06]

_COUNTRY_VARIANTS = [
    ("Colombia", 0.55), ("COLOMBIA", 0.20), ("co", 0.06), ("CO", 0.05),
    ("colombia", 0.05), (" Colombia ", 0.05), ("Col", 0.04),
]
_COUNTRIES = [  # (code, label, aliases, calling code)
    ("CO", "Colombia", ["COLOMBIA", "co", "Col", "colombia", "República de Colombia"], "+57"),
    ("US", "Estados Unidos", ["USA", "EEUU", "EE.UU.", "United States", "Estados Unidos de América"], "+1"),
    ("VE", "Venezuela", ["VENEZUELA", "ve"], "+58"),
    ("EC", "Ecuador", ["ECUADOR", "ec"], "+593"),
    ("MX", "México", ["Mexico", "MEXICO", "mx"], "+52"),
    ("CA", "Canadá", ["Canada", "CANADA", "ca"], "+1"),
    ("ES", "España", ["Espana", "ESPAÑA", "es", "Spain"], "+34"),
]

# (code, label, aliases, values used in data that are NOT in reference data, weight)
_PROGRAMS = [
    ("AU_PAIR", "Au Pair", ["AU PAIR", "Au-Pair", "au pair", "aupair", "AuPair"], ["Au Pair USA", "Au pair Estados Unidos"], 0.40),
    ("WORK_TRAVEL", "Work & Travel", ["Work and Travel", "WORK & TRAVEL", "work and travel", "W&T", "Work&Travel"], ["Work n Travel", "Trabajo y viaje"], 0.25),
    ("CAMP_COUNSELOR", "Camp Counselor", ["CAMP COUNSELOR", "Camp Counsellor", "camp counselor", "Campamentos"], ["Camp USA"], 0.10),
    ("INTERCAMBIO", "Intercambio Académico", ["Intercambio", "INTERCAMBIO", "intercambio academico", "High School Exchange"], ["Intercambio colegio"], 0.12),
    ("INTERNSHIP", "Internship", ["INTERNSHIP", "Prácticas", "Practicas profesionales", "Pasantía"], ["Prácticas en el exterior"], 0.08),
    ("STUDY_ABROAD", "Estudios en el Exterior", ["Study Abroad", "Estudiar en el exterior", "ESTUDIOS EXTERIOR"], ["Estudios exterior 2025"], 0.05),
]
_PROGRAM_CODES = [p[0] for p in _PROGRAMS]

# services offered (reference category "service"): programs plus advisory services
_SERVICES = [
    ("AU_PAIR", "Au Pair", ["AU PAIR", "Au-Pair", "au pair"]),
    ("WORK_TRAVEL", "Work & Travel", ["Work and Travel", "WORK AND TRAVEL"]),
    ("CAMP_COUNSELOR", "Camp Counselor", ["Camp Counsellor", "Campamentos"]),
    ("INTERCAMBIO", "Intercambio Académico", ["Intercambio", "Intercambio academico"]),
    ("ASESORIA_VISA", "Asesoría de Visa", ["Asesoria de visa", "Asesoría visa", "Visa J-1"]),
    ("CURSO_INGLES", "Curso de Inglés", ["Curso de ingles", "Inglés", "English course"]),
    ("SEGURO_VIAJE", "Seguro de Viaje", ["Seguro de viaje", "Seguro médico internacional"]),
]
_UNKNOWN_SERVICES = ["Tiquetes aéreos", "Visa de turismo", "Pasantía Canadá", "Asesoria migratoria"]

_EVENTS = [  # (code, label, date, city, service)
    ("EXPO_AUPAIR_BOG_2024", "Expo Au Pair Bogotá 2024", "2024-05-10", "Bogotá", "AU_PAIR"),
    ("FERIA_WAT_MED_2024", "Feria Work & Travel Medellín", "2024-03-16", "Medellín", "WORK_TRAVEL"),
    ("CHARLA_UNAL_2023", "Charla Universidad Nacional", "2023-09-21", "Bogotá", "INTERCAMBIO"),
    ("WEBINAR_VISA_2024_02", "Webinar Visa J-1", "2024-02-08", "Virtual", "ASESORIA_VISA"),
    ("FERIA_EXTERIOR_CALI_2023", "Feria Estudiar en el Exterior Cali", "2023-10-14", "Cali", "INTERCAMBIO"),
    ("EXPO_CAMP_BAQ_2024", "Expo Campamentos Barranquilla", "2024-01-27", "Barranquilla", "CAMP_COUNSELOR"),
    ("OPEN_HOUSE_BUC_2024", "Open House Bucaramanga", "2024-06-01", "Bucaramanga", "AU_PAIR"),
    ("FERIA_EAFIT_2024", "Feria Internacional EAFIT", "2024-04-18", "Medellín", "WORK_TRAVEL"),
    ("WEBINAR_AUPAIR_2024_07", "Webinar Au Pair Julio", "2024-07-11", "Virtual", "AU_PAIR"),
    ("CHARLA_JAVERIANA_2024", "Charla Javeriana Work & Travel", "2024-08-22", "Bogotá", "WORK_TRAVEL"),
]
_UNKNOWN_EVENTS = ["Charla Colegio San Bartolomé", "Feria Uniandes 2022", "Instagram Live Au Pair", "Evento Cámara de Comercio"]

_STATUSES = [
    ("NEW", 18), ("CONTACTED", 11), ("QUALIFIED", 5), ("nuevo", 12), ("Nuevo", 8),
    ("Interesado", 10), ("interesada", 3), ("Contactado", 8), ("NO CONTESTA", 4),
    ("No interesado", 4), ("Inscrito", 3), ("EN PROCESO", 3), (" Nuevo ", 2),
]

_NOTES = [
    "Interesada en viajar en 2025",
    "Llamar después de las 6 p.m.",
    "Pregunta por costos, fechas y requisitos",
    'Dijo: "quiero más información"',
    "Primera llamada: no contestó\nSegunda llamada: interesado, enviar brochure",
    "Tiene pasaporte; no tiene visa",
    'Referido por "Camila", contactar por WhatsApp',
    "Nivel de inglés: B2, estudiante de 7° semestre",
    "No volver a llamar",
    "Quiere saber si puede ir con su novio/novia, ¿es posible?",
    "Envió documentos por correo\r\npendiente revisar",
    "Mamá pregunta por el programa, hija de 17 años",
    'Asistió a la charla; pidió "más detalles" sobre el seguro, el alojamiento y la visa',
    "Ya aplicó en 2023 ,  quiere reintentar",
    "Ocupado, llamar luego",
    "Escribió por Instagram 👋",
]

# (file, sheet, weight, P(cedula missing), P(event present), program bias)
_LEAD_SOURCES = [
    ("leads_2024_ferias.csv", None, 0.24, 0.35, 0.90, None),
    ("leads_web_form.csv", None, 0.28, 0.50, 0.35, None),
    ("Base Au Pair 2023.xlsx", "Hoja1", 0.14, 0.15, 0.45, "AU_PAIR"),
    ("Base Au Pair 2023.xlsx", "Seguimiento", 0.05, 0.20, 0.30, "AU_PAIR"),
    ("leads_2023_eventos.csv", None, 0.11, 0.40, 0.95, None),
    ("Base Work and Travel 2024.xlsx", "Leads", 0.12, 0.15, 0.45, "WORK_TRAVEL"),
    ("referidos_instagram.csv", None, 0.06, 0.70, 0.20, None),
]

_STUDENT_SOURCES = ["directory+csv", "csv_only", "directory_only"]
_STUDENT_SOURCE_P = [0.55, 0.30, 0.15]

_DOC_TYPES = ["PASSPORT", "CEDULA", "VISA_FORM", "PHOTO", "BANK_STATEMENT"]
_DOC_ORIGINAL_NAMES = {
    "PASSPORT": ["Pasaporte escaneado", "pasaporte", "PASAPORTE (1)", "scan pasaporte 2023"],
    "CEDULA": ["cedula ambas caras", "Cédula", "CC escaneada", "documento identidad"],
    "VISA_FORM": ["DS-160 confirmación", "formulario visa", "DS160", "Formulario DS-2019"],
    "PHOTO": ["foto 5x5 fondo blanco", "IMG_20230412_101512", "foto visa", "WhatsApp Image 2023-08-01"],
    "BANK_STATEMENT": ["extracto bancario marzo", "Certificado Bancolombia", "extracto Davivienda", "certificado bancario"],
}

_JUNK_CEDULAS = ["N/A", "0", "1111111111", "12", "no tiene", "NA", "-", "0000000"]
_IMPOSSIBLE_DATES = ["31/02/{y}", "30/02/{y}", "31/04/{y}", "{y}-02-30", "31-06-{y}", "29/02/2023"]

_LOREM = (
    "El aspirante manifiesta interés en el programa y solicita información detallada sobre "
    "costos, fechas de salida, requisitos de idioma, seguro médico, alojamiento y visa; "
    "se le explicó el proceso completo, quedó pendiente enviar documentos. "
)


# ---------------------------------------------------------------------------
# Public data containers
# ---------------------------------------------------------------------------


@dataclass
class DemoData:
    """Staging rows to load plus the ground truth needed to score the pipeline.

    Frames hold staging columns as V3 writes them. Text columns are ``object``
    dtype holding ``str`` or ``None`` (missing -> SQL NULL; never ``''``,
    except ``full_name``, which is NOT NULL and has a few blank bad rows);
    ``reference_data.aliases`` holds lists and ``attributes`` /
    ``lead_failures.raw_data`` hold dicts (``load`` writes text[] / jsonb).

    Truth columns, never loaded: ``person_ref`` (students, leads: the person
    index, per call); for documents ``student_row`` (position in
    ``students``), ``content_kind`` ('pdf' | 'jpeg' written as is;
    'bad_checksum' written but the staged checksum is wrong; 'missing' listed
    but never written; 'outside_root' path escapes the files root, never
    written) and ``content_key`` (equal keys mean identical bytes).
    ``hard_cases`` (kind, person_ref, other_person_ref, detail) lists the
    deliberately hard identity cases and the nasty rows.
    """

    students: pd.DataFrame
    leads: pd.DataFrame
    documents: pd.DataFrame
    reference_data: pd.DataFrame
    lead_failures: pd.DataFrame
    hard_cases: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        {"kind": pd.Series(dtype=object), "person_ref": pd.Series(dtype="int64"),
         "other_person_ref": pd.Series(dtype="Int64"), "detail": pd.Series(dtype=object)}))


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
    "full_name", "original_name", "email", "phone", "cedula", "birth_date", "address",
    "city", "country", "program", "student_number", "source", "csv_enriched",
]
LEAD_COLUMNS = [
    "full_name", "original_name", "email", "phone", "cedula", "birth_date", "address",
    "city", "country", "interest_program", "service", "event", "status", "notes",
    "source_file", "source_sheet", "source_row",
]
DOCUMENT_COLUMNS = [
    "document_type", "original_file_path", "staging_file_path", "normalized_file_name",
    "checksum", "file_size", "mime_type",
]
REFERENCE_COLUMNS = ["source_file", "category", "code", "label", "aliases", "attributes"]
FAILURE_COLUMNS = ["source_file", "source_sheet", "source_row", "raw_data", "error"]

# content kinds whose bytes ``load`` writes to disk
_WRITTEN_KINDS = ("pdf", "jpeg", "bad_checksum")


# ---------------------------------------------------------------------------
# Small vectorised helpers
# ---------------------------------------------------------------------------


def _strip_accents(s: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", s) if not unicodedata.combining(c))


def _case_table(words: list[str]) -> np.ndarray:
    """Per word: [Title, Title w/o accents, UPPER, UPPER w/o accents, lower, lower w/o accents]."""
    rows = []
    for w in words:
        na = _strip_accents(w)
        rows.append([w, na, w.upper(), na.upper(), w.lower(), na.lower()])
    return np.array(rows, dtype=_S)


def _probs(weights: list[float]) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    return w / w.sum()


def _pick(rng: np.random.Generator, n: int, weights: list[float]) -> np.ndarray:
    return rng.choice(len(weights), size=n, p=_probs(weights))


def _s(x: np.ndarray) -> np.ndarray:
    return np.asarray(x).astype(_S)


def _z(x: np.ndarray, width: int) -> np.ndarray:
    return np.strings.zfill(_s(x), width)


def _no_repdigit_ranges(lo: int, hi: int) -> list[tuple[int, int]]:
    """Split [lo, hi) so that numbers made of one repeated digit are excluded:
    those are junk cédulas (DESIGN §4), never a real person's number."""
    bad = sorted(
        d * (10**k - 1) // 9 for k in range(len(str(lo)), len(str(hi)) + 1) for d in range(1, 10)
    )
    out, start = [], lo
    for b in bad:
        if start <= b < hi:
            if b > start:
                out.append((start, b))
            start = b + 1
    if start < hi:
        out.append((start, hi))
    return out


def _unique_numbers(rng: np.random.Generator, k: int, ranges: list[tuple[int, int]]) -> np.ndarray:
    """k distinct numbers drawn uniformly from the union of ranges, in random
    order (draw, deduplicate, top up: no visible arithmetic pattern)."""
    sizes = np.array([b - a for a, b in ranges], dtype=np.int64)
    space = int(sizes.sum())
    if k > space:
        raise ValueError(f"cannot draw {k} distinct values from a space of {space}")
    chosen = np.zeros(0, dtype=np.int64)
    while len(chosen) < k:
        extra = rng.integers(0, space, (k - len(chosen)) * 11 // 10 + 16, dtype=np.int64)
        merged = np.sort(np.concatenate([chosen, extra]))
        chosen = merged[np.r_[True, merged[1:] != merged[:-1]]]
    v = rng.permutation(chosen)[:k]
    ends = np.cumsum(sizes)
    which = np.searchsorted(ends, v, side="right")
    starts = np.array([a_ for a_, _ in ranges], dtype=np.int64)
    return starts[which] + v - (ends[which] - sizes[which])


def _variants_s(f: np.ndarray, builders: list[Callable[[np.ndarray], np.ndarray]]) -> np.ndarray:
    """Like ``_variants`` but keeps numpy strings (for further vectorised concatenation)."""
    out = np.empty(len(f), dtype=_S)
    for k, build in enumerate(builders):
        idx = np.flatnonzero(f == k)
        if len(idx):
            out[idx] = build(idx)
    return out


def _obj(n: int) -> np.ndarray:
    return np.full(n, None, dtype=object)


# ---------------------------------------------------------------------------
# Persons (ground truth)
# ---------------------------------------------------------------------------

_GIVEN = [w for w, _ in _FEMALE + _MALE + _FEMALE_2 + _MALE_2]
_F0, _M0 = 0, len(_FEMALE)
_F2_0 = len(_FEMALE) + len(_MALE)
_M2_0 = _F2_0 + len(_FEMALE_2)
_GIVEN_T = _case_table(_GIVEN)
_SUR_T = _case_table([w for w, _ in _SURNAMES])
# e-mail spellings: lower case, no accents, no spaces; capitalised variant too
_GIVEN_MAIL = np.array([_strip_accents(w).lower().replace(" ", "") for w in _GIVEN], dtype=_S)
_GIVEN_MAIL_C = np.array([_strip_accents(w).title().replace(" ", "") for w in _GIVEN], dtype=_S)
_SUR_MAIL = np.array([_strip_accents(w).lower().replace(" ", "") for w, _ in _SURNAMES], dtype=_S)
_SUR_MAIL_C = np.array([_strip_accents(w).title().replace(" ", "") for w, _ in _SURNAMES], dtype=_S)
_DOMAINS = [("gmail.com", 55), ("hotmail.com", 18), ("yahoo.com", 6), ("outlook.com", 7),
            ("hotmail.es", 3), ("yahoo.es", 3), ("live.com", 2), ("unal.edu.co", 2),
            ("javeriana.edu.co", 2), ("icloud.com", 2)]
_DOMAIN_T = np.array(
    [[d, d.capitalize(), d.upper(), d.split(".")[0].capitalize() + "." + ".".join(d.split(".")[1:]).upper()]
     for d, _ in _DOMAINS], dtype=_S)
_CITY_T = np.array(
    [[c, _strip_accents(c), c.upper(), _strip_accents(c).upper(), _strip_accents(c).lower(),
      alias, f" {c} "]
     for c, dep, _, _, alias, _ in _CITIES], dtype=_S)
_CITY_AREA = np.array([a for _, _, _, a, _, _ in _CITIES], dtype=_S)

_CEDULA_LENGTHS = [10, 8, 9, 7, 6]
_CEDULA_LEN_P = [0.72, 0.20, 0.03, 0.03, 0.02]
_CEDULA_BOUNDS = {10: (1_000_000_000, 1_200_000_000), 9: (100_000_000, 1_000_000_000),
                  8: (10_000_000, 100_000_000), 7: (1_000_000, 10_000_000), 6: (100_000, 1_000_000)}

_EPOCH = np.datetime64("1970-01-01", "D")
_YOUNG = (int(np.datetime64("1990-01-01", "D").astype(np.int64)), int(np.datetime64("2006-12-31", "D").astype(np.int64)))


def _cedula_ranges(length: int, seed: int) -> list[tuple[int, int]]:
    """Each seed gets its own tenth of every length's number space, so seeds
    that differ mod 10 never share a cédula and others rarely do."""
    lo, hi = _CEDULA_BOUNDS[length]
    width = (hi - lo) // 10
    part = seed % 10
    return _no_repdigit_ranges(lo + part * width, lo + (part + 1) * width)


@dataclass
class _Persons:
    n: int
    female: np.ndarray
    f1: np.ndarray
    f2: np.ndarray          # -1: no second given name
    s1: np.ndarray
    s2: np.ndarray
    birth: np.ndarray       # days since 1970-01-01
    city: np.ndarray
    has_land: np.ndarray
    land7: np.ndarray
    mobile: np.ndarray
    ced: np.ndarray
    ced_len: np.ndarray
    email: np.ndarray       # canonical lower-case e-mail (StringDType)
    email_cap: np.ndarray   # the same address as a person would capitalise it
    address: np.ndarray
    program: np.ndarray
    role: np.ndarray        # 0 student only, 1 student and lead, 2 lead only
    n_lead: np.ndarray
    student_number: np.ndarray
    specials: dict[str, np.ndarray]


def _choose_given(rng: np.random.Generator, female: np.ndarray, first: bool) -> np.ndarray:
    n = len(female)
    if first:
        fw, mw, f0, m0 = [w for _, w in _FEMALE], [w for _, w in _MALE], _F0, _M0
    else:
        fw, mw, f0, m0 = [w for _, w in _FEMALE_2], [w for _, w in _MALE_2], _F2_0, _M2_0
    return np.where(female, f0 + _pick(rng, n, fw), m0 + _pick(rng, n, mw))


def _make_persons(rng: np.random.Generator, n: int, seed: int) -> _Persons:
    female = rng.random(n) < 0.56
    f1 = _choose_given(rng, female, True)
    f2 = np.where(rng.random(n) < 0.45, _choose_given(rng, female, False), -1)
    f2 = np.where(_GIVEN_T[np.maximum(f2, 0), 0] == _GIVEN_T[f1, 0], -1, f2)
    sw = [w for _, w in _SURNAMES]
    s1, s2 = _pick(rng, n, sw), _pick(rng, n, sw)
    birth = rng.integers(_YOUNG[0], _YOUNG[1] + 1, n)
    city = _pick(rng, n, [c[-1] for c in _CITIES])
    has_land = rng.random(n) < 0.45
    land7 = rng.integers(2_000_000, 8_000_000, n)
    ced_len = np.array(_CEDULA_LENGTHS)[_pick(rng, n, _CEDULA_LEN_P)]
    program = _pick(rng, n, [p[-1] for p in _PROGRAMS])
    u = rng.random(n)
    role = np.where(u < 0.20, 0, np.where(u < 0.55, 1, 2))
    n_lead = 1 + _pick(rng, n, [0.68, 0.22, 0.10])

    # --- hard identity cases (DESIGN §4), disjoint persons, at a small rate
    specials: dict[str, np.ndarray] = {}
    k = max(1, n // 1000) if n >= 40 else 0
    order = rng.permutation(n)
    pos = 0

    def take(m: int) -> np.ndarray:
        nonlocal pos
        out = order[pos:pos + m]
        pos += m
        return out

    for name, m in [("son", k), ("father", k), ("sib_a", k), ("sib_b", k), ("namesake_a", k),
                    ("namesake_b", k), ("cedula_email", k), ("nasty", 4 if n >= 40 else 0)]:
        specials[name] = take(m)
    son, father = specials["son"], specials["father"]
    sa, sb = specials["sib_a"], specials["sib_b"]
    na_, nb_ = specials["namesake_a"], specials["namesake_b"]
    ce, nasty = specials["cedula_email"], specials["nasty"]

    # father and son: same full name, same household landline/address, different cédulas
    female[son] = False
    female[father] = False
    f1[son] = _M0 + _pick(rng, k, [w for _, w in _MALE])
    f2[son] = np.where(rng.random(k) < 0.5, _M2_0 + _pick(rng, k, [w for _, w in _MALE_2]), -1)
    for arr in (f1, f2, s1, s2, city, land7):
        arr[father] = arr[son]
    has_land[son] = True
    has_land[father] = True
    birth[father] = birth[son] - rng.integers(22 * 365, 36 * 365, k)
    ced_len[son] = 10
    ced_len[father] = 8
    role[son] = 1
    role[father] = 2
    n_lead[father] = 1 + (rng.random(k) < 0.5)

    # siblings: same surnames and household, different people, one parent's e-mail
    s1[sb], s2[sb], city[sb], land7[sb], has_land[sb] = s1[sa], s2[sa], city[sa], land7[sa], has_land[sa]
    same = _GIVEN_T[f1[sb], 0] == _GIVEN_T[f1[sa], 0]
    f1[sb] = np.where(same, np.where(female[sb], _F0 + (f1[sb] - _F0 + 1) % len(_FEMALE),
                                     _M0 + (f1[sb] - _M0 + 1) % len(_MALE)), f1[sb])
    gap = rng.integers(400, 6 * 365, k) * np.where(rng.random(k) < 0.5, 1, -1)
    birth[sb] = np.clip(birth[sa] + gap, _YOUNG[0], _YOUNG[1])
    birth[sb] = np.where(birth[sb] == birth[sa], birth[sa] - 500, birth[sb])
    role[sa] = 1
    role[sb] = 2

    # namesakes: unrelated people sharing a full name
    female[nb_], f1[nb_], f2[nb_], s1[nb_], s2[nb_] = female[na_], f1[na_], f2[na_], s1[na_], s2[na_]
    birth[nb_] = np.where(birth[nb_] == birth[na_], birth[na_] + 777, birth[nb_])

    # one person: cédula in one source, only the e-mail in another
    role[ce] = 1
    n_lead[ce] = 2
    role[nasty] = 2
    n_lead[nasty] = 1

    # --- identifiers: unique within a seed, seed-mixed across seeds
    ced = np.zeros(n, dtype=np.int64)
    for length in _CEDULA_LENGTHS:
        idx = np.flatnonzero(ced_len == length)
        ced[idx] = _unique_numbers(rng, len(idx), _cedula_ranges(length, seed))
    mobile = _unique_numbers(rng, n, [(3_000_000_000, 3_240_000_000)])
    digits = max(4, len(str(max(n, 1))) + 1)
    token = _s(_unique_numbers(rng, n, [(0, 10**digits)]))

    pattern = _pick(rng, n, [0.35, 0.25, 0.15, 0.10, 0.15])
    gl, gc = _GIVEN_MAIL[f1], _GIVEN_MAIL_C[f1]
    sl, sc = _SUR_MAIL[s1], _SUR_MAIL_C[s1]
    il, ic = np.strings.slice(gl, 0, 1), np.strings.slice(gc, 0, 1)
    local = _variants_s(pattern, [lambda i: gl[i] + "." + sl[i], lambda i: gl[i] + sl[i], lambda i: il[i] + sl[i],
                                  lambda i: gl[i] + "_" + sl[i], lambda i: sl[i] + "." + gl[i]]) + token
    local_c = _variants_s(pattern, [lambda i: gc[i] + "." + sc[i], lambda i: gc[i] + sc[i], lambda i: ic[i] + sc[i],
                                    lambda i: gc[i] + "_" + sc[i], lambda i: sc[i] + "." + gc[i]]) + token
    dom = _pick(rng, n, [w for _, w in _DOMAINS])
    email = local + "@" + _DOMAIN_T[dom, 0]
    email_cap = local_c + "@" + _DOMAIN_T[dom, 3]
    # the siblings' rows carry one parent's address
    parent = np.where(rng.random(k) < 0.6, _F0 + _pick(rng, k, [w for _, w in _FEMALE]),
                      _M0 + _pick(rng, k, [w for _, w in _MALE]))
    parent = np.where((parent == f1[sa]) | (parent == f1[sb]), np.where(parent + 1 < _F2_0, parent + 1, _F0), parent)
    p_local = _GIVEN_MAIL[parent] + "." + _SUR_MAIL[s1[sa]] + token[sa]
    p_local_c = _GIVEN_MAIL_C[parent] + "." + _SUR_MAIL_C[s1[sa]] + token[sa]
    for who in (sa, sb):
        email[who] = p_local + "@hotmail.com"
        email_cap[who] = p_local_c + "@Hotmail.com"

    # addresses (one per household)
    st = np.array(["Calle", "Cl.", "Carrera", "Cra.", "Kr", "Avenida", "Av.", "Diagonal", "Transversal", "Cll"], dtype=_S)
    st_i = _pick(rng, n, [22, 10, 20, 10, 4, 6, 5, 6, 5, 3])
    suf = np.array(["", "A", "B", "C", " Bis", "A Bis"], dtype=_S)[_pick(rng, n, [70, 12, 8, 3, 4, 3])]
    sep = np.array(["# ", "#", "No. ", "N° ", "No "], dtype=_S)[_pick(rng, n, [50, 20, 15, 10, 5])]
    extra_kind = _pick(rng, n, [50, 20, 10, 8, 6, 6])
    num, small = rng.integers(101, 1505, n), rng.integers(1, 80, n)
    extra = _variants_s(extra_kind, [
        lambda i: np.full(len(i), "", dtype=_S),
        lambda i: " Apto " + _s(num[i]),
        lambda i: " Torre " + _s(small[i] % 8 + 1) + " Apto " + _s(num[i]),
        lambda i: " Casa " + _s(small[i]),
        lambda i: np.full(len(i), " Sur", dtype=_S),
        lambda i: " Int. " + _s(small[i] % 11 + 1),
    ])
    address = (st[st_i] + " " + _s(rng.integers(1, 180, n)) + suf + " " + sep
               + _s(rng.integers(1, 150, n)) + "-" + _z(rng.integers(1, 99, n), 2) + extra)
    address[father] = address[son]
    address[sb] = address[sa]

    # student numbers: unique per person within a seed; seeds that differ mod 10
    # use disjoint serial ranges
    v = _unique_numbers(rng, n, [(0, 10 * 1_000_000)])
    student_number = ("ICE-" + _s(2016 + v // 1_000_000) + "-"
                      + _z((seed % 10) * 1_000_000 + v % 1_000_000, 7))

    return _Persons(n=n, female=female, f1=f1, f2=f2, s1=s1, s2=s2, birth=birth, city=city,
                    has_land=has_land, land7=land7, mobile=mobile, ced=ced, ced_len=ced_len,
                    email=email, email_cap=email_cap, address=address, program=program, role=role,
                    n_lead=n_lead, student_number=student_number, specials=specials)


# ---------------------------------------------------------------------------
# Rendering person fields into messy row values
# ---------------------------------------------------------------------------


@dataclass
class _RowCtx:
    """Per-row knobs: who the row is, how likely each field is missing, and
    forced presence (1) / absence (-1) for the hard cases."""

    p: np.ndarray
    miss: dict[str, np.ndarray]
    force: dict[str, np.ndarray]
    upper_bias: np.ndarray      # directory listings are mostly UPPER CASE
    plain_name: np.ndarray      # hard cases: full name in natural order, nothing dropped


def _present(rng: np.random.Generator, ctx: _RowCtx, name: str) -> np.ndarray:
    r = len(ctx.p)
    pres = rng.random(r) >= ctx.miss[name]
    f = ctx.force.get(name)
    if f is not None:
        pres = np.where(f == 1, True, np.where(f == -1, False, pres))
    return pres


def _forced(ctx: _RowCtx, name: str) -> np.ndarray:
    f = ctx.force.get(name)
    return np.zeros(len(ctx.p), dtype=bool) if f is None else f == 1


def _variants(f: np.ndarray, builders: list[Callable[[np.ndarray], np.ndarray]]) -> np.ndarray:
    """Object array whose row i is ``builders[f[i]]`` evaluated only on the rows
    that chose it (np.select would build every variant for every row)."""
    out = np.empty(len(f), dtype=object)
    for k, build in enumerate(builders):
        idx = np.flatnonzero(f == k)
        if len(idx):
            out[idx] = np.asarray(build(idx)).astype(object)
    return out


def _render_names(rng: np.random.Generator, P: _Persons, ctx: _RowCtx) -> tuple[np.ndarray, np.ndarray]:
    p, r = ctx.p, len(ctx.p)
    mode = np.where(ctx.upper_bias, _pick(rng, r, [8, 8, 20, 55, 2, 7]), _pick(rng, r, [40, 25, 8, 17, 3, 7]))
    plain = ctx.plain_name
    given = _GIVEN_T[P.f1[p], mode]
    has2 = np.flatnonzero((P.f2[p] >= 0) & ((rng.random(r) > 0.12) | plain))
    given[has2] = given[has2] + " " + _GIVEN_T[P.f2[p[has2]], mode[has2]]
    sur = _SUR_T[P.s1[p], mode]
    has_s2 = np.flatnonzero((rng.random(r) > 0.08) | plain)
    sur[has_s2] = sur[has_s2] + " " + _SUR_T[P.s2[p[has_s2]], mode[has_s2]]
    upper = (mode == 2) | (mode == 3)
    sur_first = (rng.random(r) < np.where(upper, 0.15, 0.03)) & ~plain
    clean = _variants_s(sur_first.astype(np.int8), [lambda i: given[i] + " " + sur[i],
                                                    lambda i: sur[i] + " " + given[i]])
    spacing = np.where(plain, 0, _pick(rng, r, [80, 8, 6, 4, 2]))
    raw = _variants(spacing, [
        lambda i: clean[i],
        lambda i: np.strings.replace(clean[i], " ", "  ", 1),       # double space
        lambda i: " " + clean[i] + "  ",                             # stray spaces around
        lambda i: clean[i] + " ",                                    # trailing space
        lambda i: np.strings.replace(clean[i], " ", "\u00a0", 1),   # non-breaking space
    ])
    # V3 sometimes tidied the spacing of full_name; original_name keeps the capture
    tidy = (rng.random(r) < 0.35) & (spacing != 4)
    full = raw.copy()
    full[tidy] = clean[tidy].astype(object)
    original = raw
    original[rng.random(r) < 0.20] = None
    return full, original


def _dotted(c: np.ndarray) -> np.ndarray:
    g3, g2, g1, g0 = c % 1000, (c // 1000) % 1000, (c // 1_000_000) % 1000, c // 1_000_000_000
    out = np.empty(len(c), dtype=_S)
    for cond, build in (
        (c >= 1_000_000_000, lambda m: _s(g0[m]) + "." + _z(g1[m], 3) + "." + _z(g2[m], 3) + "." + _z(g3[m], 3)),
        ((c >= 1_000_000) & (c < 1_000_000_000), lambda m: _s(g1[m]) + "." + _z(g2[m], 3) + "." + _z(g3[m], 3)),
        (c < 1_000_000, lambda m: _s(g2[m]) + "." + _z(g3[m], 3)),
    ):
        if cond.any():
            out[cond] = build(cond)
    return out


def _render_cedula(rng: np.random.Generator, P: _Persons, ctx: _RowCtx) -> np.ndarray:
    p, r = ctx.p, len(ctx.p)
    out = _obj(r)
    pres = _present(rng, ctx, "cedula")
    junk = pres & (rng.random(r) < 0.008) & ~_forced(ctx, "cedula")
    fmt = _pick(rng, r, [48, 20, 9, 6, 5, 3, 3, 2, 2, 2])
    ok = pres & ~junk
    c = P.ced[p[ok]]
    out[ok] = _variants(fmt[ok], [
        lambda i: _s(c[i]),
        lambda i: _dotted(c[i]),
        lambda i: "CC " + _s(c[i]),
        lambda i: "C.C. " + _dotted(c[i]),
        lambda i: _s(c[i]) + " ",
        lambda i: "cc " + _s(c[i]),
        lambda i: " " + _s(c[i]),
        lambda i: "C.C " + _s(c[i]),
        lambda i: np.strings.replace(_dotted(c[i]), ".", ","),
        lambda i: "CC. " + _dotted(c[i]),
    ])
    if junk.any():
        out[junk] = np.array(_JUNK_CEDULAS, dtype=object)[rng.integers(0, len(_JUNK_CEDULAS), int(junk.sum()))]
    return out


def _render_email(rng: np.random.Generator, P: _Persons, ctx: _RowCtx) -> np.ndarray:
    p, r = ctx.p, len(ctx.p)
    out = _obj(r)
    pres = _present(rng, ctx, "email")
    bad = pres & (rng.random(r) < 0.006) & ~_forced(ctx, "email")
    ok = pres & ~bad
    e, ec = P.email[p[ok]], P.email_cap[p[ok]]

    def cap_local_lower_domain(i: np.ndarray) -> np.ndarray:
        parts = np.strings.partition(ec[i], _AT)
        return parts[0] + "@" + np.strings.lower(parts[2])

    out[ok] = _variants(_pick(rng, r, [55, 10, 8, 7, 8, 7, 5])[ok], [
        lambda i: e[i],                               # maria.rodriguez123@gmail.com
        cap_local_lower_domain,                       # Maria.Rodriguez123@gmail.com
        lambda i: ec[i],                              # Maria.Rodriguez123@Gmail.COM
        lambda i: np.strings.upper(e[i]),             # MARIA.RODRIGUEZ123@GMAIL.COM
        lambda i: " " + e[i] + " ",
        lambda i: " " + ec[i] + " ",                  # ' Maria.Rodriguez123@Gmail.COM '
        lambda i: e[i] + " ",
    ])
    if bad.any():
        eb = P.email[p[bad]]
        out[bad] = _variants(rng.integers(0, 4, len(eb)), [
            lambda i: np.strings.replace(eb[i], "@", ""),
            lambda i: np.strings.replace(eb[i], "@", " "),
            lambda i: np.strings.replace(eb[i], "@", " arroba "),
            lambda i: np.full(len(i), "no tiene correo", dtype=object),
        ])
    return out


def _render_phone(rng: np.random.Generator, P: _Persons, ctx: _RowCtx) -> np.ndarray:
    p, r = ctx.p, len(ctx.p)
    out = _obj(r)
    pres = _present(rng, ctx, "phone") | _forced(ctx, "landline")
    land = pres & P.has_land[p] & ((rng.random(r) < 0.22) | _forced(ctx, "landline"))
    mob = pres & ~land
    m = P.mobile[p[mob]]
    a, b, c = _s(m // 10_000_000), _z((m // 10_000) % 1000, 3), _z(m % 10_000, 4)
    out[mob] = _variants(_pick(rng, r, [35, 15, 12, 5, 8, 5, 10, 10])[mob], [
        lambda i: _s(m[i]),                                        # 3001234567
        lambda i: a[i] + " " + b[i] + " " + c[i],                  # 300 123 4567
        lambda i: "+57 " + a[i] + " " + b[i] + " " + c[i],         # +57 300 123 4567
        lambda i: "(+57) " + a[i] + "-" + b[i] + "-" + c[i],       # (+57) 300-123-4567
        lambda i: "57" + _s(m[i]),                                 # 573001234567
        lambda i: a[i] + "." + b[i] + "." + c[i],                  # 300.123.4567
        lambda i: "+57" + _s(m[i]),                                # +573001234567
        lambda i: a[i] + "-" + b[i] + "-" + c[i],                  # 300-123-4567
    ])
    pl = p[land]
    area = _CITY_AREA[P.city[pl]]
    n7 = P.land7[pl]
    b7, b3, b4 = _s(n7), _s(n7 // 10_000), _z(n7 % 10_000, 4)
    out[land] = _variants(_pick(rng, r, [30, 15, 20, 15, 10, 10])[land], [
        lambda i: "60" + area[i] + " " + b7[i],                    # 601 2345678
        lambda i: "(" + area[i] + ") " + b3[i] + " " + b4[i],      # (1) 234 5678
        lambda i: b7[i],                                           # 2345678
        lambda i: "+57 60" + area[i] + " " + b7[i],                # +57 604 4445566
        lambda i: "60" + area[i] + b7[i],                          # 6012345678
        lambda i: "(60" + area[i] + ") " + b3[i] + " " + b4[i],    # (601) 234 5678
    ])
    return out


def _render_birth(rng: np.random.Generator, P: _Persons, ctx: _RowCtx) -> np.ndarray:
    p, r = ctx.p, len(ctx.p)
    out = _obj(r)
    pres = _present(rng, ctx, "birth_date")
    bad = pres & (rng.random(r) < 0.005) & ~_forced(ctx, "birth_date")
    ok = pres & ~bad
    d = _EPOCH + P.birth[p[ok]].astype("timedelta64[D]")
    month_start = d.astype("datetime64[M]")
    y = d.astype("datetime64[Y]").astype(np.int64) + 1970
    mo = month_start.astype(np.int64) % 12 + 1
    da = (d - month_start.astype("datetime64[D]")).astype(np.int64) + 1
    ys, ms, ds = _s(y), _z(mo, 2), _z(da, 2)
    out[ok] = _variants(_pick(rng, r, [40, 36, 19, 5])[ok], [
        lambda i: ys[i] + "-" + ms[i] + "-" + ds[i],               # 1995-03-15
        lambda i: ds[i] + "/" + ms[i] + "/" + ys[i],               # 15/03/1995
        lambda i: ds[i] + "-" + ms[i] + "-" + ys[i],               # 15-03-1995
        lambda i: _s(da[i]) + "/" + _s(mo[i]) + "/" + ys[i],       # 5/3/1995
    ])
    if bad.any():
        yb = (_EPOCH + P.birth[p[bad]].astype("timedelta64[D]")).astype("datetime64[Y]").astype(np.int64) + 1970
        tpl = rng.integers(0, len(_IMPOSSIBLE_DATES), len(yb))
        out[bad] = [_IMPOSSIBLE_DATES[t].format(y=yy) for t, yy in zip(tpl.tolist(), yb.tolist(), strict=True)]
    return out


def _render_simple(rng: np.random.Generator, ctx: _RowCtx, name: str, values: np.ndarray,
                   variant_p: list[float]) -> np.ndarray:
    """Address-like free text: as captured, UPPER, lower or with extra spaces."""
    r = len(ctx.p)
    out = _obj(r)
    pres = _present(rng, ctx, name)
    v = values[pres]
    out[pres] = _variants(_pick(rng, r, variant_p)[pres], [
        lambda i: v[i],
        lambda i: np.strings.upper(v[i]),
        lambda i: np.strings.lower(v[i]),
        lambda i: np.strings.replace(v[i], " ", "  ", 1) + " ",
    ])
    return out


def _render_city(rng: np.random.Generator, P: _Persons, ctx: _RowCtx) -> np.ndarray:
    out = _obj(len(ctx.p))
    pres = _present(rng, ctx, "city")
    var = _pick(rng, len(ctx.p), _CITY_VARIANT_P)
    out[pres] = _CITY_T[P.city[ctx.p[pres]], var[pres]].astype(object)
    return out


def _render_country(rng: np.random.Generator, ctx: _RowCtx) -> np.ndarray:
    out = _obj(len(ctx.p))
    pres = _present(rng, ctx, "country")
    vals = np.array([v for v, _ in _COUNTRY_VARIANTS], dtype=object)
    out[pres] = vals[_pick(rng, int(pres.sum()), [w for _, w in _COUNTRY_VARIANTS])]
    return out


def _render_program(rng: np.random.Generator, prog: np.ndarray, miss: float) -> np.ndarray:
    """Program names as people write them: label, known aliases, a few unknown."""
    r = len(prog)
    out = _obj(r)
    pres = rng.random(r) >= miss
    for i, (_, label, aliases, unknown, _) in enumerate(_PROGRAMS):
        m = pres & (prog == i)
        cnt = int(m.sum())
        if not cnt:
            continue
        choices = [label, label.upper(), f" {label} "] + aliases + unknown
        weights = [30, 5, 3] + [55 / len(aliases)] * len(aliases) + [7 / len(unknown)] * len(unknown)
        out[m] = np.array(choices, dtype=object)[_pick(rng, cnt, weights)]
    return out


def _case_variants(rng: np.random.Generator, which: np.ndarray, labels: list[str]) -> np.ndarray:
    """Reference labels with case/spacing variants (`AU PAIR`, `au pair`, `Au  Pair `)."""
    table = np.array([[s, s.upper(), s.lower(), s.replace(" ", "  ", 1) + " ", " " + s] for s in labels], dtype=object)
    return table[which, _pick(rng, len(which), [55, 15, 10, 10, 10])]


# ---------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------


def _lead_rows(rng: np.random.Generator, P: _Persons) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Persons' lead rows: each lead person appears in 1–3 distinct source files
    (about one row per source), a few twice in the same file."""
    lp = np.flatnonzero(P.role >= 1)
    ns = len(_LEAD_SOURCES)
    w = np.array([s[2] for s in _LEAD_SOURCES])
    # weighted sampling without replacement (Efraimidis–Spirakis keys)
    keys = rng.random((len(lp), ns)) ** (1.0 / w)
    ranked = np.argsort(-keys, axis=1)
    persons, sources, ordinal = [], [], []
    for j in range(3):
        has = P.n_lead[lp] > j
        persons.append(lp[has])
        sources.append(ranked[has, j])
        ordinal.append(np.full(int(has.sum()), j))
    dup = rng.random(len(lp)) < 0.03
    persons.append(lp[dup])
    sources.append(ranked[dup, 0])
    ordinal.append(np.full(int(dup.sum()), 3))
    return np.concatenate(persons), np.concatenate(sources), np.concatenate(ordinal)


def _number_source_rows(rng: np.random.Generator, src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers inside each source file/sheet (header is row 1), in random
    order; returns (order by file then row, source_row)."""
    perm = rng.permutation(len(src))
    order = perm[np.argsort(src[perm], kind="stable")]
    sorted_src = src[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_src)) + 1] if len(src) else np.zeros(0, dtype=np.int64)
    counts = np.diff(np.r_[starts, len(src)])
    rank = np.arange(len(src)) - np.repeat(starts, counts)
    source_row = np.empty(len(src), dtype=np.int64)
    source_row[order] = rank + 2
    return order, source_row


def generate(persons: int, seed: int = 0, documents: bool = True) -> DemoData:
    """Build messy staging rows for ``persons`` people, deterministic for ``seed``.

    Persons (``person_ref`` 0..persons-1, per call) appear as students and/or
    as leads in several source files; identifiers are rendered in the formats
    V3 really captures, with missing and junk values and a few hard identity
    cases (see ``DemoData.hard_cases``). ``documents=False`` skips the
    document rows (benchmarks at 1M persons do not need files).
    """
    if persons < 0:
        raise ValueError("persons must be >= 0")
    seed = int(seed)
    rng = np.random.default_rng([0x1CE5, seed % (2**63)])
    P = _make_persons(rng, persons, seed)
    sp = P.specials

    # ---- student rows: one per student person, a few listed twice
    stud_p = np.flatnonzero(P.role <= 1)
    src = _pick(rng, len(stud_p), _STUDENT_SOURCE_P)
    dup = (rng.random(len(stud_p)) < 0.02) & (src != 1)
    stud_p = np.r_[stud_p, stud_p[dup]]
    src = np.r_[src, np.where(src[dup] == 0, 1, 0)]
    if persons >= 40:  # the cédula/e-mail case has exactly one student row
        keep = ~np.isin(stud_p, sp["cedula_email"]) | (np.arange(len(stud_p)) < len(stud_p) - int(dup.sum()))
        stud_p, src = stud_p[keep], src[keep]
    order = rng.permutation(len(stud_p))
    stud_p, src = stud_p[order], src[order]
    n_s = len(stud_p)

    # ---- lead rows (+ failed rows, numbered together within each file)
    lead_p, lead_src, lead_ord = _lead_rows(rng, P)
    n_fail = max(3, int(round(len(lead_p) * 0.015))) if len(lead_p) else 0
    fail_src = _pick(rng, n_fail, [s[2] for s in _LEAD_SOURCES])
    all_src = np.r_[lead_src, fail_src]
    order, source_row = _number_source_rows(rng, all_src)
    lead_order = order[order < len(lead_p)]
    lead_p, lead_src, lead_ord = lead_p[lead_order], lead_src[lead_order], lead_ord[lead_order]
    lead_row_no = source_row[lead_order]
    fail_row_no = source_row[len(lead_p):]
    n_l = len(lead_p)

    # ---- shared person columns for all rows at once (students first)
    rows_p = np.r_[stud_p, lead_p]
    r = len(rows_p)
    is_stud = np.arange(r) < n_s
    dir_only = np.r_[src == 2, np.zeros(n_l, dtype=bool)]
    l_src = np.r_[np.full(n_s, -1), lead_src]
    ced_miss_lead = np.array([s[3] for s in _LEAD_SOURCES])[np.maximum(l_src, 0)]

    def miss(student: float, lead: float, directory: float) -> np.ndarray:
        return np.where(dir_only, directory, np.where(is_stud, student, lead))

    miss_p = {
        "email": miss(0.10, 0.15, 0.75), "phone": miss(0.12, 0.12, 0.75),
        "cedula": np.where(is_stud, np.where(dir_only, 0.45, 0.08), ced_miss_lead),
        "birth_date": miss(0.20, 0.35, 0.60), "address": miss(0.30, 0.40, 0.85),
        "city": miss(0.12, 0.15, 0.50), "country": miss(0.20, 0.22, 0.60),
    }
    force: dict[str, np.ndarray] = {k: np.zeros(r, dtype=np.int8) for k in
                                    ("cedula", "email", "phone", "birth_date", "landline")}
    plain = np.zeros(r, dtype=bool)

    def rows_of(people: np.ndarray) -> np.ndarray:
        return np.isin(rows_p, people)

    fs = rows_of(np.r_[sp["son"], sp["father"]])
    force["cedula"][fs] = force["birth_date"][fs] = force["landline"][fs] = 1
    force["email"][rows_of(sp["father"])] = -1
    force["email"][rows_of(sp["son"])] = 1
    sib = rows_of(np.r_[sp["sib_a"], sp["sib_b"]])
    force["cedula"][sib] = force["email"][sib] = force["birth_date"][sib] = 1
    nms = rows_of(np.r_[sp["namesake_a"], sp["namesake_b"]])
    force["cedula"][nms] = force["birth_date"][nms] = 1
    plain |= fs | sib | nms
    ce = rows_of(sp["cedula_email"])
    ce_stud = ce & is_stud
    lead_ordinal = np.r_[np.full(n_s, -1), lead_ord]
    ce_l0, ce_l1 = ce & (lead_ordinal == 0), ce & (lead_ordinal == 1)
    force["cedula"][ce_stud] = force["email"][ce_stud] = 1
    force["email"][ce_l0] = 1
    force["cedula"][ce_l0] = force["phone"][ce_l0] = force["birth_date"][ce_l0] = -1
    force["cedula"][ce_l1] = 1
    force["email"][ce_l1] = -1
    plain |= ce

    ctx = _RowCtx(p=rows_p, miss=miss_p, force=force, upper_bias=dir_only, plain_name=plain)
    full_name, original_name = _render_names(rng, P, ctx)
    cols: dict[str, np.ndarray] = {
        "full_name": full_name,
        "original_name": original_name,
        "email": _render_email(rng, P, ctx),
        "phone": _render_phone(rng, P, ctx),
        "cedula": _render_cedula(rng, P, ctx),
        "birth_date": _render_birth(rng, P, ctx),
        "address": _render_simple(rng, ctx, "address", P.address[rows_p], [75, 15, 5, 5]),
        "city": _render_city(rng, P, ctx),
        "country": _render_country(rng, ctx),
    }

    # ---- nasty values on a handful of rows (truth unchanged)
    hard: list[tuple[str, int, int | None, str]] = []
    if persons >= 40:
        texts = ["'; DROP TABLE persons; --", None, "محمد عبد الله الحسن", "דוד כהן לוי"]
        for person, text in zip(sp["nasty"].tolist(), texts, strict=True):
            row = int(np.flatnonzero(rows_p == person)[0])
            name = text if text is not None else str(full_name[row]).strip() + " 😊✈️"
            cols["full_name"][row] = name
            cols["original_name"][row] = name
            hard.append(("nasty_name", person, None, "unusual full_name (SQL text, emoji, RTL script)"))
        specials_all = np.concatenate([v for v in sp.values()])
        ordinary = np.flatnonzero(~np.isin(rows_p, specials_all))
        stud_ordinary, lead_ordinary = ordinary[ordinary < n_s], ordinary[ordinary >= n_s]
        blanks = np.r_[rng.choice(stud_ordinary, size=min(2, len(stud_ordinary)), replace=False),
                       rng.choice(lead_ordinary, size=min(3, len(lead_ordinary)), replace=False)]
        for row, text in zip(blanks.tolist(), ["", " \t ", "", "   ", ""][:len(blanks)], strict=True):
            cols["full_name"][row] = text
            cols["original_name"][row] = None
            hard.append(("blank_name", int(rows_p[row]), None, "full_name empty or whitespace only"))
        if len(stud_ordinary):
            row = int(rng.choice(stud_ordinary))
            cols["address"][row] = (_LOREM * 60)[:10_000]
            hard.append(("long_text", int(rows_p[row]), None, "10,000-character address"))

    # ---- students frame
    sv = {k: v[:n_s] for k, v in cols.items()}
    prog_s = _render_program(rng, P.program[stud_p], 0.10)
    sn = P.student_number[stud_p].astype(object)
    sn[rng.random(n_s) < np.where(src == 1, 0.20, 0.06)] = None
    students = pd.DataFrame({
        **{k: pd.Series(v, dtype=object) for k, v in sv.items()},
        "program": pd.Series(prog_s, dtype=object),
        "student_number": pd.Series(sn, dtype=object),
        "source": pd.Series(np.array(_STUDENT_SOURCES, dtype=object)[src], dtype=object),
        "csv_enriched": src != 2,
        "person_ref": stud_p.astype(np.int64),
    })

    # ---- leads frame
    lv = {k: v[n_s:] for k, v in cols.items()}
    bias = np.array([_PROGRAM_CODES.index(s[5]) if s[5] else -1 for s in _LEAD_SOURCES])
    lb = bias[lead_src]
    u = rng.random(n_l)
    interest = np.where((lb >= 0) & (u < 0.85), lb,
                        np.where(u < 0.75, P.program[lead_p], _pick(rng, n_l, [p[-1] for p in _PROGRAMS])))
    interest_s = _render_program(rng, interest, 0.15)

    prog_to_svc = np.array([next((i for i, s in enumerate(_SERVICES) if s[0] == c), 4) for c in _PROGRAM_CODES])
    u = rng.random(n_l)
    svc = np.where(u < 0.6, prog_to_svc[interest], np.where(u < 0.85, 4, _pick(rng, n_l, [1] * len(_SERVICES))))
    service = _case_variants(rng, svc, [s_[1] for s_ in _SERVICES])
    alias_m = rng.random(n_l) < 0.10
    svc_alias = [s[2] for s in _SERVICES]
    service[alias_m] = [svc_alias[i][j % len(svc_alias[i])] for i, j in
                        zip(svc[alias_m].tolist(), rng.integers(0, 10, int(alias_m.sum())).tolist(), strict=True)]
    unk = rng.random(n_l) < 0.05
    service[unk] = np.array(_UNKNOWN_SERVICES, dtype=object)[rng.integers(0, len(_UNKNOWN_SERVICES), int(unk.sum()))]
    service[rng.random(n_l) < 0.35] = None

    event = _case_variants(rng, rng.integers(0, len(_EVENTS), n_l), [e[1] for e in _EVENTS])
    unk = rng.random(n_l) < 0.10
    event[unk] = np.array(_UNKNOWN_EVENTS, dtype=object)[rng.integers(0, len(_UNKNOWN_EVENTS), int(unk.sum()))]
    event[rng.random(n_l) >= np.array([s[4] for s in _LEAD_SOURCES])[lead_src]] = None

    status = np.array([s for s, _ in _STATUSES], dtype=object)[_pick(rng, n_l, [w for _, w in _STATUSES])]
    status[rng.random(n_l) < 0.08] = None
    notes = np.array(_NOTES, dtype=object)[rng.integers(0, len(_NOTES), n_l)]
    notes[rng.random(n_l) < 0.65] = None
    if persons >= 40 and n_l:
        row = int(rng.integers(0, n_l))
        notes[row] = ("Notas de seguimiento: " + _LOREM * 60)[:10_000]
        hard.append(("long_text", int(lead_p[row]), None, "10,000-character notes"))

    src_files = np.array([s[0] for s in _LEAD_SOURCES], dtype=object)
    src_sheets = np.array([s[1] for s in _LEAD_SOURCES], dtype=object)
    leads = pd.DataFrame({
        **{k: pd.Series(v, dtype=object) for k, v in lv.items()},
        "interest_program": pd.Series(interest_s, dtype=object),
        "service": pd.Series(service, dtype=object),
        "event": pd.Series(event, dtype=object),
        "status": pd.Series(status, dtype=object),
        "notes": pd.Series(notes, dtype=object),
        "source_file": pd.Series(src_files[lead_src], dtype=object),
        "source_sheet": pd.Series(src_sheets[lead_src], dtype=object),
        "source_row": pd.array(lead_row_no, dtype="Int64"),
        "person_ref": lead_p.astype(np.int64),
    })

    failures = _lead_failures(rng, cols, fail_src, fail_row_no)

    # ---- hard-case truth
    for kind, a, b, detail in [
        ("father_son_landline", sp["son"], sp["father"], "same full name, shared landline and address, different cédulas: two persons"),
        ("siblings_shared_email", sp["sib_a"], sp["sib_b"], "siblings share a parent's e-mail, different cédulas: identity conflict, two persons"),
        ("namesakes", sp["namesake_a"], sp["namesake_b"], "same full name, different cédulas and birth dates: two persons"),
    ]:
        hard.extend((kind, int(x), int(y), detail) for x, y in zip(a.tolist(), b.tolist(), strict=True))
    hard.extend(("cedula_then_email", int(x), None, "student row has cédula+e-mail; one lead row only the e-mail, another only the cédula: one person")
                for x in sp.get("cedula_email", np.zeros(0, dtype=np.int64)).tolist())
    hard_cases = pd.DataFrame({
        "kind": pd.Series([h[0] for h in hard], dtype=object),
        "person_ref": pd.Series([h[1] for h in hard], dtype="int64"),
        "other_person_ref": pd.array([h[2] for h in hard], dtype="Int64"),
        "detail": pd.Series([h[3] for h in hard], dtype=object),
    })

    docs = _documents(rng, students, seed) if documents else _empty_documents()
    return DemoData(students=students, leads=leads, documents=docs, reference_data=_reference_data(),
                    lead_failures=failures, hard_cases=hard_cases)


# ---------------------------------------------------------------------------
# Lead failures, reference data, documents
# ---------------------------------------------------------------------------


def _lead_failures(rng: np.random.Generator, cols: dict[str, np.ndarray], src: np.ndarray,
                   row_no: np.ndarray) -> pd.DataFrame:
    """Rows V3 could not parse, as the raw JSON it kept, with the error text."""
    n = len(src)
    total = len(cols["full_name"])
    donors = rng.integers(0, total, n) if total else np.zeros(n, dtype=np.int64)
    kinds = rng.integers(0, 6, n)
    donor = {c: [cols[c][d] if total else None for d in donors.tolist()]
             for c in ("full_name", "email", "phone", "cedula")}
    raws, errors = [], []
    for i in range(n):
        row = int(row_no[i])
        name, email, phone, cedula = (donor[c][i] for c in ("full_name", "email", "phone", "cedula"))
        k = int(kinds[i])
        if k == 0:
            raw = {"Nombre completo": None, "Correo": email, "Celular": phone, "Programa": "Au Pair"}
            err = "missing required field: full_name"
        elif k == 1:
            parts = [str(name or ""), str(phone or ""), str(email or "")]
            raw = {"_line": ";".join(parts), "_columns": 3}
            err = f"row {row}: expected 12 columns, got 3"
        elif k == 2:
            raw = {"Nombre completo": name, "Fecha de nacimiento": "45123.5", "Cédula": cedula}
            err = "could not parse Excel serial date '45123.5' in column 'Fecha de nacimiento'"
        elif k == 3:
            raw = {"Nombre completo": "Mar\ufffda G\ufffdmez", "Correo": email, "Ciudad": "Bogot\ufffd"}
            err = 'invalid byte sequence for encoding "UTF8": 0xed 0x61'
        elif k == 4:
            raw = {"Nombre completo": "#REF!", "Correo": "#N/A", "Celular": "=+57 300 000 0000"}
            err = "formula error value in row"
        else:
            raw = {"Nombre completo": "", "Correo": "", "Celular": "", "Cédula": ""}
            err = "empty row"
        raws.append(raw)
        errors.append(err)
    return pd.DataFrame({
        "source_file": pd.Series(np.array([s[0] for s in _LEAD_SOURCES], dtype=object)[src], dtype=object),
        "source_sheet": pd.Series(np.array([s[1] for s in _LEAD_SOURCES], dtype=object)[src], dtype=object),
        "source_row": pd.array(row_no, dtype="Int64"),
        "raw_data": pd.Series(raws, dtype=object),
        "error": pd.Series(errors, dtype=object),
    })


def _reference_data() -> pd.DataFrame:
    """The catalogue files V3 staged (same for every seed, so re-loading adds nothing)."""
    rows: list[tuple[str, str, str, str, list[str], dict[str, Any]]] = []
    for code, label, aliases, _, _ in _PROGRAMS:
        rows.append(("programas.csv", "program", code, label, list(aliases), {}))
    for code, label, aliases in _SERVICES:
        rows.append(("servicios.csv", "service", code, label, list(aliases), {}))
    for code, label, date, city, service in _EVENTS:
        rows.append(("eventos_2023_2024.xlsx", "event", code, label, [],
                     {"date": date, "city": city, "service": service}))
    for i, (label, dep, dane, area, _alias, _) in enumerate(_CITIES):
        variants = [str(v) for v in _CITY_T[i].tolist()]
        aliases = sorted({v.strip() for v in variants if v.strip() != label})
        rows.append(("ciudades_colombia.csv", "city", dane, label, aliases,
                     {"department": dep, "country": "CO", "landline_prefix": f"60{area}"}))
    for code, label, aliases, calling in _COUNTRIES:
        rows.append(("paises.csv", "country", code, label, list(aliases), {"calling_code": calling}))
    return pd.DataFrame({
        "source_file": pd.Series([r[0] for r in rows], dtype=object),
        "category": pd.Series([r[1] for r in rows], dtype=object),
        "code": pd.Series([r[2] for r in rows], dtype=object),
        "label": pd.Series([r[3] for r in rows], dtype=object),
        "aliases": pd.Series([r[4] for r in rows], dtype=object),
        "attributes": pd.Series([r[5] for r in rows], dtype=object),
    })


def _empty_documents() -> pd.DataFrame:
    return pd.DataFrame({
        "document_type": pd.Series(dtype=object), "original_file_path": pd.Series(dtype=object),
        "staging_file_path": pd.Series(dtype=object), "normalized_file_name": pd.Series(dtype=object),
        "checksum": pd.Series(dtype=object), "file_size": pd.Series(dtype="Int64"),
        "mime_type": pd.Series(dtype=object), "student_row": pd.Series(dtype="int64"),
        "content_kind": pd.Series(dtype=object), "content_key": pd.Series(dtype=object),
    })


def _pdf_bytes(key: str, lines: int) -> bytes:
    """A valid one-page PDF (correct xref offsets) whose text makes it unique."""
    digest = hashlib.sha256(key.encode()).hexdigest()
    text = [f"ICE demo document {key}"] + [f"linea {i + 1}: {digest[i % 48:i % 48 + 16]}" for i in range(lines)]
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
    return b"".join([
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
    ])


def _document_bytes(path: str, document_type: str, key: str) -> bytes:
    """The file's bytes, rebuilt from its key (``load`` never keeps them in memory)."""
    if path.endswith(".jpg"):
        return _jpeg_bytes(key)
    return _pdf_bytes(key, 12 if document_type == "BANK_STATEMENT" else 2)


def _documents(rng: np.random.Generator, students: pd.DataFrame, seed: int) -> pd.DataFrame:
    """~40% of students get 1–3 documents; a small share are bad on purpose
    (staged twice, listed but missing, wrong checksum, path outside the root)."""
    n_s = len(students)
    has = np.flatnonzero(rng.random(n_s) < 0.40)
    ndocs = 1 + _pick(rng, len(has), [0.5, 0.3, 0.2])
    types = np.argsort(rng.random((len(has), len(_DOC_TYPES))), axis=1)
    cedula_jpeg = rng.random(len(has)) < 0.5
    names = students["full_name"].to_numpy(dtype=object, na_value=None)
    rows: list[dict[str, Any]] = []
    for i, srow in enumerate(has.tolist()):
        folder = " ".join(str(names[srow]).split()).upper() or "SIN NOMBRE"
        for j in range(int(ndocs[i])):
            dtype_ = _DOC_TYPES[int(types[i, j])]
            jpeg = dtype_ == "PHOTO" or (dtype_ == "CEDULA" and bool(cedula_jpeg[i]))
            ext = "jpg" if jpeg else "pdf"
            key = f"s{seed}-r{srow}-{dtype_}-1"
            orig = _DOC_ORIGINAL_NAMES[dtype_][(srow + j) % 4]
            rows.append({
                "document_type": dtype_,
                "original_file_path": f"C:\\Users\\ice\\Documentos\\Estudiantes {2019 + srow % 6}\\{folder}\\{orig}.{ext}",
                "staging_file_path": f"demo/s{seed}/{srow}/{dtype_}_1.{ext}",
                "normalized_file_name": f"{dtype_.lower()}_1.{ext}",
                "mime_type": "image/jpeg" if jpeg else "application/pdf",
                "student_row": srow,
                "content_kind": "jpeg" if jpeg else "pdf",
                "content_key": key,
            })
    nd = len(rows)
    if nd:
        u = rng.random(nd)
        # disjoint picks, at least one (two for duplicates) of each bad kind
        bad_pool = rng.permutation(nd)
        n_bad = max(2, nd // 50)
        pdfs = [i for i in bad_pool.tolist() if rows[i]["content_kind"] == "pdf"]
        wrong = pdfs[:n_bad // 2]
        wrong_set = set(wrong)
        rest = [i for i in bad_pool.tolist() if i not in wrong_set]
        missing, dups = rest[:n_bad // 2], rest[n_bad // 2:n_bad // 2 + n_bad]
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
        outside.update(staging_file_path=f"demo/s{seed}/../../../etc/passwd", content_kind="outside_root",
                       normalized_file_name="passwd", mime_type=None)
        rows.append(outside)
        # checksums / sizes as V3 recorded them
        no_sum = np.r_[u, rng.random(len(rows) - nd)] < 0.20
        no_mime = rng.random(len(rows)) < 0.15
        no_orig = rng.random(len(rows)) < 0.10
        for i, row in enumerate(rows):
            kind = row["content_kind"]
            if kind == "outside_root":
                row.update(checksum=None, file_size=None)
                continue
            data = _document_bytes(row["staging_file_path"], row["document_type"], row["content_key"])
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
    frame = _empty_documents()
    if not rows:
        return frame
    return pd.DataFrame({
        c: (pd.array([row.get(c) for row in rows], dtype="Int64") if c == "file_size"
            else pd.Series([row[c] for row in rows], dtype="int64") if c == "student_row"
            else pd.Series([row.get(c) for row in rows], dtype=object))
        for c in frame.columns
    })


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


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
                    zip(*(c[start:start + chunk] for c in columns), strict=True))
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
        out = self._buf[self._pos:end]
        self._pos += len(out)
        return out

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _copy(cur: Any, table: str, frame: pd.DataFrame, chunk: int = 50_000) -> None:
    """COPY the frame's columns into ``table`` (CSV, streamed from memory)."""
    if not len(frame):
        return
    sql = (f"COPY {table} ({', '.join(frame.columns)}) FROM STDIN "
           f"WITH (FORMAT csv, NULL '{_NULL}', ENCODING 'UTF8')")
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
    for path, kind, dtype_, key in zip(documents["staging_file_path"].tolist(), documents["content_kind"].tolist(),
                                       documents["document_type"].tolist(), documents["content_key"].tolist(),
                                       strict=True):
        if kind not in _WRITTEN_KINDS or path in written:
            continue
        rel = PurePosixPath(path)
        if rel.is_absolute() or ".." in rel.parts:
            continue  # never write outside files_root
        target = files_root.joinpath(*rel.parts)
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        data = _document_bytes(path, dtype_, key)
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
            docs.insert(0, "student_id", student_ids[data.documents["student_row"].to_numpy(dtype=np.int64)]
                        if len(docs) else np.zeros(0, dtype=np.int64))
            docs.insert(0, "id", document_ids)
            _copy(cur, "staging_document", docs)

            ref = data.reference_data
            cur.execute(
                "CREATE TEMP TABLE _demo_reference_data (source_file text, category text, code text, "
                "label text, aliases text[], attributes jsonb) ON COMMIT DROP")
            _copy(cur, "_demo_reference_data", pd.DataFrame({
                "source_file": ref["source_file"], "category": ref["category"], "code": ref["code"],
                "label": ref["label"],
                "aliases": pd.Series([_pg_array(list(a)) for a in ref["aliases"]], dtype=object),
                "attributes": pd.Series([json.dumps(a, ensure_ascii=False) for a in ref["attributes"]], dtype=object),
            }))
            cur.execute(
                "INSERT INTO staging_reference_data (source_file, category, code, label, aliases, attributes) "
                "SELECT source_file, category, code, label, aliases, attributes FROM _demo_reference_data "
                "ON CONFLICT (category, code) DO NOTHING")
            ref_new = cur.rowcount
            cur.execute("DROP TABLE _demo_reference_data")

            fail = data.lead_failures
            _copy(cur, "staging_lead_failures", pd.DataFrame({
                "source_file": fail["source_file"], "source_sheet": fail["source_sheet"],
                "source_row": fail["source_row"],
                "raw_data": pd.Series([json.dumps(r, ensure_ascii=False) for r in fail["raw_data"]], dtype=object),
                "error": fail["error"],
            }))
            files_written, bytes_written = _write_files(data.documents, files_root)
    finally:
        if was_autocommit:
            conn.autocommit = True
    return LoadResult(
        student_ids=student_ids, lead_ids=lead_ids, document_ids=document_ids,
        counts={"staging_student": len(data.students), "staging_lead": len(data.leads),
                "staging_document": len(data.documents), "staging_reference_data": int(ref_new),
                "staging_lead_failures": len(data.lead_failures)},
        files_written=files_written, bytes_written=bytes_written)


def truth_frame(data: DemoData, result: LoadResult) -> pd.DataFrame:
    """Ground truth for scoring identity resolution: staging row -> person_ref."""
    parts = [
        pd.DataFrame({"staging_table": "staging_student", "staging_id": np.asarray(result.student_ids, dtype=np.int64),
                      "person_ref": data.students["person_ref"].to_numpy(dtype=np.int64)}),
        pd.DataFrame({"staging_table": "staging_lead", "staging_id": np.asarray(result.lead_ids, dtype=np.int64),
                      "person_ref": data.leads["person_ref"].to_numpy(dtype=np.int64)}),
    ]
    out = pd.concat(parts, ignore_index=True)
    out["staging_table"] = out["staging_table"].astype("str")
    return out
