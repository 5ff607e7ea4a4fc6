"""Registering an external ONNX file: check it, load it, read its signature."""
from __future__ import annotations

from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from core.catalog import Catalog
from core.errors import InvalidInput, NotFound
from core.registry.models import ModelVersion, validate_model_name
from core.registry.register import store_version
from core.registry.runtime import load_session

# Larger files would be rejected by onnx.load without external data anyway.
MAX_ONNX_BYTES = 2 * 1024**3


def read_onnx_file(path: Path) -> tuple[onnx.ModelProto, bytes]:
    """The parsed, checked model and its bytes; one line saying why not otherwise."""
    if not path.is_file():
        raise NotFound(f"no such file: {path}")
    size = path.stat().st_size
    if size == 0:
        raise InvalidInput(f"{path.name} is empty, not an ONNX model")
    if size > MAX_ONNX_BYTES:
        raise InvalidInput(f"{path.name} is larger than 2 GiB; external-data models are not "
                           "supported")
    data = path.read_bytes()
    try:
        model = onnx.load_model_from_string(data)
    except DecodeError:
        raise InvalidInput(f"{path.name} is not an ONNX model (or is truncated): it does not "
                           "parse as an ONNX protobuf") from None
    if not model.graph.node and not model.graph.output:
        raise InvalidInput(f"{path.name} is not an ONNX model: it has no graph")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = " ".join(str(exc).split())[:300]
        raise InvalidInput(f"{path.name} is not a valid ONNX model: {first}") from None
    load_session(data, path.name)
    return model, data


def import_onnx(catalog: Catalog, path: Path, name: str) -> ModelVersion:
    """Register an ONNX file as version N+1 of `name`; its signature comes from the graph."""
    validate_model_name(name)
    model, data = read_onnx_file(Path(path))
    parity = {"checked": False, "passed": None,
              "reason": "imported model: there is no trained pipeline to compare with"}
    return store_version(catalog, name, data, run=None,
                         source={"kind": "import", "file": Path(path).name,
                                 "producer": model.producer_name or None,
                                 "producer_version": model.producer_version or None},
                         task=None, labels=None, parity=parity, flagged=False, model=model)
