"""Open Inference Protocol (KServe v2 / Triton REST) tensors: request decode, response encode.

Covers JSON tensors and the binary tensor data extension: the body is a JSON
header of ``Inference-Header-Content-Length`` bytes followed by raw tensors, in
input order, for every input whose parameters carry ``binary_data_size``.
Decoding is orjson + numpy: element conversion happens in C, never in a Python
loop, except BYTES, whose elements are Python strings either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from edge_agent.contract.errors import AgentError
from edge_agent.serving.tensors import (
    DTYPES,
    Array,
    InferRequestInvalid,
    all_finite,
    binary_array,
    fail,
    json_arrays,
    strings_bytes,
)

__all__ = ["DTYPES", "InferInput", "InferRequest", "InferRequestInvalid",
           "decode_infer_request", "encode_infer_response", "parse_header_length"]

HEADER_LENGTH = "inference-header-content-length"
_NAME_BY_KIND_SIZE = {(dt.kind, dt.itemsize): name for name, dt in DTYPES.items()}
_MAX_RANK = 8


@dataclass(slots=True)
class InferInput:
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: Array
    finite: bool = True  # no NaN or Inf among the values


@dataclass(slots=True)
class InferRequest:
    id: str | None
    parameters: dict[str, Any]
    inputs: list[InferInput]
    # requested output name -> send as binary; None = every output
    outputs: dict[str, bool] | None
    binary_output: bool = False


@dataclass(slots=True)
class _Tensor:
    """An input's header, checked, before its values are decoded."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    count: int
    data: Any  # the JSON data, or None for binary
    size: int | None  # binary_data_size
    array: Array | None = None
    finite: bool = True


def parse_header_length(value: bytes | None, body_length: int) -> int | None:
    """The JSON header length from the extension's HTTP header, or None when absent."""
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        raise fail("Inference-Header-Content-Length is not an integer") from None
    if not 0 < length <= body_length:
        raise fail(f"Inference-Header-Content-Length {length} does not fit a body of "
                    f"{body_length} bytes")
    return length


def _parameters(obj: dict[str, Any], where: str) -> dict[str, Any]:
    params = obj.get("parameters")
    if params is None:
        return {}
    if type(params) is not dict:
        raise fail(f"{where} parameters must be an object")
    return params


def _tensor(raw: Any) -> _Tensor:
    if type(raw) is not dict:
        raise fail("each input must be an object")
    name = raw.get("name")
    if type(name) is not str:
        raise fail("input name must be a string")
    datatype = raw.get("datatype")
    if datatype not in DTYPES:
        raise fail(f"input {name}: unknown datatype {datatype!r}")
    shape = raw.get("shape")
    if type(shape) is not list or len(shape) > _MAX_RANK:
        raise fail(f"input {name}: shape must be a list of at most {_MAX_RANK} integers")
    count = 1
    for dim in shape:
        if type(dim) is not int or dim < 0:
            raise fail(f"input {name}: shape must hold non-negative integers, got {shape}")
        count *= dim
    size = None
    if "parameters" in raw:
        size = _parameters(raw, "input").get("binary_data_size")
        if size is not None and (type(size) is not int or size < 0):
            raise fail(f"input {name}: binary_data_size must be an integer >= 0")
        if size is not None and "data" in raw:
            raise fail(f"input {name}: has both data and binary_data_size")
    return _Tensor(name, datatype, tuple(shape), count, raw.get("data"), size)


def _groupable(t: _Tensor) -> bool:
    return t.datatype not in ("BYTES", "BOOL") and t.size == t.count * DTYPES[t.datatype].itemsize


def _runs(claims: list[_Tensor]) -> list[list[_Tensor]]:
    """Consecutive binary inputs of one numeric datatype, whose bytes are contiguous."""
    runs: list[list[_Tensor]] = []
    for t in claims:
        last = runs[-1][-1] if runs else None
        if last is not None and last.datatype == t.datatype and _groupable(last) and \
                _groupable(t):
            runs[-1].append(t)
        else:
            runs.append([t])
    return runs


