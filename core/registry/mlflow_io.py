"""MLflow model directories, without MLflow: write the onnx flavor, read the onnx and sklearn ones.

An MLflow model is a folder with an ``MLmodel`` YAML file naming its flavors, its
artifacts and its signature. Export writes the onnx flavor (plus ``python_function``
so that ``mlflow.pyfunc.load_model`` serves it), the signature, an input example and
the model card as metadata. Import reads a folder carried in by hand (no tracking
server): the onnx flavor directly, the sklearn flavor through skl2onnx
(``core.registry.mlflow_sklearn``), and only with ``trust_pickle``.
"""
from __future__ import annotations

import json
import platform
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import yaml

from core.catalog import Catalog
from core.errors import InvalidInput, NotFound
from core.feeds import json_columns
from core.registry.imports import read_onnx_file
from core.registry.models import ModelVersion, validate_model_name
from core.registry.register import store_version
from core.registry.signature import TensorSig, graph_signature

MLMODEL = "MLmodel"
MAX_MLMODEL_BYTES = 1024 * 1024
INPUT_EXAMPLE = "input_example.json"
EXAMPLE_ROWS = 8
# OIP datatype ↔ the numpy dtype names of MLflow tensor specs.
MLFLOW_DTYPES = {"FP32": "float32", "FP64": "float64", "FP16": "float16", "INT8": "int8",
                 "INT16": "int16", "INT32": "int32", "INT64": "int64", "UINT8": "uint8",
                 "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64", "BOOL": "bool",
                 "BYTES": "object"}
_TENSOR_DTYPES = {v: k for k, v in MLFLOW_DTYPES.items()} | {"str": "BYTES", "bytes": "BYTES"}
# MLflow column types → the OIP datatypes an ONNX input may have for them.
_COLUMN_TYPES = {"double": {"FP64", "FP32"}, "float": {"FP32", "FP64"},
                 "long": {"INT64", "INT32", "FP32", "FP64"}, "integer": {"INT32", "INT64", "FP32",
                                                                      "FP64"},
                 "boolean": {"BOOL"}, "string": {"BYTES"}}
SUPPORTED_FLAVORS = ("onnx", "sklearn")


@dataclass(frozen=True)
class SignatureField:
    """One entry of an MLflow signature: a tensor (dtype, shape) or a column (type)."""

    name: str | None
    kind: str  # "tensor" or the column type ("double", "string", …)
    dtype: str | None = None
    shape: tuple[int, ...] | None = None


@dataclass(frozen=True)
class MLflowModel:
    folder: Path
    spec: dict[str, Any]
    inputs: list[SignatureField] | None
    outputs: list[SignatureField] | None

    @property
    def flavors(self) -> dict[str, Any]:
        return dict(self.spec["flavors"])

    def artifact(self, relative: object, what: str) -> Path:
        """A file the MLmodel names, inside the folder, present."""
        if not isinstance(relative, str) or not relative:
            raise InvalidInput(f"{self.folder.name}/MLmodel names no file for {what}")
        path = (self.folder / relative).resolve()
        if not path.is_relative_to(self.folder.resolve()):
            raise InvalidInput(f"{self.folder.name}/MLmodel points {what} outside the folder: "
                               f"{relative!r}")
        if not path.is_file():
            raise InvalidInput(f"{self.folder.name} is missing {relative}, the {what} its "
                               "MLmodel names")
        return path


# --- reading ---------------------------------------------------------------------------------

def _fields(text: object, where: str) -> list[SignatureField] | None:
    if text is None:
        return None
    try:
        items = json.loads(text) if isinstance(text, str) else None
    except json.JSONDecodeError:
        items = None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise InvalidInput(f"MLmodel signature {where} is not a JSON list of fields")
    fields = []
    for item in items:
        if item.get("type") == "tensor":
            spec = item.get("tensor-spec") or {}
            shape = spec.get("shape")
            fields.append(SignatureField(item.get("name"), "tensor", str(spec.get("dtype")),
                                         tuple(int(d) for d in shape) if shape else None))
        else:
            fields.append(SignatureField(item.get("name"), str(item.get("type"))))
    return fields


