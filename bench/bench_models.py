"""Model benchmark on the field-sensor set: ONNX (onnxruntime) against the trained estimator.

For every algorithm, in one run: training time, export + parity time, single-row
latency of onnxruntime ``session.run`` against the pipeline's ``predict_proba`` /
``predict`` (ratio), and 10k-row batch throughput both ways (ratio), each on one
thread. Then a 20-trial search, run once with a worker per core and once with one
worker (the baseline), both from a warm worker pool, with the CPU use of the whole
process tree (from /proc) as a share of all cores and the machine's overall busy
share (other users' work included).

Classifiers predict ``failure``; the regression-only algorithms (linear, ridge)
predict ``current_a`` from the other columns.

    python bench/bench_models.py [--rows 60000] [--trials 20] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from importlib import import_module
from pathlib import Path
from typing import Any

import onnxruntime as ort
import pandas as pd
from joblib.externals.loky import get_reusable_executor

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.catalog import Catalog  # noqa: E402
from core.config import Settings  # noqa: E402
from core.datasets import import_frame  # noqa: E402
from core.registry.register import export_with_parity  # noqa: E402
from core.registry.signature import graph_signature, onnx_feeds  # noqa: E402
from core.samples import sensor_frame  # noqa: E402
from core.training.pipeline import single_threaded  # noqa: E402
from core.training.searcher import search  # noqa: E402
from core.training.trainer import fit_frame  # noqa: E402

RESULTS_DIR = Path(os.environ.get("OUTPOST_BENCH_RESULTS") or REPO / "bench" / "results")
RESULTS = RESULTS_DIR / "bench_models.json"
CASES = [  # algorithm, target, params (defaults unless a bench-sized value matters)
    ("logistic_regression", "failure", {}),
    ("random_forest", "failure", {}),
    ("gradient_boosting", "failure", {}),
    ("mlp", "failure", {}),
    ("linear_regression", "current_a", {}),
    ("ridge", "current_a", {}),
]
TICKS = os.sysconf("SC_CLK_TCK")


def _median_s(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_algorithm(frame: pd.DataFrame, algo: str, target: str, params: dict[str, Any],
                    quick: bool) -> dict[str, Any]:
    drop = [c for c in ("failure", "current_a") if c != target]
    started = time.perf_counter()
    _, _, fitted = fit_frame(frame.drop(columns=drop), target, algo=algo, params=params, seed=0)
    train_s = time.perf_counter() - started
    X, _ = fitted.holdout
    with single_threaded():
        started = time.perf_counter()
        exported = export_with_parity(fitted.model, fitted.inputs.features, fitted.inputs.task, X)
        export_parity_s = time.perf_counter() - started
    # One thread each way, as an agent serves one request per core: onnxruntime's
    # intra-op pool and the forest's joblib threads would otherwise use every core.
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(exported.data, options, providers=["CPUExecutionProvider"])
    inputs, _ = graph_signature(exported.model)
    pipeline = fitted.model
    if "n_jobs" in pipeline.named_steps["model"].get_params():
        pipeline.set_params(model__n_jobs=1)
    one_row = X.iloc[:1]
    one_feed = onnx_feeds(one_row, inputs)
    batch = pd.concat([X] * (10_000 // len(X) + 1)).iloc[:10_000].reset_index(drop=True)
    batch_feed = onnx_feeds(batch, inputs)
    predict = pipeline.predict_proba if fitted.inputs.task == "classification" else pipeline.predict
    with single_threaded():
        onnx_row = _median_s(lambda: session.run(None, one_feed), 50 if quick else 2000)
        sk_row = _median_s(lambda: predict(one_row), 5 if quick else 200)
        onnx_batch = _median_s(lambda: session.run(None, batch_feed), 1 if quick else 7)
        sk_batch = _median_s(lambda: predict(batch), 1 if quick else 7)
    return {
        "algo": algo, "target": target, "task": fitted.inputs.task,
        "train_rows": len(fitted.train_rows), "holdout_rows": len(X),
        "train_s": round(train_s, 3), "export_parity_s": round(export_parity_s, 3),
        "parity": {k: exported.parity.get(k) for k in
                   ("passed", "precision", "label_agreement", "max_abs_diff", "max_rel_diff")},
        "onnx_bytes": len(exported.data),
        "single_row_us": {"onnx": round(onnx_row * 1e6, 1), "sklearn": round(sk_row * 1e6, 1),
                          "ratio_sklearn_over_onnx": round(sk_row / onnx_row, 1)},
        "batch_10k_rows_per_s": {"onnx": round(10_000 / onnx_batch),
                                 "sklearn": round(10_000 / sk_batch),
                                 "ratio_onnx_over_sklearn": round(sk_batch / onnx_batch, 2)},
    }


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime of the process itself


class TreeCpu:
    """CPU seconds used by this process and its descendants, sampled from /proc."""

    def __init__(self) -> None:
        self.first: dict[int, int] = {}
        self.last: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        pending, seen = [os.getpid()], set()
        while pending:
            pid = pending.pop()
            if pid in seen:
                continue
            seen.add(pid)
            ticks = _cpu_ticks(pid)
            self.first.setdefault(pid, ticks)
            self.last[pid] = max(self.last.get(pid, 0), ticks)
            pending.extend(_children(pid))

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self._sample()

    def __enter__(self) -> TreeCpu:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def seconds(self) -> float:
        return sum(self.last[p] - self.first[p] for p in self.last) / TICKS


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores from /proc/stat, other users' work included."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def warm_workers(n_jobs: int) -> float:
    """Start the worker pool and import the training code in each worker; returns seconds.

    A search's first use of the pool pays this once per session (the GUI and CLI keep
    the pool); measuring it inside one configuration but not the other would skew the
    comparison, so both searches start warm and the cost is reported on its own.
    """
    started = time.perf_counter()
    executor = get_reusable_executor(max_workers=n_jobs)
    list(executor.map(import_module, ["core.training.searcher"] * n_jobs))
    return time.perf_counter() - started


def bench_search(catalog: Catalog, trials: int, n_jobs: int) -> dict[str, Any]:
    warm_s = warm_workers(n_jobs)
    started = time.perf_counter()
    busy0, total0 = _machine_ticks()
    with TreeCpu() as cpu:
        result = search(catalog, "sensor", "failure", algo="gradient_boosting", kind="random",
                        trials=trials, cv=3, seed=0, n_jobs=n_jobs,
                        params={"max_iter": 40})
    wall = time.perf_counter() - started
    busy1, total1 = _machine_ticks()
    cores = os.cpu_count() or 1
    return {"workers": n_jobs, "trials": len(result.trials), "wall_s": round(wall, 2),
            "pool_start_s": round(warm_s, 2),
            "cpu_s": round(cpu.seconds, 2),
            "cpu_utilisation_of_all_cores": round(cpu.seconds / (wall * cores), 3),
            "machine_busy_share": round((busy1 - busy0) / max(1, total1 - total0), 3),
            "best_metric": result.parent.search and result.parent.search["best_score"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2k rows, 2 algorithms, 2 trials, few repeats")
    args = parser.parse_args()
    rows, trials = (2_000, 2) if args.quick else (args.rows, args.trials)
    frame = sensor_frame(rows=rows)
    results = []
    cases = [CASES[0], CASES[-1]] if args.quick else CASES  # a classifier and a regressor
    for algo, target, params in cases:
        result = bench_algorithm(frame, algo, target, params, args.quick)
        results.append(result)
        print(f"{algo:20s} train {result['train_s']:6.2f}s  export+parity "
              f"{result['export_parity_s']:5.2f}s  parity {result['parity']['passed']}  "
              f"1 row: onnx {result['single_row_us']['onnx']:7.1f}us sklearn "
              f"{result['single_row_us']['sklearn']:8.1f}us "
              f"(x{result['single_row_us']['ratio_sklearn_over_onnx']})  10k rows/s: onnx "
              f"{result['batch_10k_rows_per_s']['onnx']:>9,} sklearn "
              f"{result['batch_10k_rows_per_s']['sklearn']:>9,} "
              f"(x{result['batch_10k_rows_per_s']['ratio_onnx_over_sklearn']})", flush=True)
    with tempfile.TemporaryDirectory() as tmp, Catalog.open(Settings(Path(tmp))) as catalog:
        import_frame(catalog, "sensor", frame, {"kind": "bench"})
        parallel = bench_search(catalog, trials, os.cpu_count() or 1)
        serial = bench_search(catalog, trials, 1)
    speedup = round(serial["wall_s"] / parallel["wall_s"], 2)
    print(f"search {trials} trials: {parallel['wall_s']}s with {parallel['workers']} workers "
          f"(CPU {parallel['cpu_utilisation_of_all_cores']:.0%} of all cores) vs "
          f"{serial['wall_s']}s with 1 (CPU {serial['cpu_utilisation_of_all_cores']:.0%}): "
          f"x{speedup}; machine busy {parallel['machine_busy_share']:.0%} / "
          f"{serial['machine_busy_share']:.0%} counting other processes")
    load = os.getloadavg()
    data = {"benchmark": "bench_models", "rows": rows, "cores": os.cpu_count(),
            "machine": platform.machine(), "python": platform.python_version(),
            "load_average_at_end": [round(x, 2) for x in load],
            "algorithms": results, "search": {"parallel": parallel, "serial": serial,
                                              "speedup": speedup}}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
