"""First start on an empty catalog: load the sample datasets in the background and say so."""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QSettings

from app.context import AppContext
from core.catalog import Catalog
from core.datasets import ImportResult, list_datasets
from core.samples import load_samples

_OFFERED = "samples/offered"


def _load_if_empty(catalog: Catalog, progress: Callable[..., None]) -> list[ImportResult]:
    if list_datasets(catalog):
        return []
    return load_samples(catalog, progress=progress)


def offer_samples(ctx: AppContext, settings: QSettings, say: Callable[[str], None]) -> None:
    """Once per catalog: if it holds no datasets, load the samples; ``say`` tells the user."""
    if settings.value(_OFFERED, False, type=bool):
        return

    def loaded(results: list[ImportResult]) -> None:
        settings.setValue(_OFFERED, True)
        if results:
            names = ", ".join(r.name for r in results)
            say(f"This catalog was empty, so Outpost loaded the sample datasets: {names}. "
                "Pick one in Datasets, or train on it in Experiments.")
            ctx.events.datasets_changed.emit()

    ctx.tasks.run("Load sample datasets",
                  lambda c: _load_if_empty(c.catalog, c.progress), loaded)
