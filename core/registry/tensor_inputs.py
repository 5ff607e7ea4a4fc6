"""Canary and baseline inputs for models that take tensors, not one column per input.

A tabular model (Outpost's own, or an imported one shaped like it) takes one
``[N, 1]`` (or ``[N]``) input per column, fed from a table. Anything else -- a
``float[N, 8]`` feature vector, an image ``[N, 3, 224, 224]`` -- is a tensor
model: its canary comes from a sample the user gives at import (an ``.npz`` with
one array per input, read without pickle) or, failing that, from inputs
generated to the signature; the model version's source says which.
"""
from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InvalidInput
from core.registry.signature import TensorSig

MAX_SAMPLE_BYTES = 64 * 1024**2
# Canary inputs go into the bundle as JSON: at most this many elements per input.
CANARY_ELEMENTS = 200_000
CANARY_ROWS = 16
GENERATED_DIM = 8  # a free dimension past the batch one, when inputs are generated
_NUMPY = {"FP32": np.float32, "FP64": np.float64, "FP16": np.float16, "INT64": np.int64,
          "INT32": np.int32, "INT16": np.int16, "INT8": np.int8, "UINT8": np.uint8,
          "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64, "BOOL": np.bool_,
          "BYTES": object}
_KINDS = {"f": "fiub", "i": "iub", "u": "iub", "b": "b", "O": "OUS"}


def is_tensor(sig: TensorSig) -> bool:
    """Not one table column: a rank other than 1 or 2, or a fixed second dimension above 1."""
    if len(sig.shape) == 1:
        return False
    return not (len(sig.shape) == 2 and sig.shape[1] in (1, -1))


def has_tensor_inputs(inputs: Sequence[TensorSig]) -> bool:
    return any(is_tensor(s) for s in inputs)


def describe(sig: TensorSig) -> str:
    dims = ",".join("N" if i == 0 and d < 0 else ("?" if d < 0 else str(d))
                    for i, d in enumerate(sig.shape))
    return f"{sig.name}: {sig.datatype.lower()}[{dims}]"


def _dtype(sig: TensorSig) -> Any:
    dtype = _NUMPY.get(sig.datatype)
    if dtype is None:
        raise InvalidInput(f"model input {describe(sig)} has a type Outpost cannot feed")
    return dtype


def load_sample(path: Path, inputs: Sequence[TensorSig]) -> dict[str, np.ndarray[Any, Any]]:
    """The arrays of an ``.npz`` sample, checked against the model's inputs."""
    label = path.name
    if not path.is_file():
        raise InvalidInput(f"sample file not found: {path}")
    if path.stat().st_size > MAX_SAMPLE_BYTES:
        raise InvalidInput(f"{label} is larger than {MAX_SAMPLE_BYTES // 1024**2} MiB; "
                           "a sample needs a few rows only")
    try:
        with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except ValueError as exc:  # object arrays need pickle, which is refused
        raise InvalidInput(f"{label}: {str(exc).splitlines()[0]} (pickled arrays are refused)"
                           ) from exc
    except (OSError, EOFError) as exc:
        raise InvalidInput(f"{label} is not a NumPy .npz file (or is truncated)") from exc
    names = [s.name for s in inputs]
    if len(arrays) == 1 and len(inputs) == 1 and names[0] not in arrays:
        arrays = {names[0]: next(iter(arrays.values()))}
    missing = [n for n in names if n not in arrays]
    extra = sorted(set(arrays) - set(names))
    if missing or extra:
        raise InvalidInput(f"{label}: the sample's arrays {sorted(arrays)} do not match the "
                           f"model inputs {names}")
    rows = {n: _check(label, sig, arrays[sig.name]) for n, sig in zip(names, inputs, strict=True)}
    if len(set(rows.values())) != 1:
        raise InvalidInput(f"{label}: the arrays have different row counts {rows}")
    return {sig.name: arrays[sig.name].astype(_dtype(sig), copy=False) for sig in inputs}


def _check(label: str, sig: TensorSig, arr: np.ndarray[Any, Any]) -> int:
    dtype = np.dtype(_dtype(sig))
    if arr.dtype.kind not in _KINDS.get(dtype.kind, dtype.kind):
        raise InvalidInput(f"{label}: array {sig.name!r} holds {arr.dtype}, the model input "
                           f"{describe(sig)} needs {sig.datatype}")
    if arr.ndim != len(sig.shape) or any(
            want >= 0 and got != want for got, want in zip(arr.shape, sig.shape, strict=True)):
        raise InvalidInput(f"{label}: array {sig.name!r} has shape {list(arr.shape)}, the model "
                           f"input is {describe(sig)}")
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise InvalidInput(f"{label}: array {sig.name!r} has no rows")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InvalidInput(f"{label}: array {sig.name!r} holds NaN or infinity")
    return int(arr.shape[0])


def generate(inputs: Sequence[TensorSig], seed: int = 0) -> dict[str, np.ndarray[Any, Any]]:
    """Inputs shaped to the signature: values in [0, 1) (0-9 for integers), fixed seed."""
    rng = np.random.default_rng(seed)
    rows = canary_rows(inputs)
    out: dict[str, np.ndarray[Any, Any]] = {}
    for sig in inputs:
        shape = [rows] + [GENERATED_DIM if d < 0 else d for d in sig.shape[1:]]
        if not sig.shape:
            shape = []
        dtype = np.dtype(_dtype(sig))
        if dtype.kind == "f":
            out[sig.name] = rng.random(shape).astype(dtype)
        elif dtype.kind in "iu":
            out[sig.name] = rng.integers(0, 10, shape).astype(dtype)
        elif dtype.kind == "b":
            out[sig.name] = rng.random(shape) < 0.5
        else:
            out[sig.name] = np.full(shape, "a", dtype=object)
    return out


def canary_rows(inputs: Sequence[TensorSig]) -> int:
    """Rows that keep every input under ``CANARY_ELEMENTS`` (at least one)."""
    per_row = max((math.prod(GENERATED_DIM if d < 0 else d for d in s.shape[1:])
                   for s in inputs), default=1)
    return max(1, min(CANARY_ROWS, CANARY_ELEMENTS // max(per_row, 1)))


def head(arrays: dict[str, np.ndarray[Any, Any]], inputs: Sequence[TensorSig]
         ) -> dict[str, np.ndarray[Any, Any]]:
    """The first rows of a sample, as many as a canary carries."""
    rows = canary_rows(inputs)
    return {name: arr[:rows] for name, arr in arrays.items()}


def to_npz(arrays: dict[str, np.ndarray[Any, Any]]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def from_npz(data: bytes) -> dict[str, np.ndarray[Any, Any]]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def json_inputs(arrays: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
    """Nested lists, the shape of each array kept (the agent rebuilds the array as given)."""
    return {name: (arr.astype(str).tolist() if arr.dtype.kind in "OUS" else arr.tolist())
            for name, arr in arrays.items()}
