"""Staged rollout to hub agents: a real hub and real agents in hub mode on loopback. A
deploy is recorded for the agent's next poll and the rollout waits for the outcome it
reports; the soak judges the telemetry the agent pushed; an agent gone silent counts as
failed after the offline timeout, and the way back is recorded for when it returns."""
from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from core.catalog import Catalog
from core.fleet.dispatch import agent_status, deploy
from core.fleet.ledger import list_deployments
from core.fleet.rollout import Rollout, resume_rollout, start_rollout
from core.hub import HubHandle, HubOptions
from tests.support.agents import verify_for
from tests.support.hub import (
    HubAgent,
    enrol_and_start,
    hub_running,
    register_adder,
    start_hub_agent,
    wait_until,
)

pytestmark = pytest.mark.xdist_group("hub")


@pytest.fixture
def hub(catalog: Catalog) -> Iterator[HubHandle]:
    with hub_running(catalog, HubOptions(contact_flush_s=0.2)) as handle:
        yield handle


def _answer(agent: HubAgent) -> float | None:
    """y for x = 0 (adder@N adds N), or None while the agent does not answer."""
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [0.0]}]}
    try:
        answer = httpx.post(f"{agent.url}/v2/models/adder/infer", json=body, timeout=5,
                            verify=verify_for(agent.url))
    except httpx.HTTPError:
        return None
    return float(answer.json()["outputs"][0]["data"][0]) if answer.status_code == 200 else None


def _states(r: Rollout) -> dict[str, tuple[str, str | None]]:
    return {a.agent: (a.status, a.error) for a in r.agents}


def _roll(catalog: Catalog, ref: str, **kwargs: float) -> Rollout:
    r = start_rollout(catalog, ref, waves=[0.5, 1.0], **kwargs)  # type: ignore[arg-type]
    return resume_rollout(catalog, r.id)


def test_hub_agents_roll_out_by_poll_fail_on_pushed_p99_and_on_silence(
        catalog: Catalog, hub: HubHandle, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    refs = [register_adder(catalog, tmp_path, bias) for bias in (1.0, 2.0, 3.0, 4.0)]
    with ThreadPoolExecutor(2) as pool:
        h1, h2 = pool.map(lambda n: enrol_and_start(catalog, tmp_path, n, hub.url),
                          ("h1", "h2"))
    try:
        wait_until(lambda: all(agent_status(catalog, n).online for n in ("h1", "h2")), 60,
                   "first polls")
        for name in ("h1", "h2"):
            deploy(catalog, refs[0], name)
        try:
            wait_until(lambda: _answer(h1) == 1.0 and _answer(h2) == 1.0, 60,
                       "adder@1 on both")
        except AssertionError as exc:  # say where it stuck
            raise AssertionError(f"{exc}: {list_deployments(catalog)}\n{h1.log_text()[-3000:]}"
                                 f"\n{h2.log_text()[-3000:]}") from None

        done = _roll(catalog, refs[1], soak_s=1, offline_s=5)
        assert done.status == "done", done
        assert _states(done) == {"h1": ("healthy", None), "h2": ("healthy", None)}
        assert [a.previous for a in done.agents] == [1, 1]
        assert (_answer(h1), _answer(h2)) == (2.0, 2.0)

        # The soak reads what the hub agent pushed: with a p99 limit no request can meet,
        # traffic on adder@3 fails h1 (wave 1) and the rollout goes back without wave 2.
        monkeypatch.setenv("OUTPOST_P99_MS", "0.000001")
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(_roll, catalog, refs[2], soak_s=60, offline_s=5)
            while not running.done():  # traffic until the soak has judged it
                if _answer(h1) == 3.0:
                    h1.infer(5)
        monkeypatch.delenv("OUTPOST_P99_MS")
        halted = running.result()
        assert halted.status == "halted", halted
        status, error = _states(halted)["h1"]
        assert status == "failed" and "p99" in str(error) and "rolled back" in str(error)
        assert _states(halted)["h2"] == ("waiting", None)
        wait_until(lambda: _answer(h1) == 2.0, 30, "h1 back on adder@2")

        # h2 goes silent: h1 switches and soaks in wave 1; h2 never reports an outcome
        # for wave 2, fails after the offline timeout, and the rollout halts.
        h2.stop()
        halted = _roll(catalog, refs[3], soak_s=1, offline_s=4)  # h1 installs within it
        assert halted.status == "halted" and halted.wave == 1, halted
        states = _states(halted)
        assert states["h1"] == ("rolled_back", None)
        status, error = states["h2"]
        assert status == "failed" and "no outcome from hub agent h2" in str(error), error
        assert "rollback recorded, not confirmed" in str(error)
        assert _answer(h1) == 2.0
        # Back, h2 finds its previous version desired, not adder@4: it never installs it.
        h2 = start_hub_agent(tmp_path / "h2", "h2", hub_url=hub.url)
        wait_until(lambda: list_deployments(catalog, agent="h2")[0].status == "active", 30,
                   "h2's way back confirmed")
        assert _answer(h2) == 2.0
        v4 = [d for d in list_deployments(catalog, agent="h2") if d.version == 4]
        assert [(d.status, "superseded" in str(d.error)) for d in v4] == [("failed", True)]
    finally:
        h1.stop()
        h2.stop()
