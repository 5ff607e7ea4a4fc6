"""The train / runs / model commands end to end, as a script would drive them.

`train` and `model register` run as real processes; the other commands run through
the same entry point in this process, which keeps the suite fast.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from core.training import get_run, holdout_frame, load_model
from tests.conftest import run_cli
from tests.support.training import opened, run_main, run_onnx_file, seed_datasets


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home"
    seed_datasets(path)
    monkeypatch.setenv("OUTPOST_HOME", str(path))
    return path


def cli_json(home: Path, *args: str) -> dict:  # type: ignore[type-arg]
    return run_cli(home, *args, "--json", check=True).json()  # type: ignore[no-any-return]


def main_json(*args: str) -> dict:  # type: ignore[type-arg]
    code, out, err = run_main(*args, "--json")
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def test_train_register_alias_export_reproduce(home: Path, tmp_path: Path) -> None:
    trained = cli_json(home, "train", "breast_cancer", "--target", "target",
                       "--algo", "logistic_regression", "--param", "C=0.5", "--seed", "4")
    run_id = trained["run"]
    assert trained["metrics"]["accuracy"] > 0.9 and trained["params"]["C"] == 0.5
    registered = cli_json(home, "model", "register", run_id, "--name", "bc")
    assert (registered["model"], registered["version"]) == ("bc", 1)
    assert registered["parity"]["passed"] is True and registered["parity"]["label_agreement"] == 1
    assert main_json("model", "alias", "bc@1", "production")["version"] == 1
    out = tmp_path / "bc.onnx"
    exported = main_json("model", "export", "bc@production", "--out", str(out))
    assert exported["bytes"] == out.stat().st_size > 0

    with opened(home) as catalog:
        run = get_run(catalog, run_id)
        X, _ = holdout_frame(catalog, run)
        pipeline = load_model(catalog, run)
    names, outputs = run_onnx_file(out, X)
    assert names == ["label", "probabilities"]
    assert np.array_equal(outputs[0].ravel(), pipeline.predict(X))
    assert np.abs(outputs[1] - pipeline.predict_proba(X)).max() < 1e-5

    versions = main_json("model", "versions", "bc")
    assert versions["versions"][0]["aliases"] == ["production"]
    assert [e["version"] for e in versions["alias_history"]] == [1]
    today = datetime.now(UTC).date().isoformat()
    assert main_json("model", "alias-history", "bc", "--at", today)["versions"] == [1]
    assert main_json("model", "alias-history", "bc", "--at", "2001-01-01")["versions"] == []
    assert main_json("model", "list")["models"][0]["aliases"] == {"production": 1}

    reproduced = main_json("runs", "reproduce", run_id)
    assert reproduced["identical"] is True and reproduced["max_prediction_diff"] == 0.0

    code, card, _ = run_main("model", "card", "bc@production")
    assert code == 0 and card.startswith("# Model card: bc version 1")
    shown = main_json("runs", "show", run_id[:6])
    assert shown["id"] == run_id and shown["seed"] == 4 and shown["algo"] == "logistic_regression"


@pytest.mark.xdist_group("search-uses-all-cores")
def test_search_from_the_command_line(home: Path) -> None:
    result = main_json("train", "diabetes", "--target", "target", "--algo", "ridge",
                      "--search", "grid", "--trials", "3", "--metric", "r2", "--cv", "3")
    assert len(result["trials"]) == 3 and result["metric"] == "r2"
    best = max(result["trials"], key=lambda t: t["metrics"]["r2"])
    assert result["best"] == best["run"] and result["params"] == best["params"]
    listed = main_json("runs", "list")["runs"]
    assert [r["id"] for r in listed] == [result["run"]]
    assert len(main_json("runs", "list", "--all")["runs"]) == 4
    compared = main_json("runs", "compare", result["run"], best["run"])
    assert compared["runs"] == [result["run"], best["run"]]
    assert set(compared["metrics"]) >= {"rmse", "r2"} and compared["params_differing"] == []
