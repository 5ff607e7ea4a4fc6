"""Bundles from model versions: baseline from the training data, canary from the holdout,
signed with the desktop key; installable by the agent as a USB drop would deliver it."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from core.bundles import CANARY_ROWS, build_bundle
from core.catalog import Catalog
from core.keys import rotate_signing_key, signing_key, write_public_key_file
from core.registry import import_onnx
from edge_agent.contract.protocol import (
    Baseline,
    Canary,
    FeatureBaseline,
    key_fingerprint,
    verify_bundle,
)
from edge_agent.store.canary import run_canary
from tests.conftest import run_cli
from tests.support.agents import identity_model
from tests.support.fleet import open_catalog, train_mini


@pytest.fixture
def trained(outpost_home: Path) -> Iterator[tuple[Catalog, pd.DataFrame]]:
    catalog = open_catalog(outpost_home)
    yield catalog, train_mini(catalog)
    catalog.close()


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def test_bundle_is_signed_and_its_baseline_matches_the_data(
        trained: tuple[Catalog, pd.DataFrame], tmp_path: Path) -> None:
    catalog, frame = trained
    built = build_bundle(catalog, "pumps@production", tmp_path / "out.outpost")
    verified = verify_bundle(built.path, [signing_key(catalog).public_key()])
    assert (verified.manifest.model, verified.manifest.version) == ("pumps", 1)
    assert verified.manifest.key_id == key_fingerprint(signing_key(catalog)) == built.key_id
    baseline = Baseline.from_dict(json.loads(_members(built.path)["baseline.json"]))
    assert baseline.rows == len(frame)
    temp = baseline.feature("temp")
    assert temp is not None and temp.kind == "numeric" and temp.edges is not None
    as_f32 = frame["temp"].to_numpy(dtype=np.float32)
    expected_edges = np.unique(np.nanquantile(as_f32.astype(np.float64),
                                              np.arange(1, 10) / 10).astype(np.float32))
    assert temp.edges == pytest.approx(expected_edges.astype(np.float64).tolist(), rel=1e-6)
    # The agent's reference binning of the same values gives the baseline's counts.
    assert temp.count(as_f32) == (temp.counts, int(frame["temp"].isna().sum()))
    site = baseline.feature("site")
    assert site is not None and site.categories == ["north", "south", "east", "west"]
    counts = frame["site"].value_counts()
    assert site.counts == [*(int(counts[c]) for c in site.categories), 0]
    assert site.nulls == int(frame["site"].isna().sum())
    pred = baseline.prediction
    assert isinstance(pred, FeatureBaseline) and pred.categories == ["0", "1"]
    assert sum(pred.counts) + pred.nulls == len(frame)


def test_canary_comes_from_the_holdout_and_passes_on_the_runtime(
        trained: tuple[Catalog, pd.DataFrame], tmp_path: Path) -> None:
    catalog, _ = trained
    members = _members(build_bundle(catalog, "pumps@1", tmp_path).path)
    canary = Canary.from_dict(json.loads(members["canary.json"]))
    assert canary.rows == CANARY_ROWS and canary.label_output == "label"
    assert set(canary.inputs) == {"temp", "site", "load"}
    session = ort.InferenceSession(members["model.onnx"], providers=["CPUExecutionProvider"])
    run_canary(session, canary)
    wrong = Canary(canary.inputs, {**canary.expected,
                                   "label": [1 - v for v in canary.expected["label"]]},
                   canary.atol, canary.label_output)
    with pytest.raises(Exception, match="canary failed"):
        run_canary(session, wrong)


def test_bundle_is_reused_until_the_key_rotates(trained: tuple[Catalog, pd.DataFrame]) -> None:
    catalog, _ = trained
    first = build_bundle(catalog, "pumps@1")
    again = build_bundle(catalog, "pumps@production")
    assert again.reused and again.sha256 == first.sha256
    rotate_signing_key(catalog)
    rebuilt = build_bundle(catalog, "pumps@1")
    assert not rebuilt.reused and rebuilt.key_id != first.key_id
    verify_bundle(rebuilt.path, [signing_key(catalog).public_key()])


def test_imported_onnx_gets_an_empty_baseline_and_a_runnable_canary(
        outpost_home: Path, tmp_path: Path) -> None:
    with open_catalog(outpost_home) as catalog:
        onnx_file = tmp_path / "adder.onnx"
        onnx_file.write_bytes(identity_model())
        import_onnx(catalog, onnx_file, "adder")
        members = _members(build_bundle(catalog, "adder@1", tmp_path).path)
    assert json.loads(members["baseline.json"]) == {"rows": 0, "features": [],
                                                    "prediction": None}
    session = ort.InferenceSession(members["model.onnx"], providers=["CPUExecutionProvider"])
    run_canary(session, Canary.from_dict(json.loads(members["canary.json"])))


def test_cli_build_then_agent_install_like_a_usb_drop(
        trained: tuple[Catalog, pd.DataFrame], outpost_home: Path, tmp_path: Path) -> None:
    catalog, _ = trained
    pub = write_public_key_file(catalog, tmp_path / "desktop.pub")
    catalog.close()
    out = tmp_path / "stick"
    out.mkdir()
    doc = run_cli(outpost_home, "bundle", "build", "pumps@production", "--out", str(out),
                  "--json", check=True).json()
    assert Path(doc["path"]) == out / "pumps-1.outpost" and doc["version"] == 1
    installed = subprocess.run(
        [sys.executable, "-m", "edge_agent", "install", doc["path"], "--dir",
         str(tmp_path / "device"), "--trust-key", str(pub)],
        capture_output=True, text=True, timeout=120)
    assert installed.returncode == 0, installed.stderr
    assert "pumps version 1: active" in installed.stdout
    missing = run_cli(outpost_home, "bundle", "build", "pumps@9", "--out", str(out))
    assert missing.returncode == 1 and missing.stderr.startswith("error: ")
