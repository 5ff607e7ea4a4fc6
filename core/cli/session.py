"""Whether this command runs in its own process or forwarded into the catalog's holder,
and what differs when it is forwarded: the catalog, the consoles, env, cancel token."""
from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from rich.console import Console

from core.admin import Session
from core.catalog import Catalog
from core.progress import CancelToken


@dataclass(frozen=True)
class Forwarded:
    """A command that another process forwarded to this one, which holds `catalog`."""

    session: Session
    catalog: Catalog
    console: Console
    err_console: Console


_current: ContextVar[Forwarded | None] = ContextVar("outpost_forwarded", default=None)


def forwarded() -> Forwarded | None:
    return _current.get()


@contextmanager
def running_forwarded(current: Forwarded) -> Iterator[None]:
    """While inside, this thread's command is `current` (its catalog, consoles, env)."""
    token = _current.set(current)
    try:
        yield
    finally:
        _current.reset(token)


def environ() -> Mapping[str, str]:
    """The environment of the user who runs the command (the client's when forwarded)."""
    current = _current.get()
    return os.environ if current is None else current.session.request.env


def cancel_token() -> CancelToken | None:
    """Set when the client of a forwarded command presses Ctrl-C (None when alone: there
    Ctrl-C interrupts the process itself). A command that asks for it promises to stop at
    its next unit of work once set; one that does not is interrupted instead."""
    current = _current.get()
    return None if current is None else current.session.take_cancel_token()
