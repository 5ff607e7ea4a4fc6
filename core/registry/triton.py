"""A model version as a Triton repository entry: ``NAME/config.pbtxt`` + ``NAME/V/model.onnx``.

The config is written in protobuf text format by hand (the desktop does not need
tritonclient at run time); the tests parse it with Triton's own ``model_config.proto``.

Batching: when every input and output has a free first dimension, that dimension is
the batch — ``max_batch_size`` is set, the dims leave it out and dynamic batching is
on. A tensor whose only dimension is the batch (a label vector) is declared ``[1]``
with an empty ``reshape``, Triton's convention for it. Any other model is served
unbatched (``max_batch_size: 0``) with its full shapes.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from core.errors import InvalidInput
from core.registry.models import ModelVersion
from core.registry.signature import TensorSig

# OIP datatype → Triton's DataType enum name (model_config.proto).
TRITON_TYPES = {
    "BOOL": "TYPE_BOOL", "UINT8": "TYPE_UINT8", "UINT16": "TYPE_UINT16",
    "UINT32": "TYPE_UINT32", "UINT64": "TYPE_UINT64", "INT8": "TYPE_INT8",
    "INT16": "TYPE_INT16", "INT32": "TYPE_INT32", "INT64": "TYPE_INT64", "FP16": "TYPE_FP16",
    "FP32": "TYPE_FP32", "FP64": "TYPE_FP64", "BF16": "TYPE_BF16", "BYTES": "TYPE_STRING",
}
MAX_BATCH_SIZE = 256
PLATFORM = "onnxruntime_onnx"


def batchable(mv: ModelVersion) -> bool:
    """Every input and output has a free first dimension (the batch)."""
    return all(s.shape and s.shape[0] == -1 for s in (*mv.inputs, *mv.outputs))


def _tensor(sig: TensorSig, batched: bool) -> str:
    datatype = TRITON_TYPES.get(sig.datatype)
    if datatype is None:
        raise InvalidInput(f"tensor {sig.name!r} has datatype {sig.datatype}, which Triton "
                           "cannot serve")
    dims = sig.shape[1:] if batched else sig.shape
    fields = [f"name: {json.dumps(sig.name)}", f"data_type: {datatype}"]
    if not dims:  # only the batch dimension: [1] in the config, reshaped to []
        fields += ["dims: [ 1 ]", "reshape: { shape: [ ] }"]
    else:
        fields.append(f"dims: [ {', '.join(str(d) for d in dims)} ]")
    return "  {\n" + "".join(f"    {f}\n" for f in fields) + "  }"


def _tensors(kind: str, sigs: Sequence[TensorSig], batched: bool) -> str:
    return f"{kind} [\n" + ",\n".join(_tensor(s, batched) for s in sigs) + "\n]\n"


def triton_config(mv: ModelVersion) -> str:
    """config.pbtxt for `mv` (ONNX Runtime backend, this version only)."""
    batched = batchable(mv)
    lines = [f"name: {json.dumps(mv.model)}\n", f"platform: {json.dumps(PLATFORM)}\n",
             f"max_batch_size: {MAX_BATCH_SIZE if batched else 0}\n",
             f"version_policy: {{ specific: {{ versions: [ {mv.version} ] }} }}\n",
             _tensors("input", mv.inputs, batched), _tensors("output", mv.outputs, batched)]
    if batched:
        lines.append("dynamic_batching { }\n")
    lines.append(f"parameters: {{ key: \"outpost_sha256\" value: {{ string_value: "
                 f"\"{mv.onnx_object}\" }} }}\n")
    return "".join(lines)


def write_triton_model(folder: Path, mv: ModelVersion, model_bytes: bytes) -> list[Path]:
    """Write ``folder/config.pbtxt`` and ``folder/V/model.onnx``; `folder` is named as the model."""
    config = folder / "config.pbtxt"
    onnx_file = folder / str(mv.version) / "model.onnx"
    onnx_file.parent.mkdir(parents=True)
    config.write_text(triton_config(mv), encoding="utf-8")
    onnx_file.write_bytes(model_bytes)
    return [config, onnx_file]
