"""The About dialog: what this is and the versions it runs on."""
from __future__ import annotations

import platform
import sys
from importlib.metadata import PackageNotFoundError, version

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import Qt, qVersion
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

from app.resources import app_icon
from app.tasks import TaskRunner

_PACKAGES = ("outpost", "duckdb", "scikit-learn", "skl2onnx", "onnx", "onnxruntime", "pyqtgraph",
             "superqt", "numpy", "pandas", "pyarrow")

_TAGLINE = "<p>Offline MLOps: datasets, training, ONNX models and edge agents.</p>"


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
    """Package versions come from a worker: the first metadata lookup scans site-packages."""

    def __init__(self, parent: QWidget | None, catalog_path: str, tasks: TaskRunner) -> None:
        super().__init__(parent)
        self.setWindowTitle("About Outpost")
        layout = QVBoxLayout(self)
        logo = QLabel()
        logo.setPixmap(app_icon().pixmap(64, 64))
        logo.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(logo)
        self.title = QLabel(f"<h2>Outpost</h2>{_TAGLINE}")
        self.title.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.title)
        self.footer = (f"<p>Catalog: {catalog_path}<br>"
                       f"Platform: {platform.platform()} ({sys.platform})</p>")
        self.table = QLabel(f"<p>Looking up versions…</p>{self.footer}")
        self.table.setObjectName("versions")
        self.table.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.table)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        tasks.run("Look up versions", lambda c: versions(), self._show_versions, visible=False)

    def _show_versions(self, found: dict[str, str]) -> None:
        self.title.setText(f"<h2>Outpost {found['outpost']}</h2>{_TAGLINE}")
        rows = "".join(f"<tr><td><b>{k}</b>&nbsp;&nbsp;</td><td>{v}</td></tr>"
                       for k, v in found.items())
        self.table.setText(f"<table>{rows}</table>{self.footer}")
