"""Start the desktop application: open the catalog, build the window, run the event loop."""
from __future__ import annotations

import signal
import sys
from types import TracebackType

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from app.cli_bridge import CliBridge
from app.context import AppContext, CatalogEvents
from app.errors import ErrorSink
from app.qt_compat import pin_true
from app.resources import app_icon
from app.tasks import TaskRunner
from app.theme import Theme
from app.views.base import View
from app.views.datasets import DatasetsView
from app.views.experiments import ExperimentsView
from app.views.fleet import FleetView
from app.views.history import HistoryView
from app.views.models import ModelsView
from app.views.monitoring import MonitoringView
from app.window import MainWindow
from core.catalog import Catalog
from core.config import Settings
from core.errors import OutpostError


def view_classes() -> list[type[View]]:
    """The pages in navigation order."""
    return [DatasetsView, ExperimentsView, ModelsView, FleetView, MonitoringView, HistoryView]


def gui_settings(settings: Settings) -> QSettings:
    """Layout, last view and theme live beside the catalog they describe."""
    return QSettings(str(settings.home / "gui.ini"), QSettings.Format.IniFormat)


def create_window(catalog: Catalog, app: QApplication,
                  views: list[type[View]] | None = None) -> MainWindow:
    pin_true()
    settings = gui_settings(catalog.settings)
    theme = Theme(str(settings.value("theme", "light")))
    theme.apply(app)
    sink = ErrorSink(catalog.settings.logs_dir)
    ctx = AppContext(catalog, TaskRunner(catalog, sink), sink, theme, CatalogEvents())
    built = [cls(ctx) for cls in (view_classes() if views is None else views)]
    return MainWindow(ctx, built, settings)


def application() -> QApplication:
    pin_true()
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    app = QApplication(sys.argv[:1])
    app.setApplicationName("Outpost")
    app.setOrganizationName("Outpost")
    app.setWindowIcon(app_icon())
    return app


def close_on_signals(window: MainWindow) -> None:
    """Ctrl+C or SIGTERM close the window the normal way: tasks cancelled, layout saved."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: window.close())
    # Python runs signal handlers only between bytecodes; an idle Qt loop runs none, so a
    # timer gives the interpreter a turn a few times a second.
    timer = QTimer(window)
    timer.timeout.connect(lambda: None)
    timer.start(250)


def run_gui() -> int:
    app = application()
    try:
        catalog = Catalog.open(Settings.from_env())
    except OutpostError as exc:  # CatalogInUse above all: the CLI or another window holds it
        QMessageBox.critical(None, "Outpost", str(exc))
        return 1
    bridge: CliBridge | None = None
    try:
        window = create_window(catalog, app)
        bridge = CliBridge(window.ctx, window)
        bridge.start()  # `outpost …` in another shell now runs here, on this catalog
        previous_hook = sys.excepthook

        def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
            # An exception escaping a slot: show it through the sink, keep the window running.
            if isinstance(exc, Exception):
                window.ctx.sink.report(exc.with_traceback(tb))
            else:
                previous_hook(kind, exc, tb)

        sys.excepthook = hook
        close_on_signals(window)
        window.show()
        window.offer_samples()
        window.warm_up()
        return app.exec()
    finally:
        if bridge is not None:
            bridge.stop()
        catalog.close()
