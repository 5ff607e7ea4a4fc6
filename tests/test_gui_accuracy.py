"""The Monitoring view's accuracy panel: predictions imported from an agent's export file,
labels imported from the panel, labelled/unlabelled counts and accuracy shown."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from app.views.monitoring import MonitoringView
from app.window import MainWindow
from core.catalog import Catalog
from core.telemetry.ingest import import_telemetry
from tests.support.fleet import enrol_row, export_file, new_identity, requests, train_mini
from tests.support.gui import (  # noqa: F401 (fixtures)
    catalog_fixture,
    error_dialogs,
    make_window_fixture,
)

pytestmark = pytest.mark.xdist_group("fleet")


def test_accuracy_panel_counts_labelled_answers_and_imports_labels(
        qtbot: QtBot, make_window: Callable[..., MainWindow], catalog: Catalog,
        tmp_path: Path) -> None:
    train_mini(catalog, "pumps")
    identity = new_identity()
    enrol_row(catalog, "site-a", identity, agent_id="id-a")
    t0 = time.time() - 60
    ids = [f"id-a:1:{n}" for n in range(1, 41)]
    predicted = ["1" if n % 4 == 0 else "0" for n in range(40)]
    prediction = {"kind": "prediction", "seq": 41, "ts": t0, "model": "pumps", "version": 1,
                  "ids": ids, "predicted": predicted, "times": [t0] * 40}
    import_telemetry(catalog, export_file(tmp_path / "a.telemetry",
                                          [*requests(1, 40, model="pumps", t0=t0), prediction],
                                          identity, agent_id="id-a"))
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\n" + "".join(f"{i},0\n" for i in ids[:30]))
    window = make_window([MonitoringView])
    view = window.view(MonitoringView)
    assert isinstance(view, MonitoringView)
    view.load(pull=False)
    qtbot.waitUntil(lambda: view.snap is not None and bool(view.accuracy.model.records),
                    timeout=30_000)
    (row,) = view.accuracy.model.records
    assert (row.labelled, row.unlabelled) == (0, 40)
    view.import_labels(labels)
    qtbot.waitUntil(lambda: view.accuracy.model.records[0].labelled == 30, timeout=30_000)
    row = view.accuracy.model.records[0]
    right = sum(p == "0" for p in predicted[:30])
    assert (row.unlabelled, row.correct) == (10, right)
    assert "30 labelled, 10 unlabelled" in view.accuracy.note.text()
    shown = view.accuracy.model.index(0, 4).data()
    assert shown == f"{right / 30:.3f}"
