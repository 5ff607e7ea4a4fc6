"""The records the dataset API hands out, and the errors it raises."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.errors import NotFound

SHORT = 12


class DatasetNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"no dataset named {name!r}")


class VersionNotFound(NotFound):
    def __init__(self, name: str, version: str) -> None:
        super().__init__(f"dataset {name!r} has no version {version!r}")


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # DuckDB type name

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "type": self.type}


@dataclass(frozen=True)
class DatasetVersion:
    dataset: str
    version: str  # full hex content hash
    object: str  # sha256 of the Parquet object
    rows: int
    columns: list[Column]
    source: dict[str, Any]
    parent: tuple[str, str] | None
    created_at: datetime

    @property
    def short(self) -> str:
        return self.version[:SHORT]

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.short}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "version": self.version,
            "ref": self.ref,
            "object": self.object,
            "rows": self.rows,
            "columns": [c.to_dict() for c in self.columns],
            "source": self.source,
            "parent": None if self.parent is None else f"{self.parent[0]}@{self.parent[1]}",
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    created_at: datetime
    versions: int
    latest: DatasetVersion

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "versions": self.versions,
            "latest": self.latest.version,
            "rows": self.latest.rows,
            "columns": len(self.latest.columns),
        }


@dataclass(frozen=True)
class LineCounts:
    """Data lines (or sheet rows) an import read, rows stored, lines skipped or padded."""

    read: int
    stored: int
    skipped: int = 0
    padded: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"read": self.read, "stored": self.stored, "skipped": self.skipped,
                "padded": self.padded}

    def describe(self) -> str:
        """One line for people: "3 lines read, 2 skipped, 1 row stored"."""
        parts = [f"{self.read:,} line{'' if self.read == 1 else 's'} read"]
        parts += [f"{n:,} {what}" for n, what in ((self.skipped, "skipped"),
                                                 (self.padded, "padded")) if n]
        parts.append(f"{self.stored:,} row{'' if self.stored == 1 else 's'} stored")
        return ", ".join(parts)


@dataclass(frozen=True)
class ImportResult:
    name: str
    version: str
    rows: int
    new: bool
    columns: list[Column] = field(default_factory=list, compare=False)
    lines: LineCounts | None = field(default=None, compare=False)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version[:SHORT]}"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "version": self.version, "rows": self.rows,
                                "new": self.new}
        if self.lines is not None:
            data["lines"] = self.lines.to_dict()
        return data
