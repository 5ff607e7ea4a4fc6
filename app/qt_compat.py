"""A work-around for a PySide6 reference-counting bug that would abort long sessions.

PySide6 6.12 returns ``True`` from ``SignalInstance.emit()`` without taking a reference
to it, so every signal emitted from Python (ours and superqt's: several per background
task, one per progress tick) takes one reference away from ``True``. On CPython 3.11,
after some thousands of emits the count reaches zero and the interpreter aborts with
"bool_dealloc: deallocating True or False". CPython 3.12 made ``True`` immortal, where
this cannot happen. Until PySide is fixed, ``True`` gets enough references for any session.
"""
from __future__ import annotations

import ctypes
import sys

PINNED = 1 << 40  # a trillion emits; a busy session emits a few per second


def pin_true() -> None:
    """Raise ``True``'s reference count far above anything the emits can take away."""
    if sys.version_info >= (3, 12):
        return
    # ob_refcnt is the first field of every CPython object; we hold the GIL, as every
    # other reference-count update does, so this cannot race with them.
    count = ctypes.c_ssize_t.from_address(id(True))
    if count.value < PINNED:
        count.value += PINNED
