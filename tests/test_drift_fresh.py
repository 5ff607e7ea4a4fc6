"""Drift is fresh at pull time: a pull closes the agent's open histogram window, so the
report covers all traffic served before it (exactly once), and names what it covers.
Real agent (60 s windows), real HTTP, real catalog, through the CLI."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from core.fleet.agents import add_agent
from core.keys import signing_key
from tests.conftest import run_cli
from tests.support.drift_reference import assert_same_as_unnested
from tests.support.fleet import open_catalog, start_agent, train_mini
from tests.support.onnx_models import vector_model

pytestmark = pytest.mark.xdist_group("fleet")


def pull_and_report(home: Path, model: str) -> dict[str, Any]:
    pulled = run_cli(home, "telemetry", "pull", "--json")
    assert pulled.returncode == 0, pulled.stderr
    report = run_cli(home, "drift", "report", model, "--json")
    assert report.returncode == 0, report.stderr
    doc: dict[str, Any] = report.json()
    return doc


def test_pull_right_after_traffic_sees_all_of_it_once(outpost_home: Path,
                                                      tmp_path: Path) -> None:
    catalog = open_catalog(outpost_home)
    train_mini(catalog)
    agent = start_agent(tmp_path / "edge", signing_key(catalog), window_s=60.0)
    try:
        add_agent(catalog, "edge", agent.url, agent.token)
        catalog.close()
        assert run_cli(outpost_home, "deploy", "pumps@1", "--to", "edge").returncode == 0
        shifted = [{"temp": 45.0 + i % 7, "site": "east", "load": 4.0} for i in range(534)]
        for start in range(0, len(shifted), 100):
            answer = httpx.post(f"{agent.url}/v1/models/pumps/predict", verify=agent.ssl,
                                json={"records": shifted[start:start + 100]})
            assert answer.status_code == 200, answer.text
        first = pull_and_report(outpost_home, "pumps")
        temp = {f["feature"]: f for f in first["features"]}["temp"]
        assert temp["rows"] == 534 and temp["status"] == "alert"
        assert first["covers"]["rows"] == 534
        assert first["covers"]["start"] <= first["covers"]["end"]
        assert first["prediction"]["rows"] == 534
        again = pull_and_report(outpost_home, "pumps")  # nothing new: nothing counted twice
        assert again["covers"]["rows"] == 534
        httpx.post(f"{agent.url}/v1/models/pumps/predict", verify=agent.ssl,
                   json={"records": shifted[:66]})
        third = pull_and_report(outpost_home, "pumps")  # the same 60 s window, cut again
        assert third["covers"]["rows"] == 600
        assert {f["feature"]: f["rows"] for f in third["features"]}["temp"] == 600
        human = run_cli(outpost_home, "drift", "report", "pumps").stdout
        assert "covers 600 rows" in human
        pulled = open_catalog(outpost_home)  # the faster drift query, on real device bins
        try:
            assert assert_same_as_unnested(pulled, "pumps", 1) >= 4
            assert assert_same_as_unnested(pulled, "pumps", 1, bucket_s=60) >= 4
        finally:
            pulled.close()
    finally:
        agent.stop()


def test_tensor_model_drift_is_prediction_only_with_a_reason(outpost_home: Path,
                                                             tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "s.npz", x=rng.normal(size=(200, 8)).astype(np.float32))
    model = vector_model(tmp_path / "vec.onnx")
    assert run_cli(outpost_home, "model", "import", str(model), "--name", "vec", "--sample",
                   str(tmp_path / "s.npz")).returncode == 0
    catalog = open_catalog(outpost_home)
    agent = start_agent(tmp_path / "edge", signing_key(catalog), window_s=60.0)
    try:
        add_agent(catalog, "edge", agent.url, agent.token)
        catalog.close()
        assert run_cli(outpost_home, "deploy", "vec@1", "--to", "edge").returncode == 0
        shifted = (rng.normal(size=(300, 8)) + 3).astype(np.float32)
        body = {"inputs": [{"name": "x", "shape": [300, 8], "datatype": "FP32",
                            "data": shifted.ravel().tolist()}]}
        answer = httpx.post(f"{agent.url}/v2/models/vec/infer", verify=agent.ssl, json=body)
        assert answer.status_code == 200, answer.text
        doc = pull_and_report(outpost_home, "vec")
        assert doc["features"] == []
        assert doc["prediction"]["rows"] == 300 and doc["prediction"]["status"] == "alert"
        (note,) = doc["notes"]
        assert "per-column drift skipped" in note and "x: fp32[N,8]" in note
        assert "per-column drift skipped" in run_cli(outpost_home, "drift", "report",
                                                     "vec").stdout
    finally:
        agent.stop()
