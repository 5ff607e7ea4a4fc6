"""One retrain at a time per model: which retrains this process is running now.

Only the process holding the catalog writes to it (DuckDB's one writer; other commands are
forwarded into it), so this process's own set is the whole truth: a `running` row in the
catalog that is not here was left by a process that died, and is closed as interrupted.
"""
from __future__ import annotations

import threading

LOCK = threading.Lock()  # taken before a catalog transaction, never inside one
_running: dict[str, int] = {}  # model -> retrain id


def running(model: str) -> int | None:
    return _running.get(model)


def start(model: str, retrain_id: int) -> None:
    """Under LOCK: mark the model busy."""
    _running[model] = retrain_id


def finish(model: str, retrain_id: int) -> None:
    with LOCK:
        if _running.get(model) == retrain_id:
            del _running[model]
