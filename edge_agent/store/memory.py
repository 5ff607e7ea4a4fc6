"""Giving memory the process no longer uses back to the operating system.

Loading a model frees a lot at once (the bundle's members, the onnxruntime graph
build), but glibc's malloc keeps freed heap pages mapped, so a long-running agent
would carry the peak of its last start or install as resident memory. After those
moments the agent asks malloc to return them (measured: ~5 MB after start).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows): nothing to do
        return None
    return trim


def release_memory() -> None:
    """Collect garbage, then return free heap pages to the OS where malloc can."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
