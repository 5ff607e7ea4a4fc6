"""Open Inference Protocol (KServe v2 / Triton REST) tensors: request decode, response encode.

Covers JSON tensors and the binary tensor data extension: the body is a JSON
header of ``Inference-Header-Content-Length`` bytes followed by raw tensors, in
input order, for every input whose parameters carry ``binary_data_size``.
Decoding is orjson + numpy: element conversion happens in C, never in a Python
loop, except BYTES, whose elements are Python strings either way.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from edge_agent.errors import AgentError

HEADER_LENGTH = "inference-header-content-length"

DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype("O"),
}
# numpy kinds a JSON array may decode to for each datatype family.
_JSON_KINDS = {"BOOL": "b", "INT": "iu", "UINT": "iu", "FP": "iuf"}
_FAMILY = {name: name.rstrip("0123456789") for name in DTYPES}
_WHAT = {"BOOL": "booleans", "FP": "numbers", "INT": "integers", "UINT": "integers"}
_NAME_BY_KIND_SIZE = {(dt.kind, dt.itemsize): name for name, dt in DTYPES.items()}
_MAX_RANK = 8
_U32 = struct.Struct("<I")


class InferRequestInvalid(AgentError):
    """The request body does not follow the protocol or does not fit the model."""

    http_status = 400


@dataclass(slots=True)
class InferInput:
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray[Any, Any]


@dataclass(slots=True)
class InferRequest:
    id: str | None
    parameters: dict[str, Any]
    inputs: list[InferInput]
    # requested output name -> send as binary; None = every output
    outputs: dict[str, bool] | None
    binary_output: bool = False
    rows: int = field(default=0)


def _fail(message: str) -> InferRequestInvalid:
    return InferRequestInvalid(message)


def parse_header_length(value: bytes | None, body_length: int) -> int | None:
    """The JSON header length from the extension's HTTP header, or None when absent."""
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        raise _fail("Inference-Header-Content-Length is not an integer") from None
    if not 0 < length <= body_length:
        raise _fail(f"Inference-Header-Content-Length {length} does not fit a body of "
                    f"{body_length} bytes")
    return length


def _parameters(obj: dict[str, Any], where: str) -> dict[str, Any]:
    params = obj.get("parameters")
    if params is None:
        return {}
    if type(params) is not dict:
        raise _fail(f"{where} parameters must be an object")
    return params


def _shape(raw: Any, name: str) -> tuple[int, ...]:
    if type(raw) is not list or len(raw) > _MAX_RANK:
        raise _fail(f"input {name}: shape must be a list of at most {_MAX_RANK} integers")
    for dim in raw:
        if type(dim) is not int or dim < 0:
            raise _fail(f"input {name}: shape must hold non-negative integers, got {raw}")
    return tuple(raw)


def json_array(data: Any, datatype: str, name: str) -> np.ndarray[Any, Any]:
    """A JSON list as an array of datatype. A number too large for FP16/FP32 becomes Inf:
    call under np.errstate(over="ignore") and check finiteness after (bind_inputs does)."""
    if type(data) is not list:
        raise _fail(f"input {name}: data must be a list")
    if datatype == "BYTES":
        return _json_strings(data, name)
    try:
        arr = np.array(data)
    except (ValueError, TypeError, OverflowError):
        raise _fail(f"input {name}: data is ragged or holds non-numeric values") from None
    target = DTYPES[datatype]
    if arr.size == 0:
        return arr.astype(target)
    family = _FAMILY[datatype]
    if datatype == "UINT64" and arr.dtype.kind == "f":
        arr = _uint64(data, arr, name)
    if arr.dtype.kind not in _JSON_KINDS[family]:
        raise _fail(f"input {name}: {datatype} data must hold only {_WHAT[family]}")
    if family != "FP" and not np.can_cast(arr.dtype, target):
        info = np.iinfo(target)
        if arr.min() < info.min or arr.max() > info.max:
            raise _fail(f"input {name}: a value is out of range for {datatype}")
    return arr.astype(target, copy=False)


def _uint64(data: list[Any], floats: np.ndarray[Any, Any], name: str) -> np.ndarray[Any, Any]:
    """numpy reads [0, 2**64 - 1] as float64; read it again as uint64 if nothing is lost."""
    try:
        exact = np.array(data, dtype=np.uint64)
    except (ValueError, TypeError, OverflowError):
        raise _fail(f"input {name}: UINT64 data must hold only integers in range") from None
    return exact if np.array_equal(exact.astype(np.float64), floats) else floats


def _json_strings(data: list[Any], name: str) -> np.ndarray[Any, Any]:
    flat: list[Any] = data
    while flat and type(flat[0]) is list:
        flat = [x for sub in flat if type(sub) is list for x in sub]
    if not all(type(x) is str for x in flat):
        raise _fail(f"input {name}: BYTES data must hold only strings")
    arr = np.empty(len(flat), dtype=object)
    arr[:] = flat
    return arr


def _binary_strings(raw: memoryview, name: str, count: int) -> np.ndarray[Any, Any]:
    pos, end = 0, len(raw)
    if count * 4 > end:
        raise _fail(f"input {name}: binary BYTES data is shorter than its shape")
    out = np.empty(count, dtype=object)
    try:
        for i in range(count):
            if pos + 4 > end:
                raise _fail(f"input {name}: binary BYTES data is shorter than its shape")
            (size,) = _U32.unpack_from(raw, pos)
            pos += 4
            if pos + size > end:
                raise _fail(f"input {name}: binary BYTES element runs past its data")
            out[i] = bytes(raw[pos:pos + size]).decode("utf-8")
            pos += size
    except UnicodeDecodeError:
        raise _fail(f"input {name}: BYTES element is not UTF-8") from None
    if pos != end:
        raise _fail(f"input {name}: binary BYTES data is longer than its shape")
    return out


