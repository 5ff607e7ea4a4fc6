"""Errors that carry a one-line message meant for the user."""
from __future__ import annotations


class OutpostError(Exception):
    """Base for every failure the user should see as one line, not a traceback."""


class NotFound(OutpostError):
    """Something named by the user does not exist."""


class InvalidInput(OutpostError):
    """The user gave something Outpost cannot use; nothing was changed."""


class CatalogInUse(OutpostError):
    """Another process holds the catalog's single-writer lock."""

    def __init__(self, path: object) -> None:
        super().__init__(f"catalog is in use by another Outpost process: {path}")


class StorageError(OutpostError):
    """Writing to the catalog folder failed (disk full, permissions)."""


class Cancelled(OutpostError):
    """The user cancelled a long operation; nothing was committed."""

    def __init__(self, what: str = "operation") -> None:
        super().__init__(f"{what} cancelled")
