"""Small vectorised helpers for drawing random values and building numpy strings."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

import numpy as np

STR = np.dtypes.StringDType()
AT = np.array("@", dtype=STR)


def strip_accents(s: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", s) if not unicodedata.combining(c))


def case_table(words: list[str]) -> np.ndarray:
    """Per word: [Title, Title w/o accents, UPPER, UPPER w/o accents, lower, lower w/o accents]."""
    rows = []
    for w in words:
        na = strip_accents(w)
        rows.append([w, na, w.upper(), na.upper(), w.lower(), na.lower()])
    return np.array(rows, dtype=STR)


def _probs(weights: list[float]) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    return w / w.sum()


def pick(rng: np.random.Generator, n: int, weights: list[float]) -> np.ndarray:
    return rng.choice(len(weights), size=n, p=_probs(weights))


def as_str(x: np.ndarray) -> np.ndarray:
    return np.asarray(x).astype(STR)


def zero_pad(x: np.ndarray, width: int) -> np.ndarray:
    return np.strings.zfill(as_str(x), width)


def no_repdigit_ranges(lo: int, hi: int) -> list[tuple[int, int]]:
    """Split [lo, hi) so that numbers made of one repeated digit are excluded:
    those are junk cédulas (DESIGN §4), never a real person's number."""
    bad = sorted(d * (10**k - 1) // 9 for k in range(len(str(lo)), len(str(hi)) + 1) for d in range(1, 10))
    out, start = [], lo
    for b in bad:
        if start <= b < hi:
            if b > start:
                out.append((start, b))
            start = b + 1
    if start < hi:
        out.append((start, hi))
    return out


def unique_numbers(rng: np.random.Generator, k: int, ranges: list[tuple[int, int]]) -> np.ndarray:
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


def variants_s(f: np.ndarray, builders: list[Callable[[np.ndarray], np.ndarray]]) -> np.ndarray:
    """Like ``variants`` but keeps numpy strings (for further vectorised concatenation)."""
    out = np.empty(len(f), dtype=STR)
    for k, build in enumerate(builders):
        idx = np.flatnonzero(f == k)
        if len(idx):
            out[idx] = build(idx)
    return out


def nulls(n: int) -> np.ndarray:
    return np.full(n, None, dtype=object)
