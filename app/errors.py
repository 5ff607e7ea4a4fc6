"""The one error sink: every failure the user should see goes through :class:`ErrorSink`.

It shows the one-line message in a dialog whose details (the traceback) expand on
demand, and appends the traceback to ``logs/gui-errors.log`` under OUTPOST_HOME.
"""
from __future__ import annotations

import datetime as dt
import traceback
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from core.errors import OutpostError


def one_line(exc: BaseException) -> str:
    """What the user reads: our own errors are already worded; anything else is a bug."""
    if isinstance(exc, OutpostError):
        text = str(exc)
    else:
        text = f"internal error: {type(exc).__name__}: {exc}"
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def details(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


class ErrorDialog(QMessageBox):
    """One line up front, the traceback behind "Show Details…"."""

    def __init__(self, parent: QWidget | None, title: str, message: str, detail: str) -> None:
        super().__init__(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok,
                         parent)
        self.setObjectName("errorDialog")
        self.setDetailedText(detail)
        self.message = message


class ErrorSink(QObject):
    """Shows and logs errors; signals ``reported`` with the one-line message."""

    reported = Signal(str)

    def __init__(self, log_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.log_path = log_dir / "gui-errors.log"
        self.window = parent
        self.dialogs: list[ErrorDialog] = []

    def report(self, exc: BaseException, context: str | None = None) -> None:
        message = one_line(exc)
        detail = details(exc)
        self._log(message, context, detail)
        self.show(message, context, detail)

    def show(self, message: str, context: str | None = None, detail: str = "") -> None:
        """Show a message that did not come from an exception (a refused action, say)."""
        self.reported.emit(message)
        # The same failure repeating (a poll, a retry) gets one dialog, not a stack of them.
        if any(d.isVisible() and d.message == message for d in self.dialogs):
            return
        title = f"Outpost — {context}" if context else "Outpost"
        dialog = ErrorDialog(self.window, title, message, detail)
        dialog.finished.connect(lambda _=0, d=dialog: self._forget(d))
        self.dialogs.append(dialog)
        # open(), not exec(): window-modal without a nested event loop, so work keeps flowing.
        dialog.open()

    def _forget(self, dialog: ErrorDialog) -> None:
        if dialog in self.dialogs:
            self.dialogs.remove(dialog)
        dialog.deleteLater()

    def _log(self, message: str, context: str | None, detail: str) -> None:
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            stamp = dt.datetime.now().isoformat(timespec="seconds")
            with self.log_path.open("a", encoding="utf-8") as fh:
                fh.write(f"{stamp} {context or 'error'}: {message}\n{detail}\n")
        except OSError:
            pass  # a log we cannot write must not hide the dialog the user needs to see
