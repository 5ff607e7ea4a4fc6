"""Entry point of the frozen desktop app (`outpost`).

- no arguments: the GUI (`app.main.run_gui`);
- `--self-test`: prove the frozen folder works on this machine (catalog, Qt, onnxruntime);
- `-m edge_agent ...`: the local agent, which the desktop starts as
  `sys.executable -m edge_agent serve ...` (in a frozen app sys.executable is this program);
- anything else: the `outpost` command line (`core.cli.main`).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import tempfile
from pathlib import Path
from typing import Any


def _catalog_check(home: Path) -> dict[str, Any]:
    from core.catalog import Catalog
    from core.config import Settings

    catalog = Catalog.open(Settings(home=home))
    try:
        return {"catalog": str(catalog.path),
                "migrations": [name for name, _ in catalog.applied_migrations()]}
    finally:
        catalog.close()


def _qt_check() -> dict[str, Any]:
    from PySide6 import __version__ as pyside_version
    from PySide6.QtWidgets import QApplication, QLabel

    from app.resources import RESOURCES, icon, style_sheet

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication([sys.argv[0]])
    # The style sheet and an SVG icon come from resources/: proves the folder carries it.
    app.setStyleSheet(style_sheet("light"))
    label = QLabel("Outpost self-test")
    label.setWindowIcon(icon("models", "#000000"))
    label.show()
    app.processEvents()
    label.close()
    return {"qt": pyside_version, "platform": app.platformName(), "resources": str(RESOURCES)}


def _onnx_check() -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])
    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    graph = helper.make_graph([helper.make_node("Add", ["x", "one"], ["y"])], "add1", [x], [y],
                              [one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    result = session.run(None, {"x": np.array([[1.5]], dtype=np.float32)})[0]
    if result.tolist() != [[2.5]]:
        raise RuntimeError(f"x + 1 on 1.5 gave {result.tolist()}")
    return {"onnxruntime": ort.__version__, "inference": result.tolist()}


def self_test() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    report: dict[str, Any] = {"frozen": bool(getattr(sys, "frozen", False))}
    try:
        with tempfile.TemporaryDirectory(prefix="outpost-self-test-") as tmp:
            report.update(_catalog_check(Path(tmp)))
            report.update(_qt_check())
            report.update(_onnx_check())
    except Exception as exc:  # noqa: BLE001 -- any failure is the answer, in one line
        print(f"self-test failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report))
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--self-test"]:
        return self_test()
    if argv[:2] == ["-m", "edge_agent"]:
        from edge_agent.cli import main as agent_main

        return agent_main(argv[2:])
    if argv:
        from core.cli import main as cli_main

        cli_main(argv)
        return 0
    from app.main import run_gui

    return run_gui()


if __name__ == "__main__":
    multiprocessing.freeze_support()  # joblib/loky workers re-enter here in a frozen app
    sys.exit(main(sys.argv[1:]))
