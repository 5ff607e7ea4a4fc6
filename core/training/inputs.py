"""From a dataset frame to checked training inputs: features, target, task, labels.

Every refusal here is one line and happens before anything is fitted or written.
A feature that is null in every row is refused rather than dropped: dropping it
would silently change the model's input signature, which the device relies on,
so the user leaves it out explicitly with ``--features``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.errors import InvalidInput
from core.training.algorithms import Algorithm, Task
from core.training.features import Feature, feature_kind, prepare_features

# Integer-valued targets with at most this many distinct values are classes.
MAX_INFERRED_CLASSES = 20
# One-hot encoding beyond this many categories makes a huge graph and is rarely meant.
MAX_CATEGORIES = 1000


@dataclass
class TrainingInputs:
    X: pd.DataFrame
    y: np.ndarray
    features: list[Feature]
    task: Task
    labels: list[int | str] | None
    notes: list[str] = field(default_factory=list)


def _names(columns: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(columns[:limit])
    return shown + (f", … ({len(columns)} in all)" if len(columns) > limit else "")


def choose_features(frame: pd.DataFrame, target: str,
                    requested: Sequence[str] | None) -> tuple[list[Feature], list[str]]:
    """The features and any notes; explicit requests are checked, defaults filtered."""
    notes: list[str] = []
    if requested:
        missing = [name for name in requested if name not in frame.columns]
        if missing:
            raise InvalidInput(f"feature {missing[0]!r} is not a column; columns: "
                               f"{_names(list(frame.columns))}")
        if target in requested:
            raise InvalidInput(f"the target {target!r} cannot also be a feature")
        if len(set(requested)) != len(requested):
            raise InvalidInput("a feature is listed twice in --features")
        names = list(requested)
    else:
        names = [c for c in frame.columns if c != target]
    features = []
    for name in names:
        kind = feature_kind(frame[name])
        if kind is None:
            if requested:
                raise InvalidInput(f"feature {name!r} has type {frame[name].dtype}, which "
                                   "cannot be a model input (numbers and strings can)")
            notes.append(f"left out {name!r}: type {frame[name].dtype} cannot be a model input")
            continue
        features.append(Feature(name, kind))
    if not features:
        raise InvalidInput(f"no usable feature columns besides the target {target!r}")
    return features, notes


def infer_task(y: pd.Series) -> Task:
    if not pd.api.types.is_numeric_dtype(y.dtype) or pd.api.types.is_bool_dtype(y.dtype):
        return "classification"
    values = y.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    integral = bool(np.all(np.mod(values, 1.0) == 0.0))
    if integral and len(np.unique(values)) <= MAX_INFERRED_CLASSES:
        return "classification"
    return "regression"


def _regression_target(y: pd.Series, target: str) -> np.ndarray:
    if not pd.api.types.is_numeric_dtype(y.dtype) or pd.api.types.is_bool_dtype(y.dtype):
        raise InvalidInput(f"target {target!r} is not numeric ({y.dtype}); "
                           "regression needs a numeric target")
    return y.astype("Float64").to_numpy(dtype=np.float64)


def _classification_target(y: pd.Series, target: str) -> tuple[np.ndarray, list[int | str]]:
    values: np.ndarray
    if pd.api.types.is_bool_dtype(y.dtype) or pd.api.types.is_numeric_dtype(y.dtype):
        numbers = y.astype("Float64").to_numpy(dtype=np.float64)
        if not np.all(np.mod(numbers, 1.0) == 0.0):
            raise InvalidInput(f"target {target!r} has fractional values; use a regression "
                               "algorithm or --task regression")
        values = numbers.astype(np.int64)
    else:
        values = np.asarray([str(v) for v in y], dtype=object)
    classes, counts = np.unique(values, return_counts=True)
    labels: list[int | str] = [c.item() if isinstance(c, np.generic) else str(c) for c in classes]
    if len(labels) < 2:
        raise InvalidInput(f"target {target!r} has only one class ({labels[0]!r}); "
                           "classification needs at least two")
    if counts.min() < 2:
        rare = labels[int(np.argmin(counts))]
        raise InvalidInput(f"class {rare!r} of target {target!r} has only one row; a "
                           "stratified split needs at least two rows per class")
    return values, labels


def _check_feature_values(X: pd.DataFrame, features: Sequence[Feature]) -> None:
    for feature in features:
        column = X[feature.name]
        if feature.kind == "numeric":
            if bool(np.isnan(column.to_numpy(dtype=np.float64)).all()):
                raise InvalidInput(f"feature {feature.name!r} is null in every row; "
                                   "leave it out with --features")
        else:
            present = column[column != ""]
            if present.empty:
                raise InvalidInput(f"feature {feature.name!r} is null in every row; "
                                   "leave it out with --features")
            if present.nunique() > MAX_CATEGORIES:
                raise InvalidInput(f"feature {feature.name!r} has {present.nunique()} distinct "
                                   f"strings (more than {MAX_CATEGORIES}); leave it out with "
                                   "--features")


def prepare_inputs(frame: pd.DataFrame, target: str, requested: Sequence[str] | None,
                   task: Task | None, algorithm: Algorithm, source: str) -> TrainingInputs:
    """Checked inputs from a dataset frame; `source` names the data in messages."""
    if len(frame) == 0:
        raise InvalidInput(f"{source} has no rows")
    if target not in frame.columns:
        raise InvalidInput(f"target {target!r} is not a column of {source}; columns: "
                           f"{_names(list(frame.columns))}")
    features, notes = choose_features(frame, target, requested)
    present = frame[frame[target].notna()]
    if present.empty:
        raise InvalidInput(f"target {target!r} is null in every row of {source}")
    if len(present) < len(frame):
        notes.append(f"left out {len(frame) - len(present)} rows whose target is null")
    given = task
    task = task or infer_task(present[target])
    if task not in algorithm.tasks:
        hint = "" if given else f"; pass --task {algorithm.tasks[0]} to treat it as one"
        raise InvalidInput(f"{algorithm.name} does {' and '.join(algorithm.tasks)} only; "
                           f"target {target!r} is a {task} target{hint}")
    labels: list[int | str] | None = None
    if task == "regression":
        y = _regression_target(present[target], target)
    else:
        y, labels = _classification_target(present[target], target)
    X = prepare_features(present, features).reset_index(drop=True)
    _check_feature_values(X, features)
    return TrainingInputs(X, y, features, task, labels, notes)
