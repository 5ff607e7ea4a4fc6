"""Qt models for datasets and for the versions of one dataset."""
from __future__ import annotations

from datetime import datetime

from app.models.records import Column, RecordTableModel, number
from core.datasets import ColumnProfile, DatasetInfo, DatasetVersion, StatChange


def when(value: datetime | None) -> str:
    return "" if value is None else value.astimezone().strftime("%Y-%m-%d %H:%M")


def source_text(dv: DatasetVersion) -> str:
    kind = str(dv.source.get("kind", ""))
    if kind == "derive":
        return f"derived: {dv.source.get('sql', '')}"
    path = dv.source.get("path") or dv.source.get("file") or dv.source.get("sample")
    return f"{kind}: {path}" if path else kind


class DatasetsTableModel(RecordTableModel[DatasetInfo]):
    def __init__(self) -> None:
        super().__init__([
            Column("Name", lambda d: d.name),
            Column("Versions", lambda d: d.versions, align_right=True),
            Column("Rows", lambda d: d.latest.rows, number, align_right=True),
            Column("Columns", lambda d: len(d.latest.columns), align_right=True),
            Column("Updated", lambda d: d.latest.created_at, when),
        ])

    def row_of(self, name: str) -> int | None:
        return next((i for i, d in enumerate(self.records) if d.name == name), None)


class DatasetVersionsTableModel(RecordTableModel[DatasetVersion]):
    def __init__(self) -> None:
        super().__init__([
            Column("Version", lambda v: v.short, tip=lambda v: v.version),
            Column("Rows", lambda v: v.rows, number, align_right=True),
            Column("Columns", lambda v: len(v.columns), align_right=True),
            Column("Parent", lambda v: f"{v.parent[0]}@{v.parent[1][:12]}" if v.parent else ""),
            Column("Source", source_text, tip=source_text),
            Column("Created", lambda v: v.created_at, when),
        ])

    def row_of(self, version: str) -> int | None:
        return next((i for i, v in enumerate(self.records) if v.version == version), None)


def _stat(value: object) -> str:
    if isinstance(value, int | float):
        return number(value)
    return "" if value is None else str(value)


class ColumnProfilesTableModel(RecordTableModel[ColumnProfile]):
    def __init__(self) -> None:
        super().__init__([
            Column("Column", lambda c: c.name),
            Column("Type", lambda c: c.type),
            Column("Nulls", lambda c: c.nulls, number, align_right=True),
            Column("Distinct", lambda c: c.distinct, number, align_right=True),
            Column("Min", lambda c: c.min, _stat, align_right=True),
            Column("Max", lambda c: c.max, _stat, align_right=True),
            Column("Mean", lambda c: c.mean, _stat, align_right=True),
            Column("Std", lambda c: c.std, _stat, align_right=True),
        ])


class StatChangesTableModel(RecordTableModel[StatChange]):
    def __init__(self) -> None:
        super().__init__([
            Column("Column", lambda c: c.column),
            Column("Statistic", lambda c: c.stat),
            Column("A", lambda c: c.a, _stat, align_right=True),
            Column("B", lambda c: c.b, _stat, align_right=True),
            Column("Δ", lambda c: c.delta, _stat, align_right=True),
        ])
