"""The runs table: fixed columns plus one column per metric the listed runs carry."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from app.models.datasets import when
from app.models.records import Column, RecordTableModel, number

if TYPE_CHECKING:
    from core.training import Run


def scalar_metrics(runs: list[Run], order: Sequence[str] = ()) -> list[str]:
    """Metric names with a number in at least one run, in ``order`` (the metric registry's,
    fetched with the runs), then the rest by name."""
    seen: list[str] = []
    for run in runs:
        for name, value in run.metrics.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and name not in seen:
                seen.append(name)
    known = [m for m in order if m in seen]
    return known + sorted(m for m in seen if m not in known)


def _metric(name: str) -> Column[Run]:
    def value(run: Run) -> Any:
        return run.metrics.get(name)

    return Column(name, value, lambda v: number(v, 4), align_right=True)


def _status_colour(run: Run) -> str | None:
    return None if run.status in ("done", "ok", "finished", "completed") else "#cf222e"


BASE_COLUMNS: list[Column[Run]] = [
    Column("Run", lambda r: r.short, tip=lambda r: r.id),
    Column("Kind", lambda r: r.kind),
    Column("Dataset", lambda r: f"{r.dataset}@{r.dataset_version[:12]}"),
    Column("Target", lambda r: r.target),
    Column("Algorithm", lambda r: r.algo),
    Column("Status", lambda r: r.status, colour=_status_colour),
    Column("Duration s", lambda r: r.duration_s, lambda v: f"{v:.1f}", align_right=True),
    Column("Created", lambda r: r.created_at, when),
]


class RunsTableModel(RecordTableModel["Run"]):
    def __init__(self) -> None:
        super().__init__(BASE_COLUMNS)
        self.metrics: list[str] = []
        self.order: list[str] = []

    def set_records(self, records: Any) -> None:
        runs = list(records)
        self.metrics = scalar_metrics(runs, self.order)
        self.beginResetModel()
        self.columns = BASE_COLUMNS + [_metric(m) for m in self.metrics]
        self.records = runs
        self.endResetModel()

    def row_of(self, run_id: str) -> int | None:
        return next((i for i, r in enumerate(self.records) if r.id == run_id), None)

    def metric_column(self, name: str) -> int:
        return len(BASE_COLUMNS) + self.metrics.index(name)
