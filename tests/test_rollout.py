"""Staged rollout against real agent processes: waves, soak, a failing agent that halts the
rollout and rolls the switched agents back, and state that outlives the desktop process."""
from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from core.accuracy import AccuracyThresholds
from core.bundles import build_bundle
from core.catalog import Catalog
from core.errors import InvalidInput
from core.fleet.agents import add_agent
from core.fleet.dispatch import agent_status, deploy
from core.fleet.rollout import get_rollout, parse_waves, resume_rollout, start_rollout
from core.keys import signing_key
from core.registry import register_model
from core.training import train
from tests.conftest import run_cli
from tests.support.agents import verify_for
from tests.support.fleet import (
    Agent,
    assert_fourth_halts_the_rollout,
    mini_frame,
    mini_records,
    open_catalog,
    start_agent,
    start_agents,
    train_mini,
)
from tests.support.hub import wait_until

pytestmark = pytest.mark.xdist_group("fleet")


@pytest.fixture
def catalog(outpost_home: Path) -> Iterator[Catalog]:
    cat = open_catalog(outpost_home)
    train_mini(cat, "pumps")  # pumps@1: logistic regression
    run = train(cat, "mini", "fail", algo="random_forest")
    register_model(cat, run.id, "pumps")  # pumps@2: a random forest, a much bigger bundle
    yield cat
    cat.close()


def _active(catalog: Catalog, agent: str) -> int | None:
    return next((m.get("active") for m in agent_status(catalog, agent).models
                 if m.get("name") == "pumps"), None)


@pytest.fixture
def fleet(tmp_path: Path, catalog: Catalog) -> Iterator[list[Agent]]:
    """Four agents all serving pumps@1; the fourth refuses bundles the size of pumps@2."""
    v1 = build_bundle(catalog, "pumps@1").path.stat().st_size
    v2 = build_bundle(catalog, "pumps@2").path.stat().st_size
    assert v2 > 2 * v1
    cap_mb = str((v1 + v2) / 2 / 1024 / 1024)
    started = start_agents(tmp_path, signing_key(catalog), list("abcd"),
                           {"d": ("--max-bundle-mb", cap_mb)})
    try:
        for name, agent in zip("abcd", started, strict=True):
            add_agent(catalog, f"edge-{name}", agent.url, agent.token)
            deploy(catalog, "pumps@1", f"edge-{name}")
            assert _active(catalog, f"edge-{name}") == 1, name
        yield started
    finally:
        for agent in started:
            agent.stop()


def test_failing_agent_halts_the_rollout_and_switched_agents_roll_back(
        outpost_home: Path, catalog: Catalog, fleet: list[Agent]) -> None:
    catalog.close()
    result = run_cli(outpost_home, "deploy", "pumps@2", "--to-fleet", "--waves",
                     "25%,50%,100%", "--max-failures", "0", "--soak", "1", "--json")
    assert_fourth_halts_the_rollout(result)
    doc = result.json()
    cat = open_catalog(outpost_home)
    try:
        for name in ("edge-a", "edge-b", "edge-c", "edge-d"):
            assert _active(cat, name) == 1, name  # every agent is back on the champion
    finally:
        cat.close()
    cat = open_catalog(outpost_home)
    try:
        events = cat.cursor().execute(
            "SELECT detail->>'status' FROM audit_event WHERE kind = 'rollout' "
            "ORDER BY position").fetchall()
    finally:
        cat.close()
    assert [e for (e,) in events] == ["running", "halted"]
    # The state is in the catalog: another process reads it.
    status = run_cli(outpost_home, "rollout", "status", "--json", check=True).json()
    assert status["id"] == doc["id"] and status["status"] == "halted"
    again = run_cli(outpost_home, "rollout", "resume")
    assert again.returncode == 1 and "halted: nothing to resume" in again.stderr


