"""Fleet → Capture…: a model's sample-capture policy set from the GUI on a real push agent
(and carried to a real hub agent by its poll), refused values, an agent gone offline, and a
hub agent refusing a policy for a model it does not serve."""
from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QLabel
from pytestqt.qtbot import QtBot

from app.dialogs.capture import CaptureDialog
from app.views.fleet import FleetView
from app.window import MainWindow
from core.catalog import Catalog
from core.errors import NotFound
from core.fleet.agents import connect
from core.fleet.capture import capture_policy
from core.fleet.client import pinned_http
from core.fleet.dispatch import agent_status, deploy, set_capture
from core.fleet.local import local_dir, start_local_agent, stop_local_agent
from core.fleet.records import captured_rows, get_agent
from core.hub import HubHandle, HubOptions
from core.hub.desired import capture_for
from core.telemetry.pull import pull_telemetry
from tests.support.fleet import mini_frame, mini_records, train_mini
from tests.support.gui import (  # noqa: F401 (fixtures)
    catalog_fixture,
    error_dialogs,
    make_window_fixture,
    show_fleet,
)
from tests.support.hub import (
    enrol_and_start,
    register_adder,
    start_hub_agent,
    start_test_hub,
    wait_until,
)

pytestmark = [pytest.mark.xdist_group("fleet")]


@pytest.fixture
def pumps(catalog: Catalog) -> Iterator[str]:
    """Model pumps@1 served by the local agent (1 s telemetry windows)."""
    train_mini(catalog, "pumps")
    try:
        start_local_agent(catalog, window_s=1.0)
        assert deploy(catalog, "pumps@1", "local").status == "active"
        yield "pumps"
    finally:
        stop_local_agent(catalog)


def _agent_policy(catalog: Catalog, model: str) -> tuple[Any, Any]:
    """What the agent itself says now (GET /v1/status): the policy and where it came from."""
    with connect(catalog, "local") as (_, client):
        status = client.status()
    (entry,) = [m for m in status["models"] if m["name"] == model]
    return entry["capture"], entry["capture_from"]


def _open(qtbot: QtBot, view: FleetView, agent: str, ready: str) -> CaptureDialog:
    qtbot.waitUntil(lambda: view.agents.row_of(agent) is not None, timeout=10_000)
    view.table.selectRow(view.agents.row_of(agent) or 0)
    qtbot.waitUntil(lambda: ready in view.detail.text(), timeout=30_000)
    dialog = view.open_capture()
    assert dialog is not None
    return dialog


