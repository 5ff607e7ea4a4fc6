"""What every view is given: the catalog, the task runner, the error sink, the theme and the
catalog events. Passed in explicitly — no module-level globals."""
from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal

from app.errors import ErrorSink
from app.tasks import TaskRunner
from app.theme import Theme
from core.catalog import Catalog


class CatalogEvents(QObject):
    """Announces that something changed in the catalog, so every view showing it refreshes.

    Core has no events (it is plain functions over DuckDB); the app emits these after
    its own tasks that write, which are the only writers while the GUI holds the catalog.
    """

    datasets_changed = Signal()
    runs_changed = Signal()
    models_changed = Signal()
    agents_changed = Signal()
    telemetry_changed = Signal()


@dataclass
class AppContext:
    catalog: Catalog
    tasks: TaskRunner
    sink: ErrorSink
    theme: Theme
    events: CatalogEvents
