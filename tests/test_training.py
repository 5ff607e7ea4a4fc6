"""Training: parameter specs, feature preparation, split, metrics, runs and reproduction."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import InvalidInput
from core.training import ALGORITHMS, get_algorithm, get_run, holdout_frame, list_runs, train
from core.training.features import Feature, feature_kind, prepare_features
from core.training.inputs import infer_task
from core.training.metrics import classification_metrics, regression_metrics
from core.training.reproduce import reproduce_run
from core.training.runs import load_model
from core.training.split import split_indices
from core.training.trainer import fit_frame
from tests.support.training import opened, seed_datasets


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("training") / "home"
    seed_datasets(path)
    return path


# --- parameters -------------------------------------------------------------------------

def test_every_algorithm_builds_with_its_defaults_for_each_task() -> None:
    assert set(ALGORITHMS) == {"logistic_regression", "linear_regression", "ridge",
                               "random_forest", "gradient_boosting", "mlp"}
    for algorithm in ALGORITHMS.values():
        for spec in algorithm.params:
            assert spec.parse(spec.default) == spec.default, spec.name
        for task in algorithm.tasks:
            assert algorithm.build(task, algorithm.defaults(), seed=0) is not None


def test_parameters_are_parsed_by_type_and_range() -> None:
    forest = get_algorithm("random_forest")
    assert forest.resolve_params({"n_estimators": "7", "max_depth": "none"})["n_estimators"] == 7
    assert forest.resolve_params({"max_depth": "none"})["max_depth"] is None
    assert get_algorithm("mlp").resolve_params({"hidden_layer_sizes": "16,8"})[
        "hidden_layer_sizes"] == (16, 8)
    ridge = get_algorithm("ridge").resolve_params({"fit_intercept": "false"})
    assert ridge["fit_intercept"] is False
    assert get_algorithm("logistic_regression").resolve_params({"C": "0.5"})["C"] == 0.5


@pytest.mark.parametrize("algo,params,message", [
    ("random_forest", {"n_estimators": "1.5"}, "n_estimators must be an integer"),
    ("random_forest", {"n_estimators": "0"}, "n_estimators must be in [1, 2000]"),
    ("random_forest", {"n_estimators": True}, "n_estimators must be an integer"),
    ("logistic_regression", {"C": "abc"}, "C must be a number"),
    ("logistic_regression", {"C": "nan"}, "C must be a finite number"),
    ("random_forest", {"max_features": "half"}, "one of sqrt, log2, all"),
    ("mlp", {"hidden_layer_sizes": ""}, "hidden_layer_sizes"),
    ("random_forest", {"trees": "3"}, "unknown parameter 'trees' for random_forest; valid: "
                                      "n_estimators, max_depth"),
])
def test_bad_parameters_are_refused_in_one_line(algo: str, params: dict[str, object],
                                                message: str) -> None:
    with pytest.raises(InvalidInput, match=None) as caught:
        get_algorithm(algo).resolve_params(params)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unknown_algorithm_lists_the_valid_ones() -> None:
    with pytest.raises(InvalidInput) as caught:
        get_algorithm("xgboost")
    assert "logistic_regression, linear_regression, ridge, random_forest, gradient_boosting, mlp" \
        in str(caught.value)


# --- features, task, split, metrics -----------------------------------------------------

def test_features_are_prepared_as_the_graph_takes_them() -> None:
    frame = pd.DataFrame({
        "n": pd.array([1, None, 3], dtype="Int64"), "b": [True, False, True],
        "s": ["a", None, "c"], "t": pd.to_datetime(["2024-01-01"] * 3),
    })
    assert [feature_kind(frame[c]) for c in frame] == ["numeric", "numeric", "string", None]
    X = prepare_features(frame, [Feature("n", "numeric"), Feature("b", "numeric"),
                                 Feature("s", "string")])
    assert X["n"].dtype == np.float64 and np.isnan(X["n"][1])
    assert list(X["b"]) == [1.0, 0.0, 1.0]
    assert list(X["s"]) == ["a", "", "c"]


def test_task_is_inferred_from_the_target() -> None:
    assert infer_task(pd.Series([0, 1, 1, 0])) == "classification"
    assert infer_task(pd.Series(["x", "y"])) == "classification"
    assert infer_task(pd.Series(np.linspace(0, 1, 50))) == "regression"
    assert infer_task(pd.Series(np.arange(100))) == "regression"


def test_split_is_seeded_and_stratified() -> None:
    y = np.array([0] * 90 + [1] * 10)
    train_a, test_a = split_indices(y, "classification", 0.2, seed=5)
    train_b, test_b = split_indices(y, "classification", 0.2, seed=5)
    _, test_c = split_indices(y, "classification", 0.2, seed=6)
    assert np.array_equal(test_a, test_b) and np.array_equal(train_a, train_b)
    assert not np.array_equal(test_a, test_c)
    assert len(test_a) == 20 and int(y[test_a].sum()) == 2
    assert set(train_a) | set(test_a) == set(range(100))


def test_metrics_have_known_values() -> None:
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]])
    m = classification_metrics(y, proba.argmax(axis=1), proba, [0, 1])
    assert m["accuracy"] == 0.75 and m["confusion_matrix"] == [[1, 1], [0, 2]]
    assert m["roc_auc"] == 1.0  # every positive scores above every negative
    assert m["recall_macro"] == pytest.approx(0.75)
    r = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert r["mae"] == pytest.approx(2 / 3) and r["rmse"] == pytest.approx(np.sqrt(4 / 3))


def test_zero_rows_are_refused() -> None:
    with pytest.raises(InvalidInput, match="has no rows"):
        fit_frame(pd.DataFrame({"x": [], "y": []}), "y")


def test_mlp_that_does_not_converge_leaves_a_note_not_an_error() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=200), "y": rng.integers(0, 2, 200)})
    _, _, fitted = fit_frame(frame, "y", algo="mlp", params={"max_iter": 1,
                                                             "early_stopping": False})
    assert any("ConvergenceWarning" in note for note in fitted.inputs.notes)


# --- runs in the catalog ----------------------------------------------------------------

def test_train_records_a_complete_run(home: Path) -> None:
    with opened(home) as catalog:
        run = train(catalog, "breast_cancer", "target", algo="logistic_regression", seed=3)
        again = get_run(catalog, run.id[:6])
        runs = list_runs(catalog)
    assert again.to_dict() == run.to_dict()
    assert run.id in [r.id for r in runs]
    assert run.task == "classification" and run.labels == [0, 1]
    assert run.dataset == "breast_cancer" and len(run.dataset_version) == 64
    assert run.params == get_algorithm("logistic_regression").defaults()
    assert run.split == {"test_size": 0.2, "stratified": True, "train_rows": 455,
                         "holdout_rows": 114}
    assert run.metrics["accuracy"] > 0.9 and run.metrics["roc_auc"] > 0.95
    assert sum(sum(row) for row in run.metrics["confusion_matrix"]) == 114
    assert set(run.importance or {}) == set(run.features) and len(run.features) == 30
    assert {"scikit-learn", "numpy", "python"} <= set(run.packages)
    assert run.model_object is not None


def test_holdout_frame_is_the_runs_holdout(home: Path) -> None:
    with opened(home) as catalog:
        run = train(catalog, "diabetes", "target", algo="ridge", params={"alpha": "0.5"})
        X, y = holdout_frame(catalog, run)
        model = load_model(catalog, run)
    assert run.task == "regression" and len(X) == run.split["holdout_rows"] == 89
    rmse = float(np.sqrt(np.mean((model.predict(X) - y.to_numpy()) ** 2)))
    assert rmse == pytest.approx(run.metrics["rmse"], rel=1e-12)


def test_reproduce_is_identical_and_notices_a_changed_record(home: Path) -> None:
    with opened(home) as catalog:
        run = train(catalog, "sensor", "failure", algo="gradient_boosting",
                    params={"max_iter": 20}, seed=11)
        result = reproduce_run(catalog, run.id)
        assert result.identical and result.predictions_identical
        assert result.max_prediction_diff == 0.0
        catalog.con.execute("UPDATE run SET metrics = json_merge_patch(metrics, "
                            "'{\"accuracy\": 0.5}') WHERE id = ?", [run.id])
        changed = reproduce_run(catalog, run.id)
    assert not changed.identical and not changed.metrics_identical
    assert changed.metric_differences["accuracy"][0] == 0.5
    assert changed.predictions_identical


@pytest.mark.parametrize("algo,dataset,params", [
    ("logistic_regression", "breast_cancer", {}),
    ("linear_regression", "diabetes", {}),
    ("ridge", "diabetes", {}),
    ("random_forest", "sensor", {"n_estimators": 10}),
    ("gradient_boosting", "diabetes", {"max_iter": 10}),
    ("mlp", "sensor", {"hidden_layer_sizes": "8", "max_iter": 20}),
])
def test_every_algorithm_reproduces_exactly(home: Path, algo: str, dataset: str,
                                            params: dict[str, object]) -> None:
    target = "failure" if dataset == "sensor" else "target"
    with opened(home) as catalog:
        run = train(catalog, dataset, target, algo=algo, params=params, seed=5)
        result = reproduce_run(catalog, run.id)
    assert result.identical, result.to_dict()
