"""A feature's live bins beside its baseline, from telemetry as agents send it."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.bundles import build_bundle
from core.catalog import Catalog
from core.errors import NotFound
from core.feature_distribution import bin_labels, feature_distribution
from core.telemetry.ingest import import_telemetry
from edge_agent.contract.protocol import FeatureBaseline
from tests.support.fleet import (
    enrol_row,
    export_file,
    histogram,
    new_identity,
    open_catalog,
    train_mini,
)


@pytest.fixture
def catalog(outpost_home: Path) -> Catalog:
    return open_catalog(outpost_home)


def test_live_counts_sum_over_the_asked_windows_beside_the_baseline(
        catalog: Catalog, tmp_path: Path) -> None:
    train_mini(catalog, "pumps")
    baseline = build_bundle(catalog, "pumps@1").baseline
    temp = next(f for f in baseline["features"] if f["name"] == "temp")
    bins = len(temp["counts"])
    identity = new_identity()
    enrol_row(catalog, "site-a", identity, agent_id="id-a")
    t0 = time.time() - 300
    hot = [0] * (bins - 1) + [40]
    records = [histogram(1, "temp", hot, nulls=2, model="pumps", start=t0, length=60),
               histogram(2, "temp", hot, nulls=1, model="pumps", start=t0 + 60, length=60),
               histogram(3, "site", [5] * 5, model="pumps", start=t0, length=60)]
    import_telemetry(catalog, export_file(tmp_path / "a.telemetry", records, identity,
                                          agent_id="id-a"))

    both = feature_distribution(catalog, "pumps", 1, "temp")
    assert both.baseline == temp["counts"] and both.baseline_nulls == temp["nulls"]
    assert both.live == [0] * (bins - 1) + [80] and both.live_nulls == 3
    assert both.labels[0].startswith("< ") and both.labels[-1].startswith("≥ ")
    assert len(both.labels) == bins and both.edges == temp["edges"]

    first = feature_distribution(catalog, "pumps", 1, "temp", since=t0, until=t0 + 60)
    assert first.live[-1] == 40
    assert feature_distribution(catalog, "pumps", 1, "temp", agent="elsewhere").live == \
        [0] * bins
    assert sum(both.shares(both.live)) == pytest.approx(1.0)

    site = feature_distribution(catalog, "pumps", 1, "site")
    assert site.kind == "categorical" and site.labels[-1] == "(other)"

    with pytest.raises(NotFound, match="no baseline for feature 'nope'"):
        feature_distribution(catalog, "pumps", 1, "nope")
    with pytest.raises(NotFound, match="its bundle was not built here"):
        feature_distribution(catalog, "pumps", 7, "temp")
    catalog.close()


def test_bin_labels_of_numeric_and_categorical_baselines() -> None:
    numeric = FeatureBaseline("x", "numeric", [1, 2, 3], 0, edges=[0.5, 1.25])
    assert bin_labels(numeric) == ["< 0.5", "[0.5, 1.25)", "≥ 1.25"]
    categorical = FeatureBaseline("c", "categorical", [1, 2, 3], 0, categories=["a", "b"])
    assert bin_labels(categorical) == ["a", "b", "(other)"]