def test_set_refuse_count_clear_and_offline(
        qtbot: QtBot, make_window: Callable[..., MainWindow], catalog: Catalog,
        pumps: str) -> None:
    window = make_window([FleetView])
    view = show_fleet(window)
    dialog = _open(qtbot, view, "local", "Capture of pumps: nothing (none set)")
    assert dialog.model.currentText() == "pumps"
    assert dialog.current.text() == "nothing (none set)"

    # Refused by the core's check, its line shown, the agent unchanged.
    for field, text, message in (
            (dialog.share, "1.5", "capture policy: share must be a number from 0 to 1"),
            (dialog.share, "ten", "capture policy: share must be a number from 0 to 1"),
            (dialog.confidence, "2", "confidence_below must be a number in (0, 1]"),
            (dialog.cap, "2.5", "per_class_cap must be an integer >= 1")):
        dialog.share.setText("0.5")
        dialog.confidence.setText("")
        dialog.cap.setText("")
        field.setText(text)
        dialog.ok_button.click()
        qtbot.waitUntil(lambda m=message: m in dialog.error.text(), timeout=30_000)
        assert dialog.isVisible() and dialog.ok_button.isEnabled()
        assert _agent_policy(catalog, pumps) == (None, None)
    assert not (local_dir(catalog) / "capture.json").exists()

    dialog.share.setText("0.5")
    dialog.confidence.setText("0.6")
    dialog.cap.setText("5")
    dialog.while_drift.setChecked(True)
    dialog.ok_button.click()
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=30_000)
    policy, source = _agent_policy(catalog, pumps)
    assert source == "agent"
    assert (policy["share"], policy["confidence_below"], policy["per_class_cap"],
            policy["while_drift"], policy["drift_psi"]) == (0.5, 0.6, 5, True, 0.25)
    held = json.loads((local_dir(catalog) / "capture.json").read_text())
    assert held == {"pumps": policy}
    assert "Capture of pumps on local: every row while drifting" in \
        window.statusBar().currentMessage()

    # Traffic in one request (one telemetry window): at most 5 captures per class.
    agent = get_agent(catalog, "local")
    with pinned_http(agent.url, agent.tls_spki) as http:
        http.post("/v1/models/pumps/predict",
                  json={"records": mini_records(mini_frame(200, seed=3))}).raise_for_status()

    def pulled() -> int:
        pull_telemetry(catalog, "local")
        return captured_rows(catalog, "local").get("pumps", 0)

    qtbot.waitUntil(lambda: pulled() > 0, timeout=30_000)
    count = captured_rows(catalog, "local")["pumps"]
    assert count <= 10  # two classes, 5 each: the cap held, far below half of 200
    view.poll()
    qtbot.waitUntil(lambda: f"{count:,} captured rows in the catalog" in view.detail.text(),
                    timeout=30_000)
    assert "every row while drifting (PSI ≥ 0.25, windows ≥ 50 rows), confidence below " \
           "0.6, 50% at random, at most 5 per class and window (set on the agent)" in \
           view.detail.text()

    # The form opens on the policy in force; Clear goes back to the bundle's (none).
    dialog = view.open_capture()
    assert dialog is not None
    assert (dialog.share.text(), dialog.confidence.text(), dialog.cap.text(),
            dialog.while_drift.isChecked()) == ("0.5", "0.6", "5", True)
    dialog.clear_button.click()
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=30_000)
    assert _agent_policy(catalog, pumps) == (None, None)
    assert json.loads((local_dir(catalog) / "capture.json").read_text()) == {}

    # Offline between opening and Set: the core's line, nothing changed anywhere.
    dialog = view.open_capture()
    assert dialog is not None
    stop_local_agent(catalog)
    dialog.share.setText("0.1")
    dialog.ok_button.click()
    qtbot.waitUntil(lambda: "not changed" in dialog.error.text(), timeout=30_000)
    assert dialog.error.text().startswith("cannot reach agent local at ")
    assert "the capture policy of pumps was not changed" in dialog.error.text()
    assert json.loads((local_dir(catalog) / "capture.json").read_text()) == {}
    dialog.close()
    # Opened on an agent known offline: says so, offers nothing to send.
    view.poll()
    qtbot.waitUntil(lambda: view.agents.record(0).state == "offline", timeout=30_000)
    dialog = view.open_capture()
    assert dialog is not None
    assert dialog.error.text().startswith("local is offline, so its capture policy cannot "
                                          "be set now: cannot reach agent local")
    assert not dialog.ok_button.isEnabled() and not dialog.clear_button.isEnabled()
    dialog.close()
    assert not error_dialogs(window), [d.text() for d in error_dialogs(window)]


@pytest.fixture
def hub(catalog: Catalog) -> Iterator[HubHandle]:
    handle = start_test_hub(catalog, "127.0.0.1", 0, HubOptions(contact_flush_s=0.2))
    yield handle
    handle.stop()