def test_rollout_survives_a_restart_resumes_to_done_and_aborts(
        outpost_home: Path, catalog: Catalog, tmp_path: Path) -> None:
    started = []
    try:
        for name in ("a", "b"):
            agent = start_agent(tmp_path / f"agent-{name}", signing_key(catalog))
            started.append(agent)
            add_agent(catalog, f"edge-{name}", agent.url, agent.token)
            deploy(catalog, "pumps@1", f"edge-{name}")
        with pytest.raises(InvalidInput, match="must increase and end at 100%"):
            parse_waves("50%,20%")
        with pytest.raises(InvalidInput, match="--min-labels must be >= 1"):
            start_rollout(catalog, "pumps@2", accuracy=AccuracyThresholds(min_labels=0))
        first = start_rollout(catalog, "pumps@2", waves=parse_waves("50%,100%"), soak_s=1)
        assert [a.status for a in first.agents] == ["waiting", "waiting"]
        with pytest.raises(InvalidInput, match="already running"):
            start_rollout(catalog, "pumps@2")
        catalog.close()  # the desktop that started it is gone; a new process resumes it
        done = run_cli(outpost_home, "rollout", "resume", "--json", check=True).json()
        assert done["status"] == "done" and done["wave"] == 2
        assert [a["status"] for a in done["agents"]] == ["healthy", "healthy"]
        cat = open_catalog(outpost_home)
        try:
            assert [_active(cat, n) for n in ("edge-a", "edge-b")] == [2, 2]
            # Abort: a rollout back to 1 started (not run), aborted: nothing was switched.
            second = start_rollout(cat, "pumps@1", waves=[1.0], soak_s=0)
        finally:
            cat.close()
        aborted = run_cli(outpost_home, "rollout", "abort", str(second.id), "--json",
                          check=True).json()
        assert aborted["status"] == "aborted"
        cat = open_catalog(outpost_home)
        try:
            assert get_rollout(cat, second.id).status == "aborted"
            assert [_active(cat, n) for n in ("edge-a", "edge-b")] == [2, 2]
        finally:
            cat.close()
    finally:
        for agent in started:
            agent.stop()


def _enrolled(catalog: Catalog, tmp_path: Path, names: str) -> list[Agent]:
    """One agent per letter, started in parallel, enrolled as edge-X, serving pumps@1."""
    started = start_agents(tmp_path, signing_key(catalog), list(names))
    for name, agent in zip(names, started, strict=True):
        add_agent(catalog, f"edge-{name}", agent.url, agent.token)
        deploy(catalog, "pumps@1", f"edge-{name}")
    return started


def test_wrong_answers_labelled_during_the_soak_fail_it_on_accuracy(
        catalog: Catalog, tmp_path: Path) -> None:
    (agent,) = _enrolled(catalog, tmp_path, "a")
    rows = mini_records(mini_frame(rows=20, seed=5))
    try:
        r = start_rollout(catalog, "pumps@2", waves=[1.0], soak_s=60,
                          accuracy=AccuracyThresholds(min_labels=20, max_drop=0.05))
        with ThreadPoolExecutor(1) as pool, httpx.Client(
                base_url=agent.url, verify=verify_for(agent.url), timeout=10,
                headers={"Authorization": f"Bearer {agent.token}"}) as http:
            running = pool.submit(resume_rollout, catalog, r.id)
            while not running.done():  # answers of pumps@2, every one labelled wrong
                doc = http.post("/v1/models/pumps/predict", json={"records": rows}).json()
                if doc["version"] == 2:
                    wrong = [{"id": i, "label": str(1 - int(p))}
                             for i, p in zip(doc["ids"], doc["predictions"], strict=True)]
                    assert http.post("/v1/models/pumps/feedback",
                                     json={"feedback": wrong}).status_code == 200
        halted = running.result()
        (state,) = halted.agents
        assert halted.status == "halted" and state.status == "failed", halted
        assert state.error is not None and state.error.startswith(
            "accuracy: pumps@2 on edge-a: live accuracy 0.000 on "), state.error
        assert "rolled back" in state.error
        assert _active(catalog, "edge-a") == 1
    finally:
        agent.stop()


def test_agent_offline_mid_wave_fails_after_the_timeout_and_the_wave_rolls_back(
        catalog: Catalog, tmp_path: Path) -> None:
    started = _enrolled(catalog, tmp_path, "ab")
    try:
        r = start_rollout(catalog, "pumps@2", waves=[1.0], soak_s=60, offline_s=1.5)
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(resume_rollout, catalog, r.id)
            wait_until(lambda: [a.status for a in get_rollout(catalog, r.id).agents]
                       == ["switched", "switched"], 60, "both agents switched")
            started[1].stop()  # edge-b goes away in the middle of the soak
            halted = running.result()
        states = {a.agent: (a.status, a.error) for a in halted.agents}
        assert halted.status == "halted" and states["edge-a"] == ("rolled_back", None), halted
        status, error = states["edge-b"]
        assert status == "failed" and str(error).startswith("offline for more than 1.5 s")
        assert _active(catalog, "edge-a") == 1
    finally:
        for agent in started:
            agent.stop()
