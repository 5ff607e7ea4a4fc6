"""History: the audit trail as a time line per agent or per model, and "what was serving
here at…" answered for a chosen date and time (``outpost audit at`` / ``audit log``)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QDateTime, Qt, QTimeZone
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateTimeEdit,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
)

from app.context import AppContext
from app.views.base import View

if TYPE_CHECKING:
    from core.audit.query import LogEntry
    from core.catalog import Catalog

AGENT, MODEL = "Agent", "Model"
COLUMNS = ["#", "when (UTC)", "event", "agent", "model", "version", "by", "detail"]


@dataclass(frozen=True)
class Timeline:
    agents: list[str]
    models: list[str]
    entries: list[LogEntry]
    scope: str
    name: str | None


def load_timeline(catalog: Catalog, scope: str, name: str | None) -> Timeline:
    from core.audit.query import audit_log, audit_subjects

    agents, models = audit_subjects(catalog)
    names = agents if scope == AGENT else models
    if name not in names:
        name = names[0] if names else None
    entries = [] if name is None else audit_log(
        catalog, agent=name if scope == AGENT else None, model=name if scope == MODEL else None)
    return Timeline(agents, models, entries, scope, name)


def serving_answers(catalog: Catalog, scope: str, name: str, when: datetime
                    ) -> list[dict[str, Any]]:
    from core.audit.query import serving_at, serving_for_model

    if scope == AGENT:
        return list(serving_at(catalog, name, when)["models"])
    return [m for answer in serving_for_model(catalog, name, when) for m in answer["models"]]


def answer_text(when: datetime, answers: list[dict[str, Any]]) -> str:
    stamp = when.strftime("%Y-%m-%d %H:%M:%S UTC")
    if not answers:
        return f"At {stamp}: nothing was serving here (no deployment on record)."
    lines = []
    for a in answers:
        agent_view = a["evidence"]["agent"]
        said = f"agent says v{agent_view['version']}" if agent_view else "no agent record"
        lines.append(f"At {stamp}: {a['agent']} served {a['model']}@{a['version']} since "
                     f"{a['since']} (event #{a['deployed_by_event']}; {said})")
    return "\n".join(lines)


def _detail(entry: LogEntry) -> str:
    detail = dict(entry.detail)
    if entry.agent_seq is not None:
        detail["agent_seq"] = entry.agent_seq
    return ", ".join(f"{k}={v}" for k, v in detail.items() if v is not None and k != "parity")


class HistoryView(View):
    title = "History"
    icon_name = "history"

    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx)
        self.scope_box = QComboBox()
        self.scope_box.setObjectName("historyScope")
        self.scope_box.addItems([AGENT, MODEL])
        self.name_box = QComboBox()
        self.name_box.setObjectName("historyName")
        self.name_box.setMinimumWidth(140)
        self.when_edit = QDateTimeEdit()
        self.when_edit.setObjectName("historyWhen")
        self.when_edit.setTimeZone(QTimeZone.utc())
        self.when_edit.setDisplayFormat("yyyy-MM-dd HH:mm:ss 'UTC'")
        self.when_edit.setCalendarPopup(True)
        self.when_edit.setDateTime(QDateTime.currentDateTimeUtc())
        for label, widget in (("Show", self.scope_box), ("", self.name_box),
                              ("Serving at", self.when_edit)):
            if label:
                self.toolbar.addWidget(QLabel(f" {label} "))
            self.toolbar.addWidget(widget)
        self.ask_action = self.action("What was serving here at…", "history", self.ask, None,
                                      "Which model version served here at the chosen time")
        self.action("Refresh", "refresh", self.refresh)
        self.scope_box.activated.connect(lambda _=0: self.refresh())
        self.name_box.activated.connect(lambda _=0: self.refresh())

        self.answer = QLabel("Pick a time and ask what was serving.")
        self.answer.setObjectName("historyAnswer")
        self.answer.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.answer.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("historyTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(len(COLUMNS) - 1,
                                                           QHeaderView.ResizeMode.Stretch)
        self.body.addWidget(self.answer)
        self.body.addWidget(self.table, 1)
        self.timeline: Timeline | None = None
        for signal in (ctx.events.models_changed, ctx.events.agents_changed,
                       ctx.events.telemetry_changed):
            signal.connect(lambda: self.mark_stale())

    def refresh(self) -> None:
        scope, name = self.scope_box.currentText(), self.name_box.currentText() or None
        self.ctx.tasks.run("Load history", lambda c: load_timeline(c.catalog, scope, name),
                           self.show_timeline, visible=False, key="history")

    def show_timeline(self, timeline: Timeline) -> None:
        self.timeline = timeline
        names = timeline.agents if timeline.scope == AGENT else timeline.models
        self.name_box.clear()
        self.name_box.addItems(names)
        if timeline.name is not None:
            self.name_box.setCurrentText(timeline.name)
        self.table.setRowCount(len(timeline.entries))
        for row, e in enumerate(reversed(timeline.entries)):  # newest first
            event = e.detail.get("event", e.kind) if e.kind == "agent_event" else e.kind
            values = [e.position, e.at.replace("T", " ")[:19], event, e.agent or "",
                      e.model or "", "" if e.version is None else e.version,
                      e.actor, _detail(e)]
            for col, value in enumerate(values):
                self.table.setItem(row, col, QTableWidgetItem(str(value)))
        self.table.resizeColumnsToContents()

    def chosen_time(self) -> datetime:
        return datetime.fromtimestamp(self.when_edit.dateTime().toSecsSinceEpoch(), UTC)

    def ask(self) -> None:
        name = self.name_box.currentText()
        if not name:
            self.answer.setText("Nothing recorded yet: deploy a model first.")
            return
        scope, when = self.scope_box.currentText(), self.chosen_time()
        self.answer.setText("Looking it up…")
        self.ctx.tasks.run("What was serving",
                           lambda c: serving_answers(c.catalog, scope, name, when),
                           lambda answers: self.answer.setText(answer_text(when, answers)),
                           visible=False, key="history-at")
