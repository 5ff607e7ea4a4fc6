"""Lineage of a dataset version: the chain of parents and how each was made."""
from __future__ import annotations

from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem

from app.models.datasets import source_text, when
from core.datasets import DatasetVersion


class LineageTree(QTreeWidget):
    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("lineageTree")
        self.setHeaderLabels(["Version", "Rows", "Made by", "Created"])
        self.setColumnWidth(0, 230)
        self.setColumnWidth(1, 90)
        self.setColumnWidth(2, 420)

    def show_chain(self, chain: list[DatasetVersion]) -> None:
        """The version at the top, each parent nested under the version derived from it."""
        self.clear()
        parent: QTreeWidget | QTreeWidgetItem = self
        for dv in chain:
            item = QTreeWidgetItem(parent, [dv.ref, f"{dv.rows:,}", source_text(dv),
                                            when(dv.created_at)])
            item.setToolTip(2, source_text(dv))
            item.setToolTip(0, dv.version)
            parent = item
        self.expandAll()
