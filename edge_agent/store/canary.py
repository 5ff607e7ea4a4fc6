"""Run a bundle's canary: its sample inputs must give its expected outputs on this device."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort

from edge_agent.contract.errors import CanaryFailed
from edge_agent.contract.records import Canary

_ORT_TO_NUMPY: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint64)": np.uint64,
    "tensor(uint32)": np.uint32,
    "tensor(uint16)": np.uint16,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
    "tensor(string)": object,
}


def canary_feeds(session: ort.InferenceSession, canary: Canary) -> dict[str, np.ndarray]:
    """One array per model input; a flat list feeds a [-1, 1] input as one column."""
    feeds: dict[str, np.ndarray] = {}
    metas = session.get_inputs()
    unknown = set(canary.inputs) - {m.name for m in metas}
    if unknown:
        raise CanaryFailed(f"canary names inputs the model lacks: {sorted(unknown)}")
    for meta in metas:
        if meta.name not in canary.inputs:
            raise CanaryFailed(f"canary has no values for model input {meta.name!r}")
        dtype = _ORT_TO_NUMPY.get(meta.type)
        if dtype is None:
            raise CanaryFailed(f"model input {meta.name!r} has unsupported type {meta.type}")
        values = canary.inputs[meta.name]
        try:
            if dtype is object:
                arr = np.array(["" if v is None else str(v) for v in values], dtype=object)
            else:
                arr = np.array(values, dtype=dtype)  # None becomes NaN for float types
        except (TypeError, ValueError) as exc:
            raise CanaryFailed(f"canary values for {meta.name!r} are not {meta.type}") from exc
        if arr.ndim == 1 and len(meta.shape) == 2:
            arr = arr.reshape(-1, 1)
        feeds[meta.name] = arr
    return feeds


def _first_mismatch(got: np.ndarray, expected: np.ndarray, atol: float | None) -> int | None:
    if atol is None:
        equal = got == expected
    else:
        equal = np.isclose(got, expected, rtol=0.0, atol=atol, equal_nan=True)
    bad = np.flatnonzero(~np.asarray(equal))
    return int(bad[0]) if bad.size else None


def _show(value: Any) -> str:
    return repr(value.item() if isinstance(value, np.generic) else value)


def _compare(name: str, got: np.ndarray, expected: list[Any], canary: Canary) -> None:
    flat = got.ravel()
    if flat.dtype.kind in "OUS":
        got_cmp = np.array([str(v) for v in flat], dtype=object)
        exp_cmp = np.array([str(v) for v in np.asarray(expected, dtype=object).ravel()])
        atol = None
    else:
        try:
            exp_cmp = np.asarray(expected, dtype=np.float64).ravel()
        except (TypeError, ValueError) as exc:
            raise CanaryFailed(f"canary expected values for {name!r} are not numbers") from exc
        got_cmp = flat.astype(np.float64)
        atol = None if name == canary.label_output else canary.atol
    if got_cmp.size != exp_cmp.size:
        raise CanaryFailed(
            f"canary failed: output {name!r} has {got_cmp.size} values, expected {exp_cmp.size}"
        )
    at = _first_mismatch(got_cmp, exp_cmp, atol)
    if at is not None:
        raise CanaryFailed(
            f"canary failed: output {name!r} value {at} is {_show(got_cmp[at])}, "
            f"expected {_show(exp_cmp[at])}" + ("" if atol is None else f" (atol {atol})")
        )


def run_canary(session: ort.InferenceSession, canary: Canary) -> None:
    feeds = canary_feeds(session, canary)
    outputs = {o.name for o in session.get_outputs()}
    missing = [n for n in canary.expected if n not in outputs]
    if missing:
        raise CanaryFailed(f"canary expects outputs the model lacks: {missing}")
    names = list(canary.expected)
    try:
        results = session.run(names, feeds)
    except Exception as exc:  # onnxruntime raises untyped errors for bad inputs
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CanaryFailed(f"canary could not run: {first[:300]}") from exc
    for name, got in zip(names, results, strict=True):
        _compare(name, np.asarray(got), canary.expected[name], canary)
