"""The hub toggle and hub enrolment in the Fleet view: a real hub in the GUI process, a real
hub-mode agent process polling it, a port already taken, and quitting with the hub on."""
from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from pytestqt.qtbot import QtBot

from app.views.fleet import FleetView
from app.window import MainWindow
from tests.support.agents import free_port, trust_cert, verify_for
from tests.support.gui import (  # noqa: F401 (fixtures)
    catalog_fixture,
    dismiss_errors,
    error_dialogs,
    make_window_fixture,
    show_fleet,
)
from tests.support.hub import HubAgent, start_hub_agent

pytestmark = [pytest.mark.xdist_group("fleet")]


@pytest.fixture
def agents() -> Iterator[list[HubAgent]]:
    started: list[HubAgent] = []
    yield started
    for agent in started:
        agent.stop()


def _answers(url: str) -> bool:
    try:
        httpx.get(f"{url}/", timeout=2, verify=verify_for(url))
    except httpx.TransportError:
        return False
    return True


def _hub_agent_online(view: FleetView, name: str) -> bool:
    row = view.agents.row_of(name)
    if row is None:
        view.refresh()
        return False
    record = view.agents.record(row)
    if record.state != "online":
        view.poll()
    return record.record.mode == "hub" and record.state == "online"


def test_port_in_use_is_one_line_and_the_window_stays_usable(
        qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    window = make_window([FleetView])
    view = show_fleet(window)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = int(taken.getsockname()[1])
        view.hub_port.setValue(port)
        view.hub_action.trigger()
        qtbot.waitUntil(lambda: bool(error_dialogs(window)), timeout=10_000)
    dialog = error_dialogs(window)[0]
    assert dialog.text() == f"hub cannot listen on 127.0.0.1:{port}: address already in use"
    assert "\n" not in dialog.text()
    dismiss_errors(window)
    assert not view.hub_action.isChecked() and view.hub_action.isEnabled()
    assert view.hub_state.text() == "Hub stopped" and view.hub_port.isEnabled()
    assert not view.hub.running


def test_hub_toggle_serves_an_enrolled_agent_and_stops(
        qtbot: QtBot, make_window: Callable[..., MainWindow], tmp_path: Path,
        agents: list[HubAgent]) -> None:
    window = make_window([FleetView])
    view = show_fleet(window)
    port = free_port()
    view.hub_port.setValue(port)
    view.hub_action.trigger()
    url = f"https://127.0.0.1:{port}"
    trust_cert(url, window.ctx.catalog.settings.hub_tls_dir / "tls.crt")
    qtbot.waitUntil(lambda: view.hub_state.text() == f"Hub serving on {url}", timeout=15_000)
    assert view.hub_action.isChecked() and not view.hub_port.isEnabled()
    assert view.hub_badge.isVisible() and view.hub_badge.text() == f"Hub: {url}"
    assert _answers(url)
    window.save_settings()
    assert view.save_state()["hub_port"] == port
    assert window.settings.value("views/FleetView")["hub_port"] == port

    enrol = tmp_path / "gate-3.enrol"
    view.enrol_for_hub("gate-3", enrol)
    qtbot.waitUntil(enrol.is_file, timeout=10_000)
    assert f'"hub_url": "{url}"' in enrol.read_text()
    agents.append(start_hub_agent(tmp_path / "gate-3", "gate-3", enrol=enrol))
    qtbot.waitUntil(lambda: _hub_agent_online(view, "gate-3"), timeout=20_000)
    assert not error_dialogs(window), [d.text() for d in error_dialogs(window)]

    view.hub_action.trigger()
    qtbot.waitUntil(lambda: view.hub_state.text() == "Hub stopped", timeout=15_000)
    assert not view.hub_action.isChecked() and not view.hub_badge.isVisible()
    assert not _answers(url)

    # Enrolling the same name again is refused with the core's one line.
    view.enrol_for_hub("gate-3", tmp_path / "again.enrol")
    qtbot.waitUntil(lambda: bool(error_dialogs(window)), timeout=10_000)
    assert "already enrolled for the hub" in dismiss_errors(window)[0]


def test_quitting_stops_the_hub(qtbot: QtBot, make_window: Callable[..., MainWindow]) -> None:
    window = make_window([FleetView])
    view = show_fleet(window)
    port = free_port()
    view.hub_port.setValue(port)
    view.hub_action.trigger()
    qtbot.waitUntil(lambda: view.hub.running, timeout=15_000)
    url = f"https://127.0.0.1:{port}"
    trust_cert(url, window.ctx.catalog.settings.hub_tls_dir / "tls.crt")
    assert _answers(url)
    window.close()
    assert not view.hub.running
    assert not _answers(url)
