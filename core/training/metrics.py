"""Holdout metrics and permutation importance, and the metrics a search can rank by.

scikit-learn and numpy are imported inside the functions that compute: the metric specs
are read at CLI and GUI start-up, where importing scikit-learn would cost seconds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import InvalidInput
from core.training.algorithms import Task

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from sklearn.pipeline import Pipeline

# Permutation importance re-predicts the holdout n_features x repeats times; a
# seeded sample of this many rows keeps it to a fraction of the fit time.
IMPORTANCE_ROWS = 2000
IMPORTANCE_REPEATS = 3


@dataclass(frozen=True)
class MetricSpec:
    name: str
    task: Task
    greater_is_better: bool


METRICS: dict[str, MetricSpec] = {m.name: m for m in (
    MetricSpec("accuracy", "classification", True),
    MetricSpec("precision_macro", "classification", True),
    MetricSpec("recall_macro", "classification", True),
    MetricSpec("f1_macro", "classification", True),
    MetricSpec("roc_auc", "classification", True),
    MetricSpec("log_loss", "classification", False),
    MetricSpec("rmse", "regression", False),
    MetricSpec("mae", "regression", False),
    MetricSpec("r2", "regression", True),
)}
DEFAULT_METRIC: dict[Task, str] = {"classification": "f1_macro", "regression": "rmse"}


def get_metric(name: str | None, task: Task) -> MetricSpec:
    if name is None:
        return METRICS[DEFAULT_METRIC[task]]
    spec = METRICS.get(name)
    if spec is None or spec.task != task:
        valid = ", ".join(m.name for m in METRICS.values() if m.task == task)
        raise InvalidInput(f"unknown {task} metric {name!r}; choose one of: {valid}")
    return spec


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray,
                           labels: list[Any]) -> dict[str, Any]:
    import numpy as np
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        log_loss,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average="macro", zero_division=0)
    present = np.unique(y_true)
    roc: float | None = None
    if len(present) == len(labels):  # AUC is undefined when a class is absent
        roc = float(roc_auc_score(y_true, proba[:, 1]) if len(labels) == 2 else
                    roc_auc_score(y_true, proba, multi_class="ovr", labels=labels))
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision_macro": float(precision),
        "recall_macro": float(recall),
        "f1_macro": float(f1),
        "roc_auc": roc,
        "log_loss": _finite(float(log_loss(y_true, proba, labels=labels))),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "labels": list(labels),
    }


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    return {
        "rmse": float(math.sqrt(mean_squared_error(y_true, y_pred))),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "r2": _finite(float(r2_score(y_true, y_pred))) if len(y_true) > 1 else None,
    }


def evaluate(model: Pipeline, X: pd.DataFrame, y: np.ndarray, task: Task,
             labels: list[Any] | None) -> dict[str, Any]:
    if task == "classification":
        assert labels is not None
        return classification_metrics(y, model.predict(X), model.predict_proba(X), labels)
    return regression_metrics(y, model.predict(X))


def importance(model: Pipeline, X: pd.DataFrame, y: np.ndarray, task: Task,
               seed: int) -> dict[str, float]:
    """Mean drop in accuracy (classification) or R² (regression) when a raw column is shuffled."""
    import numpy as np
    from sklearn.inspection import permutation_importance

    rng = np.random.default_rng(seed)
    if len(X) > IMPORTANCE_ROWS:
        rows = np.sort(rng.choice(len(X), IMPORTANCE_ROWS, replace=False))
        X, y = X.iloc[rows], y[rows]
    scoring = "accuracy" if task == "classification" else "r2"
    result = permutation_importance(model, X, y, scoring=scoring, n_repeats=IMPORTANCE_REPEATS,
                                    random_state=seed, n_jobs=1)
    return {name: float(v) for name, v in zip(X.columns, result.importances_mean, strict=True)}
