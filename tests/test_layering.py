"""The layering in docs/design.md is checked by tools, not by memory."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_import_contracts_hold() -> None:
    proc = subprocess.run([str(BIN / "lint-imports")], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "broken" not in proc.stdout.lower() or "0 broken" in proc.stdout.lower()


@pytest.mark.slow
def test_mypy_passes_on_core_edge_agent_and_app() -> None:
    proc = subprocess.run(
        [str(BIN / "mypy"), "--no-error-summary"], cwd=REPO, capture_output=True, text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_agent_process_loads_no_heavy_library() -> None:
    """Importing every edge_agent module pulls in none of the desktop's libraries."""
    code = (
        "import importlib, pkgutil, sys, edge_agent\n"
        "for m in pkgutil.walk_packages(edge_agent.__path__, 'edge_agent.'):\n"
        "    if not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
        "bad = sorted({n.split('.')[0] for n in sys.modules} & "
        "{'duckdb','PySide6','sklearn','pandas','pyarrow','core','app','skl2onnx'})\n"
        "print(','.join(bad))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"edge_agent pulled in: {proc.stdout.strip()}"


def test_agent_install_pulls_no_desktop_library() -> None:
    """`pip install outpost[agent]` (the base install) must not bring Qt, DuckDB or scikit-learn."""
    import re
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    heavy = {"duckdb", "pyside6", "pyside6-essentials", "scikit-learn", "skl2onnx", "pandas",
             "pyarrow", "scipy", "pyqtgraph", "superqt"}
    for label, deps in (("dependencies", project["dependencies"]),
                        ("agent extra", project["optional-dependencies"]["agent"])):
        names = {re.split(r"[<>=!~;\[ ]", dep, maxsplit=1)[0].lower() for dep in deps}
        assert not names & heavy, f"{label} pulls {sorted(names & heavy)}"
    assert "duckdb" in " ".join(project["optional-dependencies"]["desktop"])


def test_ruff_finds_nothing() -> None:
    folders = ["app", "core", "edge_agent", "tests", "bench", "packaging"]
    proc = subprocess.run([str(BIN / "ruff"), "check", "--output-format", "concise", *folders],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
