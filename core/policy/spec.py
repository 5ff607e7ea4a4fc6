"""A retraining policy as data: its triggers, what to retrain on, and the gate to pass.

Checked here for what needs no catalog (ranges, at least one trigger); what depends on
the model (its features, its task, the dataset) is checked by ``core.policy.store``.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from core.errors import InvalidInput

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}


def parse_every(text: str) -> float:
    """'30d', '12h', '90m', '45s', '2w' as seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text or "")
    if not match or float(match[1]) <= 0:
        raise InvalidInput(f"--every {text!r} is not a duration like 30d, 12h, 90m or 45s")
    return float(match[1]) * _UNITS[match[2]]


@dataclass(frozen=True)
class PsiTrigger:
    """PSI >= `threshold` on >= `features` features for `windows` consecutive windows of
    one agent (only the features in `only`, when given)."""

    threshold: float
    features: int = 1
    windows: int = 1
    only: tuple[str, ...] = ()


@dataclass(frozen=True)
class AccuracyTrigger:
    """Live accuracy below holdout - `drop` with >= `min_labels` labels (regression: live
    RMSE above holdout x (1 + `drop`))."""

    drop: float
    min_labels: int = 200


@dataclass(frozen=True)
class CapturedTrigger:
    """>= `rows` new labelled captured rows since the last retrain."""

    rows: int


@dataclass(frozen=True)
class ScheduleTrigger:
    every_s: float
    text: str


@dataclass(frozen=True)
class RetrainSpec:
    dataset: str | None = None  # None: the production run's dataset (its latest version)
    add_captured: bool = True  # append the labelled captured rows (older than the gate's)
    algo: str | None = None  # None: the production run's algorithm and parameters


@dataclass(frozen=True)
class GateSpec:
    metric: str | None = None  # None: accuracy (classification) or r2 (regression)
    margin: float = 0.0
    captured_margin: float | None = None  # None: `margin`
    min_captured: int = 30  # fewer labelled captured rows: that check is skipped, said
    captured_share: float = 0.3  # newest share of labelled captures held out for the gate


@dataclass(frozen=True)
class Policy:
    model: str
    psi: PsiTrigger | None = None
    accuracy: AccuracyTrigger | None = None
    captured: CapturedTrigger | None = None
    schedule: ScheduleTrigger | None = None
    retrain: RetrainSpec = field(default_factory=RetrainSpec)
    gate: GateSpec = field(default_factory=GateSpec)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Policy:
        psi = doc.get("psi")
        return cls(
            model=str(doc["model"]),
            psi=PsiTrigger(**{**psi, "only": tuple(psi.get("only") or ())}) if psi else None,
            accuracy=AccuracyTrigger(**doc["accuracy"]) if doc.get("accuracy") else None,
            captured=CapturedTrigger(**doc["captured"]) if doc.get("captured") else None,
            schedule=ScheduleTrigger(**doc["schedule"]) if doc.get("schedule") else None,
            retrain=RetrainSpec(**doc.get("retrain") or {}),
            gate=GateSpec(**doc.get("gate") or {}))

    def describe(self) -> list[str]:
        """One line per trigger, as `policy show` prints them."""
        out = []
        if self.psi:
            on = f" among {', '.join(self.psi.only)}" if self.psi.only else ""
            out.append(f"PSI >= {self.psi.threshold:g} on >= {self.psi.features} feature(s)"
                       f"{on} for {self.psi.windows} consecutive window(s)")
        if self.accuracy:
            out.append(f"live accuracy below holdout - {self.accuracy.drop:g} with >= "
                       f"{self.accuracy.min_labels} labels")
        if self.captured:
            out.append(f">= {self.captured.rows} new labelled captured rows")
        if self.schedule:
            out.append(f"every {self.schedule.text}")
        return out

    def check(self) -> None:
        """Refuse nonsense thresholds, in one line naming the flag."""
        if not any((self.psi, self.accuracy, self.captured, self.schedule)):
            raise InvalidInput("a policy needs at least one trigger: --psi, --accuracy-drop, "
                               "--captured-rows or --every")
        if self.psi:
            _range("--psi", self.psi.threshold, 0.0, 10.0)
            _at_least("--psi-features", self.psi.features, 1)
            _at_least("--psi-windows", self.psi.windows, 1)
            if self.psi.only and self.psi.features > len(self.psi.only):
                raise InvalidInput(f"--psi-features {self.psi.features} is more than the "
                                   f"{len(self.psi.only)} feature(s) named by --psi-on")
        if self.accuracy:
            _range("--accuracy-drop", self.accuracy.drop, 0.0, 1.0)
            _at_least("--min-labels", self.accuracy.min_labels, 1)
        if self.captured:
            _at_least("--captured-rows", self.captured.rows, 1)
        if self.gate.margin < 0 or not math.isfinite(self.gate.margin):
            raise InvalidInput(f"--margin must be a number >= 0, not {self.gate.margin}")
        if self.gate.captured_margin is not None and (
                self.gate.captured_margin < 0 or not math.isfinite(self.gate.captured_margin)):
            raise InvalidInput("--captured-margin must be a number >= 0, "
                               f"not {self.gate.captured_margin}")
        _at_least("--min-captured", self.gate.min_captured, 1)
        _range("--captured-share", self.gate.captured_share, 0.0, 1.0, top_open=True)


def _range(flag: str, value: float, low: float, high: float, top_open: bool = False) -> None:
    ok = math.isfinite(value) and low < value and (value < high if top_open else value <= high)
    if not ok:
        raise InvalidInput(f"{flag} must be above {low:g} and at most {high:g}, not {value}")


def _at_least(flag: str, value: int, low: int) -> None:
    if value < low:
        raise InvalidInput(f"{flag} must be at least {low}, not {value}")
