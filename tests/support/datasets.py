"""Helpers for the dataset tests: a catalog opened on a test home, and its full state."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.catalog import Catalog
from core.config import Settings


@contextmanager
def opened(home: Path) -> Iterator[Catalog]:
    """Open (and close) the catalog at ``home``: each step proves what persisted."""
    with Catalog.open(Settings(home=home)) as catalog:
        yield catalog


def state(home: Path) -> tuple[list[tuple[Any, ...]], list[str]]:
    """Every dataset row and every file under objects/ (temp files included)."""
    with opened(home) as catalog:
        rows = catalog.con.execute(
            "SELECT d.name, v.version, v.object, v.rows FROM dataset d"
            " FULL JOIN dataset_version v ON v.dataset = d.name ORDER BY ALL").fetchall()
    files = sorted(str(p.relative_to(home)) for p in (home / "objects").rglob("*") if p.is_file())
    return rows, files


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path
