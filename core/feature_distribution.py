"""One feature's live distribution beside its training baseline, bin by bin.

The drift figures (PSI, KS, chi²) say *that* a feature moved; this says *where*: the
share of values in each of the baseline's bins, in training and in live traffic.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import orjson

from core.catalog import Catalog
from core.errors import NotFound
from edge_agent.contract.protocol import PREDICTION_FEATURE, Baseline, FeatureBaseline


@dataclass(frozen=True)
class FeatureDistribution:
    model: str
    version: int
    feature: str
    kind: str  # numeric | categorical
    labels: list[str]  # one per bin, in the baseline's order
    edges: list[float] | None  # numeric: the cut points between the bins
    baseline: list[int]
    live: list[int]
    baseline_nulls: int
    live_nulls: int

    @staticmethod
    def shares(counts: list[int]) -> list[float]:
        total = sum(counts)
        return [c / total if total else 0.0 for c in counts]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fmt(edge: float) -> str:
    return f"{edge:.4g}"


def bin_labels(feature: FeatureBaseline) -> list[str]:
    """Numeric: ``< e0``, ``[e0, e1)`` … ``≥ ek``; categorical: the categories, then other."""
    if feature.kind == "categorical":
        return [*(feature.categories or []), "(other)"][: feature.bins]
    edges = feature.edges or []
    if not edges:
        return ["all"] * feature.bins
    inner = [f"[{_fmt(a)}, {_fmt(b)})" for a, b in zip(edges, edges[1:], strict=False)]
    return [f"< {_fmt(edges[0])}", *inner, f"≥ {_fmt(edges[-1])}"]


def _baseline(catalog: Catalog, model: str, version: int, feature: str) -> FeatureBaseline:
    rows = catalog.cursor().execute(
        "SELECT baseline FROM bundle WHERE model = ? AND version = ?", [model, version]).fetchall()
    if not rows:
        raise NotFound(f"no baseline for {model}@{version}: its bundle was not built here")
    found = Baseline.from_dict(orjson.loads(rows[0][0])).feature(feature)
    if found is None:
        shown = "the prediction" if feature == PREDICTION_FEATURE else f"feature {feature!r}"
        raise NotFound(f"{model}@{version} has no baseline for {shown}")
    return found


def feature_distribution(catalog: Catalog, model: str, version: int, feature: str, *,
                         agent: str | None = None, since: float | None = None,
                         until: float | None = None) -> FeatureDistribution:
    """Baseline and live counts per bin of ``feature`` (live: windows overlapping
    [since, until), from one agent or the whole fleet)."""
    base = _baseline(catalog, model, version, feature)
    rows = catalog.cursor().execute(
        "SELECT counts, nulls FROM telemetry_histogram WHERE model = ? AND version = ? "
        "AND feature = ? AND (? IS NULL OR agent = ?) AND (? IS NULL OR window_end > ?) "
        "AND (? IS NULL OR window_start < ?)",
        [model, version, feature, agent, agent, since, since, until, until]).fetchall()
    live = [0] * base.bins
    nulls = 0
    for counts, row_nulls in rows:
        for i, n in enumerate(counts[: base.bins]):
            live[i] += int(n)
        nulls += int(row_nulls)
    return FeatureDistribution(model, version, feature, base.kind, bin_labels(base),
                               list(base.edges) if base.edges else None, list(base.counts), live,
                               base.nulls, nulls)
