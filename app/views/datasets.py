"""Datasets: the list, each dataset's versions and lineage, a lazy preview and a profile.

Import by the file dialog or by dropping files on the view; derive with SQL; diff two versions.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QSplitter,
    QTableView,
    QTabWidget,
)

from app.context import AppContext
from app.dialogs.derive import DeriveDialog
from app.dialogs.diff import DiffDialog
from app.dialogs.importing import ImportDialog
from app.models.datasets import DatasetsTableModel, DatasetVersionsTableModel
from app.models.records import RecordTableModel
from app.statusbar import say
from app.tasks import TaskContext
from app.views.base import View
from app.widgets.lineage import LineageTree
from app.widgets.preview import PreviewPane
from app.widgets.profile_panel import ProfilePanel
from core.datasets import (
    DatasetInfo,
    DatasetVersion,
    ImportResult,
    Profile,
    ancestry,
    list_datasets,
    list_versions,
    profile_version,
    read_page,
)

FILE_FILTER = ("Data files (*.csv *.tsv *.txt *.parquet *.json *.ndjson *.jsonl *.gz *.xlsx "
               "*.xlsm);;All files (*)")


def record_table(model: RecordTableModel[Any], name: str) -> QTableView:
    table = QTableView()
    table.setObjectName(name)
    table.setModel(model)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.verticalHeader().hide()
    table.horizontalHeader().setStretchLastSection(True)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setWordWrap(False)
    model.modelReset.connect(table.resizeColumnsToContents)
    return table



def _read_page(dv: DatasetVersion, c: TaskContext, offset: int, limit: int
               ) -> list[tuple[Any, ...]]:
    return read_page(c.catalog, dv, offset, limit)


class DatasetsView(View):
    title = "Datasets"
    icon_name = "datasets"

    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx)
        self.setAcceptDrops(True)
        self.import_action = self.action("Import…", "import", self.choose_files, "Ctrl+I",
                                         "Import CSV, Excel, Parquet or JSON files "
                                         "(or drop them here)")
        self.derive_action = self.action("Derive…", "derive", self.open_derive, "Ctrl+Shift+E",
                                         "Make a new version with SQL over this one")
        self.diff_action = self.action("Diff…", "diff", self.open_diff, None,
                                       "Compare two versions")
        self.action("Refresh", "refresh", self.refresh, None, "Reload the list", toolbar=True)

        self.datasets = DatasetsTableModel()
        self.versions = DatasetVersionsTableModel()
        self.datasets_table = record_table(self.datasets, "datasetsTable")
        self.versions_table = record_table(self.versions, "versionsTable")
        self.datasets_table.selectionModel().currentRowChanged.connect(self._dataset_selected)
        self.versions_table.selectionModel().currentRowChanged.connect(self._version_selected)

        self.preview = PreviewPane(ctx.tasks)
        self.profile = ProfilePanel(ctx.theme)
        self.lineage = LineageTree()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.preview, "Preview")
        self.tabs.addTab(self.profile, "Profile")
        self.tabs.addTab(self.lineage, "Lineage")
        self.tabs.currentChanged.connect(lambda _: self._load_tab())

        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self.datasets_table)
        left.addWidget(self.versions_table)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.tabs)
        self.splitter.setSizes([420, 760])
        self.body.addWidget(self.splitter)

        self.selected: DatasetVersion | None = None
        self._loaded: dict[int, str] = {}  # tab index -> version it shows
        self._want_dataset: str | None = None
        self.import_dialog: ImportDialog | None = None  # the one open now
        self._to_import: list[Path] = []  # files waiting for their dialog
        ctx.events.datasets_changed.connect(self.mark_stale)

    # --- lists ---------------------------------------------------------------------------
    def refresh(self) -> None:
        self.ctx.tasks.run("List datasets", lambda c: list_datasets(c.catalog), self._listed,
                           visible=False, key="datasets")

    def _listed(self, infos: list[DatasetInfo]) -> None:
        keep = self._want_dataset or (self.selected.dataset if self.selected else None)
        self._want_dataset = None
        self.datasets.set_records(infos)
        row = self.datasets.row_of(keep) if keep else None
        if infos:
            self.datasets_table.selectRow(row if row is not None else 0)
        else:
            self._show_version(None)

    def select_dataset(self, name: str) -> None:
        row = self.datasets.row_of(name)
        if row is None:
            self._want_dataset = name
            self.refresh()
        else:
            self.datasets_table.selectRow(row)

    def _dataset_selected(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid():
            return
        name = self.datasets.record(current.row()).name
        self.ctx.tasks.run(f"List versions of {name}", lambda c: list_versions(c.catalog, name),
                           self._versions_listed, visible=False, key="versions")

    def _versions_listed(self, versions: list[DatasetVersion]) -> None:
        keep = self.selected.version if self.selected else None
        self.versions.set_records(versions)
        row = self.versions.row_of(keep) if keep else None
        if versions:
            self.versions_table.selectRow(row if row is not None else 0)

    def _version_selected(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self._show_version(self.versions.record(current.row()))

    def _show_version(self, dv: DatasetVersion | None) -> None:
        self.selected = dv
        self._loaded.clear()
        self.derive_action.setEnabled(dv is not None)
        self.diff_action.setEnabled(dv is not None)
        self._load_tab()

    # --- tabs: load what the visible tab shows, for the selected version only -------------
    def _load_tab(self) -> None:
        dv, index = self.selected, self.tabs.currentIndex()
        if dv is None:
            self.preview.clear("No datasets yet: import a file or drop one here.")
            self.profile.clear("")
            self.lineage.clear()
            return
        if self._loaded.get(index) == dv.version:
            return
        self._loaded[index] = dv.version
        widget = self.tabs.widget(index)
        if widget is self.preview:
            self.preview.show_table(
                f"{dv.ref}: {dv.rows:,} rows × {len(dv.columns)} columns",
                [f"{c.name}\n{c.type}" for c in dv.columns], dv.rows,
                partial(_read_page, dv))
        elif widget is self.profile:
            self.profile.clear(f"Profiling {dv.ref}…")
            self.ctx.tasks.run(f"Profile {dv.ref}",
                               lambda c: profile_version(c.catalog, dv, progress=c.progress,
                                                         cancel=c.cancel),
                               self._profiled, key="profile",
                               on_error=lambda exc: self._forget_tab(index))
        elif widget is self.lineage:
            self.ctx.tasks.run(f"Lineage of {dv.ref}", lambda c: ancestry(c.catalog, dv),
                               self.lineage.show_chain, visible=False, key="lineage")

    def _forget_tab(self, index: int) -> bool:
        self._loaded.pop(index, None)
        return False

    def _profiled(self, profile: Profile) -> None:
        if self.selected is not None and profile.version == self.selected.version:
            self.profile.show_profile(profile)

    # --- import ---------------------------------------------------------------------------
    def choose_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Import datasets", str(Path.home()),
                                                FILE_FILTER)
        self.open_import([Path(p) for p in paths])

    def open_import(self, paths: list[Path]) -> ImportDialog | None:
        """The import dialog for each file in turn (the next opens when one closes)."""
        self._to_import += paths
        if self.import_dialog is None and self._to_import:
            dialog = ImportDialog(self.ctx, self._to_import.pop(0), self)
            dialog.imported.connect(self._imported)
            dialog.finished.connect(self._import_closed)
            dialog.finished.connect(dialog.deleteLater)
            self.import_dialog = dialog
            dialog.open()
        return self.import_dialog

    def _import_closed(self) -> None:
        self.import_dialog = None
        self.open_import([])

    def _imported(self, result: ImportResult) -> None:
        what = "new version" if result.new else "already present as version"
        counts = f" ({result.lines.describe()})" if result.lines else ""
        say(self, f"Imported {result.name}: {result.rows:,} rows{counts}, {what} "
                  f"{result.version[:12]}")
        self._want_dataset = result.name

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt override)
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt override)
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_import(paths)

    # --- derive and diff ------------------------------------------------------------------
    def _refs(self) -> list[str]:
        refs = [v.ref for v in self.versions.records]
        refs += [d.latest.ref for d in self.datasets.records if d.latest.ref not in refs]
        return refs

    def open_derive(self) -> DeriveDialog:
        dialog = DeriveDialog(self.ctx, self._refs(), self.selected.ref if self.selected else None,
                              self)
        dialog.accepted.connect(
            lambda: self._want_derived(dialog.result_value.name if dialog.result_value else None))
        dialog.open()
        return dialog

    def _want_derived(self, name: str | None) -> None:
        self._want_dataset = name

    def open_diff(self) -> DiffDialog:
        refs = self._refs()
        a = self.selected.ref if self.selected else None
        b = next((r for r in refs if r != a), a)
        dialog = DiffDialog(self.ctx, refs, b, a, self)
        dialog.open()
        return dialog

    # --- settings and theme ---------------------------------------------------------------
    def retheme(self) -> None:
        self.profile.retheme()

    def save_state(self) -> dict[str, object]:
        return {"splitter": self.splitter.saveState(), "tab": self.tabs.currentIndex()}

    def restore_state(self, state: dict[str, object]) -> None:
        splitter = state.get("splitter")
        if splitter is not None:
            self.splitter.restoreState(splitter)  # type: ignore[arg-type]
        tab = state.get("tab")
        if tab is not None:
            self.tabs.setCurrentIndex(int(tab))  # type: ignore[call-overload]

