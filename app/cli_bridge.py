"""The user's `outpost` commands, run inside the GUI while it holds the catalog.

DuckDB lets one process write the catalog; while the window is open, a CLI in another
shell forwards its command here (see core.admin). Commands run on the admin server's own
threads, each on a cursor of the catalog, and never touch a widget. A timer on the UI
thread notices that commands finished and tells every view to refresh.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, QTimer

from app.context import AppContext
from core.admin import AdminServer
from core.cli import run
from core.cli.forwarding import holder_handler
from core.errors import OutpostError

POLL_MS = 250
_QUIT_WAIT_S = 10.0


class CliBridge(QObject):
    """Serves forwarded commands from `start()` to `stop()`; refreshes the views after."""

    def __init__(self, ctx: AppContext, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.server = AdminServer(ctx.catalog.settings, holder_handler(ctx.catalog, run))
        self._seen = 0
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)

    def start(self) -> bool:
        """False (the reason shown once) when the socket cannot be made: the window still
        works, only the CLI beside it cannot."""
        try:
            self.server.start()
        except (OSError, OutpostError) as exc:
            self.ctx.sink.report(exc, "Serving the CLI beside the window")
            return False
        self._timer.start()
        return True

    def stop(self) -> bool:
        """Cancel forwarded commands still running and close the socket; False when some
        did not stop in time."""
        self._timer.stop()
        return self.server.stop(cancel=True, timeout=_QUIT_WAIT_S)

    def _poll(self) -> None:
        done = self.server.completed
        if done == self._seen:
            return
        self._seen = done
        events = self.ctx.events
        for signal in (events.datasets_changed, events.runs_changed, events.models_changed,
                       events.agents_changed, events.telemetry_changed):
            signal.emit()
