"""Parity: every algorithm's ONNX export agrees with its pipeline; a mismatch is flagged."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from core.errors import InvalidInput
from core.registry import set_alias
from core.registry.onnx_export import export_pipeline
from core.registry.parity import check_parity
from core.registry.register import _export_checked, export_with_parity, store_version
from core.registry.signature import graph_signature
from core.training import ALGORITHMS
from core.training.features import Feature
from core.training.trainer import fit_frame
from tests.support.training import opened


def mixed_frame(rows: int = 1200, seed: int = 0) -> pd.DataFrame:
    """Numbers with nulls, strings with nulls, a 3-class string label and a numeric target."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "heat": rng.normal(20, 5, rows), "load": rng.exponential(2.0, rows),
        "zone": rng.choice(["north", "south", "east"], rows).astype(object),
        "kind": rng.choice(["a", "b"], rows).astype(object),
    })
    frame.loc[rng.random(rows) < 0.1, "heat"] = np.nan
    frame.loc[rng.random(rows) < 0.1, "zone"] = None
    score = frame["heat"].fillna(20) / 5 + frame["load"] + (frame["zone"] == "north") * 2
    frame["level"] = np.where(score < 5, "low", np.where(score < 7, "mid", "high"))
    frame["value"] = score * 10 + rng.normal(0, 1, rows)
    return frame


SMALL = {"random_forest": {"n_estimators": 15}, "gradient_boosting": {"max_iter": 25},
         "mlp": {"hidden_layer_sizes": "8", "max_iter": 60}}
CASES = [(name, task) for name, algo in ALGORITHMS.items() for task in algo.tasks]


@pytest.mark.parametrize("algo,task", CASES, ids=[f"{a}-{t}" for a, t in CASES])
def test_every_algorithm_passes_parity_at_float32(algo: str, task: str) -> None:
    frame = mixed_frame()
    target, other = ("level", "value") if task == "classification" else ("value", "level")
    _, _, fitted = fit_frame(frame.drop(columns=[other]), target, algo=algo,
                             params=SMALL.get(algo, {}), seed=1)
    X, _ = fitted.holdout
    exported = export_with_parity(fitted.model, fitted.inputs.features, task, X)
    parity = exported.parity
    assert parity["passed"], parity
    assert parity["precision"] == "float32" and parity["rows"] == len(X) == 240
    if task == "classification":
        assert parity["label_agreement"] == 1.0 and parity["max_abs_diff"] < 1e-5
        assert fitted.inputs.labels == ["high", "low", "mid"]
    else:
        assert parity["max_rel_diff"] < 1e-6


Pair = tuple[Pipeline, Pipeline, pd.DataFrame, list[Feature]]


@pytest.fixture(scope="module")
def two_pipelines() -> Pair:
    """Two forests on the same data with different seeds: their outputs differ."""
    frame = mixed_frame().drop(columns=["value"])
    _, _, a = fit_frame(frame, "level", algo="random_forest", params={"n_estimators": 5}, seed=1)
    _, _, b = fit_frame(frame, "level", algo="random_forest", params={"n_estimators": 5}, seed=2)
    X, _ = a.holdout
    return a.model, b.model, X, list(a.inputs.features)


def test_a_graph_that_computes_something_else_fails_parity(two_pipelines: Pair) -> None:
    model_a, model_b, X, features = two_pipelines
    exported = export_pipeline(model_a, features, "classification")
    data = exported.SerializeToString()
    inputs, _ = graph_signature(exported)
    assert check_parity(data, inputs, model_a, X, "classification")["passed"]
    report = check_parity(data, inputs, model_b, X, "classification")
    assert not report["passed"] and report["max_abs_diff"] > 1e-4
    assert report["rows_over_tolerance"] > 0


def test_a_flagged_version_takes_production_only_with_force(tmp_path: Path,
                                                            two_pipelines: Pair) -> None:
    model_a, model_b, X, features = two_pipelines
    exported = export_pipeline(model_a, features, "classification")
    inputs, _ = graph_signature(exported)
    parity = check_parity(exported.SerializeToString(), inputs, model_b, X, "classification")
    with opened(tmp_path / "home") as catalog:
        mv = store_version(catalog, "mismatch", exported.SerializeToString(), run=None,
                           source={"kind": "test"}, task="classification", labels=None,
                           parity=parity, flagged=not parity["passed"], model=exported)
        assert mv.flagged
        with pytest.raises(InvalidInput, match="failed its parity check .* only with --force"):
            set_alias(catalog, mv.ref, "production")
        set_alias(catalog, mv.ref, "staging")  # other aliases are not gated
        forced = set_alias(catalog, mv.ref, "production", force=True)
        rows = catalog.con.execute(
            "SELECT alias, forced FROM model_alias ORDER BY alias").fetchall()
    assert "production" in forced.aliases
    assert rows == [("production", True), ("staging", False)]


def test_float64_export_is_not_loadable_by_this_onnxruntime() -> None:
    """Why flagged tree models stay float32 here (docs/training.md): no double Imputer kernel."""
    frame = mixed_frame().drop(columns=["value"])
    _, _, fitted = fit_frame(frame, "level", algo="gradient_boosting",
                             params={"max_iter": 5}, seed=1)
    X, _ = fitted.holdout
    with pytest.raises(InvalidInput, match="onnxruntime .* cannot load the exported model"):
        _export_checked(fitted.model, fitted.inputs.features, "classification", X, "float64")


def test_hist_gradient_boosting_missing_value_directions_are_ints() -> None:
    """Our converter fix hands onnx integers where skl2onnx passes Python bools: some
    protobuf runtimes refuse bools in `AttributeProto.ints` (core/registry/converters.py).
    The exported tree ensemble must carry the attribute as INTS, one per node."""
    import numpy as np
    import onnx
    from skl2onnx import to_onnx
    from sklearn.ensemble import HistGradientBoostingClassifier

    from core.registry.converters import install_converter_fixes

    install_converter_fixes()
    X = np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32)
    model = HistGradientBoostingClassifier(max_iter=3).fit(X, X[:, 0] > 0)
    graph = to_onnx(model, X[:1]).graph
    attrs = [a for node in graph.node for a in node.attribute
             if a.name == "nodes_missing_value_tracks_true"]
    assert attrs, "no tree ensemble node carries nodes_missing_value_tracks_true"
    for attr in attrs:
        assert attr.type == onnx.AttributeProto.INTS
        assert set(attr.ints) <= {0, 1}
        nodes = next(a for n in graph.node for a in n.attribute if a.name == "nodes_nodeids")
        assert len(attr.ints) == len(nodes.ints)
