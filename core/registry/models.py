"""Model versions in the catalog: records, look-up by reference, listing."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import orjson

from core.catalog import Catalog
from core.errors import InvalidInput, NotFound
from core.registry.signature import TensorSig

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
LATEST = "latest"


@dataclass
class ModelVersion:
    model: str
    version: int
    run: str | None
    onnx_object: str
    inputs: list[TensorSig]
    outputs: list[TensorSig]
    opset: dict[str, int]
    task: str | None
    labels: list[Any] | None
    parity: dict[str, Any]
    flagged: bool
    aliases: list[str]
    created_at: datetime
    source: dict[str, Any] = field(default_factory=dict)
    onnx_bytes: int = 0

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "version": self.version, "run": self.run,
            "source": self.source, "onnx_object": self.onnx_object,
            "onnx_bytes": self.onnx_bytes,
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs], "opset": self.opset,
            "task": self.task, "labels": self.labels, "parity": self.parity,
            "flagged": self.flagged, "aliases": self.aliases,
            "created_at": self.created_at.isoformat(),
        }


def validate_model_name(name: str) -> str:
    if not _NAME.match(name) or name == LATEST:
        raise InvalidInput(f"invalid model name {name!r}: use 1-64 letters, digits, '_', '.' "
                           "or '-', starting with a letter or digit")
    return name


def validate_alias(alias: str) -> str:
    if not _NAME.match(alias) or alias.isdigit() or alias == LATEST:
        raise InvalidInput(f"invalid alias {alias!r}: use letters, digits, '_', '.' or '-', "
                           "not a plain number and not 'latest'")
    return alias


def parse_model_ref(ref: str) -> tuple[str, str | None]:
    name, sep, selector = ref.strip().partition("@")
    if not name or (sep and not selector):
        raise InvalidInput(f"invalid model reference {ref!r}: use M, M@VERSION or M@ALIAS")
    return name, selector or None


_COLUMNS = ("model, version, run, source, onnx_object, onnx_bytes, inputs, outputs, opset, task, "
            "labels, parity, flagged, created_at")


def _current_aliases(cur: duckdb.DuckDBPyConnection, model: str) -> dict[int, list[str]]:
    rows = cur.execute("SELECT version, alias FROM model_alias WHERE model = ? AND "
                       "released_at IS NULL ORDER BY alias", [model]).fetchall()
    found: dict[int, list[str]] = {}
    for version, alias in rows:
        found.setdefault(int(version), []).append(alias)
    return found


def _from_row(row: tuple[Any, ...], aliases: dict[int, list[str]]) -> ModelVersion:
    (model, version, run, source, onnx_object, onnx_bytes, inputs, outputs, opset, task, labels,
     parity, flagged, created_at) = row
    return ModelVersion(
        model=model, version=int(version), run=run, onnx_object=onnx_object,
        inputs=[TensorSig.from_dict(d) for d in orjson.loads(inputs)],
        outputs=[TensorSig.from_dict(d) for d in orjson.loads(outputs)],
        opset=orjson.loads(opset), task=task,
        labels=None if labels is None else orjson.loads(labels), parity=orjson.loads(parity),
        flagged=bool(flagged), aliases=aliases.get(int(version), []), created_at=created_at,
        source=orjson.loads(source), onnx_bytes=int(onnx_bytes),
    )


def model_exists(cur: duckdb.DuckDBPyConnection, name: str) -> bool:
    return cur.execute("SELECT 1 FROM model WHERE name = ?", [name]).fetchone() is not None


def list_models(catalog: Catalog) -> list[dict[str, Any]]:
    """One row per model: name, latest version, version count, current aliases."""
    cur = catalog.cursor()
    rows = cur.execute(
        "SELECT m.name, m.created_at, max(v.version), count(v.version) FROM model m "
        "LEFT JOIN model_version v ON v.model = m.name GROUP BY m.name, m.created_at "
        "ORDER BY m.name").fetchall()
    result = []
    for name, created_at, latest, count in rows:
        aliases = _current_aliases(cur, name)
        result.append({"model": name, "latest": latest, "versions": int(count),
                       "aliases": {a: v for v, names in aliases.items() for a in names},
                       "created_at": created_at.isoformat()})
    return result


def list_versions(catalog: Catalog, model: str) -> list[ModelVersion]:
    cur = catalog.cursor()
    if not model_exists(cur, model):
        raise NotFound(f"no model {model!r}")
    aliases = _current_aliases(cur, model)
    rows = cur.execute(f"SELECT {_COLUMNS} FROM model_version WHERE model = ? ORDER BY version",
                       [model]).fetchall()
    return [_from_row(row, aliases) for row in rows]


def _version_number(cur: duckdb.DuckDBPyConnection, name: str, selector: str | None) -> int:
    if selector is None or selector == LATEST:
        row = cur.execute("SELECT max(version) FROM model_version WHERE model = ?",
                          [name]).fetchone()
        if row is None or row[0] is None:
            raise NotFound(f"model {name!r} has no versions")
        return int(row[0])
    if selector.isdigit():
        return int(selector)
    row = cur.execute("SELECT version FROM model_alias WHERE model = ? AND alias = ? AND "
                      "released_at IS NULL", [name, selector]).fetchone()
    if row is None:
        raise NotFound(f"model {name!r} has no alias {selector!r}")
    return int(row[0])


def resolve_model(catalog: Catalog, ref: str) -> ModelVersion:
    """``M`` (latest), ``M@3`` or ``M@alias`` → the model version."""
    name, selector = parse_model_ref(ref)
    cur = catalog.cursor()
    if not model_exists(cur, name):
        raise NotFound(f"no model {name!r}")
    number = _version_number(cur, name, selector)
    row = cur.execute(f"SELECT {_COLUMNS} FROM model_version WHERE model = ? AND version = ?",
                      [name, number]).fetchone()
    if row is None:
        count = cur.execute("SELECT count(*) FROM model_version WHERE model = ?",
                            [name]).fetchone()
        raise NotFound(f"model {name!r} has no version {number} "
                       f"({count[0] if count else 0} versions)")
    return _from_row(row, _current_aliases(cur, name))
