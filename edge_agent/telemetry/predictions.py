"""Prediction records: per model version and flush chunk, the id, answer and time of
every row answered, so that labels arriving later (even a year later) can be joined."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import numpy as np

Array = np.ndarray[Any, Any]


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
    groups: dict[tuple[str, int], dict[str, Any]] = {}
    for e in events:
        if e.status != 200 or e.prediction is None or not e.first_id:
            continue
        rec = groups.get((e.model, e.version))
        if rec is None:
            rec = groups[(e.model, e.version)] = {
                "kind": "prediction", "ts": now, "model": e.model, "version": e.version,
                "ids": [], "predicted": [], "times": []}
        rec["ids"] += [f"{prefix}{n}" for n in range(e.first_id, e.first_id + e.rows)]
        rec["predicted"] += predicted_texts(e.prediction, e.rows)
        rec["times"] += [e.ts] * e.rows
    return list(groups.values())
