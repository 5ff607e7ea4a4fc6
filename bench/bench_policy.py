"""Retraining-policy evaluation after a telemetry pull: the hook every ingest runs.

One agent's N histogram windows (every feature of the model, plus its prediction) go
through the real ingest; then `after_ingest` — which evaluates a policy with a PSI trigger
(2 consecutive windows) and an every-30-days schedule — is timed. Baseline, measured in
the same run on the same catalog: the raw DuckDB query that reads those windows' bins.
The stream follows the training distribution, so nothing fires: the steady-state cost paid
after every pull.

    python bench/bench_policy.py [--windows 1000] [--reps 15] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.bundles import build_bundle  # noqa: E402
from core.catalog import Catalog  # noqa: E402
from core.config import Settings  # noqa: E402
from core.policy.evaluate import after_ingest  # noqa: E402
from core.policy.spec import Policy, PsiTrigger, ScheduleTrigger  # noqa: E402
from core.policy.store import set_policy  # noqa: E402
from core.telemetry.ingest import ingest_table, records_table  # noqa: E402
from tests.support.fleet import train_mini  # noqa: E402

RESULTS_DIR = Path(os.environ.get("OUTPOST_BENCH_RESULTS") or REPO / "bench" / "results")
RESULTS = RESULTS_DIR / "bench_policy.json"
TARGET_MS = 100.0
RAW = ("SELECT agent, window_start, feature, counts, nulls FROM telemetry_histogram "
       "WHERE model = 'pumps' AND version = 1")


def _baseline_bins(catalog: Catalog) -> dict[str, tuple[list[int], int]]:
    (doc,) = catalog.cursor().execute(
        "SELECT baseline FROM bundle WHERE model = 'pumps' AND version = 1").fetchone()
    base = json.loads(doc)
    features = [*base["features"], *([base["prediction"]] if base.get("prediction") else [])]
    return {f["name"]: ([int(c) for c in f["counts"]], int(f.get("nulls") or 0))
            for f in features}


def _windows(bins: dict[str, tuple[list[int], int]], n: int) -> list[dict[str, Any]]:
    records, seq, t0 = [], 0, 1.7e9
    for w in range(n):
        for feature, (counts, nulls) in bins.items():
            seq += 1
            records.append({"seq": seq, "kind": "histogram", "window_start": t0 + 60 * w,
                            "window_end": t0 + 60 * (w + 1), "model": "pumps", "version": 1,
                            "feature": feature, "counts": counts, "nulls": nulls})
    return records


def _median_ms(fn: Any, reps: int) -> float:
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=1000, help="histogram windows (1000)")
    parser.add_argument("--reps", type=int, default=15, help="timed evaluations (15)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 windows, 3 reps")
    args = parser.parse_args()
    if args.quick:
        args.windows, args.reps = 100, 3
    with tempfile.TemporaryDirectory(prefix="bench-policy-") as tmp, \
            Catalog.open(Settings(Path(tmp) / "home")) as catalog:
        train_mini(catalog)
        build_bundle(catalog, "pumps@1")  # the drift baseline the windows are scored against
        bins = _baseline_bins(catalog)
        records = _windows(bins, args.windows)
        ingest_table(catalog, "edge", records_table(records), where="bench")
        set_policy(catalog, Policy("pumps", psi=PsiTrigger(0.25, 1, 2),
                                   schedule=ScheduleTrigger(30 * 86_400.0, "30d")))
        decisions = after_ingest(catalog, "pull")
        assert [d.action for d in decisions] == ["quiet"], decisions  # nothing fires
        after_ingest(catalog, "pull")  # warm: first-use imports are not the steady state
        catalog.cursor().execute(RAW).fetchall()
        ours, raw = [], []
        for _ in range(args.reps):  # alternate, so both see the same machine noise
            ours.append(_median_ms(lambda: after_ingest(catalog, "pull"), 1))
            raw.append(_median_ms(lambda: catalog.cursor().execute(RAW).fetchall(), 1))
    result = {
        "benchmark": "bench_policy", "machine": platform.machine(),
        "cpus": len(os.sched_getaffinity(0)), "python": platform.python_version(),
        "windows": args.windows, "features_per_window": len(bins),
        "histogram_records": len(records), "reps": args.reps,
        "evaluate_ms": round(statistics.median(ours), 2),
        "raw_read_ms": round(statistics.median(raw), 2),
        "ratio": round(statistics.median(ours) / statistics.median(raw), 2),
        "target_ms": TARGET_MS, "quick": args.quick,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"policy evaluation after {args.windows} windows x {len(bins)} features: "
          f"{result['evaluate_ms']} ms (target < {TARGET_MS:g} ms); raw DuckDB read of the "
          f"same windows {result['raw_read_ms']} ms; ratio {result['ratio']}")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
