"""Protocol datatypes, and JSON lists or binary buffers turned into numpy arrays.

Element conversion happens in numpy, never in a Python loop (BYTES aside: its
elements are Python strings either way). Tabular models take one small input
per column, so the per-call cost of numpy dominates: several inputs of one
datatype are converted with one numpy call and handed out as slices.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from edge_agent.contract.errors import AgentError

Array = np.ndarray[Any, Any]

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
# numpy kinds a JSON array may decode to, per datatype family.
_JSON_KINDS = {"BOOL": "b", "INT": "iu", "UINT": "iu", "FP": "iuf"}
_FAMILY = {name: name.rstrip("0123456789") for name in DTYPES}
_WHAT = {"BOOL": "booleans", "FP": "numbers", "INT": "integers", "UINT": "integers"}
_U32 = struct.Struct("<I")


class InferRequestInvalid(AgentError):
    """The request body does not follow the protocol or does not fit the model."""

    http_status = 400


def fail(message: str) -> InferRequestInvalid:
    return InferRequestInvalid(message)


def all_finite(arr: Array) -> bool:
    return arr.dtype.kind != "f" or np.count_nonzero(np.isfinite(arr)) == arr.size


def json_array(data: Any, datatype: str, name: str) -> Array:
    """A JSON list as an array of datatype. A number too large for FP16/FP32 becomes Inf:
    call under np.errstate(over="ignore") and check finiteness after."""
    if type(data) is not list:
        raise fail(f"input {name}: data must be a list")
    if datatype == "BYTES":
        return _json_strings(data, name)
    try:
        arr = np.array(data)
    except (ValueError, TypeError, OverflowError):
        raise fail(f"input {name}: data is ragged or holds non-numeric values") from None
    target = DTYPES[datatype]
    if arr.size == 0:
        return arr.astype(target)
    family = _FAMILY[datatype]
    if datatype == "UINT64" and arr.dtype.kind == "f":
        arr = _uint64(data, arr, name)
    if arr.dtype.kind not in _JSON_KINDS[family] or (family != "BOOL" and _has_bool(data)):
        raise fail(f"input {name}: {datatype} data must hold only {_WHAT[family]}")
    if family != "FP" and not np.can_cast(arr.dtype, target):
        info = np.iinfo(target)
        if arr.min() < info.min or arr.max() > info.max:
            raise fail(f"input {name}: a value is out of range for {datatype}")
    return arr.astype(target, copy=False)


def json_arrays(lists: list[list[Any]], datatype: str, names: list[str]
                ) -> list[tuple[Array, bool]]:
    """Several flat lists of one datatype with one numpy conversion: (array, finite) each.
    If the combined conversion is refused, each list is converted alone, so that an error
    names its input (and lists that are fine alone are not refused together)."""
    if len(lists) > 1 and datatype != "BYTES":
        combined: list[Any] = []
        for data in lists:
            combined += data
        try:
            arr = json_array(combined, datatype, "")
        except InferRequestInvalid:
            pass
        else:
            finite = all_finite(arr)
            out, start = [], 0
            for data in lists:
                part = arr[start:start + len(data)]
                start += len(data)
                out.append((part, finite or all_finite(part)))
            return out
    arrays = [json_array(data, datatype, name) for data, name in zip(lists, names, strict=True)]
    return [(a, all_finite(a)) for a in arrays]


def _has_bool(data: list[Any]) -> bool:
    """True/false among numbers: numpy would read them as 1 and 0."""
    if data and type(data[0]) is list:
        return any(_has_bool(sub) for sub in data if type(sub) is list)
    return bool in set(map(type, data))


def _uint64(data: list[Any], floats: Array, name: str) -> Array:
    """numpy reads [0, 2**64 - 1] as float64; read it again as uint64 if nothing is lost."""
    try:
        exact = np.array(data, dtype=np.uint64)
    except (ValueError, TypeError, OverflowError):
        raise fail(f"input {name}: UINT64 data must hold only integers in range") from None
    return exact if np.array_equal(exact.astype(np.float64), floats) else floats


def _json_strings(data: list[Any], name: str) -> Array:
    flat: list[Any] = data
    while flat and type(flat[0]) is list:
        flat = [x for sub in flat if type(sub) is list for x in sub]
    if not all(type(x) is str for x in flat):
        raise fail(f"input {name}: BYTES data must hold only strings")
    arr = np.empty(len(flat), dtype=object)
    arr[:] = flat
    return arr


def _binary_strings(raw: memoryview, name: str, count: int) -> Array:
    pos, end = 0, len(raw)
    if count * 4 > end:
        raise fail(f"input {name}: binary BYTES data is shorter than its shape")
    out = np.empty(count, dtype=object)
    try:
        for i in range(count):
            if pos + 4 > end:
                raise fail(f"input {name}: binary BYTES data is shorter than its shape")
            (size,) = _U32.unpack_from(raw, pos)
            pos += 4
            if pos + size > end:
                raise fail(f"input {name}: binary BYTES element runs past its data")
            out[i] = bytes(raw[pos:pos + size]).decode("utf-8")
            pos += size
    except UnicodeDecodeError:
        raise fail(f"input {name}: BYTES element is not UTF-8") from None
    if pos != end:
        raise fail(f"input {name}: binary BYTES data is longer than its shape")
    return out


def binary_array(raw: memoryview, datatype: str, name: str, count: int) -> Array:
    """Raw little-endian tensor bytes (or length-prefixed BYTES elements) as an array."""
    if datatype == "BYTES":
        return _binary_strings(raw, name, count)
    dtype = DTYPES[datatype]
    if len(raw) != count * dtype.itemsize:
        raise fail(f"input {name}: binary data has {len(raw)} bytes, shape needs "
                   f"{count * dtype.itemsize}")
    arr = np.frombuffer(raw, dtype=dtype)
    if datatype == "BOOL" and count and arr.view(np.uint8).max() > 1:
        raise fail(f"input {name}: BOOL bytes must be 0 or 1")
    return arr if arr.flags.aligned else arr.copy()


def strings_bytes(arr: Array) -> bytes:
    """BYTES elements in the binary extension's layout: 4-byte length, then the bytes."""
    parts: list[bytes] = []
    for item in arr.ravel().tolist():
        raw = item if isinstance(item, bytes) else str(item).encode("utf-8")
        parts.append(_U32.pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)
