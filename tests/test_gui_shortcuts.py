"""The keyboard shortcuts docs/gui.md promises, on the real window, pressed as keys."""
from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from pytestqt.qtbot import QtBot

from app.window import MainWindow
from tests.support.gui import (  # noqa: F401 (fixtures)
    catalog_fixture,
    make_window_fixture,
)

GUI_DOC = Path(__file__).resolve().parents[1] / "docs" / "gui.md"


def documented_shortcuts() -> list[str]:
    line = next(p for p in GUI_DOC.read_text().split("\n\n") if p.startswith("Shortcuts:"))
    keys = re.findall(r"(Ctrl\+(?:Shift\+)?[A-Z0-9](?:…\d)?|F\d+)", line)
    expanded = []
    for key in keys:
        if "…" in key:  # Ctrl+1…5
            first, last = key.removeprefix("Ctrl+").split("…")
            expanded += [f"Ctrl+{n}" for n in range(int(first), int(last) + 1)]
        else:
            expanded.append(key)
    return expanded


def test_every_documented_shortcut_is_bound_once(qtbot: QtBot,
                                                 make_window: Callable[..., MainWindow]) -> None:
    window = make_window()
    documented = documented_shortcuts()
    assert len(documented) == 13, documented  # Ctrl+1…5 and eight more
    bound: dict[str, list[str]] = {}
    for action in window.findChildren(QAction):
        for seq in action.shortcuts():
            text = seq.toString(QKeySequence.SequenceFormat.PortableText)
            bound.setdefault(text, []).append(action.text())
    for key in documented:
        assert len(bound.get(key, [])) == 1, f"{key}: bound to {bound.get(key)}"


def _shows(window: MainWindow, index: int) -> bool:
    return window.stack.currentIndex() == index


def test_shortcuts_act_when_pressed(qtbot: QtBot, make_window: Callable[..., MainWindow]
                                    ) -> None:
    window = make_window()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
    for index in (2, 0, len(window.views) - 1):
        qtbot.keyClick(window, Qt.Key(Qt.Key.Key_1 + index), Qt.KeyboardModifier.ControlModifier)
        qtbot.waitUntil(partial(_shows, window, index), timeout=5_000)
    dark = window.dark_action.isChecked()
    modifiers = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    qtbot.keyClick(window, Qt.Key.Key_D, modifiers)
    qtbot.waitUntil(lambda: window.dark_action.isChecked() is not dark, timeout=5_000)
    qtbot.keyClick(window, Qt.Key.Key_D, modifiers)
    qtbot.waitUntil(lambda: window.dark_action.isChecked() is dark, timeout=5_000)
