"""``runs reproduce``: retrain from the same data version, parameters and seed, and compare."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.catalog import Catalog
from core.errors import InvalidInput
from core.progress import CancelToken, ProgressFn, check, report
from core.training.algorithms import get_algorithm
from core.training.holdout import run_inputs
from core.training.pipeline import build_pipeline, single_threaded
from core.training.runs import Run, get_run, load_model, package_versions
from core.training.trainer import fit_and_score


@dataclass
class Reproduction:
    run: str
    identical: bool
    metrics_identical: bool
    predictions_identical: bool
    importance_identical: bool
    max_prediction_diff: float
    metric_differences: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    package_changes: dict[str, tuple[str, str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run, "identical": self.identical,
            "metrics_identical": self.metrics_identical,
            "predictions_identical": self.predictions_identical,
            "importance_identical": self.importance_identical,
            "max_prediction_diff": self.max_prediction_diff,
            "metric_differences": {k: list(v) for k, v in self.metric_differences.items()},
            "package_changes": {k: list(v) for k, v in self.package_changes.items()},
        }


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def _outputs(model: Any, X: Any, task: str) -> np.ndarray:
    if task == "classification":
        return np.asarray(model.predict_proba(X), dtype=np.float64)
    return np.asarray(model.predict(X), dtype=np.float64)


def reproduce_run(catalog: Catalog, run_id: str, *, progress: ProgressFn | None = None,
                  cancel: CancelToken | None = None) -> Reproduction:
    """Retrain `run_id` exactly as recorded; nothing is written to the catalog."""
    run: Run = get_run(catalog, run_id)
    if run.kind == "trial":
        raise InvalidInput(f"run {run.short} is a search trial scored by cross-validation; "
                           f"reproduce its search run {run.parent}")
    original = load_model(catalog, run)
    report(progress, "training", 0, 4)
    inputs, train, holdout = run_inputs(catalog, run)
    algorithm = get_algorithm(run.algo)
    model = build_pipeline(algorithm, run.task, run.params, run.feature_list, run.seed, n_jobs=-1)
    check(cancel, "reproduction")
    fitted = fit_and_score(model, inputs, train, holdout, run.seed, progress, cancel)
    metrics, scores = fitted.metrics, fitted.importance
    X_hold = inputs.X.iloc[holdout]
    with single_threaded():
        before, after = _outputs(original, X_hold, run.task), _outputs(model, X_hold, run.task)
    differences = {k: (run.metrics.get(k), metrics.get(k))
                   for k in sorted(set(run.metrics) | set(metrics))
                   if not _same(run.metrics.get(k), metrics.get(k))}
    now_packages = package_versions()
    changes = {k: (v, now_packages.get(k, "")) for k, v in run.packages.items()
               if now_packages.get(k) != v}
    predictions_identical = before.shape == after.shape and bool(np.array_equal(before, after))
    importance_identical = run.importance == scores
    return Reproduction(
        run=run.id, identical=not differences and predictions_identical and importance_identical,
        metrics_identical=not differences, predictions_identical=predictions_identical,
        importance_identical=importance_identical,
        max_prediction_diff=float(np.abs(before - after).max()) if before.shape == after.shape
        else math.inf,
        metric_differences=differences, package_changes=changes)
