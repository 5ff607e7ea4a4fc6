"""Comparing two versions: schema changes, row counts, and per-column statistics."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from core.catalog import Catalog
from core.datasets.profile import ColumnProfile, Profile, profile_version
from core.datasets.records import Column, DatasetVersion
from core.datasets.versions import resolve_version
from core.progress import CancelToken, ProgressFn

# Statistics compared per shared column; fractions rather than counts, so that
# versions of different length compare fairly. "shares" are the top values' shares.
STATS = ("null_fraction", "distinct", "min", "max", "mean", "std", "p50", "shares")
_TOLERANCE = 1e-9
# A change is notable when it is this large: numbers in standard deviations of the
# column in `a`, fractions in absolute points, distinct counts relative.
NOTABLE = {"mean": 0.1, "p50": 0.1, "std": 0.1, "min": 0.5, "max": 0.5,
           "null_fraction": 0.01, "shares": 0.05, "distinct": 0.1}


@dataclass(frozen=True)
class StatChange:
    column: str
    stat: str
    a: Any
    b: Any
    notable: bool

    @property
    def delta(self) -> float | None:
        if _number(self.a) and _number(self.b):
            return float(self.b) - float(self.a)
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "stat": self.stat, "a": self.a, "b": self.b,
                "delta": self.delta, "notable": self.notable}


@dataclass(frozen=True)
class Diff:
    a: str  # refs
    b: str
    same_content: bool
    rows: tuple[int, int]
    added: list[Column]
    removed: list[Column]
    retyped: list[tuple[str, str, str]]  # (column, type in a, type in b)
    changes: list[StatChange]

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "same_content": self.same_content,
            "rows": {"a": self.rows[0], "b": self.rows[1], "delta": self.rows[1] - self.rows[0]},
            "schema": {
                "added": [c.to_dict() for c in self.added],
                "removed": [c.to_dict() for c in self.removed],
                "type_changed": [{"column": n, "a": ta, "b": tb} for n, ta, tb in self.retyped],
            },
            "changes": [c.to_dict() for c in self.changes],
        }


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _shares(column: ColumnProfile) -> dict[str, float] | None:
    if not column.top or not column.count:
        return None
    return {str(v): round(n / column.count, 4) for v, n in column.top}


def _stat(column: ColumnProfile, rows: int, stat: str) -> Any:
    if stat == "null_fraction":
        return column.nulls / rows if rows else 0.0
    if stat == "p50":
        return (column.quantiles or {}).get("p50")
    if stat == "shares":
        return _shares(column)
    return getattr(column, stat)


def _differs(a: Any, b: Any) -> bool:
    if _number(a) and _number(b):
        return not math.isclose(float(a), float(b), rel_tol=_TOLERANCE, abs_tol=_TOLERANCE)
    return bool(a != b)


def _size(stat: str, a: Any, b: Any, spread: float | None) -> float | None:
    """How big a change is, in the unit NOTABLE uses; None when it cannot be measured."""
    if stat == "shares" and isinstance(a, dict) and isinstance(b, dict):
        return max(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in a.keys() | b.keys())
    if not (_number(a) and _number(b)):
        return None
    delta = abs(float(b) - float(a))
    if stat == "null_fraction":
        return delta
    if stat == "distinct":
        return delta / max(abs(float(a)), 1.0)
    return delta / spread if spread else None


def _stat_changes(pa: Profile, pb: Profile, shared: list[str]) -> list[StatChange]:
    changes = []
    for name in shared:
        ca, cb = pa.column(name), pb.column(name)
        for stat in STATS:
            va, vb = _stat(ca, pa.rows, stat), _stat(cb, pb.rows, stat)
            if stat == "shares" and (va is None or vb is None):
                continue  # one side has too many distinct values to list shares
            if _differs(va, vb):
                size = _size(stat, va, vb, ca.std)
                notable = size is None or size >= NOTABLE[stat]
                changes.append(StatChange(name, stat, va, vb, notable))
    return changes


def diff_versions(catalog: Catalog, a: DatasetVersion | str, b: DatasetVersion | str, *,
                  progress: ProgressFn | None = None,
                  cancel: CancelToken | None = None) -> Diff:
    """What changed from ``a`` to ``b`` (versions or refs, of one dataset or two)."""
    va = resolve_version(catalog, a) if isinstance(a, str) else a
    vb = resolve_version(catalog, b) if isinstance(b, str) else b
    types_a = {c.name: c.type for c in va.columns}
    types_b = {c.name: c.type for c in vb.columns}
    added = [c for c in vb.columns if c.name not in types_a]
    removed = [c for c in va.columns if c.name not in types_b]
    shared = [c.name for c in va.columns if c.name in types_b]
    retyped = [(n, types_a[n], types_b[n]) for n in shared if types_a[n] != types_b[n]]
    changes: list[StatChange] = []
    if va.version != vb.version and shared:
        pa = profile_version(catalog, va, progress=progress, cancel=cancel)
        pb = profile_version(catalog, vb, progress=progress, cancel=cancel)
        changes = _stat_changes(pa, pb, shared)
    return Diff(va.ref, vb.ref, va.version == vb.version, (va.rows, vb.rows), added, removed,
                retyped, changes)
