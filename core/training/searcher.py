"""Hyper-parameter search: random or grid, scored by cross-validation, one child run per trial.

Trials run in a pool of worker processes (one per core by default), so a search
keeps every core busy whatever the estimator's own threading. The search can be
cancelled between trials: trials not yet started are dropped and nothing is
written. The best trial's parameters are refitted on the whole training part and
evaluated on the holdout; that refit is the parent run, the one to register.
"""
from __future__ import annotations

import concurrent.futures as cf
import itertools
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from joblib.externals.loky import get_reusable_executor

from core.catalog import Catalog
from core.errors import InvalidInput
from core.progress import CancelToken, ProgressFn, check, report
from core.training.algorithms import Algorithm, ParamSpec, ParamValue, Task, get_algorithm
from core.training.features import Feature
from core.training.inputs import prepare_inputs
from core.training.metrics import MetricSpec, evaluate, get_metric
from core.training.pipeline import build_pipeline, single_threaded
from core.training.runs import Run, new_run_id, now, package_versions
from core.training.split import cv_folds, split_indices
from core.training.trainer import (
    choose_algorithm,
    fit_and_score,
    fit_model,
    make_run,
    read_training_frame,
    save_run,
)

SearchKind = Literal["random", "grid"]
MAX_TRIALS = 1000
_POLL_S = 0.1


@dataclass
class SearchResult:
    parent: Run
    trials: list[Run]
    best: Run


def _sample(spec: ParamSpec, rng: np.random.Generator) -> ParamValue:
    if spec.search_low is None or spec.search_high is None:
        return spec.grid[int(rng.integers(len(spec.grid)))]
    low, high = float(spec.search_low), float(spec.search_high)
    if spec.log and low > 0:
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
    else:
        value = rng.uniform(low, high)
    return int(round(value)) if spec.kind == "int" else float(value)


def candidate_params(algorithm: Algorithm, fixed: Mapping[str, ParamValue], kind: SearchKind,
                     trials: int, seed: int) -> list[dict[str, ParamValue]]:
    """The parameter sets to try: defaults, overlaid with fixed values and searched ones."""
    space = [s for s in algorithm.params if s.searchable and s.name not in fixed]
    if not space:
        raise InvalidInput(f"{algorithm.name} has no parameters left to search")
    base = {**algorithm.defaults(), **fixed}
    rng = np.random.default_rng(seed)
    if kind == "grid":
        grid = list(itertools.product(*(s.grid for s in space)))
        if len(grid) > trials:
            picked = np.sort(rng.choice(len(grid), size=trials, replace=False))
            grid = [grid[i] for i in picked]
        return [{**base, **{s.name: v for s, v in zip(space, values, strict=True)}}
                for values in grid]
    found: list[dict[str, ParamValue]] = []
    for _ in range(trials):
        for _attempt in range(20):  # avoid repeating a point of a small discrete space
            candidate = {**base, **{s.name: _sample(s, rng) for s in space}}
            if candidate not in found:
                break
        found.append(candidate)
    return found


def cv_trial(algo: str, task: Task, params: dict[str, ParamValue], features: list[Feature],
             seed: int, X: pd.DataFrame, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]],
             labels: list[Any] | None) -> tuple[dict[str, Any], list[str], float]:
    """Mean cross-validated metrics of one parameter set (runs in a worker process)."""
    started = time.perf_counter()
    algorithm = get_algorithm(algo)
    per_fold, notes = [], set()
    # One thread per worker: the pool already fills the cores, and OpenMP teams
    # (HistGradientBoosting) in several processes spin against each other —
    # measured 30-100x slower per trial without this limit.
    with single_threaded():
        for train, test in folds:
            model = build_pipeline(algorithm, task, params, features, seed, n_jobs=1)
            notes.update(fit_model(model, X.iloc[train], y[train]))
            per_fold.append(evaluate(model, X.iloc[test], y[test], task, labels))
    metrics: dict[str, Any] = {"cv_folds": len(folds)}
    for name, value in per_fold[0].items():
        if isinstance(value, float):
            values = [m[name] for m in per_fold if m[name] is not None]
            metrics[name] = float(np.mean(values)) if len(values) == len(per_fold) else None
            metrics[f"{name}_std"] = float(np.std(values)) if metrics[name] is not None else None
    return metrics, sorted(notes), time.perf_counter() - started


