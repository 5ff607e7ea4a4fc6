"""Helpers for the training and registry tests: small real datasets in a real catalog."""
from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd

from core.catalog import Catalog
from core.config import Settings
from core.datasets import import_frame
from core.samples import SAMPLES, sensor_frame

# The sensor generator at a test-sized row count: string categoricals, nulls, binary target.
SENSOR_TEST_ROWS = 3000


@contextmanager
def opened(home: Path) -> Iterator[Catalog]:
    with Catalog.open(Settings(home=home)) as catalog:
        yield catalog


def seed_datasets(home: Path) -> None:
    """breast_cancer, diabetes and a small field_sensor in the catalog at `home`."""
    builders = {s.name: s.build for s in SAMPLES}
    with opened(home) as catalog:
        import_frame(catalog, "breast_cancer", builders["breast_cancer"](), {"kind": "test"})
        import_frame(catalog, "diabetes", builders["diabetes"](), {"kind": "test"})
        import_frame(catalog, "sensor", sensor_frame(rows=SENSOR_TEST_ROWS), {"kind": "test"})


def catalog_state(home: Path) -> tuple[dict[str, list[tuple[Any, ...]]], list[str]]:
    """Every training/registry/dataset row and every file in the object store."""
    tables = ("dataset_version", "run", "model", "model_version", "model_alias")
    with opened(home) as catalog:
        rows = {t: catalog.con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
                for t in tables}
    files = sorted(str(p.relative_to(home)) for p in (home / "objects").rglob("*") if p.is_file())
    return rows, files


def run_onnx_file(path: Path, X: pd.DataFrame) -> tuple[list[str], list[np.ndarray]]:
    """Output names and outputs of the ONNX file in a fresh onnxruntime session."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {}
    for node in session.get_inputs():
        dtype = {"tensor(float)": np.float32, "tensor(double)": np.float64,
                 "tensor(string)": object}[node.type]
        feeds[node.name] = X[[node.name]].to_numpy(dtype=dtype)
    names = [o.name for o in session.get_outputs()]
    return names, session.run(names, feeds)


def run_main(*args: str) -> tuple[int, str, str]:
    """The `outpost` console script's entry point (core.entry:main, as pyproject names it)
    in this process: (exit code, stdout, stderr)."""
    from core.entry import main as entry_main

    # JSON goes to sys.stdout.buffer, so stdout needs a real binary buffer underneath.
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    err = io.StringIO()
    code, argv = 0, sys.argv
    with redirect_stdout(out), redirect_stderr(err):
        try:
            sys.argv = ["outpost", *args]
            entry_main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.argv = argv
    out.flush()
    return code, out.buffer.getvalue().decode(), err.getvalue()
