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
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge_agent.contract.capture import CapturePolicy
from edge_agent.contract.errors import ModelNotFound, SchemaError
from edge_agent.contract.files import atomic_write
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
        self._seed = seed
        # made at the first chunk with capture on: numpy.random costs ~3.4 MB resident
        self._rng: np.random.Generator | None = None
        self._lock = threading.Lock()
        self._overrides: dict[str, CapturePolicy] = self._load()
        self._per_class: dict[tuple[str, int, str], int] = {}
        self._window = 0.0
        self.capped = 0  # rows a per-class cap kept out
        self._bundled: dict[str, CapturePolicy | None] = {}  # last seen with each model
        self._drifted: set[str] = set()  # models the agent itself found drifting
        self.drift_switches = 0  # times capture-all went on or off by itself
        # model -> why the hub's policy for it was not taken (reported with each poll)
        self.refused: dict[str, str] = {}

    def _load(self) -> dict[str, CapturePolicy]:
        if self._path is None or not self._path.exists():
            return {}
        try:
            doc = json.loads(self._path.read_bytes())
            return {str(k): CapturePolicy.from_dict(v) for k, v in doc.items()}
        except (OSError, ValueError, AttributeError, SchemaError) as exc:
            log.error("ignoring %s: %s", self._path, exc)
            return {}

    def set_policy(self, model: str, policy: CapturePolicy | None, served: Collection[str]
                   ) -> None:
        """Override the bundle's policy for `model` (None: back to the bundle's). A model
        not in `served` (the models installed on this agent) is refused, nothing stored:
        ModelNotFound (HTTP 404)."""
        if model not in served:
            raise ModelNotFound(f"model {model!r} is not served by this agent: its capture "
                                "policy was not set (deploy it first)")
        self._write(model, policy)

    def forget_unserved(self, served: Collection[str]) -> None:
        """Drop the policies of models this agent no longer has (their folder was removed
        while it was stopped): a later model of the same name starts from its bundle's."""
        gone = sorted(set(self._overrides) - set(served))
        for model in gone:
            log.warning("capture policy of %s dropped: the model is no longer installed",
                        model)
            self._write(model, None)

    def _write(self, model: str, policy: CapturePolicy | None) -> None:
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

    def override(self, model: str) -> CapturePolicy | None:
        """The policy set for `model` on this agent (by the desktop or the hub), if any."""
        return self._overrides.get(model)

    def policy(self, model: str, bundled: CapturePolicy | None) -> CapturePolicy | None:
        return self._overrides.get(model, bundled)

    @property
    def drifting(self) -> list[str]:
        """Models whose rows are all captured now because their own windows drifted."""
        return sorted(self._drifted)

    def observe_window(self, model: str, psis: Mapping[str, float], rows: int) -> None:
        """A closed histogram window's PSI per feature: switch capture-all on when any
        reaches the policy's drift_psi, off when none does (windows too small say nothing).
        Runs in the writer thread, like `records`."""
        policy = self.policy(model, self._bundled.get(model))
        if policy is None or not policy.while_drift or rows < policy.drift_min_rows:
            return
        worst = max(psis.values(), default=0.0)
        alerted = worst >= policy.drift_psi
        if alerted != (model in self._drifted):
            self.drift_switches += 1
            if alerted:
                self._drifted.add(model)
            else:
                self._drifted.discard(model)
            log.warning("%s: drift capture %s (window of %d rows, worst PSI %.3f, "
                        "threshold %.3f)", model, "on" if alerted else "off", rows, worst,
                        policy.drift_psi)

    def _drift(self, model: str, policy: CapturePolicy) -> bool:
        return policy.while_drift and (policy.drift_alerted or model in self._drifted)

    def records(self, events: Iterable[Answered], now: float) -> list[dict[str, Any]]:
        window = now - now % self.window_s
        if window != self._window:
            self._window, self._per_class = window, {}
        chosen = []
        for e in events:
            if e.status != 200 or e.feeds is None or e.prediction is None or not e.first_id:
                continue
            self._bundled[e.model] = e.capture
            policy = self.policy(e.model, e.capture)
            if policy is not None and policy.active:
                chosen.append((e, policy))
        if not chosen:
            return []
        # One random draw and one comparison for the whole chunk (the writer shares the GIL
        # with the server): an event none of whose rows won the draw, and that no other
        # reason can take, costs no numpy call of its own.
        sizes = [e.rows for e, _ in chosen]
        if self._rng is None:
            self._rng = np.random.default_rng(self._seed)
        draws = self._rng.random(sum(sizes))
        won = draws < np.repeat([p.share for _, p in chosen], sizes)
        starts = np.cumsum([0, *sizes[:-1]])
        wins = np.add.reduceat(won, starts).tolist()
        out: list[dict[str, Any]] = []
        for (e, policy), start, n_won in zip(chosen, starts.tolist(), wins, strict=True):
            if not n_won and policy.confidence_below is None and not self._drift(e.model,
                                                                                policy):
                continue
            reasons = self._reasons(e, policy, draws[start:start + e.rows])
            if reasons:
                out += self._capture(e, policy, reasons)
        return out

    def _reasons(self, e: Answered, policy: CapturePolicy, draws: Array
                 ) -> dict[int, str]:
        """Row -> why it is captured, for the rows that are."""
        if self._drift(e.model, policy):
            return dict.fromkeys(range(e.rows), "drift")
        reasons: dict[int, str] = {}
        if policy.share > 0:
            reasons.update(dict.fromkeys(np.flatnonzero(draws < policy.share).tolist(),
                                         "random"))
        if policy.confidence_below is not None and e.proba is not None:
            top = e.proba.reshape(e.rows, -1).max(axis=1)
            reasons.update(dict.fromkeys(
                np.flatnonzero(top < policy.confidence_below).tolist(), "confidence"))
        return reasons

    def _capture(self, e: Answered, policy: CapturePolicy, reasons: dict[int, str]
                 ) -> list[dict[str, Any]]:
        assert e.feeds is not None and e.prediction is not None
        predicted = predicted_texts(e.prediction, e.rows)
        out = []
        for i in sorted(reasons):
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
