"""Feature columns as the model takes them: numbers as float64 (NaN for null), strings as str.

skl2onnx converts string imputation only when the missing value is itself a
string (see docs/notes.md), so ``""`` is the missing category on both sides:
the exported graph and the device use ``""`` for a missing string.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

FeatureKind = Literal["numeric", "string"]


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
