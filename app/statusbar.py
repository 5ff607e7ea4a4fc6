"""A message in the main window's status bar, from any widget inside it."""
from __future__ import annotations

from PySide6.QtWidgets import QMainWindow, QWidget


def say(widget: QWidget, text: str, ms: int = 8000) -> None:
    window = widget.window()
    if isinstance(window, QMainWindow):
        window.statusBar().showMessage(text, ms)
