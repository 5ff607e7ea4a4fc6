"""The Open Inference Protocol codec, checked against tritonclient's own encoder and decoder."""
from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
import tritonclient.http as httpclient

from edge_agent.serving.oip import (
    DTYPES,
    InferRequestInvalid,
    decode_infer_request,
    encode_infer_response,
    parse_header_length,
)
from edge_agent.serving.signature import Signature, TensorInfo, bind_inputs

NUMERIC = [d for d in DTYPES if d != "BYTES"]


def sample(datatype: str, shape: tuple[int, ...] = (2, 3)) -> np.ndarray[Any, Any]:
    n = int(np.prod(shape))
    if datatype == "BYTES":
        return np.array([f"é{i}" for i in range(n)], dtype=object).reshape(shape)
    if datatype == "BOOL":
        return (np.arange(n) % 2 == 0).reshape(shape)
    dtype = DTYPES[datatype]
    if dtype.kind == "f":
        return (np.arange(n) * 0.5 - 1).astype(dtype).reshape(shape)
    info = np.iinfo(dtype)
    extremes = np.array([info.min, info.max], dtype=dtype)
    return np.concatenate([extremes, np.arange(n - 2, dtype=dtype)]).reshape(shape)


def triton_body(arrays: dict[str, np.ndarray[Any, Any]], binary: bool, **kwargs: Any
                ) -> tuple[bytes, int | None]:
    inputs = []
    for name, arr in arrays.items():
        datatype = "BYTES" if arr.dtype == object else httpclient.np_to_triton_dtype(arr.dtype)
        tensor = httpclient.InferInput(name, list(arr.shape), datatype)
        tensor.set_data_from_numpy(arr, binary_data=binary)
        inputs.append(tensor)
    body, length = httpclient.InferenceServerClient.generate_request_body(inputs, **kwargs)
    return (body.encode() if isinstance(body, str) else body), length


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("datatype", list(DTYPES))
def test_every_datatype_decodes_as_tritonclient_encoded_it(datatype: str, binary: bool) -> None:
    arr = sample(datatype)
    body, length = triton_body({"x": arr}, binary, request_id="req-7")
    assert (length is not None) == binary
    request = decode_infer_request(body, length)
    (tensor,) = request.inputs
    assert (tensor.name, tensor.datatype, tensor.shape) == ("x", datatype, arr.shape)
    assert tensor.data.dtype == DTYPES[datatype]
    np.testing.assert_array_equal(tensor.data, arr)
    assert request.id == "req-7"


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("datatype", list(DTYPES))
def test_every_datatype_encodes_so_tritonclient_reads_it(datatype: str, binary: bool) -> None:
    arr = sample(datatype, (3, 2))
    body, length = triton_body(
        {"x": arr}, binary, outputs=[httpclient.InferRequestedOutput("y", binary_data=binary)])
    request = decode_infer_request(body, length)
    out, header = encode_infer_response("m", 4, request, [("y", arr)])
    assert (header is not None) == binary
    result = httpclient.InferResult.from_response_body(out, header_length=header)
    got = result.as_numpy("y")
    assert got.shape == arr.shape
    if datatype == "BYTES":
        assert [x.decode() if isinstance(x, bytes) else x for x in got.ravel()] == list(arr.ravel())
    else:
        np.testing.assert_array_equal(got, arr)
    response = result.get_response()
    assert response["model_name"] == "m" and response["model_version"] == "4"


def test_without_named_outputs_tritonclient_asks_for_binary_outputs() -> None:
    arr = sample("FP64")
    body, length = triton_body({"x": arr}, binary=False)
    request = decode_infer_request(body, length)
    out, header = encode_infer_response("m", 1, request, [("y", arr)])
    assert header is not None and length is None
    result = httpclient.InferResult.from_response_body(out, header_length=header)
    np.testing.assert_array_equal(result.as_numpy("y"), arr)


def test_requested_outputs_choose_binary_per_output_and_id_is_echoed() -> None:
    arr = sample("FP32")
    x = httpclient.InferInput("x", list(arr.shape), "FP32")
    x.set_data_from_numpy(arr)
    outs = [httpclient.InferRequestedOutput("a", binary_data=False),
            httpclient.InferRequestedOutput("b", binary_data=True)]
    body, length = httpclient.InferenceServerClient.generate_request_body(
        [x], outputs=outs, request_id="abc", parameters={"custom": 3})
    request = decode_infer_request(body, length)
    assert request.outputs == {"a": False, "b": True}
    assert request.parameters == {"custom": 3}
    out, header = encode_infer_response("m", 1, request, [("a", arr), ("b", arr * 2)])
    assert header is not None
    doc = orjson.loads(out[:header])
    assert doc["id"] == "abc"
    assert doc["outputs"][0]["data"] == arr.ravel().tolist()
    assert doc["outputs"][1]["parameters"] == {"binary_data_size": arr.nbytes}
    result = httpclient.InferResult.from_response_body(out, header_length=header)
    np.testing.assert_array_equal(result.as_numpy("b"), arr * 2)


