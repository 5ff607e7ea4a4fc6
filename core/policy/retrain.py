"""Running a queued retrain: the production run's recipe on the latest data (plus the
labelled captures), then the champion/challenger gate — on the holdout and on the newest
labelled captures, which are kept out of training for that. A version that passes is
`staged`, never deployed.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import orjson

from core.audit.chain import record_event
from core.catalog import Catalog
from core.errors import Cancelled, InvalidInput, OutpostError
from core.policy import busy
from core.policy.evaluate import Decision, after_ingest
from core.policy.spec import GateSpec
from core.policy.store import RetrainRecord, champion, get_policy, get_retrain, retrains
from core.progress import CancelToken, ProgressFn, check, report

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrainResult:
    retrain: int
    model: str
    status: str  # staged, rejected, failed, cancelled
    reason: str
    dataset: str | None = None
    run: str | None = None
    version: int | None = None
    gate: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class _Recent:
    cutoff: float | None  # captures from here on judge the result and are not trained on
    gate: Any  # core.registry.gate.RecentRows or None
    note: str


def _recent_captures(catalog: Catalog, model: str, run: Any, spec: GateSpec) -> _Recent:
    """The newest `captured_share` of the model's labelled captures, as gate rows."""
    from core.datasets import read_frame, resolve_version
    from core.feedback.captured import refresh_captured
    from core.registry.gate import RecentRows
    from core.training.features import prepare_features

    stored = refresh_captured(catalog, model)
    if stored is None:
        return _Recent(None, None, "no captured rows")
    frame = read_frame(catalog, resolve_version(catalog, f"{stored.name}@{stored.version}"))
    if run.target not in frame.columns:
        return _Recent(None, None, "captured rows carry no label column")
    labelled = frame[frame[run.target].notna()].sort_values("captured_at", kind="stable")
    keep = math.ceil(len(labelled) * spec.captured_share)
    margin = spec.margin if spec.captured_margin is None else spec.captured_margin
    if keep < spec.min_captured:
        # Too few to judge on: train on them all; the gate says why it did not compare.
        recent = labelled.iloc[len(labelled) - keep:] if keep else labelled.iloc[:0]
        return _Recent(None, RecentRows(prepare_features(recent, run.feature_list),
                                        recent[run.target].to_numpy(), margin,
                                        spec.min_captured),
                       f"{len(labelled)} labelled captured rows, all trained on")
    recent = labelled.iloc[len(labelled) - keep:]
    cutoff = float(recent["captured_at"].iloc[0].timestamp())
    recent = labelled[labelled["captured_at"] >= recent["captured_at"].iloc[0]]
    return _Recent(cutoff, RecentRows(prepare_features(recent, run.feature_list),
                                      recent[run.target].to_numpy(), margin,
                                      spec.min_captured),
                   f"newest {len(recent)} of {len(labelled)} labelled captured rows kept "
                   "out of training for the gate")


def _retrain(catalog: Catalog, record: RetrainRecord, progress: ProgressFn | None,
             cancel: CancelToken | None) -> RetrainResult:
    from core.datasets import resolve_version
    from core.feedback.training import add_captured
    from core.registry.gate import challenge
    from core.training import get_run, train

    policy = get_policy(catalog, record.model).policy
    mv = champion(catalog, record.model)
    if mv.run is None:
        raise InvalidInput(f"{mv.ref} was imported: there is no training recipe to repeat")
    base_run = get_run(catalog, mv.run)
    base = resolve_version(catalog, policy.retrain.dataset or base_run.dataset)
    report(progress, f"retrain {record.model}", 0, 3)
    recent = _recent_captures(catalog, record.model, base_run, policy.gate)
    dataset = base.ref
    if policy.retrain.add_captured:
        try:
            added = add_captured(catalog, base.ref, base_run.target, before=recent.cutoff,
                                 progress=progress, cancel=cancel)
            dataset = f"{added.name}@{added.version}"
        except InvalidInput as exc:  # no labelled captures: the data version alone
            log.info("retrain #%s trains on %s alone: %s", record.id, base.ref, exc)
    check(cancel, "retrain")
    report(progress, f"retrain {record.model}", 1, 3)
    algo = policy.retrain.algo or base_run.algo
    run = train(catalog, dataset, base_run.target, features=base_run.features, algo=algo,
                params=base_run.params if algo == base_run.algo else None, seed=base_run.seed,
                task=base_run.task, progress=progress, cancel=cancel)
    check(cancel, "retrain")
    report(progress, f"retrain {record.model}", 2, 3)
    gate = challenge(catalog, run.id, record.model, metric=policy.gate.metric,
                     margin=policy.gate.margin, recent=recent.gate,
                     context={"retrain": record.id, "captures": recent.note},
                     progress=progress, cancel=cancel)
    report(progress, f"retrain {record.model}", 3, 3)
    return RetrainResult(record.id, record.model, "staged" if gate.passed else "rejected",
                         gate.reason, dataset, run.id, gate.version if gate.passed else None,
                         gate.to_dict())


