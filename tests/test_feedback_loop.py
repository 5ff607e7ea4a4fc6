"""The closed loop against real processes: 1,000 predictions through an agent, labels for
600 of them from a CSV (some wrong, some a year later), live accuracy equal to the one
computed directly, and captured rows as a dataset version matching the agent's answers."""
from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from core.datasets import resolve_version
from core.datasets.versions import version_path
from core.fleet.agents import add_agent
from core.fleet.capture import capture_policy
from core.fleet.dispatch import deploy, set_capture
from core.keys import signing_key
from core.telemetry.pull import pull_telemetry
from tests.conftest import run_cli
from tests.support.agents import verify_for
from tests.support.fleet import agents, mini_frame, mini_records, open_catalog, train_mini

pytestmark = pytest.mark.xdist_group("fleet")
YEAR_S = 365 * 86_400


def _write(path: Path, rows: list[tuple[str, ...]], header: tuple[str, ...]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _direct(answers: dict[str, str], labels: dict[str, str]) -> tuple[int, int]:
    joined = [(answers[i], lab) for i, lab in labels.items() if i in answers]
    return len(joined), sum(p == lab for p, lab in joined)


def test_thousand_predictions_labels_accuracy_and_captured_dataset(
        outpost_home: Path, tmp_path: Path) -> None:
    catalog = open_catalog(outpost_home)
    train_mini(catalog)
    frame = pd.concat([mini_frame(rows=400, seed=s) for s in (1, 2, 3)]).iloc[:1000]
    records = mini_records(frame)
    with agents(tmp_path, signing_key(catalog), 1) as (a,):
        add_agent(catalog, "edge", a.url, a.token)
        deploy(catalog, "pumps@1", "edge")
        set_capture(catalog, "edge", "pumps", capture_policy(share=0.1))
        answers: dict[str, str] = {}
        sent: dict[str, dict[str, Any]] = {}
        with httpx.Client(base_url=a.url, verify=verify_for(a.url)) as http:
            for start in range(0, 1000, 50):
                batch = records[start:start + 50]
                doc = http.post("/v1/models/pumps/predict", json={"records": batch}).json()
                answers.update(zip(doc["ids"], map(str, doc["predictions"]), strict=True))
                sent.update(zip(doc["ids"], batch, strict=True))
        assert len(answers) == 1000
        deadline = time.monotonic() + 30
        while catalog.cursor().execute(
                "SELECT coalesce(sum(len(ids)), 0) FROM telemetry_prediction").fetchone()[0] < 1000:
            assert time.monotonic() < deadline, "predictions did not reach the catalog"
            pull_telemetry(catalog, "edge")
            time.sleep(0.1)
    truth = dict(zip(answers, frame["fail"].astype(str), strict=True))
    ids = list(answers)
    labels = {i: truth[i] for i in ids[:600]}
    for i in ids[:600:7]:  # labels that disagree with the model's answer
        labels[i] = "1" if answers[i] == "0" else "0"
    now = time.time()
    rows = [(i, "1" if labels[i] == "0" else "0", f"{now:.3f}") for i in ids[:10]]  # overridden
    rows += [(i, labels[i], f"{now + (YEAR_S if n % 5 == 0 else 0):.3f}")
             for n, i in enumerate(ids[:600])]
    rows += [(f"unknown:1:{n}", "1", f"{now:.3f}") for n in range(5)]
    first = _write(tmp_path / "labels.csv", rows, ("id", "label", "ts"))
    catalog.close()

    done = run_cli(outpost_home, "feedback", "import", str(first), "--model", "pumps", "--json",
                   check=True).json()
    assert (done["labels"], done["new"], done["duplicates"], done["orphans"]) == (605, 605, 10, 5)
    again = run_cli(outpost_home, "feedback", "import", str(first), "--model", "pumps",
                    "--json", check=True).json()
    assert (again["new"], again["replaced"], again["unchanged"]) == (0, 0, 605)

    report = run_cli(outpost_home, "accuracy", "pumps", "--json", check=True).json()
    (edge,) = report["agents"]
    labelled, correct = _direct(answers, labels)
    assert (edge["agent"], edge["version"], edge["labelled"], edge["correct"]) == (
        "edge", 1, labelled, correct)
    assert edge["accuracy"] == pytest.approx(correct / labelled)
    assert edge["unlabelled"] == 400 and report["orphans"] == 5
    assert sum(sum(r.values()) for r in edge["confusion"].values()) == labelled
    assert edge["holdout"] is not None

    flipped = ids[100:120]
    for i in flipped:
        labels[i] = "1" if labels[i] == "0" else "0"
    later = _write(tmp_path / "later.csv", [(i, labels[i]) for i in flipped], ("id", "label"))
    changed = run_cli(outpost_home, "feedback", "import", str(later), "--model", "pumps",
                      "--json", check=True).json()
    assert changed["replaced"] == 20
    report = run_cli(outpost_home, "accuracy", "pumps", "--agent", "edge", "--json",
                     check=True).json()
    assert report["agents"][0]["correct"] == _direct(answers, labels)[1]

    bad = _write(tmp_path / "bad.csv", [(ids[0], "maybe")], ("id", "label"))
    refused = run_cli(outpost_home, "feedback", "import", str(bad), "--model", "pumps")
    assert refused.returncode == 1 and refused.stdout == ""
    assert len(refused.stderr.strip().splitlines()) == 1 and "not a class" in refused.stderr

    catalog = open_catalog(outpost_home)
    captured = resolve_version(catalog, "pumps_captured")
    table = pd.read_parquet(version_path(catalog, captured))
    catalog.close()
    assert 40 <= len(table) <= 180  # 10% of 1,000, give or take chance
    for row in table.itertuples(index=False):
        pid = row.prediction_id
        assert str(row.prediction) == answers[pid]
        want = sent[pid]
        assert row.site == want["site"] and row.load == want["load"]
        assert (row.temp is None or math.isnan(row.temp)) if want["temp"] is None \
            else row.temp == pytest.approx(want["temp"], rel=1e-6)
        assert (row.capture_agent, row.capture_model_version, row.capture_reason) == (
            "edge", 1, "random")
        assert (str(int(row.fail)) if not pd.isna(row.fail) else None) == labels.get(pid)
