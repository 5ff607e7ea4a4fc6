"""Start the desktop application."""
from __future__ import annotations

from core.catalog import Catalog
from core.config import Settings


def run_gui() -> int:
    # The Qt main window lands with the GUI issue; until then show what the catalog holds.
    with Catalog.open(Settings.from_env()) as catalog:
        print(f"Outpost catalog: {catalog.path}")
    return 0