def test_nested_json_data_is_accepted() -> None:
    body = orjson.dumps({"inputs": [{"name": "x", "datatype": "INT32", "shape": [2, 2],
                                     "data": [[1, 2], [3, 4]]}]})
    (tensor,) = decode_infer_request(body).inputs
    np.testing.assert_array_equal(tensor.data, [[1, 2], [3, 4]])


def doc(**tensor: Any) -> bytes:
    base = {"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1.0, 2.0]}
    base.update(tensor)
    return orjson.dumps({"inputs": [base]})


BAD_JSON = {
    "malformed": b'{"inputs": [',
    "not an object": b"[1, 2]",
    "no inputs": b"{}",
    "empty inputs": b'{"inputs": []}',
    "input not an object": b'{"inputs": [3]}',
    "id not a string": orjson.dumps({"id": 5, "inputs": [
        {"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}),
    "parameters not an object": b'{"parameters": [], "inputs": []}',
    "unknown datatype": doc(datatype="FP128"),
    "name missing": doc(name=None),
    "shape not a list": doc(shape=2),
    "negative dim": doc(shape=[-1, 2]),
    "boolean dim": doc(shape=[True, 2]),
    "too many elements": doc(data=[1.0, 2.0, 3.0]),
    "too few elements": doc(data=[1.0]),
    "strings for numbers": doc(data=["1.0", "2.0"]),
    "mixed strings": doc(data=[1.0, "a"]),
    "null element": doc(data=[1.0, None]),
    "ragged": doc(shape=[2, 2], data=[[1.0, 2.0], [3.0]]),
    "data not a list": doc(data=5),
    "float for int": doc(datatype="INT64", data=[1.5, 2.0]),
    "int out of range": doc(datatype="INT8", data=[1, 300]),
    "negative unsigned": doc(datatype="UINT16", data=[1, -1]),
    "huge int": doc(datatype="INT64", data=[1, 2]).replace(b"2]", b"100000000000000000000000]"),
    "number for bool": doc(datatype="BOOL", data=[1, 0]),
    "number for bytes": doc(datatype="BYTES", data=["a", 1]),
    "binary size without binary": doc(parameters={"binary_data_size": 8}, data=None),
    "outputs not a list": orjson.dumps({"outputs": 1, "inputs": [
        {"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}),
}


@pytest.mark.parametrize("body", BAD_JSON.values(), ids=BAD_JSON.keys())
def test_bad_json_bodies_are_refused_with_a_message(body: bytes) -> None:
    with pytest.raises(InferRequestInvalid) as info:
        decode_infer_request(body)
    assert info.value.http_status == 400 and str(info.value)


def binary_body(datatype: str, shape: list[int], raw: bytes, size: int | None = None
                ) -> tuple[bytes, int]:
    header = orjson.dumps({"inputs": [{"name": "x", "datatype": datatype, "shape": shape,
                                       "parameters": {"binary_data_size": size or len(raw)}}]})
    return header + raw, len(header)


BAD_BINARY = {
    "fewer bytes than shape": binary_body("FP32", [1, 3], b"\0" * 8),
    "more bytes than shape": binary_body("FP32", [1, 1], b"\0" * 8),
    "size claims past end": binary_body("FP32", [1, 2], b"\0" * 8, size=12),
    "trailing bytes": (lambda b: (b[0] + b"xx", b[1]))(binary_body("FP32", [1, 2], b"\0" * 8)),
    "bytes element past end": binary_body("BYTES", [1], b"\x09\0\0\0abc"),
    "bytes element count short": binary_body("BYTES", [2], b"\x01\0\0\0a"),
    "bytes not utf-8": binary_body("BYTES", [1], b"\x01\0\0\0\xff"),
    "bool not 0/1": binary_body("BOOL", [2], b"\x00\x07"),
    "header length cuts JSON": (lambda b: (b[0], b[1] - 3))(binary_body("FP32", [2], b"\0" * 8)),
}


@pytest.mark.parametrize("case", BAD_BINARY.values(), ids=BAD_BINARY.keys())
def test_binary_bodies_whose_sizes_lie_are_refused(case: tuple[bytes, int]) -> None:
    with pytest.raises(InferRequestInvalid):
        decode_infer_request(*case)


@pytest.mark.parametrize("value", [b"abc", b"0", b"-4", b"999"])
def test_header_length_must_fit_the_body(value: bytes) -> None:
    with pytest.raises(InferRequestInvalid):
        parse_header_length(value, 100)
    assert parse_header_length(b"100", 100) == 100
    assert parse_header_length(None, 100) is None


SIG = Signature(
    inputs=(TensorInfo("a", "FP32", (-1, 1), takes_nan=True), TensorInfo("b", "FP32", (-1, 1)),
            TensorInfo("c", "BYTES", (-1, 1))),
    outputs=(TensorInfo("y", "INT64", (-1,)),),
)


def request(**overrides: Any) -> bytes:
    tensors = {"a": {"datatype": "FP32", "shape": [2, 1], "data": [1.0, 2.0]},
               "b": {"datatype": "FP32", "shape": [2, 1], "data": [3.0, 4.0]},
               "c": {"datatype": "BYTES", "shape": [2, 1], "data": ["u", "v"]}}
    for name, value in overrides.items():
        if value is None:
            del tensors[name]
        else:
            tensors[name] = value
    return orjson.dumps({"inputs": [{"name": k, **v} for k, v in tensors.items()]})


def test_bind_gives_feeds_and_batch_size() -> None:
    feeds, rows = bind_inputs(SIG, decode_infer_request(request()).inputs)
    assert rows == 2 and set(feeds) == {"a", "b", "c"}
    assert feeds["a"].dtype == np.float32 and feeds["a"].shape == (2, 1)


def nan_body(name: str, value: float) -> bytes:
    arr = np.array([[value], [1.0]], dtype=np.float32)
    header = orjson.dumps({"inputs": [
        {"name": n, "datatype": "FP32", "shape": [2, 1],
         **({"parameters": {"binary_data_size": 8}} if n == name else {"data": [1.0, 2.0]})}
        for n in ("a", "b")] + [{"name": "c", "datatype": "BYTES", "shape": [2, 1],
                                 "data": ["u", "v"]}]})
    return header + arr.tobytes()


BAD_BIND = {
    "missing input": request(b=None),
    "extra input": request(z={"datatype": "FP32", "shape": [2, 1], "data": [1.0, 2.0]}),
    "wrong datatype": request(a={"datatype": "FP64", "shape": [2, 1], "data": [1.0, 2.0]}),
    "wrong rank": request(a={"datatype": "FP32", "shape": [2], "data": [1.0, 2.0]}),
    "wrong width": request(a={"datatype": "FP32", "shape": [1, 2], "data": [1.0, 2.0]}),
    "batch disagrees": request(a={"datatype": "FP32", "shape": [1, 1], "data": [1.0]}),
    "duplicate": orjson.dumps({"inputs": [{"name": "a", "datatype": "FP32", "shape": [1, 1],
                                           "data": [1.0]}] * 2}),
}


@pytest.mark.parametrize("body", BAD_BIND.values(), ids=BAD_BIND.keys())
def test_inputs_that_do_not_fit_the_model_are_refused(body: bytes) -> None:
    with pytest.raises(InferRequestInvalid):
        bind_inputs(SIG, decode_infer_request(body).inputs)


def test_nan_only_where_the_model_handles_it_and_inf_never() -> None:
    def bind(name: str, value: float) -> None:
        body = nan_body(name, value)
        header = len(body) - 8
        bind_inputs(SIG, decode_infer_request(body, header).inputs)

    bind("a", float("nan"))
    with pytest.raises(InferRequestInvalid, match="NaN"):
        bind("b", float("nan"))
    for name in "ab":
        with pytest.raises(InferRequestInvalid, match="Inf"):
            bind(name, float("inf"))


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_many_inputs_of_mixed_datatypes_keep_their_own_values(binary: bool) -> None:
    arrays = {"a": sample("FP32", (2, 1)), "b": sample("FP32", (2, 1)) * 3,
              "c": sample("INT64", (2, 1)), "d": sample("FP32", (2, 3)),
              "e": sample("BYTES", (2, 1)), "f": np.array([[np.nan], [1.0]], np.float32)}
    if not binary:
        del arrays["f"]
    request = decode_infer_request(*triton_body(arrays, binary))
    for tensor in request.inputs:
        np.testing.assert_array_equal(tensor.data, arrays[tensor.name])
        assert tensor.data.shape == arrays[tensor.name].shape
        assert tensor.finite == (tensor.name != "f")


def test_an_error_in_a_group_names_its_input() -> None:
    body = orjson.dumps({"inputs": [
        {"name": n, "datatype": "FP32", "shape": [1], "data": [v]}
        for n, v in (("a", 1.0), ("b", "2.0"), ("c", 3.0))]})
    with pytest.raises(InferRequestInvalid, match="input b"):
        decode_infer_request(body)
    mixed = orjson.dumps({"inputs": [
        {"name": "a", "datatype": "UINT64", "shape": [1], "data": [2**64 - 1]},
        {"name": "b", "datatype": "UINT64", "shape": [1], "data": [1]}]})
    assert [int(t.data[0]) for t in decode_infer_request(mixed).inputs] == [2**64 - 1, 1]


def test_json_numbers_too_large_for_fp32_are_refused() -> None:
    body = orjson.dumps({"inputs": [{"name": "b", "datatype": "FP32", "shape": [2, 1],
                                     "data": [1.0, 1e39]},
                                    {"name": "a", "datatype": "FP32", "shape": [2, 1],
                                     "data": [1.0, 2.0]},
                                    {"name": "c", "datatype": "BYTES", "shape": [2, 1],
                                     "data": ["u", "v"]}]})
    with pytest.raises(InferRequestInvalid, match="input b: contains Inf"):
        bind_inputs(SIG, decode_infer_request(body).inputs)