def _decode_binary(tensors: list[_Tensor], binary: memoryview) -> None:
    """Cut the binary section into the inputs that claim it, in order; each run of
    consecutive inputs of one numeric datatype is read with one frombuffer."""
    claims = [t for t in tensors if t.size is not None]
    total = sum(t.size or 0 for t in claims)
    if total != len(binary):
        raise fail(f"binary data has {len(binary)} bytes, inputs claim {total}")
    pos = 0
    for run in _runs(claims):
        end = pos + sum(t.size or 0 for t in run)
        first = run[0]
        arr = binary_array(binary[pos:end], first.datatype, first.name,
                           sum(t.count for t in run))
        finite, start = all_finite(arr), 0
        for t in run:
            t.array = arr[start:start + t.count] if len(run) > 1 else arr
            t.finite = finite or all_finite(t.array)
            start += t.count
        pos = end


def _decode_json(tensors: list[_Tensor]) -> None:
    """Decode the JSON inputs; flat lists of one datatype share one numpy conversion."""
    groups: dict[str, list[_Tensor]] = {}
    for t in tensors:
        if t.size is not None:
            continue
        flat = type(t.data) is list and (not t.data or type(t.data[0]) is not list)
        key = t.datatype if flat and len(t.data) == t.count else f"{id(t)}"
        groups.setdefault(key, []).append(t)
    for group in groups.values():
        decoded = json_arrays([t.data for t in group], group[0].datatype,
                              [t.name for t in group])
        for t, (arr, finite) in zip(group, decoded, strict=True):
            t.array, t.finite = arr, finite


def _requested_outputs(raw: Any) -> dict[str, bool] | None:
    if raw is None:
        return None
    if type(raw) is not list:
        raise fail("outputs must be a list")
    wanted: dict[str, bool] = {}
    for out in raw:
        if type(out) is not dict or type(out.get("name")) is not str:
            raise fail("each requested output must be an object with a name")
        binary = _parameters(out, f"output {out['name']}").get("binary_data", False)
        wanted[out["name"]] = binary is True
    return wanted


@dataclass(frozen=True, slots=True)
class _Plan:
    """An all-binary request's JSON header, parsed and checked once: clients send the
    same header with every request, so the next one only cuts its binary data."""

    request: InferRequest  # inputs empty; id, parameters and outputs shared read-only
    size: int  # binary bytes the inputs claim
    # per run: byte range, datatype, first input's name, element count, and
    # (name, shape, count) of each input in it
    runs: tuple[tuple[int, int, str, str, int, tuple[tuple[str, tuple[int, ...], int], ...]],
                ...]


_PLANS: dict[bytes, _Plan] = {}
_MAX_PLANS = 256
# Only headers a real client sends (a few hundred bytes per input) are cached: the cache
# then holds at most 256 x 16 KiB, whatever a peer pads its headers with.
_MAX_PLAN_HEADER = 16 * 1024


def _plan_of(request: InferRequest, tensors: list[_Tensor]) -> _Plan | None:
    if any(t.size is None for t in tensors):
        return None
    runs, pos = [], 0
    for run in _runs(tensors):
        end = pos + sum(t.size or 0 for t in run)
        runs.append((pos, end, run[0].datatype, run[0].name, sum(t.count for t in run),
                     tuple((t.name, t.shape, t.count) for t in run)))
        pos = end
    empty = InferRequest(request.id, request.parameters, [], request.outputs,
                         request.binary_output)
    return _Plan(empty, pos, tuple(runs))


