"""A form whose OK runs one core call as a task; the user's own mistakes show inline."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QVBoxLayout, QWidget

from app.context import AppContext
from app.tasks import Task, TaskContext
from core.errors import InvalidInput, NotFound


class TaskDialog(QDialog):
    # Errors the user can fix in the form; anything else goes to the error sink.
    inline_errors: tuple[type[Exception], ...] = (InvalidInput, NotFound)
    # False: the dialog stays open after success (to show what happened) until closed.
    closes_on_success = True

    def __init__(self, ctx: AppContext, title: str, ok_text: str, parent: QWidget | None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.result_value: Any = None
        self.setWindowTitle(title)
        self.setMinimumWidth(520)
        self.layout_ = QVBoxLayout(self)
        self.form = QFormLayout()
        self.layout_.addLayout(self.form)
        self.error = QLabel()
        self.error.setObjectName("errorText")
        self.error.setWordWrap(True)
        self.layout_.addWidget(self.error)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = self.buttons.addButton(ok_text, QDialogButtonBox.ButtonRole.AcceptRole)
        self.ok_button.setDefault(True)
        # Return means OK even while OK waits on a check; Cancel never takes over as default.
        cancel = self.buttons.button(QDialogButtonBox.StandardButton.Cancel)
        cancel.setAutoDefault(False)
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)
        self.layout_.addWidget(self.buttons)

    def submit(self) -> None:
        raise NotImplementedError

    def run(self, title: str, fn: Callable[[TaskContext], Any]) -> Task:
        self.error.setText("")
        self.ok_button.setEnabled(False)
        task = self.ctx.tasks.run(title, fn, self._done, on_error=self._failed)
        # A task cancelled from the status bar calls neither handler: offer OK again.
        task.ended.connect(self._ended)
        return task

    def _ended(self, outcome: str) -> None:
        if outcome == "cancelled":
            self.ok_button.setEnabled(True)

    def succeeded(self, result: Any) -> None:
        """Announce what changed (a catalog event) before the dialog closes."""

    def _done(self, result: Any) -> None:
        self.result_value = result
        self.ok_button.setEnabled(True)
        self.succeeded(result)
        if self.closes_on_success:
            self.accept()

    def _failed(self, exc: Exception) -> bool:
        self.ok_button.setEnabled(True)
        if isinstance(exc, self.inline_errors):
            self.error.setText(str(exc))
            return True
        return False

