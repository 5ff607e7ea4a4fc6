"""Registry end to end: train → register → export → the file in a fresh onnxruntime session."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from core.errors import NotFound
from core.registry import (
    alias_at,
    alias_during,
    alias_history,
    export_model,
    import_onnx,
    list_models,
    list_versions,
    model_card,
    register_model,
    resolve_model,
    set_alias,
)
from core.training import holdout_frame, load_model, train
from tests.support.training import opened, run_onnx_file, seed_datasets


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("registry") / "home"
    seed_datasets(path)
    return path


@pytest.mark.parametrize("dataset,target,algo,params", [
    ("sensor", "failure", "gradient_boosting", {"max_iter": 30}),
    ("sensor", "failure", "random_forest", {"n_estimators": 20}),
    ("breast_cancer", "target", "mlp", {"hidden_layer_sizes": "16", "max_iter": 300}),
    ("diabetes", "target", "linear_regression", {}),
    ("diabetes", "target", "gradient_boosting", {"max_iter": 30}),
])
def test_exported_file_computes_what_the_pipeline_computes(
        home: Path, tmp_path: Path, dataset: str, target: str, algo: str,
        params: dict[str, object]) -> None:
    with opened(home) as catalog:
        run = train(catalog, dataset, target, algo=algo, params=params, seed=2)
        mv = register_model(catalog, run.id, f"{dataset}-{algo}")
        out = tmp_path / "model.onnx"
        export_model(catalog, mv.ref, out)
        X, _ = holdout_frame(catalog, run)
        pipeline = load_model(catalog, run)
    assert mv.parity["passed"] and not mv.flagged and mv.parity["rows"] == len(X)
    assert [s.name for s in mv.inputs] == run.features
    kinds = {s.name: (s.datatype, s.shape) for s in mv.inputs}
    for name, kind in run.feature_kinds.items():
        assert kinds[name] == ("BYTES" if kind == "string" else "FP32", [-1, 1])
    names, outputs = run_onnx_file(out, X)
    if run.task == "classification":
        assert names == ["label", "probabilities"] and mv.labels == [0, 1]
        assert np.array_equal(outputs[0].ravel(), pipeline.predict(X))
        assert np.abs(outputs[1] - pipeline.predict_proba(X)).max() < 1e-5
    else:
        assert names == ["variable"]
        expected = pipeline.predict(X)
        assert np.abs(outputs[0].ravel() - expected).max() <= 1e-5 * np.abs(expected).max()


def test_sensor_model_takes_strings_and_nulls(home: Path, tmp_path: Path) -> None:
    with opened(home) as catalog:
        run = train(catalog, "sensor", "failure", algo="logistic_regression", seed=0)
        mv = register_model(catalog, run.id, "sensor-nulls")
        export_model(catalog, mv.ref, tmp_path / "m.onnx")
        X, _ = holdout_frame(catalog, run)
        pipeline = load_model(catalog, run)
    assert {"site", "device_model", "firmware"} <= {s.name for s in mv.inputs
                                                     if s.datatype == "BYTES"}
    rows = X.iloc[:3].copy()
    rows["firmware"] = ["", "never-seen-version", ""]   # missing and unknown categories
    rows["humidity_pct"] = np.nan
    _, outputs = run_onnx_file(tmp_path / "m.onnx", rows)
    assert np.abs(outputs[1] - pipeline.predict_proba(rows)).max() < 1e-5


def test_versions_count_up_and_resolve(home: Path) -> None:
    with opened(home) as catalog:
        run = train(catalog, "diabetes", "target", algo="ridge")
        first = register_model(catalog, run.id, "versions")
        second = register_model(catalog, run.id, "versions")
        assert (first.version, second.version) == (1, 2)
        assert resolve_model(catalog, "versions").version == 2
        assert resolve_model(catalog, "versions@latest").version == 2
        assert resolve_model(catalog, "versions@1").onnx_object == first.onnx_object
        assert [v.version for v in list_versions(catalog, "versions")] == [1, 2]
        assert {"model": "versions", "latest": 2, "versions": 2} .items() <= next(
            m for m in list_models(catalog) if m["model"] == "versions").items()
        with pytest.raises(NotFound, match="no version 3"):
            resolve_model(catalog, "versions@3")
        with pytest.raises(NotFound, match="no alias 'staging'"):
            resolve_model(catalog, "versions@staging")


def test_alias_history_answers_what_was_in_production_when(home: Path) -> None:
    with opened(home) as catalog:
        run = train(catalog, "diabetes", "target", algo="linear_regression")
        for _ in range(2):
            register_model(catalog, run.id, "aliased")
        set_alias(catalog, "aliased@1", "production")
        between = datetime.now(UTC)
        set_alias(catalog, "aliased@2", "production")
        set_alias(catalog, "aliased@1", "staging")
        history = alias_history(catalog, "aliased", "production")
        assert [(e.version, e.released_at is None) for e in history] == [(1, False), (2, True)]
        assert history[0].released_at == history[1].assigned_at
        assert alias_at(catalog, "aliased", "production", between) == 1
        assert alias_at(catalog, "aliased", "production", datetime.now(UTC)) == 2
        assert alias_at(catalog, "aliased", "production", between - timedelta(days=1)) is None
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        assert alias_during(catalog, "aliased", "production", today,
                            today + timedelta(days=1)) == [1, 2]
        assert resolve_model(catalog, "aliased@production").version == 2
        assert resolve_model(catalog, "aliased@1").aliases == ["staging"]


def _external_model(path: Path) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["sum"])], "external",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 3]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("sum", TensorProto.FLOAT, [None, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="hand-made")
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_import_reads_the_signature_and_exports_the_same_bytes(home: Path,
                                                               tmp_path: Path) -> None:
    source = _external_model(tmp_path / "external.onnx")
    with opened(home) as catalog:
        mv = import_onnx(catalog, source, "external")
        export_model(catalog, "external@1", tmp_path / "out.onnx")
        card = model_card(catalog, "external")
    assert mv.run is None and mv.source["kind"] == "import" and not mv.flagged
    assert [(s.name, s.datatype, s.shape) for s in mv.inputs] == [
        ("a", "FP32", [-1, 3]), ("b", "FP32", [-1, 3])]
    assert [s.name for s in mv.outputs] == ["sum"] and mv.opset == {"ai.onnx": 17}
    assert (tmp_path / "out.onnx").read_bytes() == source.read_bytes()
    assert "Not checked" in card and "| input | a | FP32 | [-1, 3] |" in card


def test_model_card_says_where_the_model_came_from(home: Path) -> None:
    with opened(home) as catalog:
        run = train(catalog, "breast_cancer", "target", algo="random_forest",
                    params={"n_estimators": 10, "max_depth": 4}, seed=9)
        mv = register_model(catalog, run.id, "carded")
        set_alias(catalog, mv.ref, "production")
        card = model_card(catalog, "carded@production")
    assert card.startswith("# Model card: carded version 1")
    assert f"breast_cancer@{run.dataset_version[:12]}" in card and run.id in card
    assert "| n_estimators | 10 |" in card and "| accuracy |" in card
    assert "**passed** on 114 rows, float32 inputs." in card
    assert "| input | mean_radius | FP32 | [-1, 1] |" in card
    assert "| output | probabilities | FP32 | [-1, 2] |" in card
    assert "`production`" in card
