"""Issue 17's "done when", end to end with real agents and the `outpost` CLI for every user
step: a drifted stream replayed into an agent fires the retraining policy on the next
telemetry pull, exactly one retrain runs and stages a challenger, a person approves it,
it runs in shadow on an agent (agreement reported), and it is rolled out in waves to
three agents; the fourth refuses it, which halts the rollout, and the switched agents
are back on the champion."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from core.bundles import build_bundle
from core.fleet.agents import add_agent
from core.fleet.dispatch import agent_status, deploy
from core.fleet.ledger import list_deployments
from core.keys import signing_key
from tests.conftest import CliResult, run_cli
from tests.support.agents import verify_for
from tests.support.fleet import (
    Agent,
    assert_fourth_halts_the_rollout,
    mini_frame,
    mini_records,
    open_catalog,
    start_agents,
    train_mini,
    wait_for_outbox,
)
from tests.support.hub import wait_until

pytestmark = pytest.mark.xdist_group("fleet")


def drifted_frame(rows: int = 400) -> pd.DataFrame:
    """The sensors read 12 degrees higher than in training and failures follow the new
    readings: the champion's threshold is off, so it is both drifted and wrong."""
    frame = mini_frame(rows, seed=7)
    frame["temp"] = frame["temp"] + 12
    frame["fail"] = ((frame["temp"].fillna(32) > 34) | (frame["site"] == "east")).astype(int)
    return frame


def predict(agent: Agent, rows: list[dict[str, Any]]) -> dict[str, Any]:
    with httpx.Client(base_url=agent.url, verify=verify_for(agent.url), timeout=30) as http:
        answer = http.post("/v1/models/pumps/predict", json={"records": rows})
    assert answer.status_code == 200, answer.text
    doc: dict[str, Any] = answer.json()
    return doc


def shadow_requests(agent: Agent) -> int:
    with httpx.Client(base_url=agent.url, verify=verify_for(agent.url), timeout=10,
                      headers={"Authorization": f"Bearer {agent.token}"}) as http:
        doc = http.get("/v1/telemetry", params={"after": 0, "limit": 100_000}).json()
    return sum(r["count"] for r in doc["records"] if r["kind"] == "shadow")


def outpost(home: Path, *args: str) -> Any:
    result: CliResult = run_cli(home, *args, "--json", check=True)
    return result.json()


def test_drift_retrain_approve_shadow_and_a_rollout_that_halts_and_rolls_back(
        outpost_home: Path, tmp_path: Path) -> None:
    catalog = open_catalog(outpost_home)
    train_mini(catalog, "pumps")  # pumps@1: the champion, in production
    champion_mb = build_bundle(catalog, "pumps@1").path.stat().st_size / 1024 / 1024
    # edge-d takes bundles up to 3x the champion's: the challenger, a forest, is larger.
    # (A canary mismatch needs a device whose runtime computes differently; agents with
    # one onnxruntime on one machine agree, so the fourth fails its install on a device
    # limit instead, as in test_rollout.)
    fleet = start_agents(tmp_path, signing_key(catalog), list("abcd"),
                         {"d": ("--max-bundle-mb", f"{3 * champion_mb:.6f}")})
    try:
        for name, agent in zip("abcd", fleet, strict=True):
            add_agent(catalog, f"edge-{name}", agent.url, agent.token)
            deploy(catalog, "pumps@1", f"edge-{name}")
        catalog.close()
        edge_a, _, edge_c, _ = fleet
        home = outpost_home

        # The policy, then the field: drifted readings into edge-a, their labels imported.
        outpost(home, "policy", "set", "pumps", "--psi", "0.25", "--algo", "random_forest")
        drifted = drifted_frame()
        assert predict(edge_a, mini_records(drifted))["version"] == 1
        wait_for_outbox(edge_a.url, edge_a.token, requests=1)
        drifted.to_csv(tmp_path / "field.csv", index=False)
        assert outpost(home, "dataset", "import", str(tmp_path / "field.csv"), "--name",
                       "mini")["new"]

        # The pull finds the drift: exactly one retrain runs and stages pumps@2.
        pulled = outpost(home, "telemetry", "pull")
        (decision,) = pulled["policy"]["decisions"]
        assert decision["action"] == "triggered" and decision["fired"] == ["psi"], decision
        (retrain,) = pulled["policy"]["retrains"]
        assert (retrain["status"], retrain["version"]) == ("staged", 2), retrain
        again = outpost(home, "telemetry", "pull")["policy"]
        assert [d["action"] for d in again["decisions"]] == ["quiet"] and not again["retrains"]

        assert outpost(home, "approve", "pumps@2") == {"model": "pumps", "version": 2,
                                                       "alias": "production"}

        # Shadow: edge-c, serving the champion, gets pumps@1 again with pumps@2 beside it
        # and runs the challenger on every request.
        shadow = outpost(home, "deploy", "pumps@1", "--to", "edge-c", "--challenger",
                         "pumps@2", "--shadow-share", "1")
        assert shadow["status"] == "active"
        sent = mini_records(drifted.iloc[:40])
        for start in range(0, 40, 10):
            assert predict(edge_c, sent[start:start + 10])["version"] == 1
        wait_until(lambda: shadow_requests(edge_c) == 4, 30, "shadow records for 4 requests")
        outpost(home, "telemetry", "pull", "--agent", "edge-c")
        (report,) = outpost(home, "shadow", "report", "pumps")["agents"]
        assert (report["agent"], report["version"], report["challenger"]) == ("edge-c", 1, 2)
        assert (report["requests"], report["rows"]) == (4, 40)
        assert report["agreement"] == pytest.approx(report["agreed"] / 40)
        assert 0 < report["agreed"] < 40  # the two disagree on drifted rows, not on all

        # Waves: edge-a, then edge-b, then edge-c and edge-d; edge-d refuses the bundle.
        rolled = run_cli(home, "deploy", "pumps@production", "--to-fleet", "--waves",
                         "25%,50%,100%", "--soak", "1", "--json")
        assert_fourth_halts_the_rollout(rolled)

        catalog = open_catalog(home)
        try:
            for name in "abc":  # each was switched to pumps@2 ...
                deployed = [d for d in list_deployments(catalog, agent=f"edge-{name}")
                            if d.version == 2 and d.action == "deploy"]
                assert [d.status for d in deployed] == ["active"], name
            for name in "abcd":  # ... and every agent serves the champion again
                active = [m.get("active") for m in agent_status(catalog, f"edge-{name}").models]
                assert active == [1], name
            retrains = catalog.cursor().execute(
                "SELECT count(*) FROM policy_retrain WHERE model = 'pumps'").fetchone()
            assert retrains == (1,)
        finally:
            catalog.close()
    finally:
        for agent in fleet:
            agent.stop()