def _run_trials(jobs: list[tuple[Any, ...]], n_jobs: int, progress: ProgressFn | None,
                cancel: CancelToken | None) -> list[tuple[dict[str, Any], list[str], float]]:
    """Trials in worker processes, at most n_jobs at a time; cancellable between trials."""
    executor = get_reusable_executor(max_workers=n_jobs)
    results: dict[int, tuple[dict[str, Any], list[str], float]] = {}
    pending = iter(enumerate(jobs))
    running: dict[cf.Future[Any], int] = {}
    try:
        while len(results) < len(jobs):
            check(cancel, "search")
            while len(running) < n_jobs and (item := next(pending, None)) is not None:
                running[executor.submit(cv_trial, *item[1])] = item[0]
            done, _ = cf.wait(running, timeout=_POLL_S, return_when=cf.FIRST_COMPLETED)
            for future in done:
                results[running.pop(future)] = future.result()
                report(progress, "search", len(results), len(jobs))
    finally:
        for future in running:
            future.cancel()
    return [results[i] for i in range(len(jobs))]


def _rank_key(metric: MetricSpec, trial: Run) -> tuple[int, float]:
    value = trial.metrics.get(metric.name)
    if value is None:
        return (1, 0.0)
    return (0, -value if metric.greater_is_better else value)


def search(catalog: Catalog, dataset_ref: str, target: str, *, algo: str | None = None,
           kind: SearchKind = "random", trials: int = 10, metric: str | None = None, cv: int = 3,
           seed: int = 0, params: Mapping[str, object] | None = None,
           features: Sequence[str] | None = None, test_size: float = 0.2,
           task: Task | None = None, n_jobs: int | None = None,
           progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> SearchResult:
    """Search `trials` parameter sets of `algo` by `cv`-fold CV; record them and the best refit."""
    if kind not in ("random", "grid"):
        raise InvalidInput(f"unknown search kind {kind!r}; choose random or grid")
    if not 1 <= trials <= MAX_TRIALS:
        raise InvalidInput(f"trials must be between 1 and {MAX_TRIALS}, got {trials}")
    if algo is not None:
        get_algorithm(algo).resolve_params(params or {})
    dv, frame = read_training_frame(catalog, dataset_ref, target, features)
    algorithm = choose_algorithm(algo, task, frame, target)
    resolved = algorithm.resolve_params(params or {})
    fixed = {k: resolved[k] for k in (params or {})}
    inputs = prepare_inputs(frame, target, features, task, algorithm, dv.ref)
    ranked_by = get_metric(metric, inputs.task)
    candidates = candidate_params(algorithm, fixed, kind, trials, seed)
    train_rows, holdout_rows = split_indices(inputs.y, inputs.task, test_size, seed)
    X_train, y_train = inputs.X.iloc[train_rows].reset_index(drop=True), inputs.y[train_rows]
    folds = cv_folds(y_train, inputs.task, cv, seed)
    started = time.perf_counter()
    jobs = [(algorithm.name, inputs.task, p, inputs.features, seed, X_train, y_train, folds,
             inputs.labels) for p in candidates]
    report(progress, "search", 0, len(jobs))
    outcomes = _run_trials(jobs, n_jobs or os.cpu_count() or 1, progress, cancel)
    parent_id = new_run_id()
    children = [_trial_run(dv.dataset, dv.version, target, algorithm, inputs.task, p, seed,
                           test_size, cv, inputs.features, inputs.labels, outcome, parent_id)
                for p, outcome in zip(candidates, outcomes, strict=True)]
    best = min(children, key=lambda t: _rank_key(ranked_by, t))
    check(cancel, "search")
    model = build_pipeline(algorithm, inputs.task, best.params, inputs.features, seed, n_jobs=-1)
    fitted = fit_and_score(model, inputs, train_rows, holdout_rows, seed, progress, cancel)
    fitted.duration_s = time.perf_counter() - started
    parent = make_run(dv, target, algorithm, dict(best.params), seed, test_size, fitted,
                      kind="search")
    parent.id = parent_id
    parent.search = {"kind": kind, "trials": len(children), "metric": ranked_by.name, "cv": cv,
                     "best": best.id, "best_score": best.metrics.get(ranked_by.name),
                     "fixed": dict(fixed)}
    check(cancel, "search")
    save_run(catalog, parent, model, children)
    return SearchResult(parent, children, best)


def _trial_run(dataset: str, version: str, target: str, algorithm: Algorithm, task: Task,
               params: dict[str, ParamValue], seed: int, test_size: float, cv: int,
               features: list[Feature], labels: list[Any] | None,
               outcome: tuple[dict[str, Any], list[str], float], parent: str) -> Run:
    metrics, notes, duration = outcome
    return Run(
        id=new_run_id(), dataset=dataset, dataset_version=version, target=target,
        features=[f.name for f in features], task=task, algo=algorithm.name, params=params,
        seed=seed, split={"test_size": test_size, "stratified": task == "classification",
                          "cv": cv},
        metrics=metrics, duration_s=round(duration, 4), packages=package_versions(),
        parent=parent, status="completed", created_at=now(), kind="trial",
        feature_kinds={f.name: f.kind for f in features}, labels=labels, notes=notes)
