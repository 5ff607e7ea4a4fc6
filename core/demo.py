"""`outpost demo`: the whole loop, headless, on the sample sensor data.

import → train → register → alias production → start the local agent → deploy →
normal traffic, then drifted traffic → pull telemetry → drift reports for both
phases → stop the agent. The drifted phase must flag exactly the features the
sample generator shifted (``SENSOR_DRIFTED_FEATURES``).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from core.catalog import Catalog
from core.datasets import import_frame, read_frame, resolve_version
from core.drift import DriftReport, drift_report
from core.errors import OutpostError
from core.feeds import records
from core.fleet.client import pinned_http
from core.fleet.dispatch import deploy
from core.fleet.local import LOCAL_AGENT, start_local_agent, stop_local_agent
from core.fleet.records import AgentRecord, get_agent
from core.progress import CancelToken, check
from core.registry import ModelVersion, register_model, resolve_model, set_alias
from core.samples import SAMPLES, SENSOR_DRIFTED_FEATURES
from core.telemetry.pull import pull_telemetry
from core.training import train

MODEL = "pump_failure"
WINDOW_S = 1.0  # the local agent's histogram windows: short, so the two phases separate
TRAFFIC_ROWS = 3000
BATCH = 100


@dataclass(frozen=True)
class Step:
    name: str
    seconds: float
    detail: str


@dataclass
class DemoResult:
    steps: list[Step] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the whole loop, waits between steps included
    normal: DriftReport | None = None
    drifted: DriftReport | None = None

    @property
    def flagged(self) -> list[str]:
        return sorted(f.feature for f in self.drifted.features if f.status != "ok") \
            if self.drifted else []

    @property
    def passed(self) -> bool:
        clean = self.normal is not None and all(f.status == "ok" for f in self.normal.features)
        return clean and set(self.flagged) == set(SENSOR_DRIFTED_FEATURES)

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": [{"step": s.name, "seconds": round(s.seconds, 3), "detail": s.detail}
                      for s in self.steps],
            "seconds": round(self.seconds, 3),
            "expected_drift": sorted(SENSOR_DRIFTED_FEATURES), "flagged": self.flagged,
            "passed": self.passed,
            "normal": self.normal.to_dict() if self.normal else None,
            "drifted": self.drifted.to_dict() if self.drifted else None,
        }


StepFn = Callable[[Step], None]


class _Runner:
    def __init__(self, on_step: StepFn | None, cancel: CancelToken | None) -> None:
        self.result = DemoResult()
        self.on_step, self.cancel = on_step, cancel

    def step(self, name: str, fn: Callable[[], str]) -> None:
        check(self.cancel, "demo")
        started = time.perf_counter()
        detail = fn()
        done = Step(name, time.perf_counter() - started, detail)
        self.result.steps.append(done)
        if self.on_step is not None:
            self.on_step(done)


def _import(catalog: Catalog) -> str:
    done = []
    for sample in SAMPLES:
        if sample.name in ("field_sensor", "field_sensor_drifted"):
            source = {"sample": sample.name, "task": sample.task, "target": sample.target,
                      "description": sample.description}
            res = import_frame(catalog, sample.name, sample.build(), source)
            done.append(f"{res.name}@{res.version[:12]} ({res.rows} rows)")
    return ", ".join(done)


def _send(agent: AgentRecord, mv: ModelVersion, frame: pd.DataFrame) -> int:
    body = records(mv.inputs, frame)
    with pinned_http(agent.url, agent.tls_spki) as http:
        for start in range(0, len(body), BATCH):
            answer = http.post(f"/v1/models/{mv.model}/predict",
                               json={"records": body[start:start + BATCH]})
            if answer.status_code != 200:
                raise OutpostError(f"the local agent refused demo traffic: {answer.text[:200]}")
    return len(body)


def _traffic_frame(catalog: Catalog, dataset: str, mv: ModelVersion, seed: int) -> pd.DataFrame:
    frame = read_frame(catalog, resolve_version(catalog, dataset),
                       columns=[s.name for s in mv.inputs])
    return frame.sample(TRAFFIC_ROWS, random_state=seed)


def _next_window() -> float:
    """Sleep past the end of the current histogram window plus a writer flush."""
    now = time.time()
    boundary = now - now % WINDOW_S + WINDOW_S
    time.sleep(boundary - now + 0.5)
    return boundary


def run_demo(catalog: Catalog, *, on_step: StepFn | None = None,
             cancel: CancelToken | None = None) -> DemoResult:
    """Run the loop end to end on `catalog`; the local agent is stopped whatever happens."""
    started = time.perf_counter()
    run = _Runner(on_step, cancel)
    state: dict[str, Any] = {}
    run.step("import sample data", lambda: _import(catalog))
    run.step("train", lambda: _train(catalog, state))
    run.step("register", lambda: _register(catalog, state))
    run.step("alias production", lambda: set_alias(
        catalog, state["version"].ref, "production", force=True).ref)
    stop_local_agent(catalog)  # restarted with short windows, whatever it ran with before
    try:
        run.step("start local agent", lambda: _start(catalog))
        _serve_and_observe(catalog, run, state)
    finally:
        run.step("stop local agent", lambda: "stopped" if stop_local_agent(catalog) else "gone")
    run.result.seconds = time.perf_counter() - started
    return run.result


def _train(catalog: Catalog, state: dict[str, Any]) -> str:
    state["run"] = run = train(catalog, "field_sensor", "failure", algo="logistic_regression")
    return f"run {run.id}: accuracy {run.metrics.get('accuracy', 0):.3f}"


def _register(catalog: Catalog, state: dict[str, Any]) -> str:
    state["version"] = mv = register_model(catalog, state["run"].id, MODEL)
    return f"{mv.ref}, parity {'passed' if mv.parity.get('passed') else 'FAILED'}"


def _start(catalog: Catalog) -> str:
    agent = start_local_agent(catalog, window_s=WINDOW_S)
    return f"{agent.url} (pid {agent.pid})"


def _deploy(catalog: Catalog) -> str:
    result = deploy(catalog, f"{MODEL}@production", LOCAL_AGENT)
    return f"{result.model}@{result.version} {result.status} on {result.agent}"


def _pull(catalog: Catalog, drifted_from: float, timeout: float = 15.0) -> str:
    """Pull until the drifted phase's histogram windows are in: on a busy machine the
    agent's writer may close them a little after the window ends."""
    deadline, rows = time.monotonic() + timeout, 0
    while True:
        [result] = pull_telemetry(catalog, LOCAL_AGENT)
        if result.error:
            raise OutpostError(f"telemetry pull from the local agent failed: {result.error}")
        rows += result.rows
        arrived = catalog.cursor().execute(
            "SELECT count(*) FROM telemetry_histogram WHERE agent = ? AND model = ? "
            "AND window_start >= ?", [LOCAL_AGENT, MODEL, drifted_from]).fetchall()[0][0]
        if arrived or time.monotonic() > deadline:
            return f"{rows} records"
        time.sleep(0.25)


def _serve_and_observe(catalog: Catalog, run: _Runner, state: dict[str, Any]) -> None:
    run.step("deploy", lambda: _deploy(catalog))
    mv = resolve_model(catalog, f"{MODEL}@production")
    agent = get_agent(catalog, LOCAL_AGENT)
    normal = _traffic_frame(catalog, "field_sensor", mv, 1)
    drifted = _traffic_frame(catalog, "field_sensor_drifted", mv, 2)
    start = time.time()
    run.step("normal traffic", lambda: f"{_send(agent, mv, normal)} rows")
    boundary = _next_window()
    run.step("drifted traffic", lambda: f"{_send(agent, mv, drifted)} rows")
    _next_window()
    run.step("pull telemetry", lambda: _pull(catalog, boundary))

    def report() -> str:
        run.result.normal = drift_report(catalog, MODEL, LOCAL_AGENT, version=mv.version,
                                         since=start - WINDOW_S, until=boundary)
        run.result.drifted = drift_report(catalog, MODEL, LOCAL_AGENT, version=mv.version,
                                          since=boundary + 1e-3)
        return f"drifted: {', '.join(run.result.flagged) or 'none'}"

    run.step("drift report", report)
