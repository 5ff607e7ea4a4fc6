"""A CLI call imports only what its command needs: `outpost --help` and a catalog listing
load no numerical, ONNX, Arrow or server stack (the suite makes hundreds of such calls)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import OUTPOST, REPO

# What `--help` (every command's module) must not load: its commands import these inside.
NOT_FOR_HELP = {"numpy", "pandas", "pyarrow", "sklearn", "skl2onnx", "onnx", "onnxruntime",
                "uvicorn", "scipy"}
# A command on the catalog alone needs neither the fleet's HTTP client nor the keys.
NOT_FOR_LISTING = NOT_FOR_HELP | {"httpx", "cryptography"}


def _imported(home: Path, *args: str) -> set[str]:
    """Top-level packages that the real console script imports to run `outpost ARGS`."""
    env = dict(os.environ, OUTPOST_HOME=str(home))
    proc = subprocess.run([sys.executable, "-X", "importtime", *OUTPOST, *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {line.rsplit("|", 1)[1].strip().split(".")[0]
            for line in proc.stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("args,unwanted", [
    (("--help",), NOT_FOR_HELP),
    (("dataset", "list", "--json"), NOT_FOR_LISTING),
    (("model", "list", "--json"), NOT_FOR_HELP),
    (("runs", "list", "--json"), NOT_FOR_LISTING),
], ids=["help", "dataset list", "model list", "runs list"])
def test_command_imports_no_heavy_stack(outpost_home: Path, args: tuple[str, ...],
                                        unwanted: set[str]) -> None:
    imported = _imported(outpost_home, *args)
    assert "core" in imported  # the -X importtime report was read
    found = sorted(imported & unwanted)
    assert not found, f"outpost {' '.join(args)} imports {found}"
