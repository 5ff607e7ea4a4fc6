"""Lineage of a dataset version: the chain of parents and how each was made."""
from __future__ import annotations

from core.catalog import Catalog
from core.datasets.records import DatasetVersion
from core.datasets.versions import resolve_version

MAX_DEPTH = 50  # a cycle cannot happen with content hashes, but a bad catalog must not hang us


def ancestry(catalog: Catalog, dv: DatasetVersion) -> list[DatasetVersion]:
    """`dv` followed by its parent, grandparent, … (at most MAX_DEPTH versions)."""
    chain = [dv]
    while chain[-1].parent is not None and len(chain) < MAX_DEPTH:
        name, version = chain[-1].parent
        chain.append(resolve_version(catalog, f"{name}@{version}"))
    return chain