def read_mlflow_model(folder: Path) -> MLflowModel:
    """Parse ``folder/MLmodel`` (safe YAML, size-capped); one line saying why not otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotFound(f"no such folder: {folder}")
    path = folder / MLMODEL
    if not path.is_file():
        raise InvalidInput(f"{folder.name} is not an MLflow model folder: it has no MLmodel file")
    if path.stat().st_size > MAX_MLMODEL_BYTES:
        raise InvalidInput(f"{folder.name}/MLmodel is larger than 1 MiB")
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{folder.name}/MLmodel is not valid YAML: "
                           f"{' '.join(str(exc).split())[:200]}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("flavors"), dict):
        raise InvalidInput(f"{folder.name}/MLmodel has no flavors")
    signature = spec.get("signature") or {}
    if not isinstance(signature, dict):
        raise InvalidInput(f"{folder.name}/MLmodel has a malformed signature")
    return MLflowModel(folder, spec, _fields(signature.get("inputs"), "inputs"),
                       _fields(signature.get("outputs"), "outputs"))


def pick_flavor(model: MLflowModel) -> str:
    for flavor in SUPPORTED_FLAVORS:
        if flavor in model.flavors:
            return flavor
    found = ", ".join(sorted(model.flavors)) or "none"
    raise InvalidInput(f"{model.folder.name} has flavors {found}; Outpost imports the onnx and "
                       "sklearn flavors")


def _disagreement(field: SignatureField, sig: TensorSig) -> str | None:
    if field.kind == "tensor":
        wanted = _TENSOR_DTYPES.get(field.dtype or "")
        if wanted != sig.datatype:
            return f"dtype {field.dtype} but the graph has {sig.datatype}"
        shape = field.shape or ()
        if len(shape) != len(sig.shape) or any(
                a != b and -1 not in (a, b) for a, b in zip(shape, sig.shape, strict=True)):
            return f"shape {list(shape)} but the graph has {sig.shape}"
        return None
    allowed = _COLUMN_TYPES.get(field.kind)
    if allowed is None or sig.datatype not in allowed:
        return f"type {field.kind} but the graph has {sig.datatype}"
    return None


def check_signature(model: MLflowModel, graph: onnx.ModelProto) -> None:
    """Every field of the MLmodel signature names a graph tensor of a compatible type."""
    inputs, outputs = graph_signature(graph)
    for kind, fields, sigs in (("input", model.inputs, inputs), ("output", model.outputs, outputs)):
        by_name = {s.name: s for s in sigs}
        for i, field in enumerate(fields or []):
            sig = by_name.get(field.name) if field.name else (sigs[i] if i < len(sigs) else None)
            if sig is None:
                raise InvalidInput(f"the MLmodel signature has {kind} {field.name or i!r} "
                                   f"but the ONNX graph has {kind}s {sorted(by_name)}")
            problem = _disagreement(field, sig)
            if problem:
                raise InvalidInput(f"the MLmodel signature disagrees with the ONNX graph: "
                                   f"{kind} {sig.name!r} has {problem}")


def import_mlflow(catalog: Catalog, folder: Path, name: str, *, trust_pickle: bool = False,
                  dataset: str | None = None) -> ModelVersion:
    """Register an MLflow model folder as version N+1 of `name`."""
    validate_model_name(name)
    model = read_mlflow_model(Path(folder))
    flavor = pick_flavor(model)
    source = {"kind": "mlflow", "flavor": flavor, "folder": model.folder.name,
              "mlflow_version": model.spec.get("mlflow_version"),
              "run_id": model.spec.get("run_id")}
    if flavor == "sklearn":
        from core.registry.mlflow_sklearn import import_sklearn_flavor

        return import_sklearn_flavor(catalog, model, name, source, trust_pickle=trust_pickle,
                                     dataset=dataset)
    path = model.artifact(model.flavors["onnx"].get("data"), "ONNX model")
    graph, data = read_onnx_file(path)
    check_signature(model, graph)
    parity = {"checked": False, "passed": None,
              "reason": "imported from MLflow's onnx flavor: there is no trained pipeline to "
                        "compare with"}
    return store_version(catalog, name, data, run=None, source=source, task=None, labels=None,
                         parity=parity, flagged=False, model=graph)


# --- writing ---------------------------------------------------------------------------------

class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the model card) as YAML block literals, readable in the file."""