def _claim(catalog: Catalog, retrain_id: int) -> RetrainRecord:
    with busy.LOCK, catalog.transaction() as cur:
        record = get_retrain(cur, retrain_id)
        if record.status != "pending":
            raise InvalidInput(f"retrain #{retrain_id} is {record.status}, not pending")
        busy.start(record.model, retrain_id)
        cur.execute("UPDATE policy_retrain SET status = 'running', started_at = ? WHERE id = ?",
                    [time.time(), retrain_id])
        record_event(cur, "retrain", model=record.model,
                     detail={"retrain": retrain_id, "status": "started"})
    return record


def _finish(catalog: Catalog, result: RetrainResult) -> None:
    with catalog.transaction() as cur:
        cur.execute(
            "UPDATE policy_retrain SET status = ?, reason = ?, dataset = ?, run = ?, "
            "version = ?, gate = ?, finished_at = ? WHERE id = ?",
            [result.status, result.reason, result.dataset, result.run, result.version,
             None if result.gate is None else orjson.dumps(result.gate).decode(),
             time.time(), result.retrain])
        record_event(cur, "retrain", model=result.model, version=result.version, detail={
            "retrain": result.retrain, "status": result.status, "reason": result.reason,
            "dataset": result.dataset, "run": result.run})


def run_retrain(catalog: Catalog, retrain_id: int, *, progress: ProgressFn | None = None,
                cancel: CancelToken | None = None) -> RetrainResult:
    """Run the pending retrain `retrain_id` to its end: staged, rejected, failed or
    cancelled — each recorded, with the audit entry, whatever happens."""
    record = _claim(catalog, retrain_id)
    try:  # the model stays busy until its record says how the retrain ended
        try:
            result = _retrain(catalog, record, progress, cancel)
        except Cancelled as exc:
            result = RetrainResult(record.id, record.model, "cancelled", str(exc))
        except OutpostError as exc:
            result = RetrainResult(record.id, record.model, "failed", str(exc))
        except Exception as exc:
            _finish(catalog, RetrainResult(record.id, record.model, "failed",
                                           f"{type(exc).__name__}: {exc}"))
            raise
        _finish(catalog, result)
    finally:
        busy.finish(record.model, record.id)
    return result


def run_pending(catalog: Catalog, model: str | None = None, *,
                progress: ProgressFn | None = None,
                cancel: CancelToken | None = None) -> list[RetrainResult]:
    """Every pending retrain (of `model`, or of all), oldest first."""
    pending = retrains(catalog, model, status=("pending",))
    return [run_retrain(catalog, r.id, progress=progress, cancel=cancel)
            for r in reversed(pending)]


def check_after_ingest(catalog: Catalog, source: str, *, progress: ProgressFn | None = None,
                       cancel: CancelToken | None = None
                       ) -> tuple[list[Decision], list[RetrainResult]]:
    """What an interactive ingest (CLI pull or import, the GUI's refresh) does once its
    telemetry is committed: evaluate every policy, then run every pending retrain — those
    it queued and those a hub ingest queued before. A retrain that fails is recorded as
    failed; nothing here fails the ingest."""
    decisions = after_ingest(catalog, source)
    return decisions, run_pending(catalog, progress=progress, cancel=cancel)


def outcome_doc(decisions: list[Decision], results: list[RetrainResult]) -> dict[str, Any]:
    """The `"policy"` key of `telemetry pull|import --json` and of `policy check --json`."""
    return {"decisions": [d.to_dict() for d in decisions],
            "retrains": [r.to_dict() for r in results]}


def outcome_lines(decisions: list[Decision], results: list[RetrainResult]) -> list[str]:
    """What a pull, import or check says about policies: triggers, skips, retrains."""
    lines = [f"policy {d.model}: {d.reason}" for d in decisions if d.action != "quiet"]
    lines += [f"retrain #{r.retrain} of {r.model}: {r.status} — {r.reason}" for r in results]
    return lines
