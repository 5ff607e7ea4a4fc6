"""Search: candidate parameter sets, child runs per trial, the best by a metric, cancel."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import Cancelled, InvalidInput
from core.progress import CancelToken, ProgressEvent
from core.training import get_algorithm, get_run, list_runs, search
from core.training.searcher import candidate_params
from tests.support.training import catalog_state, opened, seed_datasets

pytestmark = pytest.mark.xdist_group("search-uses-all-cores")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("search") / "home"
    seed_datasets(path)
    return path


def test_grid_enumerates_or_samples_without_repeats() -> None:
    ridge = get_algorithm("ridge")
    full = candidate_params(ridge, {}, "grid", trials=100, seed=0)
    assert len(full) == 6 * 2  # alpha grid x fit_intercept grid
    some = candidate_params(ridge, {"fit_intercept": True}, "grid", trials=4, seed=0)
    assert len(some) == 4 and all(p["fit_intercept"] is True for p in some)
    assert len({p["alpha"] for p in some}) == 4


def test_random_search_is_seeded_and_stays_in_its_space() -> None:
    forest = get_algorithm("random_forest")
    first = candidate_params(forest, {"max_features": "all"}, "random", trials=8, seed=4)
    assert first == candidate_params(forest, {"max_features": "all"}, "random", 8, seed=4)
    assert first != candidate_params(forest, {"max_features": "all"}, "random", 8, seed=5)
    for params in first:
        assert 20 <= params["n_estimators"] <= 300 and 3 <= params["max_depth"] <= 20
        assert params["max_features"] == "all"
        forest.resolve_params(params)  # every candidate is a valid parameter set


def test_search_records_k_trials_and_the_best(home: Path) -> None:
    events: list[ProgressEvent] = []
    with opened(home) as catalog:
        result = search(catalog, "breast_cancer", "target", algo="logistic_regression",
                        kind="grid", trials=4, metric="accuracy", cv=3, seed=1, n_jobs=2,
                        params={"max_iter": "2000"}, progress=events.append)
        children = list_runs(catalog, parent=result.parent.id)
        parent = get_run(catalog, result.parent.id)
        visible = [r.id for r in list_runs(catalog)]
    assert len(result.trials) == len(children) == 4
    assert {c.id for c in children} == {t.id for t in result.trials}
    assert all(c.kind == "trial" and c.parent == parent.id and c.model_object is None
               for c in children)
    assert all(c.params["max_iter"] == 2000 for c in children)
    scores = {c.id: c.metrics["accuracy"] for c in children}
    assert result.best.id == max(scores, key=lambda k: (scores[k], -list(scores).index(k)))
    assert parent.kind == "search" and parent.model_object is not None
    assert parent.params == result.best.params
    assert parent.search is not None and parent.search["best"] == result.best.id
    assert parent.search["trials"] == 4 and parent.search["metric"] == "accuracy"
    assert "accuracy" in parent.metrics and parent.split["holdout_rows"] == 114
    assert parent.id in visible and not set(scores) & set(visible)
    done = [e.done for e in events if e.stage == "search"]
    assert done[0] == 0 and done[-1] == 4 and done == sorted(done)


def test_a_cancelled_search_writes_nothing(home: Path) -> None:
    before = catalog_state(home)
    token = CancelToken()

    def cancel_after_first_trial(event: ProgressEvent) -> None:
        if event.stage == "search" and event.done >= 1:
            token.cancel()

    with opened(home) as catalog, pytest.raises(Cancelled):
        search(catalog, "diabetes", "target", algo="ridge", kind="grid", trials=12, seed=0,
               n_jobs=1, progress=cancel_after_first_trial, cancel=token)
    assert catalog_state(home) == before


def test_search_refuses_a_metric_of_the_other_task(home: Path) -> None:
    with opened(home) as catalog, pytest.raises(InvalidInput, match="rmse, mae, r2"):
        search(catalog, "diabetes", "target", algo="ridge", trials=2, metric="accuracy")
