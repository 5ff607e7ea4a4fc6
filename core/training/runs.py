"""Runs in the catalog: what was trained, on which data version, how, and how well."""
from __future__ import annotations

import functools
import io
import platform
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

import duckdb
import orjson

from core.catalog import Catalog
from core.errors import InvalidInput, NotFound
from core.training.algorithms import ParamValue, Task

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from core.training.features import Feature

_PACKAGES = ("scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy", "pandas", "outpost")


@dataclass
class Run:
    id: str
    dataset: str
    dataset_version: str
    target: str
    features: list[str]
    task: Task
    algo: str
    params: dict[str, ParamValue]
    seed: int
    split: dict[str, Any]
    metrics: dict[str, Any]
    duration_s: float
    packages: dict[str, str]
    parent: str | None
    status: str
    created_at: datetime
    kind: str = "train"                      # train | search | trial
    feature_kinds: dict[str, str] = field(default_factory=dict)
    importance: dict[str, float] | None = None
    labels: list[int | str] | None = None
    notes: list[str] = field(default_factory=list)
    search: dict[str, Any] | None = None
    model_object: str | None = None

    @property
    def short(self) -> str:
        return self.id[:8]

    @property
    def feature_list(self) -> list[Feature]:
        from core.training.features import Feature

        return [Feature(name, self.feature_kinds[name]) for name in self.features]  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "parent": self.parent, "status": self.status,
            "dataset": self.dataset, "dataset_version": self.dataset_version,
            "target": self.target, "features": self.features,
            "feature_kinds": self.feature_kinds, "task": self.task, "algo": self.algo,
            "params": self.params, "seed": self.seed, "split": self.split,
            "metrics": self.metrics, "importance": self.importance, "labels": self.labels,
            "notes": self.notes, "search": self.search, "model_object": self.model_object,
            "duration_s": self.duration_s, "packages": self.packages,
            "created_at": self.created_at.isoformat(),
        }


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def now() -> datetime:
    return datetime.now(UTC)


@functools.cache
def _installed_versions() -> tuple[tuple[str, str], ...]:
    # Scanning site-packages takes 100-250 ms; the installed set does not change while we run.
    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return tuple(found.items())


def package_versions() -> dict[str, str]:
    return dict(_installed_versions())


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


_COLUMNS = ("id, kind, parent, dataset, dataset_version, target, features, task, algo, params, "
            "seed, split, metrics, importance, labels, notes, search, model_object, duration_s, "
            "packages, status, created_at")


def insert_run(cur: duckdb.DuckDBPyConnection, run: Run) -> None:
    features = [{"name": name, "kind": run.feature_kinds[name]} for name in run.features]
    cur.execute(
        f"INSERT INTO run ({_COLUMNS}) VALUES ({', '.join('?' * len(_COLUMNS.split(',')))})",
        [run.id, run.kind, run.parent, run.dataset, run.dataset_version, run.target,
         _json(features), run.task, run.algo, _json(run.params), run.seed, _json(run.split),
         _json(run.metrics), _json(run.importance), _json(run.labels), _json(run.notes),
         _json(run.search), run.model_object, run.duration_s, _json(run.packages), run.status,
         run.created_at],
    )


def _load(value: Any) -> Any:
    return None if value is None else orjson.loads(value)


def _from_row(row: tuple[Any, ...]) -> Run:
    (id_, kind, parent, dataset, dataset_version, target, features, task, algo, params, seed,
     split, metrics, importance, labels, notes, search, model_object, duration_s, packages,
     status, created_at) = row
    feature_rows = _load(features)
    params_ = {k: tuple(v) if isinstance(v, list) else v for k, v in _load(params).items()}
    return Run(
        id=id_, dataset=dataset, dataset_version=dataset_version, target=target,
        features=[f["name"] for f in feature_rows], task=task, algo=algo, params=params_,
        seed=int(seed), split=_load(split), metrics=_load(metrics), duration_s=float(duration_s),
        packages=_load(packages), parent=parent, status=status, created_at=created_at, kind=kind,
        feature_kinds={f["name"]: f["kind"] for f in feature_rows},
        importance=_load(importance), labels=_load(labels), notes=_load(notes),
        search=_load(search), model_object=model_object,
    )


def get_run(catalog: Catalog, run_id: str) -> Run:
    """A run by its id or a unique prefix of at least 4 characters."""
    key = run_id.strip().lower()
    if len(key) < 4:
        raise InvalidInput(f"run id {run_id!r} is too short; give at least 4 characters")
    rows = catalog.cursor().execute(
        f"SELECT {_COLUMNS} FROM run WHERE id LIKE ? ORDER BY id LIMIT 2",
        [key.replace("%", "").replace("_", "") + "%"]).fetchall()
    if not rows:
        raise NotFound(f"no run {run_id!r}")
    if len(rows) > 1:
        raise InvalidInput(f"run id {run_id!r} is ambiguous; give more characters")
    return _from_row(rows[0])


def list_runs(catalog: Catalog, *, include_trials: bool = False,
              parent: str | None = None) -> list[Run]:
    """Runs newest first; search trials only when asked, or those of one search."""
    where, args = "", []
    if parent is not None:
        where, args = "WHERE parent = ?", [parent]
    elif not include_trials:
        where = "WHERE kind <> 'trial'"
    rows = catalog.cursor().execute(
        f"SELECT {_COLUMNS} FROM run {where} ORDER BY created_at DESC, id", args).fetchall()
    return [_from_row(row) for row in rows]


def store_model(catalog: Catalog, model: Pipeline) -> tuple[str, bool]:
    """Pickle the fitted pipeline into the object store (desktop only: devices get ONNX)."""
    import joblib

    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return catalog.objects.put_bytes(buffer.getvalue())


def load_model(catalog: Catalog, run: Run) -> Pipeline:
    if run.model_object is None:
        hint = f"; use its search run {run.parent}" if run.parent else ""
        raise InvalidInput(f"run {run.short} has no fitted model (it is a search trial){hint}")
    import joblib
    from sklearn.pipeline import Pipeline

    path = catalog.objects.require(run.model_object)
    model = joblib.load(path)
    if not isinstance(model, Pipeline):
        raise InvalidInput(f"run {run.short}: stored model object is not a pipeline")
    return model
