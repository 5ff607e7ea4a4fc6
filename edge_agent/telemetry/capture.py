"""On-device sample capture: which answered rows are kept, decided off the request path.

The writer thread asks the `Capturer` about each chunk of answered requests; captured
rows (inputs, prediction, id, reason) become ``capture`` outbox records, which the
outbox keeps under their own byte cap (oldest evicted first, counted). A policy comes
from the bundle manifest or, overriding it, from the desktop (kept in DIR/capture.json
so it survives restarts).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge_agent.contract.capture import CapturePolicy
from edge_agent.contract.errors import SchemaError
from edge_agent.contract.signing import atomic_write
from edge_agent.telemetry.predictions import predicted_texts

log = logging.getLogger(__name__)
Array = np.ndarray[Any, Any]
POLICY_FILE = "capture.json"


class Answered(Protocol):
    ts: float
    model: str
    version: int
    status: int
    rows: int
    first_id: int
    feeds: Mapping[str, Array] | None
    prediction: Array | None
    proba: Array | None
    capture: CapturePolicy | None


def _cell(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return _cell(value[0]) if len(value) == 1 else [_cell(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN: JSON has no NaN
        return None
    return value


def _row(arr: Array, i: int) -> Any:
    value = arr[i]
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    return value


class Capturer:
    def __init__(self, agent_dir: Path | None, prefix: str, window_s: float = 60.0,
                 seed: int | None = None) -> None:
        self.prefix = prefix
        self.window_s = window_s
        self._path = None if agent_dir is None else Path(agent_dir) / POLICY_FILE
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._overrides: dict[str, CapturePolicy] = self._load()
        self._per_class: dict[tuple[str, int, str], int] = {}
        self._window = 0.0
        self.capped = 0  # rows a per-class cap kept out

    def _load(self) -> dict[str, CapturePolicy]:
        if self._path is None or not self._path.exists():
            return {}
        try:
            doc = json.loads(self._path.read_bytes())
            return {str(k): CapturePolicy.from_dict(v) for k, v in doc.items()}
        except (OSError, ValueError, AttributeError, SchemaError) as exc:
            log.error("ignoring %s: %s", self._path, exc)
            return {}

    def set_policy(self, model: str, policy: CapturePolicy | None) -> None:
        """Override the bundle's policy for `model` (None: back to the bundle's)."""
        with self._lock:
            overrides = dict(self._overrides)
            if policy is None:
                overrides.pop(model, None)
            else:
                overrides[model] = policy
            if self._path is not None:
                atomic_write(self._path, json.dumps(
                    {k: v.to_dict() for k, v in overrides.items()}, indent=1).encode())
            self._overrides = overrides

    def policy(self, model: str, bundled: CapturePolicy | None) -> CapturePolicy | None:
        return self._overrides.get(model, bundled)

    def records(self, events: Iterable[Answered], now: float) -> list[dict[str, Any]]:
        window = now - now % self.window_s
        if window != self._window:
            self._window, self._per_class = window, {}
        out: list[dict[str, Any]] = []
        for e in events:
            if e.status != 200 or e.feeds is None or e.prediction is None or not e.first_id:
                continue
            policy = self.policy(e.model, e.capture)
            if policy is None or not policy.active:
                continue
            out += self._capture(e, policy)
        return out

    def _reasons(self, e: Answered, policy: CapturePolicy) -> list[str | None]:
        reasons: list[str | None] = [None] * e.rows
        if policy.while_drift and policy.drift_alerted:
            return ["drift"] * e.rows
        if policy.confidence_below is not None and e.proba is not None:
            top = e.proba.reshape(e.rows, -1).max(axis=1)
            for i in np.flatnonzero(top < policy.confidence_below).tolist():
                reasons[i] = "confidence"
        if policy.share > 0:
            for i in np.flatnonzero(self._rng.random(e.rows) < policy.share).tolist():
                reasons[i] = reasons[i] or "random"
        return reasons

    def _capture(self, e: Answered, policy: CapturePolicy) -> list[dict[str, Any]]:
        reasons = self._reasons(e, policy)
        rows = [i for i, r in enumerate(reasons) if r is not None]
        if not rows:
            return []
        assert e.feeds is not None and e.prediction is not None
        predicted = predicted_texts(e.prediction, e.rows)
        out = []
        for i in rows:
            if policy.per_class_cap is not None:
                key = (e.model, e.version, predicted[i])
                if self._per_class.get(key, 0) >= policy.per_class_cap:
                    self.capped += 1
                    continue
                self._per_class[key] = self._per_class.get(key, 0) + 1
            inputs = {name: _cell(_row(arr, i)) for name, arr in e.feeds.items()}
            out.append({"kind": "capture", "ts": e.ts, "model": e.model,
                        "version": e.version, "id": f"{self.prefix}{e.first_id + i}",
                        "reason": reasons[i], "inputs": json.dumps(inputs),
                        "prediction": predicted[i]})
        return out
