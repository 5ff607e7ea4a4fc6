"""The preprocessing + estimator pipeline, built so that skl2onnx can convert all of it.

The exported graph takes the raw columns, so everything a device would otherwise
have to do (impute, scale, one-hot) lives inside the pipeline. Two input kinds:
numeric columns arrive as float64 with NaN for null, string columns as Python
``str`` with ``""`` for null — skl2onnx converts string imputation only when the
missing value is itself a string (see ../shared/NOTES.md), so ``""`` is the
missing category on both sides, and a device sends ``""`` for a missing string.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from core.training.algorithms import Algorithm, ParamValue, Task

FeatureKind = Literal["numeric", "string"]
MISSING_CATEGORY = "(missing)"


@dataclass(frozen=True)
class Feature:
    name: str
    kind: FeatureKind

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "kind": self.kind}


def feature_kind(series: pd.Series) -> FeatureKind | None:
    """How a column enters the model, or None if it cannot (dates, binary, nested)."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if isinstance(dtype, pd.StringDtype):
        return "string"
    if pd.api.types.is_object_dtype(dtype):
        inferred = pd.api.types.infer_dtype(series, skipna=True)
        return "string" if inferred in ("string", "empty") else None
    return None


def numeric_values(series: pd.Series) -> np.ndarray:
    """float64 with NaN for null, from any numeric or boolean pandas dtype."""
    return series.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)


def string_values(series: pd.Series) -> np.ndarray:
    """Python strings with "" for null, as an object array (what onnxruntime takes)."""
    values = series.astype(object).where(series.notna(), "")
    return np.asarray([str(v) for v in values], dtype=object)


def prepare_features(frame: pd.DataFrame, features: Sequence[Feature]) -> pd.DataFrame:
    """The feature columns in the exact representation the pipeline and the ONNX graph take."""
    columns = {}
    for feature in features:
        series = frame[feature.name]
        columns[feature.name] = (numeric_values(series) if feature.kind == "numeric"
                                 else string_values(series))
    return pd.DataFrame(columns, index=frame.index)


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
