"""The parts of an ONNX model the agent checks, read straight from the protobuf wire format.

The agent never needs the `onnx` package to serve: onnxruntime parses the graph it runs.
What the agent itself reads (inputs, outputs, opsets, whether any tensor lives in an
external file, which inputs reach a missing-value handler) is a small part of
``ModelProto``, and reading it here keeps `onnx` and its protobuf runtime (~8 MB resident,
plus a parsed copy of the whole model) out of the serving process. Large fields
(initializer data, tree arrays) are skipped by their length, never copied or decoded.

Field numbers are those of onnx/onnx.proto (stable since IR version 3).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

# TensorProto.DataType values the agent can serve, as OIP datatypes.
ELEM_TO_OIP: dict[int, str] = {
    9: "BOOL", 2: "UINT8", 4: "UINT16", 12: "UINT32", 13: "UINT64", 3: "INT8", 5: "INT16",
    6: "INT32", 7: "INT64", 10: "FP16", 1: "FP32", 11: "FP64", 8: "BYTES",
}
FLOAT = 1
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
MAX_GRAPH_DEPTH = 32
# Attributes whose integers are decoded; every other one is skipped by its length.
_WANTED_INTS = frozenset({"nodes_missing_value_tracks_true"})


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


@dataclass
class ValueInfo:
    name: str = ""
    is_tensor: bool = False
    elem_type: int = 0
    dims: list[int] = field(default_factory=list)  # -1 where the dimension is symbolic


@dataclass
class Node:
    op_type: str = ""
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    ints: dict[str, list[int]] = field(default_factory=dict)  # only _WANTED_INTS


@dataclass
class Graph:
    nodes: list[Node] = field(default_factory=list)
    inputs: list[ValueInfo] = field(default_factory=list)
    outputs: list[ValueInfo] = field(default_factory=list)
    initializers: set[str] = field(default_factory=set)


@dataclass
class Model:
    ir_version: int = 0
    opset: dict[str, int] = field(default_factory=dict)
    graph: Graph | None = None
    external_data: bool = False  # some tensor, anywhere, points at another file


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise WireError("truncated or overlong varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _signed(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def _fields(buf: memoryview, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, value or start, end) per field of one message; for
    length-delimited fields value is the payload's start offset."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield number, wire, value, pos
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise WireError("length runs past the message")
            yield number, wire, pos, pos + length
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
            if pos > end:
                raise WireError("truncated fixed-width field")
            yield number, wire, 0, pos
        else:
            raise WireError(f"unsupported wire type {wire}")


def _text(buf: memoryview, start: int, end: int) -> str:
    try:
        return bytes(buf[start:end]).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WireError("a name is not UTF-8") from exc


def _ints(buf: memoryview, wire: int, value: int, end: int) -> list[int]:
    if wire == 0:
        return [_signed(value)]
    out, pos = [], value
    while pos < end:  # packed
        v, pos = _varint(buf, pos, end)
        out.append(_signed(v))
    return out


def _tensor_is_external(buf: memoryview, start: int, end: int) -> bool:
    for number, wire, value, _ in _fields(buf, start, end):
        if number == 13 and wire == 2:  # external_data entries
            return True
        if number == 14 and wire == 0 and value == _EXTERNAL:  # data_location
            return True
    return False


def _sparse_is_external(buf: memoryview, start: int, end: int) -> bool:
    return any(number in (1, 2) and wire == 2 and _tensor_is_external(buf, value, stop)
               for number, wire, value, stop in _fields(buf, start, end))


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.buf = memoryview(data)
        self.external = False
        self.depth = 0  # subgraphs inside subgraphs: bounded, as protobuf's parser bounds them

    def model(self) -> Model:
        model = Model()
        buf = self.buf
        for number, wire, value, end in _fields(buf, 0, len(buf)):
            if number == 1 and wire == 0:
                model.ir_version = _signed(value)
            elif number == 8 and wire == 2:
                domain, version = self._opset(value, end)
                model.opset[domain] = version
            elif number == 7 and wire == 2:
                model.graph = self.graph(value, end)
            elif number == 25 and wire == 2:  # functions: only their tensors matter here
                for n, w, v, e in _fields(buf, value, end):
                    if n == 7 and w == 2:
                        self.node(v, e)
        model.external_data = self.external
        return model

    def _opset(self, start: int, end: int) -> tuple[str, int]:
        domain, version = "", 0
        for number, wire, value, stop in _fields(self.buf, start, end):
            if number == 1 and wire == 2:
                domain = _text(self.buf, value, stop)
            elif number == 2 and wire == 0:
                version = _signed(value)
        return ("" if domain == "ai.onnx" else domain), version

    def graph(self, start: int, end: int) -> Graph:
        self.depth += 1
        try:
            if self.depth > MAX_GRAPH_DEPTH:
                raise WireError(f"subgraphs nested deeper than {MAX_GRAPH_DEPTH}")
            return self._graph(start, end)
        finally:
            self.depth -= 1

    def _graph(self, start: int, end: int) -> Graph:
        graph = Graph()
        buf = self.buf
        for number, wire, value, stop in _fields(buf, start, end):
            if wire != 2:
                continue
            if number == 1:
                graph.nodes.append(self.node(value, stop))
            elif number == 11:
                graph.inputs.append(self.value_info(value, stop))
            elif number == 12:
                graph.outputs.append(self.value_info(value, stop))
            elif number == 5:
                for n, w, v, e in _fields(buf, value, stop):
                    if n == 8 and w == 2:
                        graph.initializers.add(_text(buf, v, e))
                self.external |= _tensor_is_external(buf, value, stop)
            elif number == 15:
                self.external |= _sparse_is_external(buf, value, stop)
        return graph

    def node(self, start: int, end: int) -> Node:
        node = Node()
        buf = self.buf
        for number, wire, value, stop in _fields(buf, start, end):
            if wire != 2:
                continue
            if number == 1:
                node.inputs.append(_text(buf, value, stop))
            elif number == 2:
                node.outputs.append(_text(buf, value, stop))
            elif number == 4:
                node.op_type = _text(buf, value, stop)
            elif number == 5:
                self.attribute(node, value, stop)
        return node

    def attribute(self, node: Node, start: int, end: int) -> None:
        buf = self.buf
        name, ints = "", []
        for number, wire, value, stop in _fields(buf, start, end):
            if number == 1 and wire == 2:
                name = _text(buf, value, stop)
            elif number == 8 and wire in (0, 2):
                ints.append((wire, value, stop))
            elif wire != 2:
                continue
            elif number in (5, 10):  # t, tensors
                self.external |= _tensor_is_external(buf, value, stop)
            elif number in (22, 23):  # sparse_tensor, sparse_tensors
                self.external |= _sparse_is_external(buf, value, stop)
            elif number in (6, 11):  # g, graphs: subgraphs hold tensors too
                self.graph(value, stop)
        if name in _WANTED_INTS:
            node.ints[name] = [i for w, v, e in ints for i in _ints(buf, w, v, e)]

    def value_info(self, start: int, end: int) -> ValueInfo:
        info = ValueInfo()
        buf = self.buf
        for number, wire, value, stop in _fields(buf, start, end):
            if number == 1 and wire == 2:
                info.name = _text(buf, value, stop)
            elif number == 2 and wire == 2:  # TypeProto
                for n, w, v, e in _fields(buf, value, stop):
                    if n == 1 and w == 2:  # tensor_type
                        info.is_tensor = True
                        self._tensor_type(info, v, e)
        return info

    def _tensor_type(self, info: ValueInfo, start: int, end: int) -> None:
        buf = self.buf
        for number, wire, value, stop in _fields(buf, start, end):
            if number == 1 and wire == 0:
                info.elem_type = value
            elif number == 2 and wire == 2:  # shape
                for n, w, v, e in _fields(buf, value, stop):
                    if n == 1 and w == 2:
                        info.dims.append(self._dim(v, e))

    def _dim(self, start: int, end: int) -> int:
        for number, wire, value, _ in _fields(self.buf, start, end):
            if number == 1 and wire == 0:
                return _signed(value)
        return -1


def read_model(data: bytes) -> Model:
    """The checked parts of a serialized ModelProto, or WireError."""
    return _Reader(data).model()


# -- writing: only the one-node probe models the agent builds to learn its opsets --

def _key(number: int, wire: int) -> bytes:
    return _encode_varint(number << 3 | wire)


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + _encode_varint(len(payload)) + payload


def _int_field(number: int, value: int) -> bytes:
    return _key(number, 0) + _encode_varint(value)


def _float_value_info(name: str) -> bytes:
    shape = _len_field(1, _int_field(1, 1))  # one dimension of size 1
    tensor = _int_field(1, FLOAT) + _len_field(2, shape)
    return _len_field(1, name.encode()) + _len_field(2, _len_field(1, tensor))


def identity_model(opsets: dict[str, int], ir_version: int = 8) -> bytes:
    """A serialized model y = Identity(x) (float[1]) importing the given opsets."""
    node = _len_field(1, b"x") + _len_field(2, b"y") + _len_field(4, b"Identity")
    graph = (_len_field(1, node) + _len_field(2, b"probe")
             + _len_field(11, _float_value_info("x")) + _len_field(12, _float_value_info("y")))
    imports = b"".join(_len_field(8, _len_field(1, d.encode()) + _int_field(2, v))
                       for d, v in opsets.items())
    return _int_field(1, ir_version) + _len_field(7, graph) + imports
