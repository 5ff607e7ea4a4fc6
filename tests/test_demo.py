"""`outpost demo`: the whole loop, headless, through the real CLI and a real local agent."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.samples import SENSOR_DRIFTED_FEATURES
from tests.conftest import run_cli


@pytest.mark.slow
@pytest.mark.xdist_group("fleet")
def test_demo_flags_exactly_the_drifted_features(outpost_home: Path) -> None:
    result = run_cli(outpost_home, "demo", "--json", timeout=180)
    assert result.returncode == 0, result.stderr
    doc = result.json()
    steps = [s["step"] for s in doc["steps"]]
    assert steps == ["import sample data", "train", "register", "alias production",
                     "start local agent", "deploy", "normal traffic", "drifted traffic",
                     "pull telemetry", "drift report", "stop local agent"]
    assert all(s["seconds"] >= 0 for s in doc["steps"])
    assert doc["flagged"] == sorted(SENSOR_DRIFTED_FEATURES) and doc["passed"] is True
    assert {f["status"] for f in doc["normal"]["features"]} == {"ok"}
    drifted = {f["feature"]: f["status"] for f in doc["drifted"]["features"]}
    assert len(drifted) > len(SENSOR_DRIFTED_FEATURES)  # the others are there, and ok
    assert all((status != "ok") == (name in SENSOR_DRIFTED_FEATURES)
               for name, status in drifted.items())
    assert doc["seconds"] < 60
    # Each step's time is printed as it happens (on stderr beside --json).
    assert "train:" in result.stderr and " s  deploy:" in result.stderr
    status = run_cli(outpost_home, "agent", "status", "local", "--json", check=True).json()
    assert status["online"] is False and status["telemetry_rows"] > 0
