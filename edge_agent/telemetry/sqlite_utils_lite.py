"""sqlite-utils, imported without pandas.

sqlite-utils imports pandas whenever it is installed, only to map
``pandas.Timestamp`` to TEXT. The agent never hands it pandas objects, and
where the agent runs beside the desktop (the local agent) that import would
cost it ~0.3 s of start-up and ~60 MB of memory — and pandas is a library the
agent must not load at all.
"""

from __future__ import annotations

import sys

_hide_pandas = "pandas" not in sys.modules
if _hide_pandas:
    sys.modules["pandas"] = None  # type: ignore[assignment]  # makes `import pandas` fail
try:
    from sqlite_utils import Database
    from sqlite_utils.migrations import Migrations
finally:
    if _hide_pandas:
        del sys.modules["pandas"]

__all__ = ["Database", "Migrations"]
