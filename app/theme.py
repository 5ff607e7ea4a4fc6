"""Light and dark themes: Fusion style, a palette, the QSS files and matching plot colours."""
from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication

from app import resources


class Theme(QObject):
    """The current theme. Views ask it for icons and colours and repaint on ``changed``."""

    changed = Signal(str)

    def __init__(self, name: str = "light") -> None:
        super().__init__()
        self.name = name if name in resources.THEME_NAMES else "light"

    @property
    def colours(self) -> dict[str, Any]:
        return resources.palettes()[self.name]

    def colour(self, key: str) -> str:
        return str(self.colours[key])

    def series(self, index: int) -> str:
        series: list[str] = self.colours["series"]
        return series[index % len(series)]

    def icon(self, name: str) -> QIcon:
        return resources.icon(name, self.colour("icon"))

    def apply(self, app: QApplication, name: str | None = None) -> None:
        if name is not None and name in resources.THEME_NAMES:
            self.name = name
        app.setStyle("Fusion")
        app.setPalette(self._palette())
        app.setStyleSheet(resources.style_sheet(self.name))
        pg.setConfigOptions(
            background=self.colour("plot_background"),
            foreground=self.colour("plot_foreground"),
            antialias=True,
        )
        self.changed.emit(self.name)

    def _palette(self) -> QPalette:
        c = self.colours
        palette = QPalette()
        roles = {
            QPalette.ColorRole.Window: c["window"],
            QPalette.ColorRole.WindowText: c["text"],
            QPalette.ColorRole.Base: c["base"],
            QPalette.ColorRole.AlternateBase: c["alternate"],
            QPalette.ColorRole.Text: c["text"],
            QPalette.ColorRole.Button: c["button"],
            QPalette.ColorRole.ButtonText: c["text"],
            QPalette.ColorRole.Highlight: c["highlight"],
            QPalette.ColorRole.HighlightedText: c["highlight_text"],
            QPalette.ColorRole.ToolTipBase: c["base"],
            QPalette.ColorRole.ToolTipText: c["text"],
            QPalette.ColorRole.PlaceholderText: c["muted"],
            QPalette.ColorRole.Link: c["accent"],
        }
        for role, value in roles.items():
            palette.setColor(role, QColor(value))
        palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor(c["muted"]))
        palette.setColor(
            QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor(c["muted"])
        )
        return palette
