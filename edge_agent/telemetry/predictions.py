"""Prediction records: per model version and flush chunk, the id, answer and time of
every row answered, so that labels arriving later (even a year later) can be joined."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import numpy as np

Array = np.ndarray[Any, Any]
# Rows per record: keeps a record ~2 KB, well under any telemetry batch limit (a hub
# refuses a batch over its byte cap, and one record cannot be split).
MAX_ROWS = 32


class Answered(Protocol):
    ts: float
    model: str
    version: int
    status: int
    rows: int
    first_id: int
    prediction: Array | None


def predicted_texts(prediction: Array, rows: int) -> list[str]:
    """The first value of each row of the first output, as text (labels compare as text)."""
    arr = prediction.reshape(rows, -1)[:, 0] if rows and prediction.size % rows == 0 \
        else prediction.ravel()[:rows]
    if arr.dtype.kind == "S":
        return [x.decode("utf-8", "replace") for x in arr.tolist()]
    if arr.dtype.kind == "b":
        return [str(int(x)) for x in arr.tolist()]
    return [str(x) for x in arr.tolist()]


def prediction_records(events: Iterable[Answered], prefix: str, now: float
                       ) -> list[dict[str, Any]]:
    groups: dict[tuple[str, int], tuple[list[str], list[Array], list[int], list[float]]] = {}
    for e in events:
        if e.status != 200 or e.prediction is None or not e.first_id:
            continue
        ids, predictions, rows, times = groups.setdefault((e.model, e.version),
                                                          ([], [], [], []))
        ids += [f"{prefix}{n}" for n in range(e.first_id, e.first_id + e.rows)]
        predictions.append(e.prediction)
        rows.append(e.rows)
        times += [e.ts] * e.rows
    out = []
    for (model, version), (ids, predictions, rows, times) in groups.items():
        predicted = _texts(predictions, rows)
        out += [{"kind": "prediction", "ts": now, "model": model, "version": version,
                 "ids": ids[i:i + MAX_ROWS], "predicted": predicted[i:i + MAX_ROWS],
                 "times": times[i:i + MAX_ROWS]} for i in range(0, len(ids), MAX_ROWS)]
    return out


def _texts(predictions: list[Array], rows: list[int]) -> list[str]:
    """predicted_texts of each prediction, in order. When each holds one value per row
    (a label output) and all share a dtype, they are converted as one array: the same
    texts, without a numpy round trip per request (the writer's largest cost per request)."""
    dtype = predictions[0].dtype
    if all(p.size == n and p.dtype == dtype for p, n in zip(predictions, rows, strict=True)):
        joined = np.concatenate(predictions, axis=None)
        return predicted_texts(joined, joined.size)
    texts: list[str] = []
    for p, n in zip(predictions, rows, strict=True):
        texts += predicted_texts(p, n)
    return texts
