"""The seeded train/holdout split: stratified for classification, the same rows every time.

scikit-learn is imported on use (it takes seconds); the holdout is rebuilt by callers
that otherwise need only pandas, such as bundle building.
"""
from __future__ import annotations

import numpy as np

from core.errors import InvalidInput
from core.training.algorithms import Task


def split_indices(y: np.ndarray, task: Task, test_size: float,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of the training and holdout parts, each in ascending order."""
    if not 0.0 < test_size < 1.0:
        raise InvalidInput(f"test size must be between 0 and 1, got {test_size}")
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(y))
    stratify = y if task == "classification" else None
    try:
        train, test = train_test_split(rows, test_size=test_size, random_state=seed,
                                       shuffle=True, stratify=stratify)
    except ValueError as exc:
        raise InvalidInput(f"cannot split {len(y)} rows into training and holdout: {exc}") from None
    return np.sort(train), np.sort(test)


def cv_folds(y: np.ndarray, task: Task, folds: int,
             seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded cross-validation folds over the training part (stratified for classes)."""
    if folds < 2:
        raise InvalidInput(f"cross-validation needs at least 2 folds, got {folds}")
    from sklearn.model_selection import KFold, StratifiedKFold

    if task == "classification":
        smallest = int(np.unique(y, return_counts=True)[1].min())
        if smallest < folds:
            raise InvalidInput(f"a class has only {smallest} training rows, fewer than the "
                               f"{folds} cross-validation folds")
    splitter = (StratifiedKFold(folds, shuffle=True, random_state=seed) if task == "classification"
                else KFold(folds, shuffle=True, random_state=seed))
    try:
        return [(train, test) for train, test in splitter.split(np.zeros(len(y)), y)]
    except ValueError as exc:
        raise InvalidInput(f"cannot make {folds} cross-validation folds: {exc}") from None
