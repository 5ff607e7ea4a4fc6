"""Fixtures shared by every test: an isolated OUTPOST_HOME and the CLI as a subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
# The installed console script, as a user runs it (it lives beside this interpreter).
OUTPOST = [str(Path(sys.executable).with_name("outpost"))]


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture
def outpost_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh, empty Outpost home for this test (also for in-process core calls)."""
    home = tmp_path / "outpost-home"
    monkeypatch.setenv("OUTPOST_HOME", str(home))
    yield home


def run_cli(home: Path, *args: str, timeout: float = 120, check: bool = False,
            input_text: str | None = None) -> CliResult:
    """Run ``outpost ARGS`` in a real subprocess against ``home``."""
    env = dict(os.environ, OUTPOST_HOME=str(home), COLUMNS="200", NO_COLOR="1")
    proc = subprocess.run(
        [*OUTPOST, *args], capture_output=True, text=True, env=env, timeout=timeout,
        cwd=REPO, input=input_text,
    )
    result = CliResult(proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise AssertionError(f"outpost {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return result


@pytest.fixture
def cli(outpost_home: Path):  # type: ignore[no-untyped-def]
    """``cli("dataset", "list", "--json")`` runs the real CLI against this test's home."""

    def run(*args: str, **kwargs: Any) -> CliResult:
        return run_cli(outpost_home, *args, **kwargs)

    return run
