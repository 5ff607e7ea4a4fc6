"""CLI twins of what the GUI shows: a dataset's lineage, a run's residuals, the opset
compatibility check before a deploy — real catalog, real CLI processes, a real agent."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.datasets import derive_dataset
from core.fleet.agents import add_agent
from core.hub import enroll_agent
from core.keys import signing_key
from core.training import holdout_frame, load_model, train
from tests.conftest import run_cli
from tests.support.fleet import agents, open_catalog, train_mini
from tests.support.training import opened, seed_datasets


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home"
    seed_datasets(path)
    monkeypatch.setenv("OUTPOST_HOME", str(path))
    return path


def test_dataset_lineage_walks_every_parent(home: Path) -> None:
    with opened(home) as catalog:
        small = derive_dataset(catalog, "small", "diabetes",
                               "SELECT * FROM data WHERE bmi > 0 LIMIT 60")
        tiny = derive_dataset(catalog, "tiny", "small@" + small.version,
                              "SELECT * FROM data LIMIT 7")
    doc = run_cli(home, "dataset", "lineage", "tiny", "--json", check=True).json()
    chain = doc["lineage"]
    assert [v["dataset"] for v in chain] == ["tiny", "small", "diabetes"]
    assert chain[0]["version"] == tiny.version and chain[0]["rows"] == 7
    assert chain[0]["parent"] == f"small@{small.version}"
    assert chain[1]["parent"].startswith("diabetes@") and chain[2]["parent"] is None
    text = run_cli(home, "dataset", "lineage", "tiny", check=True).stdout
    assert "LIMIT 7" in text and "diabetes@" in text
    missing = run_cli(home, "dataset", "lineage", "nope", "--json")
    assert missing.returncode != 0 and missing.stdout == ""
    assert len(missing.stderr.strip().splitlines()) == 1 and "nope" in missing.stderr


def test_runs_residuals_are_actual_minus_predicted(home: Path) -> None:
    with opened(home) as catalog:
        run = train(catalog, "diabetes", "target", algo="ridge", seed=3)
        classifier = train(catalog, "breast_cancer", "target", algo="logistic_regression")
        X, y = holdout_frame(catalog, run)
        predicted = np.asarray(load_model(catalog, run).predict(X), dtype=float)
    doc = run_cli(home, "runs", "residuals", run.id, "--json", check=True).json()
    assert doc["run"] == run.id and doc["holdout_rows"] == doc["points"] == len(X)
    np.testing.assert_allclose(doc["predicted"], predicted, rtol=1e-9)
    np.testing.assert_allclose(doc["residual"], np.asarray(y, dtype=float) - predicted,
                               rtol=1e-9, atol=1e-9)
    assert doc["mean_abs"] == pytest.approx(float(np.mean(np.abs(doc["residual"]))))
    sampled = run_cli(home, "runs", "residuals", run.id, "--max-points", "20", "--json",
                      check=True).json()
    assert sampled["points"] == len(sampled["residual"]) == 20
    assert sampled["holdout_rows"] == len(X)
    again = run_cli(home, "runs", "residuals", run.id, "--max-points", "20", "--json",
                    check=True).json()
    assert again["residual"] == sampled["residual"]  # the sample is seeded by the run
    refused = run_cli(home, "runs", "residuals", classifier.id, "--json")
    assert refused.returncode != 0 and "residuals are for regression" in refused.stderr


def test_deploy_check_asks_the_agent_and_changes_nothing(outpost_home: Path,
                                                         tmp_path: Path) -> None:
    catalog = open_catalog(outpost_home)
    train_mini(catalog)
    enroll_agent(catalog, "far", "http://127.0.0.1:9")  # hub mode, never polled
    with agents(tmp_path, signing_key(catalog), 1) as (a,):
        add_agent(catalog, "edge", a.url, a.token)
        catalog.close()
        ok = run_cli(outpost_home, "deploy", "pumps@1", "--to", "edge", "--check", "--json",
                     check=True).json()
        assert ok["ok"] is True and ok["agent"] == "edge"
        assert ok["text"].startswith("Compatible: pumps@1 needs opset ai.onnx")
        unknown = run_cli(outpost_home, "deploy", "pumps@1", "--to", "far", "--check", "--json")
        assert unknown.returncode == 1 and unknown.stdout == ""
        assert "far has not reported its runtime yet" in unknown.stderr
        status = run_cli(outpost_home, "agent", "status", "edge", "--json", check=True).json()
    with opened(outpost_home) as catalog:
        deployments = catalog.con.execute("SELECT count(*) FROM deployment").fetchall()
    assert deployments == [(0,)]
    assert "models" in str(status) and "pumps" not in str(status)  # nothing was pushed
