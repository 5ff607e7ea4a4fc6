"""Staged rollout: a model version to the fleet wave by wave, halted and rolled back when
more agents fail than allowed.

Each wave's agents are deployed through the dispatcher (install and canary on the
agent; a hub agent does it on its next poll and the rollout waits for the outcome it
reports), then soaked (core.fleet.soak): for `soak_s` each must stay reachable, serve
the new version, keep its error rate and p99 within the health thresholds and, when
labels arrive, its live accuracy near the holdout. An agent unreachable (or silent)
for longer than `offline_s` counts as failed. As soon as the failures pass
`max_failures` the rollout halts and every agent it already switched goes back to the
version it served before (push: an explicit rollback; hub: that version recorded as
desired, which also overrides a deploy the agent has not picked up yet).

State lives in the catalog (`rollout`, `rollout_agent`), written before and after
every step, so a desktop restart can `resume_rollout` (or `abort_rollout`).
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from core.accuracy import AccuracyThresholds
from core.audit.chain import record_event
from core.catalog import Catalog
from core.errors import InvalidInput, NotFound, OutpostError
from core.fleet.dispatch import deploy, rollback
from core.fleet.ledger import list_deployments
from core.fleet.records import get_agent, list_agents
from core.fleet.soak import SoakLimits, await_outcomes, serving, soak_problem
from core.progress import CancelToken, ProgressFn, check, report

RolloutStatus = Literal["running", "done", "halted", "aborted"]
AgentState = Literal["waiting", "switched", "healthy", "failed", "rolled_back"]
DEFAULT_WAVES = (0.1, 0.5, 1.0)
DEFAULT_SOAK_S = 60.0
DEFAULT_OFFLINE_S = 30.0
DEFAULT_ACCURACY = AccuracyThresholds()
POLL_S = 1.0


@dataclass(frozen=True)
class RolloutAgent:
    agent: str
    wave: int
    previous: int | None  # the version it served before the rollout switched it
    status: AgentState
    error: str | None = None


@dataclass(frozen=True)
class Rollout:
    id: int
    model: str
    version: int
    waves: list[float]
    max_failures: int
    soak_s: float
    offline_s: float
    status: RolloutStatus
    wave: int  # waves finished
    reason: str | None
    agents: list[RolloutAgent] = field(default_factory=list)
    min_labels: int = DEFAULT_ACCURACY.min_labels
    max_accuracy_drop: float = DEFAULT_ACCURACY.max_drop

    @property
    def failures(self) -> int:
        return sum(a.status == "failed" for a in self.agents)

    @property
    def limits(self) -> SoakLimits:
        return SoakLimits(self.model, self.version, self.offline_s,
                          AccuracyThresholds(self.min_labels, self.max_accuracy_drop))

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["failures"] = self.failures
        return doc


def parse_waves(text: str) -> list[float]:
    """'10%,50%,100%' -> [0.1, 0.5, 1.0]: increasing, ending at 100 %."""
    try:
        waves = [float(p.strip().rstrip("%")) / 100 for p in text.split(",") if p.strip()]
    except ValueError as exc:
        raise InvalidInput(f"--waves {text!r}: give percentages like 10%,50%,100%") from exc
    if not waves or any(b <= a for a, b in zip(waves, waves[1:], strict=False)) \
            or waves[0] <= 0 or waves[-1] != 1.0:
        raise InvalidInput(f"--waves {text!r} must increase and end at 100%")
    return waves


def start_rollout(catalog: Catalog, ref: str, *, waves: list[float] | None = None,
                  max_failures: int = 0, soak_s: float = DEFAULT_SOAK_S,
                  offline_s: float = DEFAULT_OFFLINE_S,
                  accuracy: AccuracyThresholds = DEFAULT_ACCURACY) -> Rollout:
    """Record a rollout of `ref` to every agent, push and hub (none running for this
    model)."""
    from core.registry import resolve_model

    waves = list(waves or DEFAULT_WAVES)
    if max_failures < 0 or soak_s < 0 or offline_s <= 0:
        raise InvalidInput("--max-failures and --soak must be >= 0, the offline timeout > 0")
    if accuracy.min_labels < 1 or not 0 <= accuracy.max_drop <= 1:
        raise InvalidInput("--min-labels must be >= 1 and --max-accuracy-drop from 0 to 1")
    mv = resolve_model(catalog, ref)
    names = sorted(a.name for a in list_agents(catalog))
    if not names:
        raise InvalidInput("no agents to roll out to: add one with `outpost agent add` or "
                           "`outpost agent enroll`")
    cur = catalog.cursor()
    if cur.execute("SELECT id FROM rollout WHERE model = ? AND status = 'running'",
                   [mv.model]).fetchall():
        raise InvalidInput(f"a rollout of {mv.model} is already running: "
                           "`outpost rollout resume` or `outpost rollout abort` it first")
    bounds = [min(len(names), max(1, math.ceil(w * len(names)))) for w in waves]
    with catalog.transaction() as cur:
        row = cur.execute(
            "INSERT INTO rollout (model, version, waves, max_failures, soak_s, offline_s, "
            "status, wave, min_labels, max_accuracy_drop) "
            "VALUES (?, ?, ?, ?, ?, ?, 'running', 0, ?, ?) RETURNING id",
            [mv.model, mv.version, json.dumps(waves), max_failures, soak_s, offline_s,
             accuracy.min_labels, accuracy.max_drop]
        ).fetchone()
        assert row is not None
        rid = row[0]
        start = 0
        for wave, end in enumerate(bounds):
            for name in names[start:end]:
                cur.execute("INSERT INTO rollout_agent (rollout, agent, wave, status) "
                            "VALUES (?, ?, ?, 'waiting')", [rid, name, wave])
            start = max(start, end)
        record_event(cur, "rollout", model=mv.model, version=mv.version,
                     detail={"rollout": int(rid), "status": "running", "waves": waves,
                             "max_failures": max_failures, "agents": names})
    return get_rollout(catalog, int(rid))


def get_rollout(catalog: Catalog, rollout_id: int | None = None) -> Rollout:
    """One rollout, or (None) the latest."""
    cur = catalog.cursor()
    rows = cur.execute(
        "SELECT id, model, version, waves, max_failures, soak_s, offline_s, status, wave, "
        "reason, min_labels, max_accuracy_drop FROM rollout "
        "WHERE (CAST(? AS BIGINT) IS NULL OR id = ?) ORDER BY id DESC LIMIT 1",
        [rollout_id, rollout_id]).fetchall()
    if not rows:
        raise NotFound("no rollout yet" if rollout_id is None
                       else f"rollout {rollout_id} does not exist")
    (rid, model, version, waves, max_f, soak, offline, status, wave, reason, min_labels,
     max_drop) = rows[0]
    agents = [RolloutAgent(str(a), int(w), None if p is None else int(p), s, e)
              for a, w, p, s, e in cur.execute(
                  "SELECT agent, wave, previous, status, error FROM rollout_agent "
                  "WHERE rollout = ? ORDER BY wave, agent", [rid]).fetchall()]
    return Rollout(int(rid), str(model), int(version), json.loads(waves), int(max_f),
                   float(soak), float(offline), status, int(wave), reason, agents,
                   int(min_labels), float(max_drop))


def _set_agent(catalog: Catalog, rid: int, agent: str, status: AgentState,
               error: str | None = None, previous: int | None = None) -> None:
    with catalog.transaction() as cur:
        cur.execute("UPDATE rollout_agent SET status = ?, error = ?, "
                    "previous = coalesce(?, previous), updated_at = now() "
                    "WHERE rollout = ? AND agent = ?", [status, error, previous, rid, agent])


def _set_rollout(catalog: Catalog, rid: int, status: RolloutStatus, wave: int,
                 reason: str | None = None) -> None:
    with catalog.transaction() as cur:
        row = cur.execute("UPDATE rollout SET status = ?, wave = ?, reason = ?, "
                          "updated_at = now() WHERE id = ? RETURNING model, version",
                          [status, wave, reason, rid]).fetchone()
        if row is not None and status != "running":  # how it ended goes to the audit log
            record_event(cur, "rollout", model=str(row[0]), version=int(row[1]),
                         detail={"rollout": rid, "status": status, "wave": wave,
                                 "reason": reason})


def _switch(catalog: Catalog, r: Rollout, members: list[RolloutAgent],
            cancel: CancelToken | None) -> list[str]:
    """Deploy to the wave's waiting agents; the names switched. A push agent switches
    (or refuses) now; a hub agent when it reports the outcome of its next poll."""
    switched: list[str] = []
    pending: dict[str, int] = {}  # hub agent -> its deployment
    for a in members:
        check(cancel, "rollout")
        try:
            previous = serving(catalog, a.agent, r.model)
            _set_agent(catalog, r.id, a.agent, "waiting", previous=previous)
            result = deploy(catalog, f"{r.model}@{r.version}", a.agent)
        except OutpostError as exc:
            _set_agent(catalog, r.id, a.agent, "failed", str(exc))
            continue
        if result.status == "pending":
            pending[a.agent] = result.deployment
        else:
            _set_agent(catalog, r.id, a.agent, "switched")
            switched.append(a.agent)
    for agent, error in await_outcomes(catalog, pending, r.offline_s, cancel).items():
        _set_agent(catalog, r.id, agent, "failed" if error else "switched", error)
        if error is None:
            switched.append(agent)
    return switched


def _soak(catalog: Catalog, r: Rollout, names: list[str], cancel: CancelToken | None,
          clock: Callable[[], float]) -> None:
    """Watch the wave's switched agents for the soak time; mark failures as they happen.
    Ends early once the rollout has more failures than it tolerates: it halts anyway."""
    since = time.time()
    end = clock() + r.soak_s
    last_seen = {n: clock() for n in names}
    healthy: set[str] = set()
    while names:
        for name in list(names):
            try:
                problem = soak_problem(catalog, r.limits, name, since)
                last_seen[name] = clock()
            except OutpostError as exc:
                if clock() - last_seen[name] <= r.offline_s:
                    continue  # offline for now: a failure only past the timeout
                problem = f"offline for more than {r.offline_s:g} s: {exc}"
            if problem is not None:
                _set_agent(catalog, r.id, name, "failed", problem)
                names.remove(name)
            elif clock() >= end:
                healthy.add(name)
                names.remove(name)
        check(cancel, "rollout")
        if names and get_rollout(catalog, r.id).failures > r.max_failures:
            break
        if names:
            time.sleep(min(POLL_S, max(0.05, end - clock())))
    for name in healthy:
        _set_agent(catalog, r.id, name, "healthy")


def _on_new_version(catalog: Catalog, r: Rollout, a: RolloutAgent) -> bool:
    """Whether the agent may serve the rollout's version now or later: push agents are
    asked; for a hub agent the ledger says whether its deploy is pending or went through."""
    if get_agent(catalog, a.agent).mode == "hub":
        latest = next(iter(list_deployments(catalog, agent=a.agent, model=r.model)), None)
        return latest is not None and latest.action == "deploy" and \
            latest.version == r.version and latest.status in ("pending", "active")
    if a.status != "failed":
        return a.status in ("switched", "healthy")  # a push deploy is done when recorded
    try:  # failed: after its switch (unhealthy in the soak), or refused it
        return a.previous != r.version and serving(catalog, a.agent, r.model) == r.version
    except OutpostError:
        return False  # unreachable: nothing to roll back now


def _send_back(catalog: Catalog, r: Rollout, a: RolloutAgent) -> int | None:
    """Start `a`'s way back to its previous version; the hub deployment to wait for."""
    if get_agent(catalog, a.agent).mode == "hub" and a.previous is not None:
        # Desired state, not a rollback action: it also replaces a deploy not picked up
        # yet, where "one version back" would go one too far.
        return deploy(catalog, f"{r.model}@{a.previous}", a.agent,
                      allow_downgrade=True).deployment
    result = rollback(catalog, r.model, a.agent)
    return result.deployment if result.status == "pending" else None


