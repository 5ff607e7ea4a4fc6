"""What the main window needs from each view: a title, an icon, its actions, a refresh."""
from __future__ import annotations

from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMenu,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.context import AppContext


class View(QWidget):
    """A page of the main window. Subclasses fill ``self.body`` and refresh on demand."""

    title = ""
    icon_name = ""

    def __init__(self, ctx: AppContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.setObjectName(f"{type(self).__name__}")
        self._stale = True
        outer = QVBoxLayout(self)
        outer.setContentsMargins(14, 10, 14, 8)
        header = QHBoxLayout()
        heading = QLabel(self.title)
        heading.setObjectName("viewTitle")
        header.addWidget(heading)
        header.addStretch(1)
        self.toolbar = QToolBar()
        self.toolbar.setToolButtonStyle(self.toolbar.toolButtonStyle().ToolButtonTextBesideIcon)
        header.addWidget(self.toolbar)
        outer.addLayout(header)
        self.body = QVBoxLayout()
        outer.addLayout(self.body, 1)
        self._icon_actions: list[tuple[QAction, str]] = []
        self._icon_buttons: list[tuple[QToolButton, str]] = []
        ctx.theme.changed.connect(self._retheme)

    def action(self, text: str, icon: str, slot: object, shortcut: str | None = None,
               tip: str | None = None, toolbar: bool = True) -> QAction:
        """An action with a themed icon; on the view's toolbar unless ``toolbar`` is False."""
        act = QAction(self.ctx.theme.icon(icon), text, self)
        if shortcut:
            act.setShortcut(shortcut)
        act.setToolTip(tip or text)
        act.triggered.connect(slot)
        self._icon_actions.append((act, icon))
        if toolbar:
            self.toolbar.addAction(act)
        return act

    def menu_button(self, text: str, icon: str, actions: list[QAction], tip: str) -> QToolButton:
        """A toolbar button that opens a menu of `actions` (made with ``toolbar=False``)."""
        button = QToolButton()
        button.setText(text)
        button.setToolTip(tip)
        button.setToolButtonStyle(self.toolbar.toolButtonStyle())
        button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(button)
        menu.addActions(actions)
        button.setMenu(menu)
        self._icon_buttons.append((button, icon))
        button.setIcon(self.ctx.theme.icon(icon))
        self.toolbar.addWidget(button)
        return button

    def menu_actions(self) -> list[QAction]:
        """Actions the window lists in this view's menu (all of them by default)."""
        return [act for act, _ in self._icon_actions]

    def mark_stale(self) -> None:
        """Data changed: refresh now if visible, else when next shown."""
        self._stale = True
        if self.isVisible():
            self.activate()

    def activate(self) -> None:
        if self._stale:
            self._stale = False
            self.refresh()

    def refresh(self) -> None:
        raise NotImplementedError

    def _retheme(self) -> None:
        for act, name in self._icon_actions:
            act.setIcon(self.ctx.theme.icon(name))
        for button, name in self._icon_buttons:
            button.setIcon(self.ctx.theme.icon(name))
        self.retheme()

    def retheme(self) -> None:
        """Views with plots recolour them here."""

    def save_state(self) -> dict[str, object]:
        """Splitter positions and the like, kept in QSettings by the window."""
        return {}

    def restore_state(self, state: dict[str, object]) -> None:
        del state
