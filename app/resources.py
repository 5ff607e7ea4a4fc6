"""Where the app's files live (icons, themes) and how they become Qt objects."""
from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSize, Qt
from PySide6.QtGui import QIcon, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer

RESOURCES = Path(__file__).resolve().parents[1] / "resources"
ICONS = RESOURCES / "icons"
THEMES = RESOURCES / "themes"
THEME_NAMES = ("light", "dark")
_FIELD = re.compile(r"\{([a-z_]+)\}")


@cache
def palettes() -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = json.loads((THEMES / "palettes.json").read_text("utf-8"))
    return data


def style_sheet(theme: str) -> str:
    """base.qss followed by the theme's own rules, with ``{field}`` taken from its palette."""
    colours = palettes()[theme]
    text = (THEMES / "base.qss").read_text("utf-8") + (THEMES / f"{theme}.qss").read_text("utf-8")
    return _FIELD.sub(lambda m: str(colours.get(m[1], m[0])), text)


@cache
def _svg(name: str) -> str:
    return (ICONS / f"{name}.svg").read_text("utf-8")


def icon(name: str, colour: str) -> QIcon:
    """An SVG icon drawn in ``colour``: the files use currentColor so one set serves both themes."""
    svg = _svg(name).replace("currentColor", colour)
    renderer = QSvgRenderer(QByteArray(svg.encode("utf-8")))
    result = QIcon()
    for side in (16, 24, 32, 48):
        pixmap = QPixmap(QSize(side, side))
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        renderer.render(painter)
        painter.end()
        result.addPixmap(pixmap)
    return result


def app_icon() -> QIcon:
    return QIcon(str(ICONS / "outpost.svg"))
