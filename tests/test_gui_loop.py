"""The whole loop through the real widgets: samples → train → register → local agent →
deploy → traffic → Monitoring shows the requests and, after drifted traffic, a drift alert."""
from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from pytestqt.qtbot import QtBot

from app.views.experiments import ExperimentsView
from app.views.fleet import FleetView
from app.views.monitoring import MonitoringView
from app.window import MainWindow
from core.catalog import Catalog
from core.datasets import read_frame, resolve_version
from core.feeds import records
from core.fleet.local import local_dir, stop_local_agent
from core.registry import ModelVersion, resolve_model
from core.samples import SENSOR_DRIFTED_FEATURES
from edge_agent.contract.protocol import PREDICTION_FEATURE
from tests.support.agents import trust_cert, verify_for
from tests.support.fleet import outbox_last_seq, wait_for_outbox
from tests.support.gui import (  # noqa: F401 (fixtures)
    catalog_fixture,
    error_dialogs,
    make_window_fixture,
)

pytestmark = [
    pytest.mark.xdist_group("fleet"),
]
WINDOW_S = 1.0


@pytest.fixture
def local_agent_stopped(catalog: Catalog) -> Iterator[None]:
    yield
    stop_local_agent(catalog)


def _send(catalog: Catalog, url: str, token: str, mv: ModelVersion, dataset: str,
          rows: int) -> None:
    frame = read_frame(catalog, resolve_version(catalog, dataset),
                       columns=[s.name for s in mv.inputs]).sample(rows, random_state=7)
    body = records(mv.inputs, frame)
    trust_cert(url, local_dir(catalog) / "tls.crt")  # the local agent's own certificate
    before = outbox_last_seq(url, token)
    with httpx.Client(base_url=url, timeout=30, verify=verify_for(url)) as http:
        for start in range(0, len(body), 200):
            answer = http.post(f"/v1/models/{mv.model}/predict",
                               json={"records": body[start:start + 200]})
            assert answer.status_code == 200, answer.text
    # each request of 200 rows is one record; wait for them and the closed histogram window
    wait_for_outbox(url, token, requests=-(-len(body) // 200), after=before)


@pytest.mark.usefixtures("local_agent_stopped")
def test_whole_loop_through_the_gui(qtbot: QtBot, make_window: Callable[..., MainWindow],
                                    catalog: Catalog) -> None:
    window = make_window([ExperimentsView, FleetView, MonitoringView])
    window.offer_samples()
    qtbot.waitUntil(window.banner.isVisible, timeout=60_000)

    experiments = window.view(ExperimentsView)
    assert isinstance(experiments, ExperimentsView)
    window.show_view(window.views.index(experiments))
    dialog = experiments.open_train("field_sensor")
    qtbot.waitUntil(lambda: dialog.version() is not None, timeout=10_000)
    assert dialog.target.currentText() == "failure"
    dialog.algo.setCurrentText("logistic_regression")
    dialog.train_button.click()
    qtbot.waitUntil(lambda: experiments.detail.run is not None, timeout=120_000)
    ask = experiments.ask_register()
    assert ask is not None
    ask.setTextValue("pump_failure")
    ask.accept()
    qtbot.waitUntil(lambda: "Registered pump_failure@1" in window.statusBar().currentMessage(),
                    timeout=120_000)

    fleet = window.view(FleetView)
    assert isinstance(fleet, FleetView)
    window.show_view(window.views.index(fleet))
    fleet.local_window_s = WINDOW_S
    fleet.start_action.trigger()
    qtbot.waitUntil(lambda: bool(fleet.agents.records) and fleet.agents.record(0).state ==
                    "online", timeout=60_000)
    deploy = fleet.open_deploy()
    qtbot.waitUntil(lambda: deploy.compatible is not None, timeout=30_000)
    assert deploy.compatible is not None and deploy.compatible.ok
    deploy.ok_button.click()
    qtbot.waitUntil(lambda: "pump_failure@1" in fleet.agents.record(0).served(),
                    timeout=120_000)

    mv = resolve_model(catalog, "pump_failure@1")
    url, token = fleet.agents.record(0).record.url, fleet.agents.record(0).record.token
    monitoring = window.view(MonitoringView)
    assert isinstance(monitoring, MonitoringView)
    window.show_view(window.views.index(monitoring))
    _send(catalog, url, token, mv, "field_sensor", 600)
    monitoring.refresh_action.trigger()
    # the charts are drawn over the turns after the snapshot arrives: wait for all of them
    qtbot.waitUntil(lambda: monitoring.snap is not None and bool(monitoring.snap.series.get(
        "local")) and monitoring.drawn(), timeout=60_000)
    line = monitoring.requests.getPlotItem().listDataItems()[0]
    assert line.name() == "local" and sum(line.yData) * 60 == pytest.approx(3)  # 600 / 200
    assert not any(a.kind == "drift" for a in monitoring.alerts.records)

    _send(catalog, url, token, mv, "field_sensor_drifted", 3000)
    monitoring.refresh_action.trigger()
    qtbot.waitUntil(lambda: any(a.kind == "drift" for a in monitoring.alerts.records),
                    timeout=60_000)
    flagged = {a.feature for a in monitoring.alerts.records if a.kind == "drift"}
    flagged.discard(PREDICTION_FEATURE)  # the predictions shift with their inputs
    assert flagged and flagged <= set(SENSOR_DRIFTED_FEATURES)
    assert set(SENSOR_DRIFTED_FEATURES) & set(monitoring.drift.features)
    assert not error_dialogs(window), [(d.text(), d.detailedText()) for d in error_dialogs(window)]
