"""Qt models for registered models and their versions (with aliases and a parity badge)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.models.datasets import when
from app.models.records import Column, RecordTableModel

if TYPE_CHECKING:
    from core.registry import ModelVersion

PARITY_COLOURS = {"passed": "#1a7f37", "flagged": "#cf222e", "not checked": "#6e7781"}


def parity_state(version: ModelVersion) -> str:
    if version.flagged:
        return "flagged"
    if version.parity.get("passed"):
        return "passed"
    return "not checked"


def parity_text(version: ModelVersion) -> str:
    """The badge: the verdict and the numbers behind it."""
    state, p = parity_state(version), version.parity
    if state == "not checked":
        return f"parity not checked: {p.get('reason', 'imported model')}"
    parts = [f"parity {state}"]
    if p.get("label_agreement") is not None:
        parts.append(f"labels agree {float(p['label_agreement']):.2%}")
    if p.get("max_abs_diff") is not None:
        parts.append(f"max |Δ| {float(p['max_abs_diff']):.2g}")
    if p.get("rows") is not None:
        parts.append(f"{p['rows']} rows")
    return ", ".join(parts)


def source_text(version: ModelVersion) -> str:
    source = version.source
    if source.get("kind") == "run":
        run = str(source.get("run", ""))[:8]
        return f"run {run} ({source.get('algo')} on {source.get('dataset')})"
    if source.get("kind") == "import":
        return f"imported {source.get('file')}"
    return str(source.get("kind", ""))


class ModelsTableModel(RecordTableModel[dict[str, Any]]):
    """Rows of ``core.registry.list_models``: one per model."""

    def __init__(self) -> None:
        super().__init__([
            Column("Model", lambda m: m["model"]),
            Column("Versions", lambda m: m["versions"], align_right=True),
            Column("Latest", lambda m: m["latest"], align_right=True),
            Column("Aliases", lambda m: ", ".join(f"{a}→{v}" for a, v in
                                                  sorted(m["aliases"].items()))),
        ])

    def row_of(self, name: str) -> int | None:
        return next((i for i, m in enumerate(self.records) if m["model"] == name), None)


class ModelVersionsTableModel(RecordTableModel["ModelVersion"]):
    def __init__(self) -> None:
        super().__init__([
            Column("Version", lambda v: v.version, align_right=True),
            Column("Aliases", lambda v: ", ".join(v.aliases)),
            Column("Parity", parity_state, tip=parity_text,
                   colour=lambda v: PARITY_COLOURS[parity_state(v)]),
            Column("Task", lambda v: v.task or ""),
            Column("Inputs", lambda v: len(v.inputs), align_right=True),
            Column("Size", lambda v: v.onnx_bytes, lambda b: f"{b / 1024:,.1f} KiB",
                   align_right=True),
            Column("Source", source_text, tip=source_text),
            Column("Created", lambda v: v.created_at, when),
        ])

    def row_of(self, version: int) -> int | None:
        return next((i for i, v in enumerate(self.records) if v.version == version), None)