def test_a_hub_agent_gets_the_policy_with_its_next_poll(
        qtbot: QtBot, make_window: Callable[..., MainWindow], catalog: Catalog,
        hub: HubHandle, tmp_path: Path) -> None:
    ref = register_adder(catalog, tmp_path)
    agent = enrol_and_start(catalog, tmp_path, "edge1", hub.url)
    try:
        deploy(catalog, ref, "edge1")
        window = make_window([FleetView])
        view = show_fleet(window)
        dialog = _open(qtbot, view, "edge1", "Capture of adder: nothing (none set)")
        assert "takes it with its next poll" in dialog.findChild(QLabel, "captureNote").text()
        dialog.share.setText("1")
        dialog.ok_button.click()
        qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=30_000)
        assert "pending: the agent takes it with its next poll" in \
            window.statusBar().currentMessage()
        assert capture_for(catalog.cursor(), "edge1")["adder"]["share"] == 1.0
        # Its next poll brings it, the one after reports it; the view polls every 5 s.
        qtbot.waitUntil(lambda: "Capture of adder: 100% at random (set on the agent)" in
                        view.detail.text(), timeout=30_000)
        held = json.loads((agent.dir / "capture.json").read_text())
        assert held["adder"]["share"] == 1.0
        assert not error_dialogs(window), [d.text() for d in error_dialogs(window)]
    finally:
        agent.stop()


def test_while_drift_alerts_where_the_desktop_would(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI and the dialog build the policy with one function: with capture-while-
    drifting and no PSI given, the agent switches at the desktop's alert threshold."""
    monkeypatch.setenv("OUTPOST_PSI_ALERT", "0.3")
    assert capture_policy(while_drift=True).drift_psi == 0.3
    assert capture_policy(while_drift=True, drift_psi=0.5).drift_psi == 0.5
    assert capture_policy(share=0.1, drift_psi=None).drift_psi == 0.25  # not used: default


def test_a_hub_agent_refuses_a_policy_for_a_model_it_no_longer_serves(
        qtbot: QtBot, make_window: Callable[..., MainWindow], catalog: Catalog,
        hub: HubHandle, tmp_path: Path) -> None:
    """Refused on the desktop while the agent's last poll does not list the model; once the
    policy still reaches the agent for a model removed from it, the agent refuses it (not
    stored), says so in its polls, and the Fleet view shows it; a new deployment takes it."""
    agent = enrol_and_start(catalog, tmp_path, "edge1", hub.url)

    def held() -> dict[str, Any]:
        path = agent.dir / "capture.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def refused() -> dict[str, str]:
        return agent_status(catalog, "edge1").capture_refused

    try:
        ref = register_adder(catalog, tmp_path)
        wait_until(lambda: agent_status(catalog, "edge1").runtime.get("onnxruntime"), 20,
                   "first poll")
        with pytest.raises(NotFound, match="agent edge1 does not serve adder"):
            set_capture(catalog, "edge1", "adder", capture_policy(share=1.0))
        assert capture_for(catalog.cursor(), "edge1") == {}
        deploy(catalog, ref, "edge1")  # pending: a policy may go with it
        set_capture(catalog, "edge1", "adder", capture_policy(share=1.0))
        wait_until(lambda: held().get("adder", {}).get("share") == 1.0, 20,
                   "policy applied with the deployment")
        agent.stop()
        shutil.rmtree(agent.dir / "models" / "adder")  # removed on the device
        agent = start_hub_agent(agent.dir, "edge1", hub_url=hub.url)
        # The hub still sends the policy: refused, not stored, and said so in the next poll.
        wait_until(lambda: "adder" in refused(), 20, "refusal reported")
        assert "model 'adder' is not served by this agent" in refused()["adder"]
        assert held() == {}
        assert agent.log_text().count("capture policy was not set") == 1  # logged once
        view = show_fleet(make_window([FleetView]))
        qtbot.waitUntil(lambda: view.agents.row_of("edge1") is not None, timeout=10_000)
        view.table.selectRow(view.agents.row_of("edge1") or 0)
        qtbot.waitUntil(lambda: "Capture of adder refused by the agent: model" in
                        view.detail.text(), timeout=30_000)
        assert "is not served by this agent" in view.detail.text()
        # Deployed again: the same poll installs it and takes the policy; the refusal goes.
        deploy(catalog, register_adder(catalog, tmp_path, bias=2.0), "edge1")
        wait_until(lambda: held().get("adder", {}).get("share") == 1.0, 20,
                   "policy applied after the new deployment")
        wait_until(lambda: refused() == {}, 20, "refusal cleared")
    finally:
        agent.stop()
