"""The preprocessing + estimator pipeline, built so that skl2onnx can convert all of it.

The exported graph takes the raw columns, so everything a device would otherwise
have to do (impute, scale, one-hot) lives inside the pipeline.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from core.training.algorithms import Algorithm, ParamValue, Task
from core.training.features import Feature

MISSING_CATEGORY = "(missing)"


def build_pipeline(algorithm: Algorithm, task: Task, params: Mapping[str, ParamValue],
                   features: Sequence[Feature], seed: int, n_jobs: int = 1) -> Pipeline:
    numeric = [f.name for f in features if f.kind == "numeric"]
    strings = [f.name for f in features if f.kind == "string"]
    transformers = []
    if numeric:
        # keep_empty_features: a column that is all null in one training split must
        # still produce a column, or the fitted width differs from the graph's inputs.
        steps: list[tuple[str, object]] = [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True))]
        if algorithm.scale_numerics:
            steps.append(("scale", StandardScaler()))
        transformers.append(("numeric", Pipeline(steps), numeric))
    if strings:
        transformers.append(("string", Pipeline([
            ("impute", SimpleImputer(missing_values="", strategy="constant",
                                     fill_value=MISSING_CATEGORY, keep_empty_features=True)),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]), strings))
    preprocess = ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)
    estimator = algorithm.build(task, params, seed, n_jobs)
    return Pipeline([("preprocess", preprocess), ("model", estimator)])


def single_threaded() -> Any:
    """OpenMP and BLAS pools limited to one thread for the duration (a context manager).

    Measured on a shared 2-core machine under load: HistGradientBoosting with two
    OpenMP threads took 6-32 s for fits that one thread did in 0.1-2 s — spinning
    thread teams collapse when the cores are oversubscribed. Parallelism comes from
    worker processes (search) and joblib threads (random forests) instead.
    """
    return threadpool_limits(limits=1)
