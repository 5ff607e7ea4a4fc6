"""The champion/challenger gate on a real catalog: a worse run is not registered, a better
one is registered and staged (not production, nothing deployed) until approved."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.catalog import Catalog
from core.registry import list_versions, resolve_model
from core.registry.gate import challenge, staged_versions
from core.training import train
from tests.conftest import run_cli
from tests.support.fleet import open_catalog, train_mini


def test_gate_registers_only_a_better_run_and_stages_it_for_approval(
        outpost_home: Path, catalog: Catalog) -> None:
    train_mini(catalog, "pumps")  # pumps@1, production
    # The same algorithm and seed on the same split scores exactly as production: no gain.
    same = train(catalog, "mini", "fail", algo="logistic_regression")
    refused = challenge(catalog, same.id, "pumps")
    assert not refused.passed and refused.version is None
    assert refused.challenger == pytest.approx(refused.production)
    assert "does not beat production" in refused.reason
    assert [v.version for v in list_versions(catalog, "pumps")] == [1]
    # A margin no model can clear: refused too.
    rf = train(catalog, "mini", "fail", algo="random_forest")
    assert not challenge(catalog, rf.id, "pumps", margin=1.0).passed
    # A weak champion (one feature) that the forest beats: with no production yet the
    # first challenger is staged as is.
    weak = train(catalog, "mini", "fail", algo="logistic_regression", features=["site"])
    first = challenge(catalog, weak.id, "weak")  # no production yet: staged as weak@1
    assert first.passed and first.production is None and first.version == 1
    catalog.close()
    approved = run_cli(outpost_home, "approve", "weak@1", "--json", check=True).json()
    assert approved == {"model": "weak", "version": 1, "alias": "production"}
    again = run_cli(outpost_home, "approve", "weak@1")
    assert again.returncode == 1 and "is not staged" in again.stderr
    assert again.stderr.count("\n") == 1
    doc = run_cli(outpost_home, "model", "challenge", rf.id, "--name", "weak", "--json",
                  check=True).json()
    assert doc["passed"] and doc["version"] == 2 and doc["challenger"] > doc["production"]
    cat = open_catalog(outpost_home)
    try:
        assert staged_versions(cat) == [{"model": "weak", "version": 2}]
        assert resolve_model(cat, "weak@production").version == 1  # nothing switched yet
    finally:
        cat.close()
    run_cli(outpost_home, "approve", "weak@2", check=True)
    cat = open_catalog(outpost_home)
    try:
        assert resolve_model(cat, "weak@production").version == 2
        assert staged_versions(cat) == []
        kinds = [k for (k,) in cat.cursor().execute(
            "SELECT kind FROM audit_event WHERE kind IN ('gate', 'approve') "
            "ORDER BY position").fetchall()]
        assert kinds == ["gate", "gate", "gate", "approve", "gate", "approve"]
    finally:
        cat.close()
    bad = run_cli(outpost_home, "model", "challenge", rf.id, "--name", "weak", "--metric", "r2")
    assert bad.returncode == 1 and "does not fit a classification run" in bad.stderr
