"""Prediction ids, feedback and sample capture on a real agent process."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.contract.protocol import generate_signing_key, write_bundle
from tests.support.agents import (
    AgentProcess,
    json_request,
    running_agent,
    tabular_model,
    tabular_rows,
)

ROWS = [{"temp": 21.0 + i % 7, "pressure": 990.0 + i % 50, "site": ["north", "south"][i % 2]}
        for i in range(40)]


def _bundle(tmp_path: Path, key: Ed25519PrivateKey, capture: dict[str, Any] | None,
            version: int = 1) -> Path:
    tm = tabular_model("classification")
    return write_bundle(tmp_path / f"pumps-{version}.outpost", model="pumps", version=version,
                        key=key, model_bytes=tm.onnx_bytes, baseline=tm.baseline,
                        canary=tm.canary, task="classification", labels=tm.labels,
                        capture=capture)


def _install(agent: AgentProcess, bundle: Path) -> None:
    status, doc = json_request(f"{agent.url}/v1/bundles", headers=agent.headers(),
                               data=bundle.read_bytes(), method="POST")
    assert status == 200, doc


def _records(agent: AgentProcess, kind: str, want: int, deadline_s: float = 20.0
             ) -> list[dict[str, Any]]:
    deadline = time.monotonic() + deadline_s
    while True:
        _, doc = json_request(f"{agent.url}/v1/telemetry?after=0&limit=10000",
                              headers=agent.headers())
        found = [r for r in doc["records"] if r["kind"] == kind]
        if sum(len(r.get("ids", [r.get("id")])) for r in found) >= want:
            return found
        assert time.monotonic() < deadline, f"only {len(found)} {kind} records"
        time.sleep(0.05)


def test_ids_are_unique_across_restarts_and_predictions_are_recorded(tmp_path: Path) -> None:
    key = generate_signing_key()
    bundle = _bundle(tmp_path, key, None)
    seen: list[str] = []
    answers: dict[str, Any] = {}
    for boot in range(2):
        with running_agent(tmp_path / "agent", trust_key=key) as agent:
            if boot == 0:
                _install(agent, bundle)
            status, doc = json_request(f"{agent.url}/v1/models/pumps/predict",
                                       {"records": ROWS[:5]}, method="POST")
            assert status == 200 and len(doc["ids"]) == 5
            answers.update(zip(doc["ids"], doc["predictions"], strict=True))
            seen += doc["ids"]
            oip = {"id": "client-7", "inputs": [
                {"name": "temp", "datatype": "FP32", "shape": [1, 1], "data": [20.0]},
                {"name": "pressure", "datatype": "FP32", "shape": [1, 1], "data": [1000.0]},
                {"name": "site", "datatype": "BYTES", "shape": [1, 1], "data": ["east"]}]}
            status, doc = json_request(f"{agent.url}/v2/models/pumps/infer", oip, method="POST")
            assert status == 200 and doc["id"] == "client-7"
            (pid,) = doc["parameters"]["prediction_ids"]
            seen.append(pid)
            records = _records(agent, "prediction", 6 * (boot + 1))
    assert len(set(seen)) == 12
    assert {s.rsplit(":", 2)[1] for s in seen} == {"1", "2"}  # the boot counter moved
    recorded = {i: p for r in records for i, p in zip(r["ids"], r["predicted"], strict=True)}
    assert set(recorded) == set(seen)
    assert all(recorded[i] == answers[i] for i in answers)


def test_feedback_takes_either_token_and_refuses_wrong_types(tmp_path: Path) -> None:
    key = generate_signing_key()
    (tmp_path / "fb.token").write_text("feedback-only-token")
    with running_agent(tmp_path / "agent", trust_key=key, extra_args=(
            "--feedback-token-file", str(tmp_path / "fb.token"))) as agent:
        _install(agent, _bundle(tmp_path, key, None))
        _, doc = json_request(f"{agent.url}/v1/models/pumps/predict", {"records": ROWS[:3]},
                              method="POST")
        tablet = {"Authorization": "Bearer feedback-only-token"}
        url = f"{agent.url}/v1/models/pumps/feedback"
        body = {"feedback": [{"id": doc["ids"][0], "label": "alarm"},
                             {"id": doc["ids"][1], "label": "normal"}]}
        assert json_request(url, body, tablet, "POST") == (200, {"model": "pumps",
                                                                 "accepted": 2})
        assert json_request(url, body, agent.headers(), "POST")[0] == 200
        status, err = json_request(url, {"feedback": [{"id": "x", "label": 1.5}]}, tablet,
                                   "POST")
        assert status == 400 and "label must be a class" in err["error"]
        assert json_request(url, body, {"Authorization": "Bearer nope"}, "POST")[0] == 401
        # the feedback token can do nothing else
        assert json_request(f"{agent.url}/v1/status", headers=tablet)[0] == 401
        fb = _records(agent, "feedback", 4)
    assert [r["labels"] for r in fb] == [["alarm", "normal"]] * 2
    assert fb[0]["ids"] == doc["ids"][:2]


def _policy_in_status(agent: AgentProcess) -> tuple[Any, Any]:
    _, doc = json_request(f"{agent.url}/v1/status", headers=agent.headers())
    (entry,) = [m for m in doc["models"] if m["name"] == "pumps"]
    return entry["capture"], entry["capture_from"]


def test_capture_policy_from_bundle_and_from_the_desktop(tmp_path: Path) -> None:
    key = generate_signing_key()
    with running_agent(tmp_path / "agent", trust_key=key) as agent:
        _install(agent, _bundle(tmp_path, key, {"confidence_below": 1.0, "per_class_cap": 3}))
        policy, source = _policy_in_status(agent)
        assert source == "bundle" and policy["confidence_below"] == 1.0
        assert policy["per_class_cap"] == 3 and policy["share"] == 0.0
        _, doc = json_request(f"{agent.url}/v1/models/pumps/predict", {"records": ROWS},
                              method="POST")
        expected = sum(min(3, doc["predictions"].count(c)) for c in set(doc["predictions"]))
        _records(agent, "prediction", len(ROWS))  # written in the same flush as captures
        caps = _records(agent, "capture", expected)
        assert len(caps) == expected
        by_id = dict(zip(doc["ids"], zip(ROWS, doc["predictions"], strict=True), strict=True))
        for c in caps:
            row, predicted = by_id[c["id"]]
            assert c["reason"] == "confidence" and c["prediction"] == predicted
            assert json.loads(c["inputs"]) == row
        status, _ = json_request(f"{agent.url}/v1/models/pumps/capture",
                                 {"policy": {"share": 0.0}}, agent.headers(), "PUT")
        assert status == 200
        status, err = json_request(f"{agent.url}/v1/models/pumps/capture",
                                   {"policy": {"share": 2}}, agent.headers(), "PUT")
        assert status == 400 and "share" in err["error"]
        policy, source = _policy_in_status(agent)  # the refused one changed nothing
        assert source == "agent" and policy["share"] == 0.0
        assert policy["confidence_below"] is None
        assert json_request(f"{agent.url}/v1/models/pumps/capture", {"policy": None},
                            agent.headers(), "PUT")[0] == 200
        assert _policy_in_status(agent)[1] == "bundle"
        assert json_request(f"{agent.url}/v1/models/pumps/capture",
                            {"policy": {"share": 0.0}}, agent.headers(), "PUT")[0] == 200
    assert json.loads((tmp_path / "agent" / "capture.json").read_text())["pumps"]["share"] == 0


def test_full_capture_buffer_evicts_oldest_counts_and_never_blocks(tmp_path: Path) -> None:
    key = generate_signing_key()
    with running_agent(tmp_path / "agent", trust_key=key,
                       extra_args=("--capture-max-mb", "0.004")) as agent:
        _install(agent, _bundle(tmp_path, key, {"share": 1.0}))
        ids = []
        for row in ROWS * 3:
            status, doc = json_request(f"{agent.url}/v1/models/pumps/predict",
                                       {"records": [row]}, method="POST")
            assert status == 200
            ids += doc["ids"]
        _records(agent, "prediction", len(ids))  # every answer is still recorded
        deadline = time.monotonic() + 20
        while True:
            _, status_doc = json_request(f"{agent.url}/v1/status", headers=agent.headers())
            telemetry = status_doc["telemetry"]
            if telemetry["capture_evicted"] > 0:
                break
            assert time.monotonic() < deadline, telemetry
            time.sleep(0.05)
        _, doc = json_request(f"{agent.url}/v1/telemetry?after=0&limit=10000",
                              headers=agent.headers())
    kept = [r["id"] for r in doc["records"] if r["kind"] == "capture"]
    assert telemetry["capture_bytes"] <= 0.004 * 1024 * 1024
    assert kept == ids[-len(kept):]  # the newest stay, the oldest went first
    assert len(kept) + telemetry["capture_evicted"] == len(ids)


def _drift_status(agent: AgentProcess) -> dict[str, Any]:
    _, doc = json_request(f"{agent.url}/v1/status", headers=agent.headers())
    return dict(doc["telemetry"])


def _predict(agent: AgentProcess, rows: list[dict[str, Any]]) -> list[str]:
    status, doc = json_request(f"{agent.url}/v1/models/pumps/predict", {"records": rows},
                               method="POST")
    assert status == 200, doc
    return list(doc["ids"])


def _answered(agent: AgentProcess, ids: list[str]) -> None:
    deadline = time.monotonic() + 20
    while not set(ids) <= {i for r in _records(agent, "prediction", 0) for i in r["ids"]}:
        assert time.monotonic() < deadline, "predictions never recorded"
        time.sleep(0.05)


def _until_drift(agent: AgentProcess, on: bool, rows: list[dict[str, Any]]) -> None:
    """Send `rows` again and again (closing 1 s windows) until capture-all is `on`."""
    deadline = time.monotonic() + 30
    while (_drift_status(agent)["capture_drift"] == ["pumps"]) != on:
        assert time.monotonic() < deadline, f"drift capture never went {on}"
        _predict(agent, rows)
        time.sleep(0.2)  # pacing the load; the loop waits on the agent's status


def test_drifted_windows_switch_capture_of_every_row_on_and_back_off(tmp_path: Path) -> None:
    """The agent compares each closed histogram window with the bundle's baseline itself:
    shifted traffic turns capture-all on, traffic like the baseline turns it off."""
    key = generate_signing_key()
    normal, shifted = tabular_rows(300, seed=5), tabular_rows(300, seed=6, temp_shift=40.0)
    policy = {"while_drift": True, "drift_psi": 0.5, "drift_min_rows": 100}
    with running_agent(tmp_path / "agent", trust_key=key,
                       extra_args=("--window-s", "1")) as agent:
        _install(agent, _bundle(tmp_path, key, policy))
        _until_drift(agent, False, normal)  # baseline-like windows: nothing captured
        quiet = _predict(agent, normal[:20])
        _until_drift(agent, True, shifted)
        loud = _predict(agent, normal[:20])
        _until_drift(agent, False, normal)
        after = _predict(agent, normal[:20])
        _answered(agent, after)  # captures are written in the same flush as predictions
        caps = _records(agent, "capture", len(loud))
        telemetry = _drift_status(agent)
    by_id = {c["id"]: c["reason"] for c in caps}
    assert all(by_id.get(i) == "drift" for i in loud)
    assert not set(quiet + after) & set(by_id)
    assert telemetry["capture_drift"] == [] and telemetry["capture_drift_switches"] == 2


def test_a_policy_for_a_model_the_agent_does_not_serve_is_refused(tmp_path: Path) -> None:
    """PUT .../capture for a model not installed: 404 with one line, nothing stored. A
    new version of a served model keeps the policy; a model removed from the device (its
    folder deleted while the agent was stopped) loses it at the next start."""
    key = generate_signing_key()
    held = tmp_path / "agent" / "capture.json"
    with running_agent(tmp_path / "agent", trust_key=key) as agent:
        for body in ({"policy": {"share": 0.5}}, {"policy": None}):
            status, err = json_request(f"{agent.url}/v1/models/ghost/capture", body,
                                       agent.headers(), "PUT")
            assert (status, err) == (404, {"error": "model 'ghost' is not served by this "
                                           "agent: its capture policy was not set (deploy "
                                           "it first)"})
        # a peer without the management token learns nothing, not even that it is unserved
        for headers in ({}, {"Authorization": "Bearer nope"}):
            assert json_request(f"{agent.url}/v1/models/ghost/capture", {"policy": None},
                                headers, "PUT")[0] == 401
        assert not held.exists()
        _install(agent, _bundle(tmp_path, key, None))
        assert json_request(f"{agent.url}/v1/models/pumps/capture",
                            {"policy": {"share": 0.25}}, agent.headers(), "PUT")[0] == 200
        _install(agent, _bundle(tmp_path, key, {"share": 1.0}, version=2))
        policy, source = _policy_in_status(agent)  # replaced: the desktop's policy stays
        assert (source, policy["share"]) == ("agent", 0.25)
    assert json.loads(held.read_text())["pumps"]["share"] == 0.25
    shutil.rmtree(tmp_path / "agent" / "models" / "pumps")  # removed by hand, agent stopped
    with running_agent(tmp_path / "agent", trust_key=key) as agent:
        _, doc = json_request(f"{agent.url}/v1/status", headers=agent.headers())
        assert doc["models"] == [] and doc["capture_refused"] == {}
        assert json.loads(held.read_text()) == {}
        assert json_request(f"{agent.url}/v1/models/pumps/capture",
                            {"policy": {"share": 0.25}}, agent.headers(), "PUT")[0] == 404
    assert json.loads(held.read_text()) == {}
