"""Parity: does the ONNX graph compute what the trained pipeline computes, on the holdout?

Classification passes when at least 99.9 % of predicted labels agree and no class
probability differs by more than 1e-4. Regression passes when the largest
difference, relative to the largest prediction magnitude, is at most 1e-5. A
version that fails is stored but flagged, and takes the ``production`` alias only
with ``force``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from core.registry.runtime import load_session
from core.registry.signature import TensorSig, onnx_feeds

MIN_LABEL_AGREEMENT = 0.999
MAX_ABS_DIFF = 1e-4
MAX_REL_DIFF = 1e-5


def _classification(outputs: list[Any], pipeline: Pipeline, X: pd.DataFrame) -> dict[str, Any]:
    labels, proba = np.asarray(outputs[0]).ravel(), np.asarray(outputs[1], dtype=np.float64)
    expected_labels = np.asarray(pipeline.predict(X)).ravel()
    expected_proba = pipeline.predict_proba(X)
    agree = labels == expected_labels
    row_diff = np.abs(proba - expected_proba).max(axis=1)
    agreement = float(agree.mean())
    max_abs = float(row_diff.max())
    return {
        "passed": agreement >= MIN_LABEL_AGREEMENT and max_abs <= MAX_ABS_DIFF,
        "label_agreement": agreement,
        "max_abs_diff": max_abs,
        "disagreeing_rows": int((~agree).sum()),
        "rows_over_tolerance": int((row_diff > MAX_ABS_DIFF).sum()),
        "thresholds": {"min_label_agreement": MIN_LABEL_AGREEMENT, "max_abs_diff": MAX_ABS_DIFF},
    }


def _regression(outputs: list[Any], pipeline: Pipeline, X: pd.DataFrame) -> dict[str, Any]:
    values = np.asarray(outputs[0], dtype=np.float64).ravel()
    expected = np.asarray(pipeline.predict(X), dtype=np.float64).ravel()
    diff = np.abs(values - expected)
    scale = float(np.abs(expected).max()) or 1.0
    max_abs = float(diff.max())
    return {
        "passed": max_abs / scale <= MAX_REL_DIFF,
        "label_agreement": None,
        "max_abs_diff": max_abs,
        "max_rel_diff": max_abs / scale,
        "rows_over_tolerance": int((diff / scale > MAX_REL_DIFF).sum()),
        "thresholds": {"max_rel_diff": MAX_REL_DIFF},
    }


def check_parity(model_bytes: bytes, inputs: Sequence[TensorSig], pipeline: Pipeline,
                 X: pd.DataFrame, task: str) -> dict[str, Any]:
    """Run the graph in a fresh onnxruntime session and compare with the pipeline on X."""
    session = load_session(model_bytes, "the exported model")
    outputs = session.run(None, onnx_feeds(X, inputs))
    result = (_classification(outputs, pipeline, X) if task == "classification"
              else _regression(outputs, pipeline, X))
    return {"checked": True, "rows": len(X), **result}
