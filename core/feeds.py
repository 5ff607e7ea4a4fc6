"""Tabular columns as a model's ONNX inputs: one [-1, 1] tensor per raw column.

Numbers go in as the input's float or int type with NaN for null; strings as
``str`` with ``""`` for a missing category (see docs/notes.md).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd

from core.errors import InvalidInput

_NUMPY = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32,
          "BOOL": np.bool_}


class Signature(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def datatype(self) -> str: ...

    @property
    def shape(self) -> list[int]: ...


def is_categorical(datatype: str) -> bool:
    return datatype == "BYTES"


def column_array(values: pd.Series, datatype: str) -> np.ndarray[Any, Any]:
    """One column as a flat array of the input's type."""
    if is_categorical(datatype):
        filled = values.astype(object).where(values.notna(), "")
        return np.asarray([str(v) for v in filled], dtype=object)
    dtype = _NUMPY.get(datatype)
    if dtype is None:
        raise InvalidInput(f"model input type {datatype} is not supported for tabular data")
    numbers = pd.to_numeric(values, errors="coerce")
    if np.issubdtype(dtype, np.floating):
        return numbers.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan).astype(dtype)
    return numbers.fillna(0).to_numpy().astype(dtype)


def frame_feeds(inputs: Sequence[Signature],
                frame: pd.DataFrame) -> dict[str, np.ndarray[Any, Any]]:
    """The feed dict for ``session.run`` from a frame holding one column per input."""
    missing = [s.name for s in inputs if s.name not in frame.columns]
    if missing:
        raise InvalidInput(f"the data lacks model inputs {missing}")
    feeds = {}
    for sig in inputs:
        arr = column_array(frame[sig.name], sig.datatype)
        feeds[sig.name] = arr.reshape(-1, 1) if len(sig.shape) == 2 else arr
    return feeds


def json_columns(inputs: Sequence[Signature], frame: pd.DataFrame) -> dict[str, list[Any]]:
    """The same columns as JSON-safe lists (None for a missing number)."""
    out: dict[str, list[Any]] = {}
    for sig in inputs:
        arr = column_array(frame[sig.name], sig.datatype)
        if arr.dtype.kind == "f":
            out[sig.name] = [None if np.isnan(v) else float(v) for v in arr.tolist()]
        else:
            out[sig.name] = arr.tolist()
    return out


def records(inputs: Sequence[Signature], frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as ``{column: value}`` records, the agent's v1 predict body."""
    cols = json_columns(inputs, frame)
    names = list(cols)
    return [dict(zip(names, row, strict=True)) for row in zip(*cols.values(), strict=True)]


def outputs_json(names: Sequence[str], results: Sequence[Any]) -> dict[str, list[Any]]:
    """onnxruntime results as JSON lists (labels as str/int, numbers as float)."""
    out: dict[str, list[Any]] = {}
    for name, value in zip(names, results, strict=True):
        arr = np.asarray(value)
        out[name] = arr.tolist() if arr.dtype.kind != "O" else [str(v) for v in arr.ravel()]
    return out

