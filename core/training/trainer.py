"""Train one model on a dataset version and record it as a run."""
from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from core.catalog import Catalog
from core.datasets import DatasetVersion, read_frame, resolve_version
from core.errors import InvalidInput
from core.progress import CancelToken, ProgressFn, check, report
from core.training.algorithms import DEFAULT_ALGORITHM, Algorithm, ParamValue, Task, get_algorithm
from core.training.inputs import TrainingInputs, infer_task, prepare_inputs
from core.training.metrics import evaluate, importance
from core.training.pipeline import build_pipeline, single_threaded
from core.training.runs import Run, insert_run, new_run_id, now, package_versions, store_model
from core.training.split import split_indices


@dataclass
class Fitted:
    """A fitted pipeline with its inputs, split and holdout results (not yet in the catalog)."""

    model: Pipeline
    inputs: TrainingInputs
    train_rows: np.ndarray
    holdout_rows: np.ndarray
    metrics: dict[str, Any]
    importance: dict[str, float]
    duration_s: float

    @property
    def holdout(self) -> tuple[pd.DataFrame, np.ndarray]:
        X = self.inputs.X.iloc[self.holdout_rows].reset_index(drop=True)
        return X, self.inputs.y[self.holdout_rows]


def fit_model(model: Pipeline, X: pd.DataFrame, y: np.ndarray) -> list[str]:
    """Fit and return the warnings raised (e.g. an MLP that did not converge) as notes."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, y)
    # Fitting a forest on several threads is reproducible, predicting is not: the
    # trees' probabilities are summed in the order the threads finish (measured:
    # 3e-16 apart between two runs), so the fitted model predicts on one thread.
    if "n_jobs" in model.named_steps["model"].get_params():
        model.set_params(model__n_jobs=1)
    return sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in caught})


def choose_algorithm(algo: str | None, task: Task | None, frame: pd.DataFrame,
                     target: str) -> Algorithm:
    if algo is not None:
        return get_algorithm(algo)
    if task is None and target in frame.columns and frame[target].notna().any():
        task = infer_task(frame[target].dropna())
    return get_algorithm(DEFAULT_ALGORITHM[task or "classification"])


def fit_frame(frame: pd.DataFrame, target: str, *, algo: str | None = None,
              params: Mapping[str, object] | None = None, seed: int = 0,
              test_size: float = 0.2, task: Task | None = None,
              features: Sequence[str] | None = None, source: str = "the dataset",
              n_jobs: int = -1, progress: ProgressFn | None = None,
              cancel: CancelToken | None = None) -> tuple[Algorithm, dict[str, ParamValue], Fitted]:
    """Check, split, fit and evaluate on an in-memory frame. Nothing is written."""
    algorithm = choose_algorithm(algo, task, frame, target)
    resolved = algorithm.resolve_params(params or {})
    started = time.perf_counter()
    report(progress, "training", 0, 4)
    inputs = prepare_inputs(frame, target, features, task, algorithm, source)
    train_rows, holdout_rows = split_indices(inputs.y, inputs.task, test_size, seed)
    model = build_pipeline(algorithm, inputs.task, resolved, inputs.features, seed, n_jobs)
    check(cancel, "training")
    fitted = fit_and_score(model, inputs, train_rows, holdout_rows, seed, progress, cancel)
    fitted.duration_s = time.perf_counter() - started
    return algorithm, resolved, fitted


def fit_and_score(model: Pipeline, inputs: TrainingInputs, train_rows: np.ndarray,
                  holdout_rows: np.ndarray, seed: int, progress: ProgressFn | None = None,
                  cancel: CancelToken | None = None) -> Fitted:
    """Fit on the training rows; metrics and permutation importance on the holdout rows."""
    started = time.perf_counter()
    with single_threaded():
        report(progress, "training", 1, 4)
        inputs.notes.extend(fit_model(model, inputs.X.iloc[train_rows], inputs.y[train_rows]))
        check(cancel, "training")
        report(progress, "training", 2, 4)
        X_hold, y_hold = inputs.X.iloc[holdout_rows], inputs.y[holdout_rows]
        metrics = evaluate(model, X_hold, y_hold, inputs.task, inputs.labels)
        check(cancel, "training")
        report(progress, "training", 3, 4)
        scores = importance(model, X_hold, y_hold, inputs.task, seed)
    report(progress, "training", 4, 4)
    return Fitted(model, inputs, train_rows, holdout_rows, metrics, scores,
                  time.perf_counter() - started)


def read_training_frame(catalog: Catalog, dataset_ref: str, target: str,
                        features: Sequence[str] | None) -> tuple[DatasetVersion, pd.DataFrame]:
    dv = resolve_version(catalog, dataset_ref)
    if dv.rows == 0:
        raise InvalidInput(f"{dv.ref} has no rows")
    names = {c.name for c in dv.columns}
    columns = None
    if features and target in names and all(f in names for f in features):
        columns = [*dict.fromkeys([*features, target])]
    return dv, read_frame(catalog, dv, columns=columns)


def make_run(dv: DatasetVersion, target: str, algorithm: Algorithm,
             params: dict[str, ParamValue], seed: int, test_size: float, fitted: Fitted,
             *, kind: str = "train", parent: str | None = None) -> Run:
    inputs = fitted.inputs
    return Run(
        id=new_run_id(), dataset=dv.dataset, dataset_version=dv.version, target=target,
        features=[f.name for f in inputs.features], task=inputs.task, algo=algorithm.name,
        params=params, seed=seed,
        split={"test_size": test_size, "stratified": inputs.task == "classification",
               "train_rows": len(fitted.train_rows), "holdout_rows": len(fitted.holdout_rows)},
        metrics=fitted.metrics, duration_s=round(fitted.duration_s, 4),
        packages=package_versions(), parent=parent, status="completed", created_at=now(),
        kind=kind, feature_kinds={f.name: f.kind for f in inputs.features},
        importance=fitted.importance, labels=inputs.labels, notes=list(inputs.notes),
    )


def save_run(catalog: Catalog, run: Run, model: Pipeline, children: Sequence[Run] = ()) -> Run:
    """Store the pickled model and insert the run (and any trials) in one transaction."""
    sha, created = store_model(catalog, model)
    run.model_object = sha
    try:
        with catalog.transaction() as cur:
            insert_run(cur, run)
            for child in children:
                insert_run(cur, child)
    except BaseException:
        if created:
            catalog.objects.discard(sha)
        raise
    return run


def train(catalog: Catalog, dataset_ref: str, target: str, *,
          features: Sequence[str] | None = None, algo: str | None = None,
          params: Mapping[str, object] | None = None, seed: int = 0, test_size: float = 0.2,
          task: Task | None = None, progress: ProgressFn | None = None,
          cancel: CancelToken | None = None) -> Run:
    """Train on a dataset version ("name" or "name@version") and record the run."""
    if algo is not None:
        get_algorithm(algo).resolve_params(params or {})  # refuse bad names before reading data
    dv, frame = read_training_frame(catalog, dataset_ref, target, features)
    algorithm, resolved, fitted = fit_frame(
        frame, target, algo=algo, params=params, seed=seed, test_size=test_size, task=task,
        features=features, source=dv.ref, progress=progress, cancel=cancel)
    run = make_run(dv, target, algorithm, resolved, seed, test_size, fitted)
    check(cancel, "training")
    return save_run(catalog, run, fitted.model)
