"""The champion/challenger gate: a new run becomes a model version only if it beats the
production version on the run's holdout, and then waits as `staged` for a person to
approve it; nothing is deployed by the gate.

Both are scored on the same rows (the new run's holdout): the challenger with its
trained pipeline (registration then checks its ONNX export agrees), the champion with
its registered ONNX graph — what the devices run.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import numpy as np

from core.audit.chain import record_event
from core.catalog import Catalog
from core.errors import InvalidInput, NotFound
from core.progress import CancelToken, ProgressFn

STAGED = "staged"
# metric -> (task, higher is better)
GATE_METRICS = {"accuracy": ("classification", True), "f1_macro": ("classification", True),
                "r2": ("regression", True), "rmse": ("regression", False)}


@dataclass(frozen=True)
class GateResult:
    model: str
    run: str
    metric: str
    margin: float
    challenger: float
    production: float | None  # None: no production version to beat
    production_version: int | None
    passed: bool
    version: int | None  # the staged version, when it passed
    reason: str
    captured: dict[str, Any] | None = None  # the second check, on recent labelled captures

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RecentRows:
    """Recent labelled captured rows (raw model inputs, as `holdout_frame` gives them) that
    the challenger must also beat production on, by `margin`; fewer than `min_rows` and
    that check is skipped, and the result says so."""

    X: Any  # pandas DataFrame
    y: Any
    margin: float = 0.0
    min_rows: int = 30


def _score(metric: str, y: Any, pred: Any) -> float:
    from sklearn import metrics as m

    y, pred = np.asarray(y), np.asarray(pred)
    if metric == "accuracy":
        return float(np.mean(y.astype(str) == pred.astype(str)))
    if metric == "f1_macro":
        return float(m.f1_score(y.astype(str), pred.astype(str), average="macro"))
    if metric == "r2":
        return float(m.r2_score(y.astype(float), pred.astype(float)))
    return float(np.sqrt(m.mean_squared_error(y.astype(float), pred.astype(float))))


def _gain(metric: str, ours: float, theirs: float) -> float:
    return ours - theirs if GATE_METRICS[metric][1] else theirs - ours


def _on_recent(metric: str, recent: RecentRows, model: Any,
               champion_predict: Callable[[Any], Any] | None) -> dict[str, Any]:
    """The second check: both scored on the recent labelled captures."""
    rows = len(recent.y)
    out: dict[str, Any] = {"rows": rows, "min_rows": recent.min_rows, "margin": recent.margin,
                           "metric": metric, "checked": False, "passed": True}
    if rows < recent.min_rows:
        out["note"] = (f"only {rows} recent labelled captured rows (fewer than "
                       f"{recent.min_rows}): not compared on them")
        return out
    out["challenger"] = ours = _score(metric, recent.y, model.predict(recent.X))
    out["checked"] = True
    if champion_predict is None:
        out["note"] = f"{metric} {ours:.4f} on {rows} recent captured rows, no production"
        return out
    out["production"] = theirs = _score(metric, recent.y, champion_predict(recent.X))
    gain = _gain(metric, ours, theirs)
    out["passed"] = gain > recent.margin
    out["note"] = (f"{metric} {ours:.4f} vs production {theirs:.4f} on {rows} recent "
                   f"captured rows ({'+' if gain >= 0 else ''}{gain:.4f}, margin "
                   f"{recent.margin:g})")
    return out


def challenge(catalog: Catalog, run_id: str, name: str, *, metric: str | None = None,
              margin: float = 0.0, recent: RecentRows | None = None,
              context: Mapping[str, Any] | None = None, progress: ProgressFn | None = None,
              cancel: CancelToken | None = None) -> GateResult:
    """Register run `run_id` as `name`@N+1 and alias it `staged` only if it beats
    `name`@production by `margin` on the run's holdout — and, given `recent` labelled
    captured rows, on those too — and passes ONNX parity. `context` (why the run was
    made: a retrain's triggers) goes into the audit entry."""
    from core.bundles import _predict
    from core.registry.aliases import set_alias
    from core.registry.models import resolve_model
    from core.registry.register import register_model
    from core.registry.runtime import load_session
    from core.training import get_run, holdout_frame
    from core.training.runs import load_model

    run = get_run(catalog, run_id)
    metric = metric or ("accuracy" if run.task == "classification" else "r2")
    if metric not in GATE_METRICS:
        raise InvalidInput(f"--metric {metric!r} is not one of {sorted(GATE_METRICS)}")
    if GATE_METRICS[metric][0] != run.task:
        raise InvalidInput(f"--metric {metric} does not fit a {run.task} run")
    if margin < 0:
        raise InvalidInput("--margin must be >= 0")
    X, y = holdout_frame(catalog, run)
    model = load_model(catalog, run)
    ours = _score(metric, y, model.predict(X))
    try:
        champion = resolve_model(catalog, f"{name}@production")
    except NotFound:
        champion = None
    theirs = None
    champion_predict: Callable[[Any], Any] | None = None
    if champion is not None:
        missing = [s.name for s in champion.inputs if s.name not in X.columns]
        if missing:
            raise InvalidInput(f"{champion.ref} takes {missing}, which run {run.id}'s holdout "
                               "lacks: they cannot be compared")
        session = load_session(catalog.objects.require(champion.onnx_object).read_bytes(),
                               champion.ref)
        champion_predict = partial(_predict, session, champion)
        theirs = _score(metric, y, champion_predict(X))
    if theirs is None:
        beats, why = True, "no production version to beat"
    else:
        gain = _gain(metric, ours, theirs)
        beats = gain > margin
        why = (f"{metric} {ours:.4f} vs production {theirs:.4f} "
               f"({'+' if gain >= 0 else ''}{gain:.4f}, margin {margin:g})")
    captured = None if recent is None else _on_recent(
        metric, recent, model, champion_predict)
    if captured is not None:
        why += f"; {captured['note']}"

    def result(passed: bool, version: int | None, reason: str) -> GateResult:
        decided = GateResult(name, run.id, str(metric), margin, ours, theirs,
                             champion.version if champion else None, passed, version, reason,
                             captured)
        with catalog.transaction() as cur:  # every decision, passed or not, is on record
            record_event(cur, "gate", model=name, version=version,
                         detail={**decided.to_dict(), **dict(context or {})})
        return decided

    if not beats:
        return result(False, None, f"not registered: does not beat production: {why}")
    if captured is not None and not captured["passed"]:
        return result(False, None, "not registered: beats production on the holdout but not "
                      f"on recent captured rows: {why}")
    mv = register_model(catalog, run.id, name, progress=progress, cancel=cancel)
    if mv.flagged:
        return result(False, mv.version, f"registered as {mv.ref} but not staged: its ONNX "
                      "export failed the parity check")
    set_alias(catalog, mv.ref, STAGED)
    return result(True, mv.version, f"staged as {mv.ref}, waiting for approval: {why}")


def approve(catalog: Catalog, ref: str) -> dict[str, Any]:
    """Make the staged version `ref` production (what deploys then pick up)."""
    from core.registry.aliases import alias_version, release_alias, set_alias
    from core.registry.models import resolve_model

    mv = resolve_model(catalog, ref)
    if alias_version(catalog, mv.model, STAGED) != mv.version:
        raise InvalidInput(f"{mv.ref} is not staged: only a version the gate staged can be "
                           "approved")
    set_alias(catalog, mv.ref, "production")
    release_alias(catalog, mv.model, STAGED)
    with catalog.transaction() as cur:
        record_event(cur, "approve", model=mv.model, version=mv.version,
                     detail={"from": STAGED, "to": "production"})
    return {"model": mv.model, "version": mv.version, "alias": "production"}


def staged_versions(catalog: Catalog) -> list[dict[str, Any]]:
    """Versions waiting for approval: {"model", "version"} each."""
    return [{"model": str(m), "version": int(v)} for m, v in catalog.cursor().execute(
        "SELECT model, version FROM model_alias WHERE alias = ? AND released_at IS NULL "
        "ORDER BY model", [STAGED]).fetchall()]
