"""Residuals of a regression run on its holdout rows: the shape of its errors."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.catalog import Catalog
from core.errors import InvalidInput
from core.training.holdout import holdout_frame
from core.training.runs import Run, load_model

MAX_POINTS = 5000  # a residual plot needs the shape, not every holdout row


@dataclass(frozen=True)
class Residuals:
    run: str
    holdout_rows: int  # rows in the holdout; `predicted` holds at most max_points of them
    predicted: np.ndarray
    residual: np.ndarray  # actual - predicted

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run, "holdout_rows": self.holdout_rows,
                "points": len(self.predicted),
                "mean_abs": float(np.mean(np.abs(self.residual))) if len(self.residual) else None,
                "predicted": self.predicted.tolist(), "residual": self.residual.tolist()}


def residuals(catalog: Catalog, run: Run, max_points: int = MAX_POINTS) -> Residuals:
    """(predicted, actual - predicted) on the run's holdout rows, a seeded sample of at
    most `max_points` of them."""
    if run.task != "regression":
        raise InvalidInput(f"run {run.short} is a {run.task} run: residuals are for "
                           "regression (its confusion matrix is in `outpost runs show`)")
    if max_points < 1:
        raise InvalidInput(f"max points must be at least 1, not {max_points}")
    X, y = holdout_frame(catalog, run)
    total = len(X)
    if total > max_points:
        rows = np.random.default_rng(run.seed).choice(total, max_points, replace=False)
        X, y = X.iloc[rows], y.iloc[rows]
    predicted = np.asarray(load_model(catalog, run).predict(X), dtype=float)
    return Residuals(run.id, total, predicted, np.asarray(y, dtype=float) - predicted)
