"""Versioned datasets: import, look up, read, profile, compare and derive.

Import names from here; the modules behind are split by idea.
"""
from core.datasets.importing import import_dataset, import_frame
from core.datasets.reading import read_frame, read_page
from core.datasets.records import (
    Column,
    DatasetInfo,
    DatasetNotFound,
    DatasetVersion,
    ImportResult,
    VersionNotFound,
)
from core.datasets.versions import list_datasets, list_versions, resolve_version, version_path

__all__ = [
    "Column",
    "DatasetInfo",
    "DatasetNotFound",
    "DatasetVersion",
    "ImportResult",
    "VersionNotFound",
    "import_dataset",
    "import_frame",
    "list_datasets",
    "list_versions",
    "read_frame",
    "read_page",
    "resolve_version",
    "version_path",
]
