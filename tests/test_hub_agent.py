"""Real agents in hub mode on loopback: enrol, deploy and roll back through desired state,
telemetry pushed exactly once, key rotation by poll, restarts, and a device switching
between push and hub mode without losing a record."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.catalog import Catalog
from core.drift import drift_report
from core.errors import NotFound
from core.fleet.agents import add_agent
from core.fleet.capture import capture_policy
from core.fleet.dispatch import agent_status, deploy, rollback, set_capture
from core.fleet.ledger import list_deployments
from core.fleet.records import list_agents
from core.fleet.rotation import rotate_keys
from core.hub import HubHandle, HubOptions, enroll_agent, write_enrolment
from core.keys import signing_key
from core.telemetry.pull import pull_telemetry
from tests.support.agents import verify_for
from tests.support.fleet import (
    TELEMETRY_TABLES,
    agent_event_seqs,
    start_agent,
    stored_seqs,
    train_mini,
)
from tests.support.hub import (
    HubAgent,
    enrol_and_start,
    register_adder,
    start_hub_agent,
    start_test_hub,
    wait_until,
)

pytestmark = pytest.mark.xdist_group("hub")


@pytest.fixture
def hub(catalog: Catalog) -> Iterator[HubHandle]:
    handle = start_test_hub(catalog, "127.0.0.1", 0, HubOptions(contact_flush_s=0.2))
    yield handle
    handle.stop()


def _finished(catalog: Catalog, deployment: int) -> tuple[str, int, str | None]:
    def done() -> tuple[str, int, str | None] | None:
        row = next(d for d in list_deployments(catalog) if d.id == deployment)
        return None if row.status == "pending" else (row.status, row.version, row.error)
    result: tuple[str, int, str | None] = wait_until(done, 30, f"deployment {deployment}")
    return result


def _answer(agent: HubAgent, x: float) -> float:
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [x]}]}
    doc = httpx.post(f"{agent.url}/v2/models/adder/infer", json=body,
                     verify=verify_for(agent.url)).json()
    return float(doc["outputs"][0]["data"][0])


def _seqs(catalog: Catalog, agent: str) -> list[int]:
    tables = tuple(t for t in TELEMETRY_TABLES if t != "telemetry_evicted")
    return stored_seqs(catalog, agent, tables)


def test_deploy_rollback_rotation_and_telemetry_by_poll(catalog: Catalog, hub: HubHandle,
                                                        tmp_path: Path) -> None:
    refs = [register_adder(catalog, tmp_path, bias) for bias in (1.0, 2.0, 3.0)]
    agent = enrol_and_start(catalog, tmp_path, "edge1", hub.url)
    try:
        wait_until(lambda: agent_status(catalog, "edge1").online, 20, "first poll")
        assert _finished(catalog, deploy(catalog, refs[0], "edge1").deployment) == (
            "active", 1, None)
        assert _answer(agent, 1.0) == 2.0
        assert _finished(catalog, deploy(catalog, refs[2], "edge1").deployment)[0] == "active"
        assert _answer(agent, 1.0) == 4.0
        downgrade = _finished(catalog, deploy(catalog, refs[1], "edge1").deployment)
        assert downgrade[0] == "failed" and "older than version 3" in str(downgrade[2])
        assert _answer(agent, 1.0) == 4.0  # still serving what it served
        back = rollback(catalog, "adder", "edge1")
        assert back.status == "pending"
        assert _finished(catalog, back.deployment) == ("active", 1, None)
        assert _answer(agent, 1.0) == 2.0
        # a new signing key reaches the agent with its next poll; the next bundle installs
        _, outcomes = rotate_keys(catalog)
        assert [(o.agent, o.ok) for o in outcomes] == [("edge1", True)]
        ref4 = register_adder(catalog, tmp_path, 4.0)
        assert _finished(catalog, deploy(catalog, ref4, "edge1").deployment)[0] == "active"
        assert _answer(agent, 1.0) == 5.0
        agent.infer(25)  # five answers above, 30 requests in all
        wait_until(lambda: len(agent.outbox()) == 0 and catalog.cursor().execute(
            "SELECT count(*) FROM telemetry_request WHERE agent = 'edge1'").fetchall()[0][0]
            == 30, 20, "telemetry pushed and acked")
        seqs = _seqs(catalog, "edge1")
        assert len(seqs) == len(set(seqs))
        # what the agent serves is what it reported on its latest poll
        status = wait_until(lambda: (s := agent_status(catalog, "edge1")).models[0]["active"]
                            == 4 and s, 10, "a poll reporting version 4")
        assert (status.mode, status.online, status.telemetry_rows) == ("hub", True, 30)
        assert [(m["name"], m["active"]) for m in status.models] == [("adder", 4)]
    finally:
        agent.stop()
    # restarted with the saved enrolment: nothing is reinstalled or reported twice
    seen = len(agent.log_text())
    again = start_hub_agent(tmp_path / "edge1", "edge1", hub_url=hub.url)
    try:
        assert _answer(again, 1.0) == 5.0
        wait_until(lambda: "calls" in again.log_text()[seen:], 10, "hub mode on restart")
        wait_until(lambda: agent_status(catalog, "edge1").runtime["uptime_s"] < 5, 10,
                   "polling again")
        assert "installed" not in again.log_text()[seen:]
        assert [d.status for d in list_deployments(catalog, agent="edge1")].count(
            "pending") == 0
    finally:
        again.stop()


def test_a_hub_agent_serving_the_champion_takes_its_challenger_and_drops_it(
        catalog: Catalog, hub: HubHandle, tmp_path: Path) -> None:
    one, two = (register_adder(catalog, tmp_path, bias) for bias in (1.0, 2.0))
    agent = enrol_and_start(catalog, tmp_path, "edge1", hub.url)
    shadowed = agent.dir / "models" / "adder" / "1" / "challenger.onnx"
    try:
        assert _finished(catalog, deploy(catalog, one, "edge1").deployment)[0] == "active"
        with_two = deploy(catalog, one, "edge1", challenger=two, shadow_share=1.0)
        assert _finished(catalog, with_two.deployment) == ("active", 1, None)
        assert shadowed.exists() and _answer(agent, 1.0) == 2.0
        assert _finished(catalog, deploy(catalog, one, "edge1").deployment)[0] == "active"
        assert not shadowed.exists() and _answer(agent, 1.0) == 2.0
    finally:
        agent.stop()


def test_device_switches_modes_without_losing_telemetry(catalog: Catalog, hub: HubHandle,
                                                        tmp_path: Path) -> None:
    train_mini(catalog)
    folder = tmp_path / "pump7"
    push = start_agent(folder, signing_key(catalog))
    sent = 0

    def traffic(url: str, n: int) -> int:
        rows = [{"temp": 20.0 + i % 7, "site": "north", "load": 1.0} for i in range(3)]
        with httpx.Client(base_url=url, verify=verify_for(url)) as http:
            for _ in range(n):
                answer = http.post("/v1/models/pumps/predict", json={"records": rows})
                assert answer.status_code == 200, answer.text
        return n

    try:
        add_agent(catalog, "pump7", push.url, push.token)
        assert deploy(catalog, "pumps@production", "pump7").status == "active"
        sent += traffic(push.url, 30)
        _pull_until(catalog, 30)
        sent += traffic(push.url, 20)  # recorded on the device, not pulled yet
    finally:
        push.stop()
    pinned = next(a for a in list_agents(catalog) if a.name == "pump7").public_key
    enrolment = write_enrolment(enroll_agent(catalog, "pump7", hub.url), tmp_path / "p7.enrol")
    agent = start_hub_agent(folder, "pump7", enrol=enrolment,
                            extra=("--token-file", str(tmp_path / "pump7.token")))
    try:
        sent += traffic(agent.url, 15)
        wait_until(lambda: agent_status(catalog, "pump7").telemetry_rows == sent, 30,
                   "telemetry pushed through the hub")
        assert next(a for a in list_agents(catalog) if a.name == "pump7").public_key == pinned
        assert agent_status(catalog, "pump7").mode == "hub"
        # and back to push: the hub refuses it from then on, the pull takes over
        add_agent(catalog, "pump7", agent.url, push.token, replace=True)
        wait_until(lambda: "push mode now" in agent.log_text(), 10, "hub refusal logged")
        sent += traffic(agent.url, 5)
        _pull_until(catalog, sent)
    finally:
        agent.stop()
    seqs = _seqs(catalog, "pump7")
    others = _evicted(catalog, "pump7")
    assert len(seqs) == len(set(seqs)) and min({*seqs, *others}) == 1
    assert set(seqs) == set(range(1, seqs[-1] + 1)) - others
    report = drift_report(catalog, "pumps")
    assert {r.agent for r in report.by_agent} == {"pump7"}
    assert {h.agent for h in report.health} == {"pump7"}


def _pull_until(catalog: Catalog, rows: int) -> None:
    """Pull until the catalog holds `rows` requests of pump7 (the agent writes every 0.25 s)."""
    def pulled() -> bool:
        pull_telemetry(catalog, "pump7")
        return agent_status(catalog, "pump7").telemetry_rows == rows
    wait_until(pulled, 20, f"{rows} requests pulled")


def _evicted(catalog: Catalog, agent: str) -> set[int]:
    """Seqs of records that are neither requests nor histograms: eviction notes, and the
    agent's own audit events (install, activate), which go to the audit trail."""
    evicted = stored_seqs(catalog, agent, ("telemetry_evicted",))
    return {*evicted, *agent_event_seqs(catalog, agent)}


