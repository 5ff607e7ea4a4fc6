"""The bundled samples: offline, idempotent; the sensor set learns and drifts as documented."""
from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from core.datasets import list_datasets, read_frame, resolve_version
from core.samples import SAMPLES, SENSOR_DRIFTED_FEATURES, load_samples
from tests.support.datasets import opened

CATEGORICAL = ["site", "device_model", "firmware"]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("samples") / "home"
    with opened(home) as catalog:
        results = load_samples(catalog)
    assert [(r.name, r.rows, r.new) for r in results] == [
        ("breast_cancer", 569, True), ("diabetes", 442, True),
        ("field_sensor", 60_000, True), ("field_sensor_drifted", 60_000, True)]
    return home


def test_loading_again_finds_the_same_versions(loaded: Path) -> None:
    with opened(loaded) as catalog:
        before = {d.name: d.latest.version for d in list_datasets(catalog)}
        again = load_samples(catalog)
    assert all(not r.new for r in again)
    assert {r.name: r.version for r in again} == before


def test_targets_and_tasks(loaded: Path) -> None:
    with opened(loaded) as catalog:
        for sample in SAMPLES:
            dv = resolve_version(catalog, sample.name)
            columns = {c.name: c.type for c in dv.columns}
            assert sample.target in columns
            assert dv.source["task"] == sample.task and dv.source["target"] == sample.target
            assert all(" " not in name for name in columns)
        cancer = read_frame(catalog, resolve_version(catalog, "breast_cancer"), ["target"])
        diabetes = read_frame(catalog, resolve_version(catalog, "diabetes"), ["target"])
    assert set(cancer["target"]) == {0, 1}
    assert diabetes["target"].nunique() > 100


def _sensor(home: Path, name: str):  # type: ignore[no-untyped-def]
    with opened(home) as catalog:
        return read_frame(catalog, resolve_version(catalog, name))


def test_field_sensor_has_nulls_categoricals_and_a_learnable_target(loaded: Path) -> None:
    frame = _sensor(loaded, "field_sensor")
    assert frame[["firmware", "humidity_pct", "vibration_mm_s"]].isna().mean().min() > 0.01
    assert frame["site"].nunique() == 6 and frame["device_model"].nunique() == 3
    assert 0.03 < frame["failure"].mean() < 0.3
    features = frame.drop(columns="failure")
    features[CATEGORICAL] = features[CATEGORICAL].astype(object).fillna("")
    numeric = [c for c in features.columns if c not in CATEGORICAL]
    x_train, x_test, y_train, y_test = train_test_split(
        features, frame["failure"], test_size=0.2, random_state=0, stratify=frame["failure"])
    model = make_pipeline(ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)]),
        LogisticRegression(max_iter=500))
    model.fit(x_train, y_train)
    assert roc_auc_score(y_test, model.predict_proba(x_test)[:, 1]) > 0.75


def test_only_the_documented_features_drift(loaded: Path) -> None:
    base, drifted = _sensor(loaded, "field_sensor"), _sensor(loaded, "field_sensor_drifted")
    assert list(base.columns) == list(drifted.columns)
    for column in base.columns:
        if column == "failure":
            continue
        if base[column].dtype.kind == "f" or base[column].dtype.kind == "i":
            shift = abs(drifted[column].mean() - base[column].mean()) / base[column].std()
        else:
            shares = base[column].value_counts(normalize=True)
            shift = (drifted[column].value_counts(normalize=True) - shares).abs().max()
        if column in SENSOR_DRIFTED_FEATURES:
            assert shift > 0.1, column
        else:
            assert shift < 0.03, column


def test_cli_samples_load(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("samples", "load", "--json")
    assert result.returncode == 0, result.stderr
    rows = result.json()["samples"]
    assert [(r["name"], r["new"], r["target"]) for r in rows] == [
        ("breast_cancer", True, "target"), ("diabetes", True, "target"),
        ("field_sensor", True, "failure"), ("field_sensor_drifted", True, "failure")]
    listed = cli("dataset", "list", "--json").json()["datasets"]
    assert {d["name"] for d in listed} == {s.name for s in SAMPLES}
