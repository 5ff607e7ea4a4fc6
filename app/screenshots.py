"""Render every view of the real application into PNG files (``make screenshots``).

Builds a demo catalog in a new temporary OUTPOST_HOME (never the user's, even when
OUTPOST_HOME is set: a catalog used before has no first-start banner to show and must not
get demo runs): the samples, a few runs, two model versions, the local agent serving one
of them, normal then drifted traffic. Run it under a display (``xvfb-run``) so that the
windows are real ones.

    python -m app.screenshots docs/screenshots
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEventLoop
from PySide6.QtWidgets import QApplication, QWidget

if TYPE_CHECKING:
    from core.fleet.records import AgentRecord

SIZE = (1400, 860)
WINDOW_S = 2.0


def wait(app: QApplication, condition: Callable[[], object], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("screenshots: timed out waiting for the window")
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.01)


def settle(app: QApplication, seconds: float = 0.4) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.01)


def save(app: QApplication, widget: QWidget, out: Path, name: str) -> None:
    settle(app)
    widget.grab().save(str(out / f"{name}.png"))
    print(f"wrote {out / name}.png")


def send(agent: AgentRecord, model: str, body: list[dict[str, object]]) -> None:
    from core.fleet.client import pinned_http

    with pinned_http(agent.url, agent.tls_spki) as http:
        for start in range(0, len(body), 100):
            http.post(f"/v1/models/{model}/predict",
                      json={"records": body[start:start + 100]}).raise_for_status()


def main(out: Path) -> int:
    home = tempfile.mkdtemp(prefix="outpost-screens-")
    os.environ["OUTPOST_HOME"] = home
    out.mkdir(parents=True, exist_ok=True)
    # Imported after OUTPOST_HOME is set: everything below works on the demo catalog.
    from app.main import application, create_window
    from app.views.datasets import DatasetsView
    from app.views.experiments import ExperimentsView
    from app.views.fleet import FleetView
    from app.views.models import ModelsView
    from app.views.monitoring import MonitoringView
    from core.catalog import Catalog
    from core.config import Settings
    from core.fleet.local import stop_local_agent

    app = application()
    catalog = Catalog.open(Settings.from_env())
    try:
        window = create_window(catalog, app)
        window.resize(*SIZE)
        window.show()
        window.offer_samples()
        wait(app, window.banner.isVisible)
        shots = Shots(app, window, out)
        shots.datasets(window.view(DatasetsView))
        shots.experiments(window.view(ExperimentsView))
        shots.models(window.view(ModelsView))
        shots.fleet(window.view(FleetView))
        shots.monitoring(window.view(MonitoringView))
        shots.dark()
        window.close()
    finally:
        stop_local_agent(catalog)
        catalog.close()
        shutil.rmtree(home, ignore_errors=True)
    return 0


class Shots:
    """One method per view: put it in a state worth showing, then grab it."""

    def __init__(self, app: QApplication, window: object, out: Path) -> None:
        from app.window import MainWindow

        assert isinstance(window, MainWindow)
        self.app, self.window, self.out = app, window, out
        self.catalog = window.ctx.catalog

    def go(self, view: QWidget) -> None:
        self.window.show_view(self.window.views.index(view))  # type: ignore[arg-type]

    def datasets(self, view: object) -> None:
        from app.views.datasets import DatasetsView

        assert isinstance(view, DatasetsView)
        self.go(view)
        view.select_dataset("field_sensor")
        wait(self.app, lambda: view.selected is not None and view.selected.dataset ==
             "field_sensor" and view.preview.model.is_loaded(0))
        save(self.app, self.window, self.out, "datasets")
        view.tabs.setCurrentWidget(view.profile)
        wait(self.app, lambda: view.profile.profile is not None)
        view.profile.table.selectRow(2)
        save(self.app, self.window, self.out, "datasets-profile")
        self.window.banner.hide()
        view.tabs.setCurrentWidget(view.preview)

    def experiments(self, view: object) -> None:
        from app.views.experiments import ExperimentsView
        from core.training import train

        assert isinstance(view, ExperimentsView)
        for algo, params in (("logistic_regression", {}), ("random_forest",
                                                              {"n_estimators": 60})):
            train(self.catalog, "field_sensor", "failure", algo=algo, params=params)
        train(self.catalog, "diabetes", "target", algo="ridge")
        self.go(view)
        dialog = view.open_train("field_sensor")
        wait(self.app, lambda: dialog.version() is not None)
        dialog.algo.setCurrentText("random_forest")
        save(self.app, dialog, self.out, "train-dialog")
        dialog.reject()
        view.refresh()
        wait(self.app, lambda: len(view.runs.records) == 3)
        view.sort_by_metric("accuracy")
        view.table.selectRow(0)
        view.detail.setCurrentWidget(view.detail.evaluation)
        save(self.app, self.window, self.out, "experiments")
        view.table.selectRow(1)
        view.table.selectRow(0)
        view.table.selectionModel().select(
            view.proxy.index(1, 0), view.table.selectionModel().SelectionFlag.Select |
            view.table.selectionModel().SelectionFlag.Rows)
        view.compare_selected()
        save(self.app, self.window, self.out, "experiments-compare")

    def models(self, view: object) -> None:
        from app.views.models import ModelsView
        from core.registry import register_model, set_alias
        from core.training import list_runs

        assert isinstance(view, ModelsView)
        runs = [r for r in list_runs(self.catalog) if r.dataset == "field_sensor"]
        for run in sorted(runs, key=lambda r: r.created_at):
            register_model(self.catalog, run.id, "pump_failure")
        set_alias(self.catalog, "pump_failure@1", "production")
        set_alias(self.catalog, "pump_failure@2", "staging")
        self.go(view)
        view.select("pump_failure", 1)
        wait(self.app, lambda: view.selected is not None and "Parity" in view.card.toPlainText())
        save(self.app, self.window, self.out, "models")

    def fleet(self, view: object) -> None:
        from app.views.fleet import FleetView

        assert isinstance(view, FleetView)
        self.go(view)
        view.local_window_s = WINDOW_S
        view.start_action.trigger()
        wait(self.app, lambda: bool(view.agents.records) and view.agents.record(0).state ==
             "online")
        dialog = view.open_deploy()
        wait(self.app, lambda: dialog.compatible is not None)
        save(self.app, dialog, self.out, "deploy-dialog")
        dialog.ok_button.click()
        wait(self.app, lambda: "pump_failure@1" in view.agents.record(0).served())
        view.refresh()
        wait(self.app, lambda: bool(view.deployments.records))
        save(self.app, self.window, self.out, "fleet")

    def monitoring(self, view: object) -> None:
        from app.views.monitoring import MonitoringView
        from core.datasets import read_frame, resolve_version
        from core.feeds import records
        from core.fleet.records import get_agent
        from core.registry import resolve_model

        assert isinstance(view, MonitoringView)
        mv = resolve_model(self.catalog, "pump_failure@1")
        agent = get_agent(self.catalog, "local")
        columns = [s.name for s in mv.inputs]
        for phase, dataset in enumerate(("field_sensor", "field_sensor", "field_sensor_drifted",
                                         "field_sensor_drifted")):
            frame = read_frame(self.catalog, resolve_version(self.catalog, dataset),
                               columns=columns).sample(400 + 300 * phase, random_state=phase)
            send(agent, mv.model, records(mv.inputs, frame))
            settle(self.app, 10.5)  # one 10 s window each
        self.go(view)
        view.bucket_box.setCurrentText("10 s")
        view.refresh()
        wait(self.app, lambda: view.snap is not None and bool(view.snap.matrix))
        row = next((i for i, f in enumerate(view.drift.features) if f == "temperature_c"), 0)
        view.drift.select_cell(row, len(view.drift.windows) - 1)
        save(self.app, self.window, self.out, "monitoring")

    def dark(self) -> None:
        self.window.dark_action.setChecked(True)
        save(self.app, self.window, self.out, "monitoring-dark")
        self.window.show_view(0)
        save(self.app, self.window, self.out, "datasets-dark")
        self.window.dark_action.setChecked(False)
        about = self.window.show_about()
        save(self.app, about, self.out, "about")
        about.close()


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")))