def test_capture_policy_reaches_a_hub_agent_in_its_signed_poll_answer(
        catalog: Catalog, hub: HubHandle, tmp_path: Path) -> None:
    ref = register_adder(catalog, tmp_path)
    agent = enrol_and_start(catalog, tmp_path, "edge1", hub.url)
    policy_file = agent.dir / "capture.json"

    def held() -> dict[str, Any]:
        return json.loads(policy_file.read_text()) if policy_file.exists() else {}

    def captured() -> int:
        return int(catalog.cursor().execute(
            "SELECT count(*) FROM telemetry_capture WHERE agent = 'edge1'").fetchall()[0][0])

    def reported() -> tuple[Any, Any] | None:
        """What its last poll said about adder's policy (None: not serving it yet)."""
        found = [m for m in agent_status(catalog, "edge1").models if m["name"] == "adder"]
        return next(((m.get("capture_from"), (m.get("capture") or {}).get("share"))
                     for m in found), None)

    try:
        assert _finished(catalog, deploy(catalog, ref, "edge1").deployment)[0] == "active"
        answer = set_capture(catalog, "edge1", "adder", capture_policy(share=1.0))
        assert answer["status"] == "pending"
        wait_until(lambda: held().get("adder", {}).get("share") == 1.0, 20, "policy applied")
        # its next poll reports it: what the Fleet view shows
        wait_until(lambda: reported() == ("agent", 1.0), 20, "policy reported")
        agent.infer(5)
        wait_until(lambda: captured() == 5, 20, "captured rows pushed to the hub")
        reasons = catalog.cursor().execute(
            "SELECT DISTINCT reason FROM telemetry_capture WHERE agent = 'edge1'").fetchall()
        assert reasons == [("random",)]
        set_capture(catalog, "edge1", "adder", None)  # back to the bundle's: none
        wait_until(lambda: "adder" not in held(), 20, "policy cleared")
        wait_until(lambda: reported() == (None, None), 20, "clearing reported")
        agent.infer(5)
        wait_until(lambda: len(agent.outbox()) == 0 and catalog.cursor().execute(
            "SELECT count(*) FROM telemetry_request WHERE agent = 'edge1'").fetchall()[0][0]
            == 10, 20, "telemetry pushed")
        assert captured() == 5
    finally:
        agent.stop()


