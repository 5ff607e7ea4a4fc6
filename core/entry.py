"""The ``outpost`` console script: one clear line where only the agent is installed."""
from __future__ import annotations

import sys

_DESKTOP_MODULES = {
    "typer", "rich", "duckdb", "pandas", "pyarrow", "sklearn", "httpx", "platformdirs",
}


def main() -> None:
    try:
        from core.cli import main as cli_main
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in _DESKTOP_MODULES:
            raise
        print(
            f"error: the Outpost desktop is not installed here (missing {exc.name}); "
            "install it with: pip install 'outpost[desktop]'",
            file=sys.stderr,
        )
        sys.exit(1)
    cli_main()
