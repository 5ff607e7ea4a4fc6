"""The window holds the catalog; `outpost` in another process still works, and the window
shows what it changed without a restart (real window, real CLI processes, real hub)."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from app.cli_bridge import CliBridge
from app.views.datasets import DatasetsView
from app.views.fleet import FleetView
from app.window import MainWindow
from tests.support.agents import free_port, trust_cert
from tests.support.forwarding import operate_hub_from_cli, popen_in
from tests.support.gui import (  # noqa: F401 (fixtures)
    Heartbeat,
    catalog_fixture,
    error_dialogs,
    make_window_fixture,
)


@pytest.fixture
def bridged(make_window: Callable[..., MainWindow]) -> Iterator[tuple[MainWindow, CliBridge]]:
    window = make_window()
    bridge = CliBridge(window.ctx, window)
    assert bridge.start()
    yield window, bridge
    assert bridge.stop()


def _cli(qtbot: QtBot, home: Path, work: Path, *args: str) -> str:
    """Run `outpost ARGS` while the UI thread keeps turning; its stdout."""
    proc = popen_in(home, work, *args)
    qtbot.waitUntil(lambda: proc.poll() is not None, timeout=60_000)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    return out


def test_cli_changes_show_in_the_open_window(
        qtbot: QtBot, bridged: tuple[MainWindow, CliBridge], outpost_home: Path,
        tmp_path: Path) -> None:
    window, _ = bridged
    datasets = window.view(DatasetsView)
    assert isinstance(datasets, DatasetsView)
    window.show_view(window.views.index(datasets))
    (tmp_path / "pumps.csv").write_text("temp,site\n1.5,north\n2.5,south\n")
    with Heartbeat() as beat:
        _cli(qtbot, outpost_home, tmp_path, "dataset", "import", "pumps.csv", "--json")
        qtbot.waitUntil(lambda: [d.name for d in datasets.datasets.records] == ["pumps"],
                        timeout=3_000)  # ~0.3 s when idle; slack for a loaded machine
    assert beat.max_gap_ms < 1_000  # the window kept answering while the command ran

    fleet = window.view(FleetView)
    assert isinstance(fleet, FleetView)
    window.show_view(window.views.index(fleet))
    _cli(qtbot, outpost_home, tmp_path, "agent", "enroll", "gate-7", "--out", "gate.enrol",
         "--json")
    qtbot.waitUntil(lambda: fleet.agents.row_of("gate-7") is not None, timeout=3_000)
    assert (tmp_path / "gate.enrol").is_file()
    assert not error_dialogs(window)


def test_hub_in_the_window_operated_entirely_from_the_cli(
        qtbot: QtBot, bridged: tuple[MainWindow, CliBridge], outpost_home: Path,
        tmp_path: Path) -> None:
    window, bridge = bridged
    fleet = window.view(FleetView)
    assert isinstance(fleet, FleetView)
    window.show_view(window.views.index(fleet))
    port = free_port()
    fleet.hub_port.setValue(port)
    fleet.hub_action.trigger()
    url = f"https://127.0.0.1:{port}"
    trust_cert(url, window.ctx.catalog.settings.hub_tls_dir / "tls.crt")
    qtbot.waitUntil(lambda: fleet.hub_state.text() == f"Hub serving on {url}", timeout=15_000)
    operate_hub_from_cli(outpost_home, tmp_path, url)
    assert bridge.server.completed >= 10
    fleet.hub_action.trigger()
    qtbot.waitUntil(lambda: fleet.hub_state.text() == "Hub stopped", timeout=15_000)
    assert not error_dialogs(window)