def _roll_back(catalog: Catalog, r: Rollout, cancel: CancelToken | None = None) -> None:
    """Every agent on the new version (or about to be) goes back to the one it served
    before: those switched, and those that failed after their switch."""
    errors: dict[str, str | None] = {}
    pending: dict[str, int] = {}
    agents = [a for a in get_rollout(catalog, r.id).agents
              if a.status in ("switched", "healthy", "failed", "waiting")]
    for a in agents:
        if not _on_new_version(catalog, r, a):
            continue
        try:
            if (deployment := _send_back(catalog, r, a)) is not None:
                pending[a.agent] = deployment
            errors[a.agent] = None
        except OutpostError as exc:
            errors[a.agent] = f"rollback failed: {exc}"
    errors |= {agent: None if error is None else f"rollback recorded, not confirmed: {error}"
               for agent, error in await_outcomes(catalog, pending, r.offline_s,
                                                  cancel).items()}
    for a in agents:
        if a.agent not in errors:
            continue
        error = errors[a.agent]
        if a.status == "failed":
            _set_agent(catalog, r.id, a.agent, "failed",
                       f"{a.error}; {error or 'rolled back'}")
        elif error is None:
            _set_agent(catalog, r.id, a.agent, "rolled_back")
        else:
            _set_agent(catalog, r.id, a.agent, a.status,
                       f"{a.error + '; ' if a.error else ''}{error}")


