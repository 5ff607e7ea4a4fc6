"""Running background tasks in the status bar: a label, a progress bar and a cancel button each."""
from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QToolButton, QWidget

from app.tasks import Task, TaskRunner
from app.theme import Theme
from core.progress import ProgressEvent

_MAX_SHOWN = 3  # more than this and the bar says "+N more" instead of growing without end


class TaskItem(QWidget):
    def __init__(self, task: Task, theme: Theme) -> None:
        super().__init__()
        self.task = task
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 0, 0, 0)
        layout.setSpacing(4)
        self.label = QLabel(task.title)
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)  # busy until the first event says how much there is
        self.bar.setFixedWidth(110)
        self.cancel_button = QToolButton()
        self.cancel_button.setIcon(theme.icon("cancel"))
        self.cancel_button.setToolTip(f"Cancel {task.title}")
        self.cancel_button.setAutoRaise(True)
        self.cancel_button.clicked.connect(self._cancel)
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button)
        task.progressed.connect(self.update_progress)

    def update_progress(self, event: ProgressEvent) -> None:
        fraction = event.fraction
        self.label.setText(f"{self.task.title}: {event.stage}")
        if fraction is None:
            self.bar.setRange(0, 0)
        else:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(fraction * 1000))

    def _cancel(self) -> None:
        self.task.cancel()
        self.cancel_button.setEnabled(False)
        self.label.setText(f"{self.task.title}: cancelling…")


class TaskBar(QWidget):
    """Lives in the status bar; one :class:`TaskItem` per visible running task."""

    def __init__(self, runner: TaskRunner, theme: Theme) -> None:
        super().__init__()
        self.setObjectName("taskBar")
        self.theme = theme
        self.items: dict[Task, TaskItem] = {}
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self.more = QLabel()
        self.more.hide()
        self._layout.addWidget(self.more)
        runner.started.connect(self._add)
        runner.ended.connect(self._remove)

    def _add(self, task: Task) -> None:
        if not task.visible:
            return
        item = TaskItem(task, self.theme)
        self.items[task] = item
        self._layout.insertWidget(self._layout.count() - 1, item)
        self._update_overflow()

    def _remove(self, task: Task) -> None:
        item = self.items.pop(task, None)
        if item is not None:
            item.deleteLater()
            self._update_overflow()

    def _update_overflow(self) -> None:
        for index, item in enumerate(self.items.values()):
            item.setVisible(index < _MAX_SHOWN)
        hidden = len(self.items) - _MAX_SHOWN
        self.more.setText(f"+{hidden} more")
        self.more.setVisible(hidden > 0)
