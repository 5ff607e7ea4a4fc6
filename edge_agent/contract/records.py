"""Schemas of baseline.json, canary.json and telemetry records, as dataclasses."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeGuard

from edge_agent.contract.errors import SchemaError

if TYPE_CHECKING:  # numpy only where a baseline counts values: the CLI reads these schemas
    import numpy as np

PREDICTION_FEATURE = "__prediction__"


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _counts(doc: dict[str, Any], key: str, expected: int, where: str) -> list[int]:
    value = doc.get(key)
    if not isinstance(value, list) or not all(_is_int(c) and c >= 0 for c in value):
        raise SchemaError(f"{where}: {key} must be a list of ints >= 0")
    if len(value) != expected:
        raise SchemaError(f"{where}: {key} has {len(value)} entries, expected {expected}")
    return list(value)


@dataclass(frozen=True)
class FeatureBaseline:
    """Bins of one feature. Numeric: bin 0 = (-inf, c1), bin i = [c_i, c_i+1), last = [ck, inf).
    Categorical: one bin per category plus a last "other" bin. Nulls are counted apart."""

    name: str
    kind: Literal["numeric", "categorical"]
    counts: list[int]
    nulls: int
    edges: list[float] | None = None
    categories: list[str] | None = None

    @property
    def bins(self) -> int:
        return len(self.counts)

    def count(self, values: Sequence[Any] | np.ndarray) -> tuple[list[int], int]:
        """The reference binning: counts per bin and the null count for `values`."""
        import numpy as np

        if self.kind == "numeric":
            arr = np.asarray(
                [np.nan if v is None else v for v in values], dtype=np.float64
            ).ravel()
            null = np.isnan(arr)
            idx = np.searchsorted(np.asarray(self.edges, dtype=np.float64), arr[~null], "right")
            return np.bincount(idx, minlength=self.bins).tolist(), int(null.sum())
        index = {c: i for i, c in enumerate(self.categories or [])}
        counts, nulls = [0] * self.bins, 0
        for v in np.asarray(values, dtype=object).ravel():
            if v is None or v == "" or (isinstance(v, float) and math.isnan(v)):
                nulls += 1
            else:
                counts[index.get(str(v), self.bins - 1)] += 1
        return counts, nulls

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.kind == "numeric":
            doc["edges"] = self.edges
        else:
            doc["categories"] = self.categories
        doc.update(counts=self.counts, nulls=self.nulls)
        return doc

    @classmethod
    def from_dict(cls, doc: object, where: str = "baseline") -> FeatureBaseline:
        if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
            raise SchemaError(f"{where}: each feature needs a name")
        name = doc["name"]
        where = f"{where} feature {name}"
        nulls = doc.get("nulls", 0)
        if not _is_int(nulls) or nulls < 0:
            raise SchemaError(f"{where}: nulls must be an int >= 0")
        kind = doc.get("kind")
        if kind == "numeric":
            edges = doc.get("edges")
            if not isinstance(edges, list) or not all(
                _is_number(e) and math.isfinite(e) for e in edges
            ):
                raise SchemaError(f"{where}: edges must be a list of finite numbers")
            if any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
                raise SchemaError(f"{where}: edges must be strictly increasing")
            counts = _counts(doc, "counts", len(edges) + 1, where)
            return cls(name, "numeric", counts, nulls, edges=[float(e) for e in edges])
        if kind == "categorical":
            cats = doc.get("categories")
            if not isinstance(cats, list) or not all(isinstance(c, str) for c in cats):
                raise SchemaError(f"{where}: categories must be a list of strings")
            if len(set(cats)) != len(cats):
                raise SchemaError(f"{where}: categories are not unique")
            counts = _counts(doc, "counts", len(cats) + 1, where)
            return cls(name, "categorical", counts, nulls, categories=list(cats))
        raise SchemaError(f"{where}: kind must be 'numeric' or 'categorical'")


@dataclass(frozen=True)
class Baseline:
    rows: int
    features: list[FeatureBaseline]
    prediction: FeatureBaseline | None = None

    def feature(self, name: str) -> FeatureBaseline | None:
        for f in self.features:
            if f.name == name:
                return f
        return self.prediction if name == PREDICTION_FEATURE else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "features": [f.to_dict() for f in self.features],
            "prediction": self.prediction.to_dict() if self.prediction else None,
        }

    @classmethod
    def from_dict(cls, doc: object) -> Baseline:
        if not isinstance(doc, dict):
            raise SchemaError("baseline must be a JSON object")
        rows = doc.get("rows")
        if not _is_int(rows) or rows < 0:
            raise SchemaError("baseline: rows must be an int >= 0")
        feats = doc.get("features")
        if not isinstance(feats, list):
            raise SchemaError("baseline: features must be a list")
        features = [FeatureBaseline.from_dict(f) for f in feats]
        if len({f.name for f in features}) != len(features):
            raise SchemaError("baseline: feature names are not unique")
        pred = doc.get("prediction")
        prediction = (
            None if pred is None else FeatureBaseline.from_dict(pred, "baseline prediction")
        )
        return cls(rows, features, prediction)


@dataclass(frozen=True)
class Canary:
    """Sample inputs (one list per model input) and the outputs the model must give."""

    inputs: dict[str, list[Any]]
    expected: dict[str, list[Any]]
    atol: float = 1e-4
    label_output: str | None = None

    @property
    def rows(self) -> int:
        return len(next(iter(self.inputs.values())))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: object) -> Canary:
        if not isinstance(doc, dict):
            raise SchemaError("canary must be a JSON object")
        inputs, expected = doc.get("inputs"), doc.get("expected")
        for key, value in (("inputs", inputs), ("expected", expected)):
            if not isinstance(value, dict) or not value or not all(
                isinstance(v, list) for v in value.values()
            ):
                raise SchemaError(f"canary: {key} must map names to lists")
        assert isinstance(inputs, dict) and isinstance(expected, dict)
        if len({len(v) for v in inputs.values()}) != 1 or not next(iter(inputs.values())):
            raise SchemaError("canary: every input needs the same number (>= 1) of values")
        atol = doc.get("atol", 1e-4)
        if not _is_number(atol) or not 0 <= atol < math.inf:
            raise SchemaError("canary: atol must be a finite number >= 0")
        label = doc.get("label_output")
        if label is not None and label not in expected:
            raise SchemaError("canary: label_output must name an expected output")
        return cls(dict(inputs), dict(expected), float(atol), label)
