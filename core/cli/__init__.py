"""The ``outpost`` command line: a thin layer over the core API."""
from __future__ import annotations

import sys
import traceback
from importlib.metadata import entry_points

import typer

from core.cli.forwarding import ForwardToHolder, run_elsewhere
from core.cli.lazy import LazyRootGroup
from core.config import Settings
from core.errors import OutpostError

app = typer.Typer(
    name="outpost",
    help="Outpost: offline MLOps — datasets, training, ONNX models and edge agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=LazyRootGroup,
)

# Sub-command groups register themselves here, one module per group.
from core.cli import main_commands  # noqa: E402,F401

# Packages above core (the desktop app) add their commands through this entry-point
# group, so that core never imports them.
COMMAND_PLUGINS = "outpost.commands"


def _load_plugins() -> None:
    for entry in entry_points(group=COMMAND_PLUGINS):
        entry.load()(app)


_load_plugins()


def _log_internal_error() -> str:
    """Keep the traceback in a log file; the user sees one line."""
    try:
        logs = Settings.from_env().logs_dir
        logs.mkdir(parents=True, exist_ok=True)
        path = logs / "cli-errors.log"
        with path.open("a", encoding="utf-8") as fh:
            fh.write(traceback.format_exc() + "\n")
        return f" (details in {path})"
    except OSError:
        return ""


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None or isinstance(exc.code, int):
        return int(exc.code or 0)
    print(exc.code, file=sys.stderr)
    return 1


def run(argv: list[str]) -> int:
    """Run one command in this process; its exit code. Raises ForwardToHolder where the
    command needs the catalog that another process holds."""
    # typer handles usage errors itself (exit 2); what reaches us is ours to word.
    try:
        app(args=argv, prog_name="outpost")
    except SystemExit as exc:
        return _exit_code(exc)
    except OutpostError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one line for the user, the traceback in the log
        where = _log_internal_error()
        print(f"error: internal error: {type(exc).__name__}: {exc}{where}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        code = run(args)
    except ForwardToHolder as held:  # another process holds the catalog: it runs this
        try:
            code = run_elsewhere(args, held, run)
        except OutpostError as exc:
            print(f"error: {exc}", file=sys.stderr)
            code = 1
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            code = 130
    sys.exit(code)
