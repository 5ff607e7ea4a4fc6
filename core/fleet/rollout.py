"""Staged rollout: a model version to the fleet wave by wave, halted and rolled back when
more agents fail than allowed.

Each wave's agents are deployed through the dispatcher (install and canary on the
agent), then soaked: for `soak_s` each must stay online, serve the new version and
keep its error rate and p99 (from pulled telemetry since its switch) within the
health thresholds (`core.drift.Thresholds`, OUTPOST_ERROR_RATE / OUTPOST_P99_MS).
An agent unreachable for longer than `offline_s` counts as failed. When the
failures pass `max_failures` the rollout halts and every agent it already
switched is rolled back to the version it served before (an explicit rollback).

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

from core.audit.chain import record_event
from core.catalog import Catalog
from core.errors import InvalidInput, NotFound, OutpostError
from core.fleet.dispatch import agent_status, deploy, rollback
from core.fleet.records import list_agents
from core.progress import CancelToken, ProgressFn, check, report

RolloutStatus = Literal["running", "done", "halted", "aborted"]
AgentState = Literal["waiting", "switched", "healthy", "failed", "rolled_back"]
DEFAULT_WAVES = (0.1, 0.5, 1.0)
DEFAULT_SOAK_S = 60.0
DEFAULT_OFFLINE_S = 30.0
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

    @property
    def failures(self) -> int:
        return sum(a.status == "failed" for a in self.agents)

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
                  offline_s: float = DEFAULT_OFFLINE_S) -> Rollout:
    """Record a rollout of `ref` to every push agent (none running for this model)."""
    from core.registry import resolve_model

    waves = list(waves or DEFAULT_WAVES)
    if max_failures < 0 or soak_s < 0 or offline_s <= 0:
        raise InvalidInput("--max-failures and --soak must be >= 0, the offline timeout > 0")
    mv = resolve_model(catalog, ref)
    names = sorted(a.name for a in list_agents(catalog) if a.mode != "hub")
    if not names:
        raise InvalidInput("no push agents to roll out to: add one with `outpost agent add`")
    cur = catalog.cursor()
    if cur.execute("SELECT id FROM rollout WHERE model = ? AND status = 'running'",
                   [mv.model]).fetchall():
        raise InvalidInput(f"a rollout of {mv.model} is already running: "
                           "`outpost rollout resume` or `outpost rollout abort` it first")
    bounds = [min(len(names), max(1, math.ceil(w * len(names)))) for w in waves]
    with catalog.transaction() as cur:
        row = cur.execute(
            "INSERT INTO rollout (model, version, waves, max_failures, soak_s, offline_s, "
            "status, wave) VALUES (?, ?, ?, ?, ?, ?, 'running', 0) RETURNING id",
            [mv.model, mv.version, json.dumps(waves), max_failures, soak_s, offline_s]
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
        "reason FROM rollout WHERE (CAST(? AS BIGINT) IS NULL OR id = ?) ORDER BY id DESC "
        "LIMIT 1", [rollout_id, rollout_id]).fetchall()
    if not rows:
        raise NotFound("no rollout yet" if rollout_id is None
                       else f"rollout {rollout_id} does not exist")
    rid, model, version, waves, max_f, soak, offline, status, wave, reason = rows[0]
    agents = [RolloutAgent(str(a), int(w), None if p is None else int(p), s, e)
              for a, w, p, s, e in cur.execute(
                  "SELECT agent, wave, previous, status, error FROM rollout_agent "
                  "WHERE rollout = ? ORDER BY wave, agent", [rid]).fetchall()]
    return Rollout(int(rid), str(model), int(version), json.loads(waves), int(max_f),
                   float(soak), float(offline), status, int(wave), reason, agents)


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


def _active(catalog: Catalog, agent: str, model: str) -> int | None:
    status = agent_status(catalog, agent)
    if not status.online:
        raise OutpostError(status.error or f"agent {agent} is offline")
    return next((m.get("active") for m in status.models if m.get("name") == model), None)


def _switch(catalog: Catalog, r: Rollout, a: RolloutAgent) -> bool:
    try:
        previous = _active(catalog, a.agent, r.model)
        _set_agent(catalog, r.id, a.agent, "waiting", previous=previous)
        deploy(catalog, f"{r.model}@{r.version}", a.agent)
    except OutpostError as exc:
        _set_agent(catalog, r.id, a.agent, "failed", str(exc))
        return False
    _set_agent(catalog, r.id, a.agent, "switched")
    return True


def _health(catalog: Catalog, r: Rollout, agent: str, since: float) -> str | None:
    """Why `agent` is unhealthy now, or None."""
    from core.drift import Thresholds
    from core.telemetry.pull import pull_telemetry
    from core.telemetry.series import request_stats

    if _active(catalog, agent, r.model) != r.version:
        return f"agent {agent} no longer serves {r.model}@{r.version}"
    pull_telemetry(catalog, agent)
    th = Thresholds.from_env()
    for s in request_stats(catalog, agent=agent, model=r.model, since=since):
        if s.error_rate > th.error_rate:
            return f"error rate {s.error_rate:.1%} (> {th.error_rate:.1%})"
        if s.p99_ms is not None and s.p99_ms > th.p99_ms:
            return f"p99 {s.p99_ms:.1f} ms (> {th.p99_ms:g} ms)"
    return None


def _soak(catalog: Catalog, r: Rollout, names: list[str], cancel: CancelToken | None,
          clock: Callable[[], float]) -> None:
    """Watch the wave's switched agents for the soak time; mark failures as they happen."""
    since = time.time()
    end = clock() + r.soak_s
    last_seen = {n: clock() for n in names}
    healthy: set[str] = set()
    while names:
        for name in list(names):
            try:
                problem = _health(catalog, r, name, since)
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
        if names:
            time.sleep(min(POLL_S, max(0.05, end - clock())))
    for name in healthy:
        _set_agent(catalog, r.id, name, "healthy")


def _roll_back(catalog: Catalog, r: Rollout) -> None:
    """Every agent now on the new version goes back to the one it served before: those
    switched, and those that failed after their switch (unhealthy in the soak)."""
    for a in get_rollout(catalog, r.id).agents:
        if a.status == "failed":
            try:
                switched = a.previous != r.version and _active(catalog, a.agent,
                                                               r.model) == r.version
            except OutpostError:
                switched = False  # unreachable: nothing to roll back now
            if not switched:
                continue
        elif a.status not in ("switched", "healthy"):
            continue
        try:
            rollback(catalog, r.model, a.agent)
        except OutpostError as exc:
            _set_agent(catalog, r.id, a.agent, a.status,
                       f"{a.error + '; ' if a.error else ''}rollback failed: {exc}")
            continue
        if a.status == "failed":
            _set_agent(catalog, r.id, a.agent, "failed", f"{a.error}; rolled back")
        else:
            _set_agent(catalog, r.id, a.agent, "rolled_back")


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
        for a in members:
            if a.status == "waiting":
                check(cancel, "rollout")
                if _switch(catalog, r, a):
                    soak.append(a.agent)
        if get_rollout(catalog, r.id).failures <= r.max_failures:
            _soak(catalog, r, soak, cancel, clock)
        failures = get_rollout(catalog, r.id).failures
        if failures > r.max_failures:
            reason = f"{failures} agent(s) failed in wave {wave + 1} (max {r.max_failures})"
            _roll_back(catalog, r)
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
