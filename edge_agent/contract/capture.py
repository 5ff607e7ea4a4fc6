"""The sample-capture policy: which answered requests a device keeps for retraining.

It travels in a bundle manifest (optional key ``capture``; bundles without it capture
nothing) or is set on a running agent by the desktop (``PUT /v1/models/{name}/capture``),
which then overrides the bundle's. Feedback (ground-truth labels) has its own small
schema here too, since the agent and the desktop both check it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from edge_agent.contract.errors import SchemaError

CAPTURE_KEY = "capture"
MAX_FEEDBACK_ITEMS = 10_000
MAX_ID_CHARS = 200
MAX_LABEL_CHARS = 200


@dataclass(frozen=True, slots=True)
class CapturePolicy:
    """Per deployed model. A row is captured for the first reason that applies, in the
    order drift, confidence, random; `per_class_cap` bounds captures per predicted class
    per telemetry window."""

    share: float = 0.0  # random share of rows, 0..1
    confidence_below: float | None = None  # capture when the top probability is below this
    while_drift: bool = False  # capture every row while drift is alerted (see below)
    per_class_cap: int | None = None
    drift_alerted: bool = False  # set by the desktop; meaningful only with while_drift
    # With while_drift the agent also decides by itself: a closed histogram window of at
    # least drift_min_rows rows whose PSI against the bundle's baseline reaches drift_psi
    # on any feature switches capture-all on; a window below it on every feature, off.
    # drift_psi defaults to the desktop's own alert threshold (core.drift.Thresholds).
    drift_psi: float = 0.25
    drift_min_rows: int = 50

    @property
    def active(self) -> bool:
        return self.share > 0 or self.confidence_below is not None or self.while_drift

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: object) -> CapturePolicy:
        if not isinstance(doc, dict):
            raise SchemaError("capture policy must be a JSON object")
        unknown = set(doc) - set(cls.__dataclass_fields__)
        if unknown:
            raise SchemaError(f"capture policy: unknown keys {sorted(unknown)}")
        share = doc.get("share", 0.0)
        if not _number(share) or not 0 <= share <= 1:
            raise SchemaError("capture policy: share must be a number from 0 to 1")
        band = doc.get("confidence_below")
        if band is not None and (not _number(band) or not 0 < band <= 1):
            raise SchemaError("capture policy: confidence_below must be a number in (0, 1]")
        cap = doc.get("per_class_cap")
        if cap is not None and (type(cap) is not int or cap < 1):
            raise SchemaError("capture policy: per_class_cap must be an integer >= 1")
        flags = {k: doc.get(k, False) for k in ("while_drift", "drift_alerted")}
        if not all(type(v) is bool for v in flags.values()):
            raise SchemaError("capture policy: while_drift and drift_alerted must be true/false")
        psi = doc.get("drift_psi", 0.25)
        if not _number(psi) or psi <= 0:
            raise SchemaError("capture policy: drift_psi must be a number > 0")
        min_rows = doc.get("drift_min_rows", 50)
        if type(min_rows) is not int or min_rows < 1:
            raise SchemaError("capture policy: drift_min_rows must be an integer >= 1")
        return cls(float(share), None if band is None else float(band), flags["while_drift"],
                   cap, flags["drift_alerted"], float(psi), min_rows)


def _number(value: object) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def feedback_items(doc: object, regression: bool) -> tuple[list[str], list[str]]:
    """(ids, labels as text) from {"feedback": [{"id", "label"}]}; refuses wrong types.

    A regression model takes numbers; a classifier takes strings or integers."""
    items = doc.get("feedback") if isinstance(doc, dict) else None
    if type(items) is not list or not items:
        raise SchemaError('body must be {"feedback": [{"id": ..., "label": ...}, ...]}')
    if len(items) > MAX_FEEDBACK_ITEMS:
        raise SchemaError(f"at most {MAX_FEEDBACK_ITEMS} feedback items per request")
    ids, labels = [], []
    for n, item in enumerate(items):
        pid = item.get("id") if type(item) is dict else None
        label = item.get("label") if type(item) is dict else None
        if type(pid) is not str or not pid or len(pid) > MAX_ID_CHARS:
            raise SchemaError(f"feedback item {n}: id must be a prediction id (a string)")
        if regression:
            if not _number(label):
                raise SchemaError(f"feedback item {n}: label must be a number for a "
                                  f"regression model, got {type(label).__name__}")
            text = repr(float(label))  # type: ignore[arg-type]
        elif type(label) is str and 0 < len(label) <= MAX_LABEL_CHARS:
            text = label
        elif type(label) is int:
            text = str(label)
        else:
            raise SchemaError(f"feedback item {n}: label must be a class (a string or an "
                              f"integer), got {type(label).__name__}")
        ids.append(pid)
        labels.append(text)
    return ids, labels
