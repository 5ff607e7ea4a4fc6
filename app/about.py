"""The About dialog: what this is and the versions it runs on."""
from __future__ import annotations

import platform
import sys
from importlib.metadata import PackageNotFoundError, version

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import Qt, qVersion
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

from app.resources import app_icon

_PACKAGES = ("outpost", "duckdb", "scikit-learn", "skl2onnx", "onnx", "onnxruntime", "pyqtgraph",
             "superqt", "numpy", "pandas", "pyarrow")


def versions() -> dict[str, str]:
    found: dict[str, str] = {
        "Python": platform.python_version(),
        "Qt": qVersion(),
        "PySide6": pyside_version,
    }
    for name in _PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


class AboutDialog(QDialog):
    def __init__(self, parent: QWidget | None, catalog_path: str) -> None:
        super().__init__(parent)
        self.setWindowTitle("About Outpost")
        layout = QVBoxLayout(self)
        logo = QLabel()
        logo.setPixmap(app_icon().pixmap(64, 64))
        logo.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(logo)
        title = QLabel(f"<h2>Outpost {versions()['outpost']}</h2>"
                       "<p>Offline MLOps: datasets, training, ONNX models and edge agents.</p>")
        title.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(title)
        rows = "".join(f"<tr><td><b>{k}</b>&nbsp;&nbsp;</td><td>{v}</td></tr>"
                       for k, v in versions().items())
        table = QLabel(f"<table>{rows}</table><p>Catalog: {catalog_path}<br>"
                       f"Platform: {platform.platform()} ({sys.platform})</p>")
        table.setObjectName("versions")
        table.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(table)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
