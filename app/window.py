"""The main window: navigation between the views, menus, the status bar with running tasks."""
from __future__ import annotations

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.about import AboutDialog
from app.context import AppContext
from app.first_start import offer_samples
from app.resources import app_icon
from app.views.base import View
from app.warmup import warm_up
from app.widgets.task_bar import TaskBar

_QUIT_WAIT_MS = 15_000


class Banner(QFrame):
    """A dismissible line above the views, for news the user should not miss."""

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("banner")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 6, 6, 6)
        self.label = QLabel()
        self.label.setWordWrap(True)
        close = QToolButton()
        close.setText("✕")
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        layout.addWidget(self.label, 1)
        layout.addWidget(close)
        self.hide()

    def say(self, text: str) -> None:
        self.label.setText(text)
        self.show()


class MainWindow(QMainWindow):
    def __init__(self, ctx: AppContext, views: list[View], settings: QSettings) -> None:
        super().__init__()
        self.ctx = ctx
        self.settings = settings
        self.views = views
        self.setWindowTitle("Outpost")
        self.setWindowIcon(app_icon())
        self.setObjectName("mainWindow")
        ctx.sink.window = self

        self.nav = QListWidget()
        self.nav.setObjectName("navigation")
        self.nav.setFixedWidth(170)
        self.stack = QStackedWidget()
        for view in views:
            self.nav.addItem(QListWidgetItem(ctx.theme.icon(view.icon_name), view.title))
            self.stack.addWidget(view)
        self.nav.currentRowChanged.connect(self.show_view)

        self.banner = Banner()
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(8, 8, 8, 0)
        right_layout.addWidget(self.banner)
        right_layout.addWidget(self.stack, 1)
        central = QWidget()
        central_layout = QHBoxLayout(central)
        central_layout.setContentsMargins(0, 0, 0, 0)
        central_layout.setSpacing(0)
        central_layout.addWidget(self.nav)
        central_layout.addWidget(right, 1)
        self.setCentralWidget(central)

        self.catalog_label = QLabel(f"Catalog: {ctx.catalog.path}")
        self.catalog_label.setObjectName("catalogPath")
        self.task_bar = TaskBar(ctx.tasks, ctx.theme)
        # Permanent widgets are never covered by the transient messages on the left.
        self.statusBar().addPermanentWidget(self.task_bar)
        self.statusBar().addPermanentWidget(self.catalog_label)
        ctx.tasks.message.connect(lambda text: self.statusBar().showMessage(text, 6000))
        ctx.sink.reported.connect(lambda text: self.statusBar().showMessage(text, 6000))
        ctx.theme.changed.connect(self._retheme)

        self._build_menus()
        self._restore()

    # --- navigation -------------------------------------------------------------------------
    def show_view(self, index: int) -> None:
        if not 0 <= index < len(self.views):
            return
        if self.nav.currentRow() != index:
            self.nav.setCurrentRow(index)  # re-enters through currentRowChanged
            return
        self.stack.setCurrentIndex(index)
        self.views[index].activate()

    def view(self, cls: type[View]) -> View:
        return next(v for v in self.views if isinstance(v, cls))

    def current_view(self) -> View:
        return self.views[self.stack.currentIndex()]

    # --- menus ------------------------------------------------------------------------------
    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.quit_action = QAction("&Quit", self)
        self.quit_action.setShortcut("Ctrl+Q")  # StandardKey.Quit is empty on some platforms
        self.quit_action.triggered.connect(self.close)
        for view in self.views:
            menu = bar.addMenu(f"&{view.title}")
            menu.addActions(view.menu_actions())
        file_menu.addAction(self.quit_action)

        view_menu = bar.addMenu("&View")
        for index, view in enumerate(self.views):
            act = QAction(view.title, self)
            act.setShortcut(f"Ctrl+{index + 1}")
            act.triggered.connect(lambda _=False, i=index: self.show_view(i))
            view_menu.addAction(act)
        view_menu.addSeparator()
        refresh = QAction("&Refresh", self)
        refresh.setShortcut("F5")
        refresh.triggered.connect(lambda: self.current_view().refresh())
        view_menu.addAction(refresh)
        self.dark_action = QAction("&Dark Theme", self)
        self.dark_action.setCheckable(True)
        self.dark_action.setChecked(self.ctx.theme.name == "dark")
        self.dark_action.setShortcut("Ctrl+Shift+D")
        self.dark_action.toggled.connect(self._set_dark)
        view_menu.addAction(self.dark_action)

        tasks_menu = bar.addMenu("&Tasks")
        cancel_all = QAction("&Cancel All Tasks", self)
        cancel_all.setShortcut("Ctrl+Shift+X")
        cancel_all.triggered.connect(self.ctx.tasks.cancel_all)
        tasks_menu.addAction(cancel_all)

        help_menu = bar.addMenu("&Help")
        about = QAction("&About Outpost", self)
        about.setShortcut(QKeySequence.StandardKey.HelpContents)
        about.triggered.connect(self.show_about)
        help_menu.addAction(about)

    def offer_samples(self) -> None:
        offer_samples(self.ctx, self.settings, self.banner.say)

    def warm_up(self) -> None:
        self.ctx.tasks.run("Load libraries", lambda c: warm_up(), visible=False)

    def show_about(self) -> AboutDialog:
        dialog = AboutDialog(self, str(self.ctx.catalog.path), self.ctx.tasks)
        dialog.open()
        return dialog

    def _set_dark(self, dark: bool) -> None:
        app = QApplication.instance()
        if isinstance(app, QApplication):
            self.ctx.theme.apply(app, "dark" if dark else "light")

    def _retheme(self) -> None:
        for index, view in enumerate(self.views):
            item = self.nav.item(index)
            if item is not None:
                item.setIcon(self.ctx.theme.icon(view.icon_name))
        self.dark_action.setChecked(self.ctx.theme.name == "dark")

    # --- state across restarts ----------------------------------------------------------
    def _restore(self) -> None:
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 800)
        state = self.settings.value("window/state")
        if isinstance(state, QByteArray):
            self.restoreState(state)
        for view in self.views:
            saved = self.settings.value(f"views/{type(view).__name__}")
            if isinstance(saved, dict):
                view.restore_state(saved)
        index = int(str(self.settings.value("window/view", 0) or 0))
        self.nav.setCurrentRow(index if 0 <= index < len(self.views) else 0)

    def save_settings(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("window/view", self.stack.currentIndex())
        self.settings.setValue("theme", self.ctx.theme.name)
        for view in self.views:
            self.settings.setValue(f"views/{type(view).__name__}", view.save_state())
        self.settings.sync()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        self.save_settings()
        if self.ctx.tasks.running():
            self.statusBar().showMessage("Cancelling running tasks…")
        # Cancel through the same tokens the cancel buttons use, then wait for the pool so the
        # catalog closes with no worker inside a transaction.
        if not self.ctx.tasks.shutdown(_QUIT_WAIT_MS):
            self.ctx.sink.show("some background tasks did not stop in time", "Quit")
        for view in self.views:
            view.close()
        event.accept()