def _from_plan(plan: _Plan, binary: memoryview) -> InferRequest:
    if len(binary) != plan.size:
        raise fail(f"binary data has {len(binary)} bytes, inputs claim {plan.size}")
    inputs = []
    for pos, end, datatype, first, total, members in plan.runs:
        arr = binary_array(binary[pos:end], datatype, first, total)
        finite = all_finite(arr)
        if len(members) == 1:
            name, shape, _ = members[0]
            inputs.append(InferInput(name, datatype, shape, arr.reshape(shape), finite))
            continue
        start = 0
        for name, shape, count in members:
            part = arr[start:start + count]
            inputs.append(InferInput(name, datatype, shape, part.reshape(shape),
                                     finite or all_finite(part)))
            start += count
    base = plan.request
    return InferRequest(base.id, base.parameters, inputs, base.outputs, base.binary_output)


def decode_infer_request(body: bytes, header_length: int | None = None) -> InferRequest:
    """Parse an infer request body (JSON, or JSON header + binary tensors)."""
    header = body if header_length is None else body[:header_length]
    binary = memoryview(body)[len(header):]
    if header_length is not None:
        plan = _PLANS.get(header)
        if plan is not None:
            return _from_plan(plan, binary)
    try:
        doc = orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        raise fail(f"request is not valid JSON: {exc}") from None
    if type(doc) is not dict:
        raise fail("request must be a JSON object")
    request_id = doc.get("id")
    if request_id is not None and type(request_id) is not str:
        raise fail("id must be a string")
    params = _parameters(doc, "request")
    raw_inputs = doc.get("inputs")
    if type(raw_inputs) is not list or not raw_inputs:
        raise fail("inputs must be a non-empty list")
    tensors = [_tensor(raw) for raw in raw_inputs]
    with np.errstate(over="ignore"):
        _decode_binary(tensors, binary)
        _decode_json(tensors)
    inputs = []
    for t in tensors:
        assert t.array is not None
        if t.array.size != t.count:
            raise fail(f"input {t.name}: data has {t.array.size} elements, shape "
                       f"{list(t.shape)} needs {t.count}")
        inputs.append(InferInput(t.name, t.datatype, t.shape, t.array.reshape(t.shape),
                                 t.finite))
    request = InferRequest(request_id, params, inputs, _requested_outputs(doc.get("outputs")),
                           params.get("binary_data_output") is True)
    if header_length is not None and len(header) <= _MAX_PLAN_HEADER:
        plan = _plan_of(request, tensors)
        if plan is not None:
            if len(_PLANS) >= _MAX_PLANS:
                _PLANS.clear()
            _PLANS[header] = plan
    return request


def datatype_of(arr: np.ndarray[Any, Any]) -> str:
    if arr.dtype.kind in "OUS":
        return "BYTES"
    name = _NAME_BY_KIND_SIZE.get((arr.dtype.kind, arr.dtype.itemsize))
    if name is None:
        raise AgentError(f"output dtype {arr.dtype} has no protocol datatype")
    return name


def _json_data(arr: np.ndarray[Any, Any], datatype: str) -> Any:
    if datatype == "BYTES":
        return [x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)
                for x in arr.ravel().tolist()]
    if datatype == "FP16":
        arr = arr.astype(np.float32)
    return np.ascontiguousarray(arr).ravel()


def encode_infer_response(model: str, version: int, request: InferRequest,
                          outputs: list[tuple[str, np.ndarray[Any, Any]]],
                          ids: list[str] | None = None) -> tuple[bytes, int | None]:
    """The response body and, when any output is binary, the JSON header length.

    `id` echoes the client's id, or else is the first row's prediction id; Outpost's ids,
    one per row, are in ``parameters.prediction_ids``."""
    doc: dict[str, Any] = {"model_name": model, "model_version": str(version)}
    if request.id is not None:
        doc["id"] = request.id
    elif ids:
        doc["id"] = ids[0]
    if ids is not None:
        doc["parameters"] = {"prediction_ids": ids}
    tensors: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, arr in outputs:
        datatype = datatype_of(arr)
        binary = request.binary_output if request.outputs is None else request.outputs[name]
        tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(arr.shape)}
        if binary:
            blob = (strings_bytes(arr) if datatype == "BYTES"
                    else np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes())
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = _json_data(arr, datatype)
        tensors.append(tensor)
    doc["outputs"] = tensors
    header = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)