def _block(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value,
                                   style="|" if "\n" in value else None)


_Dumper.add_representer(str, _block)


def _tensor_specs(sigs: list[TensorSig]) -> str:
    return json.dumps([{"name": s.name, "type": "tensor",
                        "tensor-spec": {"dtype": MLFLOW_DTYPES[s.datatype], "shape": s.shape}}
                       for s in sigs])


def _input_example(mv: ModelVersion, example: Any) -> dict[str, Any] | None:
    """Complete sample rows as ``{input: [[v], …]}``, for tabular models only."""
    if example is None or not all(len(s.shape) == 2 and s.shape[1] == 1 for s in mv.inputs):
        return None
    complete = example.replace("", np.nan).notna().all(axis=1)
    rows = example[complete].head(EXAMPLE_ROWS)
    if rows.empty:
        return None
    return {k: [[v] for v in vs] for k, vs in json_columns(mv.inputs, rows).items()}


def mlmodel(mv: ModelVersion, card: str, has_example: bool) -> dict[str, Any]:
    unsupported = [s.name for s in (*mv.inputs, *mv.outputs) if s.datatype not in MLFLOW_DTYPES]
    if unsupported:
        raise InvalidInput(f"tensor {unsupported[0]!r} has a datatype MLflow signatures "
                           "cannot describe")
    spec: dict[str, Any] = {
        "flavors": {
            "onnx": {"code": None, "data": "model.onnx", "onnx_session_options": None,
                     "onnx_version": package_version("onnx"),
                     "providers": ["CPUExecutionProvider"]},
            "python_function": {"data": "model.onnx", "env": {"virtualenv": "python_env.yaml"},
                                "loader_module": "mlflow.onnx",
                                "python_version": platform.python_version()},
        },
        "metadata": {"outpost": {"model": mv.model, "version": mv.version,
                                 "sha256": mv.onnx_object, "task": mv.task,
                                 "labels": mv.labels, "card": card}},
        "model_uuid": uuid.uuid4().hex,
        "utc_time_created": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
        "signature": {"inputs": _tensor_specs(mv.inputs), "outputs": _tensor_specs(mv.outputs),
                      "params": None},
    }
    if has_example:
        spec["saved_input_example_info"] = {"artifact_path": INPUT_EXAMPLE, "type": "ndarray"}
    return spec


def write_mlflow(folder: Path, mv: ModelVersion, model_bytes: bytes, card: str,
                 example: Any = None) -> list[Path]:
    """An MLflow model folder (onnx + python_function flavors) for `mv`.

    `example` is a frame of sample rows (one column per input) or None."""
    folder.mkdir(parents=True)
    sample = _input_example(mv, example)
    files = {"model.onnx": model_bytes,
             MLMODEL: yaml.dump(mlmodel(mv, card, sample is not None), Dumper=_Dumper,
                                sort_keys=False).encode(),
             "requirements.txt": "".join(f"{p}=={package_version(p)}\n"
                                         for p in ("onnx", "onnxruntime", "numpy")).encode(),
             "python_env.yaml": yaml.safe_dump({
                 "python": platform.python_version(), "build_dependencies": ["pip"],
                 "dependencies": ["-r requirements.txt"]}).encode()}
    if sample is not None:
        files[INPUT_EXAMPLE] = json.dumps(sample).encode()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return [folder / name for name in files]
