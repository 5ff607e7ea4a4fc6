"""Registering an external ONNX file: check it, load it, read its signature."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
from google.protobuf.message import DecodeError

from core.catalog import Catalog
from core.errors import InvalidInput, NotFound
from core.registry import tensor_inputs
from core.registry.models import ModelVersion, validate_model_name
from core.registry.register import store_version
from core.registry.runtime import load_session, ort_message
from core.registry.signature import graph_signature

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


def import_onnx(catalog: Catalog, path: Path, name: str, *,
                sample: Path | None = None) -> ModelVersion:
    """Register an ONNX file as version N+1 of `name`; its signature comes from the graph.

    ``sample``: an ``.npz`` with one array per input, the canary's inputs (and the
    prediction baseline's); a model with tensor inputs and no sample gets a canary
    generated to its signature. The source records which.
    """
    validate_model_name(name)
    model, data = read_onnx_file(Path(path))
    inputs, _ = graph_signature(model)
    parity = {"checked": False, "passed": None,
              "reason": "imported model: there is no trained pipeline to compare with"}
    source: dict[str, Any] = {"kind": "import", "file": Path(path).name,
                              "producer": model.producer_name or None,
                              "producer_version": model.producer_version or None}
    sample_sha: str | None = None
    created = False
    if sample is not None:
        arrays = tensor_inputs.load_sample(Path(sample), inputs)
        _run_sample(data, Path(sample).name, arrays)
        sample_sha, created = catalog.objects.put_bytes(tensor_inputs.to_npz(arrays))
        rows = len(next(iter(arrays.values())))
        source["canary"] = {"from": "sample", "file": Path(sample).name, "object": sample_sha,
                            "rows": rows}
    elif tensor_inputs.has_tensor_inputs(inputs):
        source["canary"] = {"from": "generated", "reason": "no --sample given: inputs "
                            "generated to the signature (random values, fixed seed)"}
    try:
        return store_version(catalog, name, data, run=None, source=source, task=None,
                             labels=None, parity=parity, flagged=False, model=model)
    except BaseException:
        if sample_sha is not None and created:
            catalog.objects.discard(sample_sha)
        raise


def _run_sample(data: bytes, label: str, arrays: dict[str, Any]) -> None:
    """The sample must run through the model here, or the canary would fail later."""
    session = load_session(data, label)
    try:
        session.run(None, arrays)
    except Exception as exc:  # onnxruntime raises untyped errors for bad inputs
        raise InvalidInput(f"{label} does not run through the model: "
                           f"{ort_message(exc)}") from None