def test_hub_push_brings_the_histograms_of_all_traffic_served_before_it(
        catalog: Catalog, hub: HubHandle, tmp_path: Path) -> None:
    """A 10-minute window never closes by itself here: only the push's cut can bring the
    counts, and they must cover every row served before the push, each once."""
    train_mini(catalog)
    agent = enrol_and_start(catalog, tmp_path, "edge", hub.url, extra=("--window-s", "600"))
    try:
        wait_until(lambda: agent_status(catalog, "edge").online, 20, "first poll")
        assert _finished(catalog, deploy(catalog, "pumps@production", "edge").deployment)[0] \
            == "active"
        shifted = [{"temp": 45.0 + i % 7, "site": "east", "load": 4.0} for i in range(600)]

        def serve(rows: list[dict[str, object]]) -> None:
            with httpx.Client(base_url=agent.url, verify=verify_for(agent.url)) as http:
                for start in range(0, len(rows), 100):
                    answer = http.post("/v1/models/pumps/predict",
                                       json={"records": rows[start:start + 100]})
                    assert answer.status_code == 200, answer.text

        def covered(rows: int) -> Any:
            try:
                report = drift_report(catalog, "pumps")
            except NotFound:  # no histogram yet
                return False
            return report.covers is not None and report.covers.rows == rows and report

        serve(shifted[:534])
        first = wait_until(lambda: covered(534), 30, "histograms of 534 rows pushed")
        temp = {f.feature: f for f in first.features}["temp"]
        assert temp.rows == 534 and temp.status == "alert"
        assert first.prediction is not None and first.prediction.rows == 534
        assert first.covers.start <= first.covers.end <= time.time()
        serve(shifted[534:])  # the same open window, cut again at the next push
        second = wait_until(lambda: covered(600), 30, "histograms of 600 rows pushed")
        assert {f.feature: f.rows for f in second.features}["temp"] == 600
        wait_until(lambda: not agent.outbox(), 20, "outbox acked")
        assert drift_report(catalog, "pumps").covers == second.covers  # nothing twice
        seqs = _seqs(catalog, "edge")
        assert len(seqs) == len(set(seqs))
    finally:
        agent.stop()
