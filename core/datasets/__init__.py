"""Versioned datasets: import, look up, read, profile, compare and derive.

Import names from here; the modules behind are split by idea.
"""
from core.datasets.derive import derive_dataset
from core.datasets.diff import Diff, StatChange, diff_versions
from core.datasets.importing import import_dataset, import_frame
from core.datasets.lineage import ancestry
from core.datasets.options import BAD_LINES, ReadOptions
from core.datasets.profile import ColumnProfile, Profile, profile_version
from core.datasets.readers import detect_format
from core.datasets.reading import read_frame, read_page
from core.datasets.records import (
    Column,
    DatasetInfo,
    DatasetNotFound,
    DatasetVersion,
    ImportResult,
    VersionNotFound,
)
from core.datasets.sheets import sheet_names
from core.datasets.versions import list_datasets, list_versions, resolve_version, version_path

__all__ = [
    "ancestry",
    "BAD_LINES",
    "Column",
    "ColumnProfile",
    "DatasetInfo",
    "DatasetNotFound",
    "DatasetVersion",
    "Diff",
    "ImportResult",
    "ReadOptions",
    "Profile",
    "StatChange",
    "VersionNotFound",
    "derive_dataset",
    "detect_format",
    "diff_versions",
    "import_dataset",
    "import_frame",
    "list_datasets",
    "list_versions",
    "profile_version",
    "read_frame",
    "read_page",
    "resolve_version",
    "sheet_names",
    "version_path",
]
