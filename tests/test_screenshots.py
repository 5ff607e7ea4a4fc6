"""`make screenshots` on a machine where the app has run before: it builds its own demo
catalog, leaves the user's alone, and writes every picture (offscreen here; the Makefile
runs it under Xvfb for real windows)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.datasets import import_frame, list_datasets
from tests.support.fleet import mini_frame
from tests.support.training import opened

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_screenshots_with_a_used_home(tmp_path: Path) -> None:
    home = tmp_path / "used-home"
    with opened(home) as catalog:
        import_frame(catalog, "mine", mini_frame(20), {"kind": "test"})
    (home / "gui.ini").write_text("[samples]\noffered=true\n")  # the first start is long past
    out = tmp_path / "shots"
    env = dict(os.environ, OUTPOST_HOME=str(home), QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-m", "app.screenshots", str(out)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shots = sorted(p.name for p in out.glob("*.png"))
    assert {"datasets.png", "experiments.png", "models.png", "fleet.png",
            "monitoring.png"} <= set(shots), shots
    assert all((out / name).stat().st_size > 10_000 for name in shots)
    with opened(home) as catalog:
        assert [d.name for d in list_datasets(catalog)] == ["mine"]
    assert (home / "gui.ini").read_text() == "[samples]\noffered=true\n"
