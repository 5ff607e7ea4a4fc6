"""A lazy table over a dataset version: pages are fetched in the background as they are seen.

``data()`` never blocks: a cell whose page is not cached shows a placeholder and asks
for the page. Only pages painted recently are fetched (newest first), at most two at a
time, and at most ``max_pages`` are kept, so scrolling anywhere in a 10 M-row version
costs a few DuckDB reads and the memory stays flat.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal

from app.tasks import TaskContext, TaskRunner

Index = QModelIndex | QPersistentModelIndex
PageReader = Callable[[TaskContext, int, int], list[tuple[Any, ...]]]
PLACEHOLDER = "…"



def _read(reader: PageReader, offset: int, limit: int, ctx: TaskContext) -> list[tuple[Any, ...]]:
    return reader(ctx, offset, limit)

class LazyTableModel(QAbstractTableModel):
    page_loaded = Signal(int)

    def __init__(self, runner: TaskRunner, page_size: int = 200, max_pages: int = 40,
                 max_in_flight: int = 2) -> None:
        super().__init__()
        self.runner = runner
        self.page_size = page_size
        self.max_pages = max_pages
        self.max_in_flight = max_in_flight
        self.headers: list[str] = []
        self.rows = 0
        self.pages: OrderedDict[int, list[tuple[Any, ...]]] = OrderedDict()
        self._reader: PageReader | None = None
        self._wanted: list[int] = []  # most recently painted last
        self._in_flight: set[int] = set()
        self._generation = 0

    def load(self, headers: Sequence[str], rows: int, reader: PageReader) -> None:
        """Show another table; pages of the previous one still in flight are dropped."""
        self.beginResetModel()
        self._generation += 1
        self.headers = list(headers)
        self.rows = rows
        self._reader = reader
        self.pages.clear()
        self._wanted.clear()
        self._in_flight.clear()
        self.endResetModel()

    def clear(self) -> None:
        self.load([], 0, lambda ctx, offset, limit: [])
        self._reader = None

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else self.rows

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.headers)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return self.headers[section] if 0 <= section < len(self.headers) else None
        return f"{section + 1:,}"

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or role not in (Qt.ItemDataRole.DisplayRole,
                                                Qt.ItemDataRole.ToolTipRole):
            return None
        page_no, offset = divmod(index.row(), self.page_size)
        page = self.pages.get(page_no)
        if page is None:
            self._want(page_no)
            return PLACEHOLDER
        self.pages.move_to_end(page_no)
        if offset >= len(page):
            return None
        value = page[offset][index.column()]
        return "NULL" if value is None else str(value)

    def is_loaded(self, row: int) -> bool:
        return row // self.page_size in self.pages

    def _want(self, page_no: int) -> None:
        if page_no in self._in_flight:
            return
        if page_no in self._wanted:
            self._wanted.remove(page_no)
        self._wanted.append(page_no)
        # A fast scroll paints many pages; only the last few are still on screen.
        del self._wanted[:-8]
        self._fetch_next()

    def _fetch_next(self) -> None:
        while self._wanted and len(self._in_flight) < self.max_in_flight and self._reader:
            page_no = self._wanted.pop()
            self._in_flight.add(page_no)
            reader, generation = self._reader, self._generation
            offset, limit = page_no * self.page_size, self.page_size
            self.runner.run(
                "Reading rows",
                partial(_read, reader, offset, limit),
                partial(self._arrived, page_no, generation),
                on_error=partial(self._failed, page_no, generation),
                visible=False,
            )

    def _arrived(self, page_no: int, generation: int, rows: list[tuple[Any, ...]]) -> None:
        if generation != self._generation:
            return
        self._in_flight.discard(page_no)
        self.pages[page_no] = rows
        while len(self.pages) > self.max_pages:
            self.pages.popitem(last=False)
        first = page_no * self.page_size
        last = min(self.rows, first + self.page_size) - 1
        if last >= first and self.headers:
            self.dataChanged.emit(self.index(first, 0), self.index(last, len(self.headers) - 1))
        self.page_loaded.emit(page_no)
        self._fetch_next()

    def _failed(self, page_no: int, generation: int, _error: BaseException) -> bool:
        """A failed page goes to the error sink (returns False) and is not retried in a loop."""
        if generation == self._generation:
            self._in_flight.discard(page_no)
            self.pages[page_no] = []
        return False
