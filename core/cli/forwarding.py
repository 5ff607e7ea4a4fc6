"""Running a command beside the process that holds the catalog: the client sends its
argv there (see core.admin), and the holder runs it here, in-process, on its catalog."""
from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import PurePath
from typing import Any

from rich.console import Console

from core.admin import AdminServer, Handler, NoHolder, Request, Session, forward
from core.admin.streams import routed
from core.catalog import Catalog
from core.cli.session import Forwarded, running_forwarded
from core.config import ENV_PREFIX, Settings
from core.errors import CatalogInUse, OutpostError

# What of the client's environment a forwarded command sees: Outpost's settings and what
# decides how rich renders (width, colour).
_TERMINAL_ENV = ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "TERM", "COLORTERM",
                 "TTY_COMPATIBLE", "TTY_INTERACTIVE")
# The holder opens the socket right after the catalog and closes it right before; a
# client that finds neither keeps trying this long before it reports the catalog in use.
RETRY_S = 3.0
RunFn = Callable[[list[str]], int]


class ForwardToHolder(BaseException):  # noqa: N818 (control flow, caught by main)
    """Raised where a command would open the catalog that another process holds.

    A BaseException so that no command's `except Exception` swallows it: it must reach
    `core.cli.main`, which sends the command to the holder instead."""

    def __init__(self, error: CatalogInUse, ctx: Any) -> None:
        super().__init__(str(error))
        self.error = error
        self.ctx = ctx

    def absolute_argv(self, argv: list[str]) -> list[str]:
        """`argv` with the relative paths it gives the command made absolute."""
        if self.ctx is None:
            return list(argv)
        names = [str(c.info_name) for c in reversed(list(_chain(self.ctx)))][1:]
        start = 0
        try:
            for name in names:
                start = argv.index(name, start) + 1
            fixed = _path_tokens(self.ctx, argv[start:], os.getcwd())
        except Exception:  # noqa: BLE001 (any parse trouble: forward argv as given)
            return list(argv)
        return [fixed.get(i - start, token) for i, token in enumerate(argv)]


def _marker(index: int) -> str:
    return f"\x00{index}"


def _path_tokens(ctx: Any, tokens: list[str], cwd: str) -> dict[int, str]:
    """Which of the leaf command's `tokens` are relative paths, and their absolute form.

    The holder runs elsewhere (its own working folder), so paths are resolved here. The
    tokens are parsed again with every value replaced by a marker of its position; the
    parameters whose value the command received as a relative ``Path`` name the tokens
    to rewrite."""
    marked: list[str] = []
    literal = False
    for index, token in enumerate(tokens):
        if token == "--" and not literal:
            literal = True
            marked.append(token)
        elif not literal and token.startswith("--") and "=" in token:
            marked.append(token.split("=", 1)[0] + "=" + _marker(index))
        elif not literal and token.startswith("-") and len(token) > 1:
            marked.append(token)
        else:
            marked.append(_marker(index))
    opts, _, _ = ctx.command.make_parser(ctx).parse_args(marked)
    fixed: dict[int, str] = {}
    for name, received in ctx.params.items():
        paths = received if isinstance(received, list | tuple) else [received]
        if name not in opts or not any(isinstance(p, PurePath) for p in paths):
            continue
        value = opts[name]
        for item in value if isinstance(value, list | tuple) else [value]:
            if not (isinstance(item, str) and item.startswith("\x00")):
                continue
            index = int(item[1:])
            head, eq, raw = tokens[index].partition("=") if tokens[index].startswith(
                "--") else ("", "", tokens[index])
            if raw and not os.path.isabs(raw):
                fixed[index] = f"{head}{eq}{os.path.join(cwd, raw)}"
    return fixed


def _click_context() -> Any:
    """The running command's click context (typer ≥ 0.26 carries its own click)."""
    try:
        from typer._click.globals import get_current_context
    except ImportError:
        import click

        return click.get_current_context(silent=True)
    return get_current_context(silent=True)


def forward_needed(error: CatalogInUse) -> ForwardToHolder:
    """The exception `open_catalog` raises when another process holds the catalog."""
    return ForwardToHolder(error, _click_context())


def _chain(ctx: Any) -> Iterator[Any]:
    current = ctx
    while current is not None:
        yield current
        current = current.parent


def _terminal_size(env: dict[str, str]) -> tuple[int, int]:
    """What rich would take for this terminal (rich.console.Console.size)."""
    if env.get("TERM", "").lower() in ("dumb", "unknown"):
        return 80, 25
    width = height = 0
    for fd in (0, 1, 2):
        try:
            width, height = os.get_terminal_size(fd)
            break
        except OSError:
            continue
    columns, lines = env.get("COLUMNS", ""), env.get("LINES", "")
    width = int(columns) if columns.isdigit() else width
    height = int(lines) if lines.isdigit() else height
    return width or 80, height or 25


def request_for(argv: list[str]) -> Request:
    env = {k: v for k, v in os.environ.items()
           if k.startswith(ENV_PREFIX) or k in _TERMINAL_ENV}
    width, height = _terminal_size(env)
    return Request(list(argv), os.getcwd(), env, sys.stdout.isatty(), sys.stderr.isatty(),
                   width, height)


def run_elsewhere(argv: list[str], error: ForwardToHolder, run_here: RunFn) -> int:
    """Forward `argv` (its relative paths made absolute) to the holder; when nobody
    answers, run it here again (the holder may just have let go), for RETRY_S."""
    deadline = time.monotonic() + RETRY_S
    settings = Settings.from_env()
    # This process only relays now, whatever handler the command set before it asked for
    # the catalog: Ctrl-C cancels the command in the holder, SIGTERM drops it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    while True:
        absolute = error.absolute_argv(argv)
        # What the command prints about those paths reads as the user typed them.
        spelled = {new.partition("=")[2] if new.startswith("--") else new:
                   old.partition("=")[2] if old.startswith("--") else old
                   for new, old in zip(absolute, argv, strict=True) if new != old}
        try:
            return forward(settings, request_for(absolute), sys.stdout.buffer,
                           sys.stderr.buffer, spelled)
        except NoHolder:
            if time.monotonic() > deadline:
                print(f"error: {error.error}", file=sys.stderr)
                return 1
        time.sleep(0.05)
        try:
            return run_here(argv)
        except ForwardToHolder as again:
            error = again


def _consoles(request: Request, session: Session) -> tuple[Console, Console]:
    def make(stream: Any, stderr: bool) -> Console:
        return Console(file=stream, width=request.width, height=request.height,
                       stderr=stderr, _environ=request.env)

    return make(session.stdout, False), make(session.stderr, True)


def holder_handler(catalog: Catalog, run_here: RunFn) -> Handler:
    """Runs a forwarded command in this process, on a cursor of `catalog`."""

    def handle(session: Session) -> int:
        console, err_console = _consoles(session.request, session)
        current = Forwarded(session, catalog, console, err_console)
        with running_forwarded(current), routed(session.stdout, session.stderr):
            return run_here(session.request.argv)

    return handle


@contextmanager
def serving(catalog: Catalog, run_here: RunFn) -> Iterator[AdminServer | None]:
    """Serve forwarded commands while this process holds `catalog`. A socket that cannot
    be made costs the others their forwarding, not this command its run."""
    try:
        server: AdminServer | None = AdminServer(
            catalog.settings, holder_handler(catalog, run_here)).start()
    except (OSError, OutpostError):
        server = None
    if server is None:
        yield None
        return
    try:
        yield server
    except BaseException:
        server.stop(cancel=True, timeout=10)
        raise
    server.stop()
