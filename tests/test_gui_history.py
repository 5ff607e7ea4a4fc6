"""The History view: the audit time line per agent and per model, and "what was serving
here at…" from the date/time picker, answered on a worker thread."""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PySide6.QtCore import QDateTime
from pytestqt.qtbot import QtBot

from app.views.history import MODEL, HistoryView
from app.window import MainWindow
from core.catalog import Catalog
from core.telemetry.ingest import import_telemetry
from edge_agent.contract.audit_events import AgentEvent, sign_event
from tests.support.fleet import enrol_row, export_file, new_identity, train_mini
from tests.support.gui import (  # noqa: F401 (fixtures)
    catalog_fixture,
    error_dialogs,
    make_window_fixture,
)

pytestmark = pytest.mark.xdist_group("fleet")
T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def _agent_history(catalog: Catalog, tmp_path: Path) -> None:
    """pumps v1 then v2 registered; the agent activated v1 at T0 and v2 an hour later."""
    train_mini(catalog)
    train_mini(catalog)
    identity = new_identity()
    enrol_row(catalog, "site-a", identity, agent_id="id-a")
    events = [AgentEvent("id-a", "boot", 1, T0, "activate", "pumps", 1),
              AgentEvent("id-a", "boot", 2, T0 + 3600, "activate", "pumps", 2, previous=1)]
    records = [{"seq": e.seq, **sign_event(e, identity)} for e in events]
    import_telemetry(catalog, export_file(tmp_path / "t.ndjson", records, identity, "id-a"))


def _pick(view: HistoryView, unix: float) -> None:
    view.when_edit.setDateTime(QDateTime.fromSecsSinceEpoch(int(unix)))


def test_history_timeline_and_what_was_serving_at(
        qtbot: QtBot, make_window: Callable[..., MainWindow], catalog: Catalog,
        tmp_path: Path) -> None:
    _agent_history(catalog, tmp_path)
    window = make_window([HistoryView])
    view = window.view(HistoryView)
    assert isinstance(view, HistoryView)
    view.activate()
    qtbot.waitUntil(lambda: view.table.rowCount() == 2, timeout=10_000)
    assert view.name_box.currentText() == "site-a"
    newest = [view.table.item(0, c).text() for c in range(view.table.columnCount())]
    assert newest[2:6] == ["activate", "site-a", "pumps", "2"]

    _pick(view, T0 + 1800)  # between the two activations
    view.ask_action.trigger()
    qtbot.waitUntil(lambda: "pumps@1" in view.answer.text(), timeout=10_000)
    assert "2027-01-15 08:30:00 UTC" in view.answer.text()
    _pick(view, T0 + 7200)
    view.ask_action.trigger()
    qtbot.waitUntil(lambda: "pumps@2" in view.answer.text(), timeout=10_000)
    _pick(view, T0 - 60)
    view.ask_action.trigger()
    qtbot.waitUntil(lambda: "nothing was serving" in view.answer.text(), timeout=10_000)
    assert view.chosen_time() == datetime.fromtimestamp(T0 - 60, UTC)

    view.scope_box.setCurrentText(MODEL)  # the model's time line: registrations, aliases too
    view.refresh()
    qtbot.waitUntil(lambda: view.table.rowCount() >= 6, timeout=10_000)
    events = {view.table.item(r, 2).text() for r in range(view.table.rowCount())}
    assert {"register", "alias", "activate"} <= events
    _pick(view, T0 + 7200)
    view.ask_action.trigger()
    qtbot.waitUntil(lambda: "site-a served pumps@2" in view.answer.text(), timeout=10_000)
    assert not error_dialogs(window)
