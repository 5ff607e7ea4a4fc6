"""The Monitoring view over telemetry imported from a file: request charts, the drift
heatmap with a clickable cell, and the alerts it raises."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtCore import QPointF, Qt
from pytestqt.qtbot import QtBot

from app.views.fleet import FleetView
from app.views.monitoring import MonitoringView
from app.window import MainWindow
from core.bundles import build_bundle
from core.catalog import Catalog
from tests.support.fleet import (
    enrol_row,
    export_file,
    fill_windows,
    histogram,
    new_identity,
    requests,
    train_mini,
)
from tests.support.gui import (  # noqa: F401 (fixtures)
    catalog_fixture,
    error_dialogs,
    make_window_fixture,
)

pytestmark = pytest.mark.xdist_group("fleet")


def _telemetry_file(catalog: Catalog, path: Path, extra: tuple[object, ...] = ()) -> Path:
    """An offline site's export: 60 requests (6 failed) and one window where `temp` moved."""
    train_mini(catalog, "pumps")
    baseline = build_bundle(catalog, "pumps@1").baseline
    identity = new_identity()
    enrol_row(catalog, "site-a", identity, agent_id="id-a")
    t0 = time.time() - 90
    records: list[object] = [*requests(1, 54, model="pumps", t0=t0),
                             *requests(55, 6, model="pumps", t0=t0 + 54, status=500)]
    for i, feature in enumerate(baseline["features"]):
        counts = list(feature["counts"])
        if feature["name"] == "temp":  # every reading now lands in the hottest bin
            counts = [0] * (len(counts) - 1) + [sum(counts)]
        records.append(histogram(100 + i, feature["name"], counts, nulls=feature["nulls"],
                                 model="pumps", start=t0, length=60))
    return export_file(path, [*records, *extra], identity, agent_id="id-a")


def test_monitoring_shows_requests_drift_and_alerts(
        qtbot: QtBot, make_window: Callable[..., MainWindow], catalog: Catalog,
        tmp_path: Path) -> None:
    path = _telemetry_file(catalog, tmp_path / "site-a.telemetry")
    window = make_window([FleetView, MonitoringView])
    fleet = window.view(FleetView)
    assert isinstance(fleet, FleetView)
    fleet.import_telemetry_file(path)
    qtbot.waitUntil(lambda: "Imported 60 requests" in window.statusBar().currentMessage(),
                    timeout=10_000)
    view = window.view(MonitoringView)
    assert isinstance(view, MonitoringView)
    window.show_view(window.views.index(view))
    qtbot.waitUntil(lambda: view.snap is not None and bool(view.alerts.records), timeout=30_000)
    assert view.model_box.currentText() == "pumps"
    # site-a sits at a dead address: the pull says so, and the rest still shows.
    assert "site-a:" in view.summary.text()
    line = view.requests.getPlotItem().listDataItems()[0]
    assert line.name() == "site-a" and sum(line.yData) * 60 == pytest.approx(60)
    errors = view.errors.getPlotItem().listDataItems()[0]
    failed = sum(pct / 100 * n * 60 for pct, n in zip(errors.yData, line.yData, strict=True))
    assert failed == pytest.approx(6)

    drift = view.drift
    assert "temp" in drift.features
    row = drift.features.index("temp")
    temp = drift.cells[(row, 0)]
    assert temp.status == "alert" and drift.heatmap.matrix[row, 0] > 0.25
    # Click the cell the way a user does.
    box = drift.heatmap.getViewBox()
    scene = box.mapViewToScene(QPointF(0.5, row + 0.5))
    point = drift.heatmap.mapFromScene(scene)
    qtbot.mouseClick(drift.heatmap.viewport(), Qt.MouseButton.LeftButton, pos=point)
    qtbot.waitUntil(lambda: drift.selected is not None, timeout=2000)
    assert drift.selected is not None and drift.selected.feature == "temp"
    assert "PSI" in drift.cell.text() and "alert" in drift.cell.text()
    # The drill-down: every live value in the hottest bin, the baseline spread out.
    qtbot.waitUntil(lambda: len(drift.distribution.getPlotItem().items) == 2, timeout=5000)
    bars = drift.distribution.getPlotItem().items
    baseline, live = (b.opts["height"] for b in bars)  # type: ignore[attr-defined]
    assert list(live)[-1] == pytest.approx(1.0) and max(baseline) < 0.5

    messages = [a.message for a in view.alerts.records]
    assert any("temp PSI" in m for m in messages)
    assert any("error rate" in m for m in messages)
    assert any("site-a is unreachable" in m for m in messages)
    assert not error_dialogs(window), [(d.text(), d.detailedText()) for d in error_dialogs(window)]