def _binary_array(raw: memoryview, datatype: str, name: str, count: int) -> np.ndarray[Any, Any]:
    if datatype == "BYTES":
        return _binary_strings(raw, name, count)
    dtype = DTYPES[datatype]
    if len(raw) != count * dtype.itemsize:
        raise _fail(f"input {name}: binary data has {len(raw)} bytes, shape needs "
                    f"{count * dtype.itemsize}")
    arr = np.frombuffer(raw, dtype=dtype)
    if datatype == "BOOL" and count and arr.view(np.uint8).max() > 1:
        raise _fail(f"input {name}: BOOL bytes must be 0 or 1")
    return arr if arr.flags.aligned else arr.copy()


def _decode_input(raw: Any, binary: memoryview, pos: int) -> tuple[InferInput, int]:
    if type(raw) is not dict:
        raise _fail("each input must be an object")
    name = raw.get("name")
    if type(name) is not str:
        raise _fail("input name must be a string")
    datatype = raw.get("datatype")
    if datatype not in DTYPES:
        raise _fail(f"input {name}: unknown datatype {datatype!r}")
    shape = _shape(raw.get("shape"), name)
    count = math.prod(shape)
    size = _parameters(raw, f"input {name}").get("binary_data_size")
    if size is not None:
        if type(size) is not int or size < 0 or pos + size > len(binary):
            raise _fail(f"input {name}: binary_data_size does not fit the binary data")
        if "data" in raw:
            raise _fail(f"input {name}: has both data and binary_data_size")
        arr = _binary_array(binary[pos:pos + size], datatype, name, count)
        pos += size
    else:
        arr = json_array(raw.get("data"), datatype, name)
    if arr.size != count:
        raise _fail(f"input {name}: data has {arr.size} elements, shape {list(shape)} needs "
                    f"{count}")
    return InferInput(name, datatype, shape, arr.reshape(shape)), pos


def _requested_outputs(raw: Any) -> dict[str, bool] | None:
    if raw is None:
        return None
    if type(raw) is not list:
        raise _fail("outputs must be a list")
    wanted: dict[str, bool] = {}
    for out in raw:
        if type(out) is not dict or type(out.get("name")) is not str:
            raise _fail("each requested output must be an object with a name")
        binary = _parameters(out, f"output {out['name']}").get("binary_data", False)
        wanted[out["name"]] = binary is True
    return wanted


def decode_infer_request(body: bytes, header_length: int | None = None) -> InferRequest:
    """Parse an infer request body (JSON, or JSON header + binary tensors)."""
    header = body if header_length is None else body[:header_length]
    binary = memoryview(body)[len(header):]
    try:
        doc = orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        raise _fail(f"request is not valid JSON: {exc}") from None
    if type(doc) is not dict:
        raise _fail("request must be a JSON object")
    request_id = doc.get("id")
    if request_id is not None and type(request_id) is not str:
        raise _fail("id must be a string")
    params = _parameters(doc, "request")
    raw_inputs = doc.get("inputs")
    if type(raw_inputs) is not list or not raw_inputs:
        raise _fail("inputs must be a non-empty list")
    inputs: list[InferInput] = []
    pos = 0
    with np.errstate(over="ignore"):
        for raw in raw_inputs:
            tensor, pos = _decode_input(raw, binary, pos)
            inputs.append(tensor)
    if pos != len(binary):
        raise _fail(f"binary data has {len(binary)} bytes, inputs claim {pos}")
    return InferRequest(request_id, params, inputs, _requested_outputs(doc.get("outputs")),
                        params.get("binary_data_output") is True)


def datatype_of(arr: np.ndarray[Any, Any]) -> str:
    if arr.dtype.kind in "OUS":
        return "BYTES"
    name = _NAME_BY_KIND_SIZE.get((arr.dtype.kind, arr.dtype.itemsize))
    if name is None:
        raise AgentError(f"output dtype {arr.dtype} has no protocol datatype")
    return name


def _strings_bytes(arr: np.ndarray[Any, Any]) -> bytes:
    parts: list[bytes] = []
    for item in arr.ravel().tolist():
        raw = item if isinstance(item, bytes) else str(item).encode("utf-8")
        parts.append(_U32.pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


def _json_data(arr: np.ndarray[Any, Any], datatype: str) -> Any:
    if datatype == "BYTES":
        return [x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)
                for x in arr.ravel().tolist()]
    if datatype == "FP16":
        arr = arr.astype(np.float32)
    return np.ascontiguousarray(arr).ravel()


def encode_infer_response(model: str, version: int, request: InferRequest,
                          outputs: list[tuple[str, np.ndarray[Any, Any]]]
                          ) -> tuple[bytes, int | None]:
    """The response body and, when any output is binary, the JSON header length."""
    doc: dict[str, Any] = {"model_name": model, "model_version": str(version)}
    if request.id is not None:
        doc["id"] = request.id
    tensors: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, arr in outputs:
        datatype = datatype_of(arr)
        binary = request.binary_output if request.outputs is None else request.outputs[name]
        tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(arr.shape)}
        if binary:
            blob = (_strings_bytes(arr) if datatype == "BYTES"
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


def encode_error(message: str) -> bytes:
    return orjson.dumps({"error": message})
