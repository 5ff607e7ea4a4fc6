"""Shadow reports: how a challenger carried in a bundle compared with the champion on the
devices, from pulled or imported `shadow` telemetry records."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from core.catalog import Catalog
from core.errors import NotFound

# Upper edges (µs) of the agent's challenger latency buckets (edge_agent.serving.shadow).
LATENCY_EDGES_US = (100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000)


@dataclass(frozen=True)
class ShadowSummary:
    agent: str
    version: int
    challenger: int
    requests: int
    rows: int
    agreed: int
    agreement: float | None
    dropped: int
    timeouts: int
    errors: int
    latency_mean_ms: float | None
    latency_p99_ms: float | None  # upper edge of the bucket holding the 99th percentile
    divergence: dict[str, int] = field(default_factory=dict)


def _p99_ms(counts: list[int]) -> float | None:
    total = sum(counts)
    if not total:
        return None
    seen = 0
    for i, n in enumerate(counts):
        seen += n
        if seen >= 0.99 * total:
            edge = LATENCY_EDGES_US[min(i, len(LATENCY_EDGES_US) - 1)]
            return (edge if i < len(LATENCY_EDGES_US) else edge * 10) / 1000
    return None


def shadow_report(catalog: Catalog, model: str, agent: str | None = None) -> dict[str, Any]:
    """{"model", "agents": [ShadowSummary per (agent, champion, challenger)]}."""
    cur = catalog.cursor()
    rows = cur.execute(
        "SELECT agent, version, challenger, sum(count), sum(rows), sum(agreed), sum(dropped),"
        " sum(timeouts), sum(errors), sum(latency_us),"
        " list(counts), list(divergence) FROM telemetry_shadow WHERE model = ?"
        " AND (CAST(? AS VARCHAR) IS NULL OR agent = ?)"
        " GROUP BY agent, version, challenger ORDER BY agent, version, challenger",
        [model, agent, agent]).fetchall()
    if not rows and not cur.execute("SELECT 1 FROM model_version WHERE model = ? LIMIT 1",
                                    [model]).fetchall():
        raise NotFound(f"model {model} does not exist")
    out = []
    for (name, version, challenger, n, compared, agreed, dropped, timeouts, errors,
         latency, histograms, divergences) in rows:
        counts = [sum(h[i] for h in histograms if i < len(h))
                  for i in range(len(LATENCY_EDGES_US) + 1)]
        merged: dict[str, int] = {}
        for doc in divergences:
            for label, k in orjson.loads(doc).items():
                merged[label] = merged.get(label, 0) + int(k)
        out.append(ShadowSummary(
            str(name), int(version), int(challenger), int(n), int(compared), int(agreed),
            round(agreed / compared, 4) if compared else None, int(dropped), int(timeouts),
            int(errors), round(latency / n / 1000, 3) if n else None,
            _p99_ms(counts), dict(sorted(merged.items()))))
    return {"model": model, "agents": [asdict(s) for s in out]}
