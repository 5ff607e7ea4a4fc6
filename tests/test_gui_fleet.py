"""The Fleet view against a real local agent: status, deploy with the compatibility check,
roll back, bundles to files, telemetry files, and an unreachable agent."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from app.views.fleet import FleetView
from app.window import MainWindow
from core.catalog import Catalog
from core.fleet.agents import add_agent
from core.fleet.local import stop_local_agent
from core.keys import signing_key
from core.registry import register_model, resolve_model
from edge_agent.contract.tls import short, spki_sha256_of_file
from tests.support.agents import free_port
from tests.support.fleet import start_agent, train_mini
from tests.support.gui import (  # noqa: F401 (fixtures)
    catalog_fixture,
    dismiss_errors,
    error_dialogs,
    make_window_fixture,
    show_fleet,
)

pytestmark = [
    pytest.mark.xdist_group("fleet"),
]


@pytest.fixture
def model(catalog: Catalog) -> Iterator[str]:
    train_mini(catalog, "pumps")
    yield "pumps"
    stop_local_agent(catalog)


def _online(view: FleetView, name: str) -> bool:
    row = view.agents.row_of(name)
    return row is not None and view.agents.record(row).state == "online"


def test_unreachable_agent_shows_its_message_and_window_stays_usable(
        qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    window = make_window([FleetView])
    view = show_fleet(window)
    dialog = view.open_add()
    dialog.name.setText("field-7")
    dialog.url.setText(f"http://127.0.0.1:{free_port()}")
    dialog.token.setText("whatever")
    dialog.ok_button.click()
    qtbot.waitUntil(lambda: "cannot reach agent field-7" in dialog.error.text(), timeout=30_000)
    assert dialog.isVisible()
    assert not error_dialogs(window), [(d.text(), d.detailedText()) for d in error_dialogs(window)]
    dialog.close()
    view.refresh()
    qtbot.waitUntil(lambda: "No agents yet" in view.detail.text(), timeout=5000)


def test_local_agent_deploy_rollback_bundle_and_going_offline(
        qtbot: QtBot, make_window: Callable[..., MainWindow], catalog: Catalog, model: str,
        tmp_path: Path) -> None:
    window = make_window([FleetView])
    view = show_fleet(window)
    view.start_action.trigger()
    qtbot.waitUntil(lambda: _online(view, "local"), timeout=60_000)
    assert "onnxruntime" in view.detail.text()

    dialog = view.open_deploy()
    qtbot.waitUntil(lambda: dialog.compatible is not None, timeout=30_000)
    assert dialog.compatible is not None and dialog.compatible.ok
    assert dialog.compatibility.text().startswith("✓ Compatible: pumps@1 needs opset")
    assert dialog.version.currentText() == "pumps@1 (production)"
    dialog.ok_button.click()
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=60_000)
    qtbot.waitUntil(lambda: "pumps@1" in view.agents.data(view.agents.index(0, 4)),
                    timeout=30_000)
    qtbot.waitUntil(lambda: len(view.deployments.records) == 1, timeout=10_000)

    # Nothing to go back to yet: the agent's refusal shows in the dialog.
    back = view.open_rollback()
    assert back is not None and back.model.currentText() == "pumps"
    back.ok_button.click()
    qtbot.waitUntil(lambda: "no previous version" in back.error.text(), timeout=30_000)
    back.close()

    run = resolve_model(catalog, "pumps@1").run
    assert run is not None
    register_model(catalog, run, "pumps")
    dialog = view.open_deploy()
    qtbot.waitUntil(lambda: dialog.compatible is not None, timeout=30_000)
    assert dialog.version.currentText() == "pumps@1 (production)"  # production by default
    dialog.version.setCurrentIndex(dialog.version.findText("pumps@2"))
    qtbot.waitUntil(lambda: dialog.compatible is not None and dialog.ok_button.isEnabled(),
                    timeout=30_000)
    dialog.ok_button.click()
    qtbot.waitUntil(lambda: "pumps@2" in view.agents.data(view.agents.index(0, 4)),
                    timeout=60_000)
    back = view.open_rollback()
    assert back is not None
    back.ok_button.click()
    qtbot.waitUntil(lambda: "pumps@1" in view.agents.data(view.agents.index(0, 4)),
                    timeout=60_000)

    bundle = view.open_bundle()
    qtbot.waitUntil(lambda: bundle.version.count() == 2, timeout=5000)
    bundle.path.setText(str(tmp_path / "no-such-stick" / "pumps-2.outpost"))
    bundle.ok_button.click()
    qtbot.waitUntil(lambda: "cannot write bundle" in bundle.error.text(), timeout=30_000)
    bundle.path.setText(str(tmp_path / "pumps-2.outpost"))
    bundle.ok_button.click()
    qtbot.waitUntil(lambda: not bundle.isVisible(), timeout=30_000)
    assert (tmp_path / "pumps-2.outpost").is_file()

    view.stop_action.trigger()
    qtbot.waitUntil(lambda: view.agents.record(0).state == "offline", timeout=30_000)
    assert "cannot reach agent local" in view.agents.data(view.agents.index(0, 9))
    assert not error_dialogs(window), [(d.text(), d.detailedText()) for d in error_dialogs(window)]


def test_bad_telemetry_file_shows_its_message(
        qtbot: QtBot, make_window: Callable[..., MainWindow], tmp_path: Path) -> None:
    window = make_window([FleetView])
    view = show_fleet(window)
    bad = tmp_path / "site.telemetry"
    bad.write_text("this is not a telemetry export\n")
    view.import_telemetry_file(bad)
    qtbot.waitUntil(lambda: bool(error_dialogs(window)), timeout=10_000)
    assert "site.telemetry" in error_dialogs(window)[0].text()
    dismiss_errors(window)


def test_pinned_fingerprint_and_the_badge_when_pinning_fails(
        qtbot: QtBot, make_window: Callable[..., MainWindow], catalog: Catalog,
        tmp_path: Path) -> None:
    agent = start_agent(tmp_path / "one", signing_key(catalog))
    try:
        add_agent(catalog, "field-7", agent.url, agent.token)
        pinned = spki_sha256_of_file(tmp_path / "one" / "tls.crt")
        window = make_window([FleetView])
        view = show_fleet(window)
        column = [c.header for c in view.agents.columns].index("TLS key")

        def pin_cell() -> str:
            row = view.agents.row_of("field-7")
            return "" if row is None else str(
                view.agents.data(view.agents.index(row, column)))

        qtbot.waitUntil(lambda: _online(view, "field-7"), timeout=30_000)
        assert pin_cell() == short(pinned)
        assert f"TLS certificate key pinned: {pinned}" in view.detail.text()
        assert "PIN FAILED" not in view.detail.text()
        agent.stop()
        agent = start_agent(tmp_path / "two", signing_key(catalog), port=agent.port,
                            token=agent.token)  # another device, another certificate
        view.poll()
        qtbot.waitUntil(lambda: pin_cell() == "PIN FAILED", timeout=30_000)
        assert "PIN FAILED" in view.detail.text()
        assert f"not the pinned {short(pinned)}" in view.detail.text()
        assert not error_dialogs(window), [d.text() for d in error_dialogs(window)]
    finally:
        agent.stop()