def resume_rollout(catalog: Catalog, rollout_id: int | None = None, *,
                   progress: ProgressFn | None = None, cancel: CancelToken | None = None,
                   clock: Callable[[], float] = time.monotonic) -> Rollout:
    """Run (or go on with) a rollout until it is done or halted."""
    r = get_rollout(catalog, rollout_id)
    if r.status != "running":
        raise InvalidInput(f"rollout {r.id} is {r.status}: nothing to resume")
    waves = len(r.waves)
    for wave in range(r.wave, waves):
        report(progress, f"rollout {r.model}@{r.version}: wave {wave + 1}/{waves}", wave, waves)
        members = [a for a in get_rollout(catalog, r.id).agents if a.wave == wave]
        # After a restart, agents switched but not yet soaked are soaked again.
        soak = [a.agent for a in members if a.status == "switched"]
        soak += _switch(catalog, r, [a for a in members if a.status == "waiting"], cancel)
        if get_rollout(catalog, r.id).failures <= r.max_failures:
            _soak(catalog, r, soak, cancel, clock)
        failures = get_rollout(catalog, r.id).failures
        if failures > r.max_failures:
            reason = f"{failures} agent(s) failed in wave {wave + 1} (max {r.max_failures})"
            _roll_back(catalog, r, cancel)
            _set_rollout(catalog, r.id, "halted", wave, reason)
            return get_rollout(catalog, r.id)
        _set_rollout(catalog, r.id, "running", wave + 1)
    _set_rollout(catalog, r.id, "done", waves)
    report(progress, f"rollout {r.model}@{r.version}", waves, waves)
    return get_rollout(catalog, r.id)


def abort_rollout(catalog: Catalog, rollout_id: int | None = None) -> Rollout:
    """Stop a running rollout and roll back the agents it switched."""
    r = get_rollout(catalog, rollout_id)
    if r.status != "running":
        raise InvalidInput(f"rollout {r.id} is {r.status}: nothing to abort")
    _roll_back(catalog, r)
    _set_rollout(catalog, r.id, "aborted", r.wave, "aborted by the user")
    return get_rollout(catalog, r.id)
