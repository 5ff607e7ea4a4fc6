"""The Models view: versions with aliases and parity, register, import, export, alias, card."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.views.models import ModelsView
from app.window import MainWindow
from core.catalog import Catalog
from core.datasets import import_frame
from core.registry import register_model, resolve_model
from core.samples import SAMPLES
from core.training import train
from tests.support.gui import (  # noqa: F401 (fixtures)
    catalog_fixture,
    error_dialogs,
    make_window_fixture,
)


@pytest.fixture
def run_id(catalog: Catalog) -> str:
    sample = SAMPLES[0]
    import_frame(catalog, sample.name, sample.build(), {"target": sample.target})
    return train(catalog, sample.name, "target", algo="logistic_regression").id


def _view(qtbot: QtBot, window: MainWindow) -> ModelsView:
    view = window.view(ModelsView)
    assert isinstance(view, ModelsView)
    window.show_view(window.views.index(view))
    return view


def test_register_from_run_shows_version_parity_and_card(
        qtbot: QtBot, make_window: Callable[..., MainWindow], run_id: str) -> None:
    window = make_window([ModelsView])
    view = _view(qtbot, window)
    qtbot.waitUntil(lambda: "No models yet" in view.heading.text(), timeout=5000)
    dialog = view.open_register()
    qtbot.waitUntil(lambda: dialog.run_box.count() == 1, timeout=5000)
    assert dialog.name.text() == "breast_cancer"
    dialog.name.setText("bad name!")
    dialog.ok_button.click()
    qtbot.waitUntil(lambda: "invalid model name" in dialog.error.text(), timeout=5000)
    assert dialog.isVisible()
    dialog.name.setText("cancer")
    dialog.ok_button.click()
    qtbot.waitUntil(lambda: view.selected is not None, timeout=30_000)
    assert view.selected is not None and view.selected.ref == "cancer@1"
    assert view.badge.text().startswith("parity passed") and view.badge.property("badge") == "ok"
    qtbot.waitUntil(lambda: "Parity" in view.card.toPlainText(), timeout=5000)
    assert run_id in view.card.toPlainText()
    assert view.versions.data(view.versions.index(0, 2)) == "passed"


def test_alias_on_a_flagged_version_is_refused_with_reason_unless_forced(
        qtbot: QtBot, make_window: Callable[..., MainWindow], catalog: Catalog,
        run_id: str) -> None:
    register_model(catalog, run_id, "cancer")
    # A parity failure is rare by construction; mark the version as one to see the refusal.
    catalog.con.execute("UPDATE model_version SET flagged = true, parity = json_object("
                        "'checked', true, 'passed', false, 'label_agreement', 0.97, "
                        "'max_abs_diff', 0.4, 'rows', 114)")
    window = make_window([ModelsView])
    view = _view(qtbot, window)
    qtbot.waitUntil(lambda: view.selected is not None, timeout=5000)
    assert view.badge.property("badge") == "bad" and "flagged" in view.badge.text()
    dialog = view.open_alias()
    assert dialog is not None and not dialog.force.isVisible()
    dialog.alias.setCurrentText("production")
    dialog.ok_button.click()
    qtbot.waitUntil(lambda: "failed its parity check" in dialog.error.text(), timeout=5000)
    assert "97.0000%" in dialog.error.text() and dialog.force.isVisible()
    assert resolve_model(catalog, "cancer").aliases == []
    dialog.force.setChecked(True)
    dialog.ok_button.click()
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=5000)
    qtbot.waitUntil(lambda: view.selected is not None and view.selected.aliases == ["production"],
                    timeout=5000)
    assert "production" in view.models.data(view.models.index(0, 3))


def test_export_then_import_onnx_and_bad_file_inline(
        qtbot: QtBot, make_window: Callable[..., MainWindow], catalog: Catalog, run_id: str,
        tmp_path: Path) -> None:
    register_model(catalog, run_id, "cancer")
    window = make_window([ModelsView])
    view = _view(qtbot, window)
    qtbot.waitUntil(lambda: view.selected is not None, timeout=5000)
    out = tmp_path / "cancer.onnx"
    view.export(out)
    qtbot.waitUntil(out.exists, timeout=5000)

    bad = tmp_path / "junk.onnx"
    bad.write_bytes(b"not a protobuf at all")
    dialog = view.open_import()
    dialog.path.setText(str(bad))
    assert dialog.name.text() == "junk"
    dialog.ok_button.click()
    qtbot.waitUntil(lambda: "is not an ONNX model" in dialog.error.text(), timeout=5000)
    assert not error_dialogs(window), [(d.text(), d.detailedText()) for d in error_dialogs(window)]
    dialog.path.setText(str(out))
    dialog.name.setText("external")
    dialog.ok_button.click()
    qtbot.waitUntil(lambda: view.selected is not None and view.selected.model == "external",
                    timeout=10_000)
    assert view.badge.property("badge") == "none" and "not checked" in view.badge.text()
    assert [m["model"] for m in view.models.records] == ["cancer", "external"]


def test_staged_banner_approves_the_staged_version(
        qtbot: QtBot, make_window: Callable[..., MainWindow], catalog: Catalog,
        run_id: str) -> None:
    from core.registry import set_alias
    from core.registry.gate import STAGED

    set_alias(catalog, register_model(catalog, run_id, "cancer").ref, "production")
    set_alias(catalog, register_model(catalog, run_id, "cancer").ref, STAGED)  # as the gate does
    window = make_window([ModelsView])
    view = _view(qtbot, window)
    qtbot.waitUntil(lambda: not view.banner.isHidden(), timeout=10_000)
    assert "cancer@2" in view.banner_text.text()
    qtbot.mouseClick(view.approve_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.banner.isHidden() and not window.ctx.tasks.running(),
                    timeout=10_000)
    assert resolve_model(catalog, "cancer@production").version == 2
    assert not error_dialogs(window)
