"""Prediction ids, labels and captured rows carried the other two ways: an export file
(`outpost-agent export-telemetry` -> `outpost telemetry import`) and the hub."""
from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd
import pytest

from core.accuracy import accuracy_report
from core.datasets import resolve_version, version_path
from core.fleet.agents import add_agent
from core.fleet.capture import capture_policy
from core.fleet.dispatch import deploy, set_capture
from core.hub import HubOptions
from core.keys import signing_key
from tests.conftest import run_cli
from tests.support.agents import verify_for
from tests.support.fleet import agents, open_catalog, train_mini
from tests.support.hub import enrol_and_start, register_adder, start_test_hub, wait_until

RECORDS = [{"temp": 18.0 + i, "site": "north", "load": 1.0} for i in range(20)]


@pytest.mark.xdist_group("fleet")
def test_export_file_carries_predictions_feedback_and_captures(outpost_home: Path,
                                                               tmp_path: Path) -> None:
    catalog = open_catalog(outpost_home)
    train_mini(catalog)
    with agents(tmp_path, signing_key(catalog), 1) as (a,):
        add_agent(catalog, "site", a.url, a.token)
        deploy(catalog, "pumps@1", "site")
        set_capture(catalog, "site", "pumps", capture_policy(share=1.0))
        doc = httpx.post(f"{a.url}/v1/models/pumps/predict", json={"records": RECORDS},
                         verify=verify_for(a.url)).json()
        feedback = [{"id": i, "label": 1} for i in doc["ids"][:8]]
        answer = httpx.post(f"{a.url}/v1/models/pumps/feedback", json={"feedback": feedback},
                            headers={"Authorization": f"Bearer {a.token}"},
                            verify=verify_for(a.url))
        assert answer.status_code == 200
        wait_until(lambda: _outbox_kinds(a.dir) >= {"prediction", "feedback", "capture"}, 20,
                   "records in the outbox")
    catalog.close()
    out = tmp_path / "site.ndjson"
    subprocess.run([sys.executable, "-m", "edge_agent", "export-telemetry", "--dir",
                    str(a.dir), "--out", str(out)], check=True, capture_output=True)
    imported = run_cli(outpost_home, "telemetry", "import", str(out), "--json",
                       check=True).json()
    (captured,) = imported["captured"]
    assert (captured["dataset"], captured["rows"]) == ("pumps_captured", 20)
    catalog = open_catalog(outpost_home)
    report = accuracy_report(catalog, "pumps")
    (entry,) = report.agents
    assert (entry.predictions, entry.labelled) == (20, 8)
    right = sum(p == 1 for p in doc["predictions"][:8])
    assert entry.correct == right
    catalog.close()
    # training data + the 8 labelled captures, in one command
    run = run_cli(outpost_home, "train", "mini", "--target", "fail", "--algo",
                  "logistic_regression", "--add-captured", "--json", check=True).json()
    assert run["dataset"] == "mini_plus_captured"
    catalog = open_catalog(outpost_home)
    added = resolve_version(catalog, "mini_plus_captured")
    assert added.rows == 400 + 8 and added.parent is not None and added.parent[0] == "mini"
    frame = pd.read_parquet(version_path(catalog, added))
    assert list(frame.columns) == ["temp", "site", "load", "fail"]
    tail = frame.iloc[400:]
    assert sorted(tail["temp"].tolist()) == [r["temp"] for r in RECORDS[:8]]
    assert (tail["fail"] == 1).all()
    catalog.close()


def _outbox_kinds(folder: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(folder / "telemetry.sqlite")) as db:
        return {str(k) for (k,) in db.execute("SELECT DISTINCT kind FROM records")}


@pytest.mark.xdist_group("hub")
def test_hub_carries_predictions_and_feedback(outpost_home: Path, tmp_path: Path) -> None:
    catalog = open_catalog(outpost_home)
    hub = start_test_hub(catalog, "127.0.0.1", 0, HubOptions(contact_flush_s=0.2))
    (tmp_path / "fb.token").write_text("tablet-token-1")
    agent = enrol_and_start(catalog, tmp_path, "far", hub.url,
                            extra=("--feedback-token-file", str(tmp_path / "fb.token")))
    try:
        ref = register_adder(catalog, tmp_path, 1.0)
        deploy(catalog, ref, "far")
        wait_until(lambda: httpx.get(f"{agent.url}/v2/models/adder/ready",
                                             verify=verify_for(agent.url)).status_code == 200,
                   30, "adder deployed through the hub")
        ids = []
        for x in (1.0, 2.0, 3.0):
            body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1],
                                "data": [x]}]}
            answer = httpx.post(f"{agent.url}/v2/models/adder/infer", json=body,
                                verify=verify_for(agent.url))
            ids += answer.json()["parameters"]["prediction_ids"]
        fb = {"feedback": [{"id": i, "label": y} for i, y in zip(ids, (2.0, 3.5, 4.0),
                                                                 strict=True)]}
        assert httpx.post(f"{agent.url}/v1/models/adder/feedback", json=fb,
                          headers={"Authorization": "Bearer tablet-token-1"},
                          verify=verify_for(agent.url)).status_code == 200
        report = wait_until(lambda: (r := accuracy_report(catalog, "adder")).agents
                            and r.agents[0].labelled == 3 and r, 30, "labels via the hub")
        (entry,) = report.agents
        assert entry.mae == pytest.approx(0.5 / 3) and entry.correct is None
    finally:
        agent.stop()
        hub.stop()
        catalog.close()
