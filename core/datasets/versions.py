"""Finding datasets and versions in the catalog."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.catalog import Catalog
from core.datasets.names import parse_ref, validate_name
from core.datasets.records import (
    Column,
    DatasetInfo,
    DatasetNotFound,
    DatasetVersion,
    VersionNotFound,
)
from core.errors import InvalidInput

_SELECT = (
    "SELECT dataset, version, object, rows, columns, source, parent_dataset, parent_version,"
    " created_at FROM dataset_version"
)
_NEWEST_FIRST = " ORDER BY created_at DESC, version"


def _version(row: tuple[Any, ...]) -> DatasetVersion:
    dataset, version, obj, rows, columns, source, parent_ds, parent_v, created = row
    return DatasetVersion(
        dataset=dataset,
        version=version,
        object=obj,
        rows=int(rows),
        columns=[Column(c["name"], c["type"]) for c in json.loads(columns)],
        source=json.loads(source),
        parent=(parent_ds, parent_v) if parent_ds else None,
        created_at=created,
    )


def _require_dataset(catalog: Catalog, name: str) -> None:
    cur = catalog.cursor()
    try:
        if not cur.execute("SELECT 1 FROM dataset WHERE name = ?", [name]).fetchone():
            raise DatasetNotFound(name)
    finally:
        cur.close()


def list_versions(catalog: Catalog, name: str) -> list[DatasetVersion]:
    """The versions of dataset ``name``, newest first."""
    validate_name(name)
    _require_dataset(catalog, name)
    cur = catalog.cursor()
    try:
        rows = cur.execute(_SELECT + " WHERE dataset = ?" + _NEWEST_FIRST, [name]).fetchall()
    finally:
        cur.close()
    return [_version(r) for r in rows]


def resolve_version(catalog: Catalog, ref: str) -> DatasetVersion:
    """``name`` is the latest version; ``name@v`` a full id or a unique prefix (>= 4 hex)."""
    name, prefix = parse_ref(ref)
    versions = list_versions(catalog, name)
    if prefix is None:
        return versions[0]
    matches = [v for v in versions if v.version.startswith(prefix)]
    if not matches:
        raise VersionNotFound(name, prefix)
    if len(matches) > 1:
        shown = ", ".join(v.short for v in matches)
        raise InvalidInput(f"{ref!r} matches {len(matches)} versions ({shown}); give more digits")
    return matches[0]


def list_datasets(catalog: Catalog) -> list[DatasetInfo]:
    cur = catalog.cursor()
    try:
        heads = cur.execute(
            "SELECT d.name, d.created_at, count(v.version) FROM dataset d"
            " JOIN dataset_version v ON v.dataset = d.name GROUP BY ALL ORDER BY d.name"
        ).fetchall()
        latest = cur.execute(
            _SELECT + " QUALIFY row_number() OVER (PARTITION BY dataset"
            " ORDER BY created_at DESC, version) = 1"
        ).fetchall()
    finally:
        cur.close()
    by_name = {row[0]: _version(row) for row in latest}
    return [DatasetInfo(name, created, int(count), by_name[name]) for name, created, count in heads]


def version_path(catalog: Catalog, dv: DatasetVersion) -> Path:
    """The Parquet object holding ``dv``."""
    return catalog.objects.require(dv.object)