def test_monitoring_shows_the_shadow_challenger(
        qtbot: QtBot, make_window: Callable[..., MainWindow], catalog: Catalog,
        tmp_path: Path) -> None:
    shadow = {"kind": "shadow", "seq": 200, "window_start": time.time() - 60,
              "window_end": time.time(), "model": "pumps", "version": 1, "challenger": 2,
              "count": 10, "rows": 40, "agreed": 30, "dropped": 1, "timeouts": 0, "errors": 0,
              "latency_us": 5000, "counts": [0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0],
              "divergence": '{"alarm": 10}'}
    path = _telemetry_file(catalog, tmp_path / "site-a.telemetry", (shadow,))
    window = make_window([FleetView, MonitoringView])
    fleet = window.view(FleetView)
    assert isinstance(fleet, FleetView)
    fleet.import_telemetry_file(path)
    qtbot.waitUntil(lambda: "Imported 60 requests" in window.statusBar().currentMessage(),
                    timeout=10_000)
    view = window.view(MonitoringView)
    assert isinstance(view, MonitoringView)
    window.show_view(window.views.index(view))
    qtbot.waitUntil(lambda: view.snap is not None and bool(view.snap.shadow), timeout=30_000)
    assert not view.shadow.isHidden()
    text = view.shadow.text()
    assert "v1 vs challenger v2" in text and "agreement 75.0 %" in text, text
    assert "alarm (10)" in text and "p99 0.5 ms" in text and "dropped 1" in text, text


def test_refresh_over_a_thousand_windows(
        qtbot: QtBot, make_window: Callable[..., MainWindow], catalog: Catalog) -> None:
    """1,000 one-minute windows: the refresh (a worker) lands every window in the heatmap
    and every minute in the charts, drawn as hairlines; the drifted last quarter shows."""
    train_mini(catalog, "pumps")
    build_bundle(catalog, "pumps@1")
    enrol_row(catalog, "site-a", new_identity(), agent_id="id-a")
    fill_windows(catalog, "pumps", 1, 1000, agent="site-a")
    window = make_window([MonitoringView])
    view = window.view(MonitoringView)
    assert isinstance(view, MonitoringView)
    # The view's own first load, done before the refresh: two snapshots recording alerts
    # at once can conflict in the catalog (the later one would fail, and nothing shows).
    qtbot.waitUntil(lambda: not window.ctx.tasks.tasks, timeout=60_000)
    view.refresh()
    qtbot.waitUntil(lambda: view.snap is not None and len(view.drift.windows) == 1000
                    and bool(view.alerts.records), timeout=60_000)
    assert view.snap is not None and view.snap.model == "pumps"
    requests_line = view.requests.getPlotItem().listDataItems()[0]
    assert len(requests_line.xData) == 1000
    assert sum(requests_line.yData) * 60 == pytest.approx(20_000)
    assert requests_line.opts["pen"].widthF() <= 1 and requests_line.opts["symbol"] is None
    grid = view.drift.heatmap.matrix
    assert grid.shape == (len(view.drift.features), 1000)
    temp = view.drift.features.index("temp")
    assert (grid[temp, :700] < 0.1).all() and (grid[temp, 760:] >= 0.25).all()
    assert len(view.drift.heatmap.getAxis("bottom")._tickLevels[0]) <= 20
    assert any("temp PSI" in a.message for a in view.alerts.records)
    assert not error_dialogs(window), [(d.text(), d.detailedText()) for d in error_dialogs(window)]
