"""Hypothesis fuzz of infer and predict bodies against the in-process ASGI app:
whatever arrives, the answer is a 2xx or a 4xx with a JSON error, never a 5xx or a crash."""
from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.contract.protocol import generate_signing_key
from edge_agent.runtime import ServeOptions, build_app
from edge_agent.serving.oip import DTYPES
from edge_agent.store.keys import KeyRing
from tests.support.agents import make_identity_bundle, make_tabular_bundle

Reply = tuple[int, dict[bytes, bytes], bytes]


def call(app: Any, method: str, path: str, body: bytes = b"",
         headers: list[tuple[bytes, bytes]] | None = None, chunk: int = 0) -> Reply:
    """One request through the ASGI app; the body arrives in chunks of `chunk` bytes."""
    pieces = [body[i:i + chunk] for i in range(0, len(body), chunk)] if chunk else [body]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(pieces) - 1}
                for i, p in enumerate(pieces or [b""])]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    path, _, qs = path.partition("?")
    scope = {"type": "http", "method": method, "path": path, "query_string": qs.encode(),
             "headers": headers or []}
    asyncio.run(app(scope, receive, send))
    start, end = sent
    return start["status"], dict(start["headers"]), end["body"]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("fuzz")
    key = generate_signing_key()
    ring = KeyRing(tmp / "agent" / "keys")
    ring.trust(key.public_key())
    options = ServeOptions(agent_dir=tmp / "agent", token="fuzz-token-123", keyring=ring,
                           max_body_bytes=64 * 1024)
    application = build_app(options)
    for bundle in (make_tabular_bundle(tmp, key), make_identity_bundle(tmp, key)):
        application.management.store.install(bundle)
    yield application
    application.recorder.close()


NAMES = st.sampled_from(["temp", "pressure", "site", "x", "", "zz"])
DATATYPES = st.one_of(st.sampled_from(list(DTYPES)), st.text(max_size=6))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5))
DATA = st.recursive(st.lists(SCALARS, max_size=6), lambda inner: st.lists(inner, max_size=3),
                    max_leaves=12)
SHAPES = st.one_of(st.lists(st.integers(-2, 4), max_size=3),
                   st.lists(st.integers(0, 2**62), max_size=9), SCALARS)
PARAMS = st.one_of(st.none(), st.fixed_dictionaries({}, optional={
    "binary_data_size": st.one_of(st.integers(-5, 64), SCALARS),
    "binary_data": st.booleans(), "binary_data_output": SCALARS}))
TENSOR = st.fixed_dictionaries({}, optional={
    "name": st.one_of(NAMES, SCALARS), "datatype": DATATYPES, "shape": SHAPES,
    "data": st.one_of(DATA, SCALARS), "parameters": PARAMS})
REQUEST = st.fixed_dictionaries({}, optional={
    "id": st.one_of(st.text(max_size=4), SCALARS), "inputs": st.one_of(
        st.lists(TENSOR, max_size=4), SCALARS),
    "outputs": st.one_of(st.lists(st.fixed_dictionaries(
        {"name": st.one_of(NAMES, st.just("label"), SCALARS)}, optional={"parameters": PARAMS}),
        max_size=2), SCALARS),
    "parameters": PARAMS})
MODELS = st.sampled_from(["pumps", "adder", "adder/versions/1", "adder/versions/0", "nope"])


def check(reply: Reply) -> None:
    status, headers, body = reply
    assert status < 500, body
    if status >= 400:
        assert isinstance(orjson.loads(body)["error"], str)


FUZZ = settings(max_examples=250, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@FUZZ
@given(model=MODELS, doc=REQUEST, tail=st.binary(max_size=24),
       header=st.one_of(st.none(), st.integers(-3, 400), st.text(max_size=4)))
def test_fuzzed_infer_bodies_never_5xx(app: Any, model: str, doc: dict[str, Any], tail: bytes,
                                       header: int | str | None) -> None:
    body = json.dumps(doc).encode() + (tail if header is not None else b"")
    headers = [] if header is None else [(b"inference-header-content-length",
                                          str(header).encode())]
    check(call(app, "POST", f"/v2/models/{model}/infer", body, headers))


@FUZZ
@given(model=MODELS, raw=st.binary(max_size=200))
def test_fuzzed_raw_bytes_never_5xx(app: Any, model: str, raw: bytes) -> None:
    check(call(app, "POST", f"/v2/models/{model}/infer", raw))
    check(call(app, "POST", f"/v1/models/{model}/predict", raw))


RECORDS = st.one_of(SCALARS, st.lists(st.one_of(SCALARS, st.dictionaries(
    st.one_of(NAMES, st.text(max_size=3)), SCALARS, max_size=4)), max_size=3))


@FUZZ
@given(model=MODELS, records=RECORDS)
def test_fuzzed_predict_records_never_5xx(app: Any, model: str, records: Any) -> None:
    check(call(app, "POST", f"/v1/models/{model}/predict",
               json.dumps({"records": records}).encode()))


FLOATS = st.floats(width=32) | st.floats()
PUMPS_COLUMNS = {"temp": "FP32", "pressure": "FP32", "site": "BYTES"}


@st.composite
def near_valid(draw: st.DrawFn) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """Right names, types and shapes, with values anywhere in range, JSON or binary."""
    rows = draw(st.integers(0, 3))
    tensors, blobs = [], []
    for name, datatype in PUMPS_COLUMNS.items():
        tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": [rows, 1]}
        if datatype == "BYTES":
            values = draw(st.lists(st.text(max_size=4), min_size=rows, max_size=rows))
            tensor["data"] = values
        elif draw(st.booleans()):
            raw = draw(st.binary(min_size=4 * rows, max_size=4 * rows))
            tensor["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            tensor["data"] = draw(st.lists(FLOATS.filter(lambda f: f == f and abs(f) != 1e999),
                                           min_size=rows, max_size=rows))
        tensors.append(tensor)
    outputs = draw(st.sampled_from([None, [{"name": "label"}],
                                    [{"name": "probabilities",
                                      "parameters": {"binary_data": True}}]]))
    doc = {"inputs": tensors, **({"outputs": outputs} if outputs else {})}
    head = json.dumps(doc).encode()
    headers = [(b"inference-header-content-length", str(len(head)).encode())] if blobs else []
    return head + b"".join(blobs), headers


@FUZZ
@given(case=near_valid())
def test_near_valid_requests_never_5xx(app: Any, case: tuple[bytes, list[tuple[bytes, bytes]]]
                                       ) -> None:
    body, headers = case
    check(call(app, "POST", "/v2/models/pumps/infer", body, headers))


def test_a_chunked_body_over_the_limit_is_413(app: Any) -> None:
    body = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1],
                                   "data": [1.0] * 30_000}]}).encode()
    status, headers, _ = call(app, "POST", "/v2/models/adder/infer", body, chunk=1000)
    assert status == 413 and headers[b"connection"] == b"close"
    small = b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]}'
    assert call(app, "POST", "/v2/models/adder/infer", small, chunk=7)[0] == 200


def test_the_app_answers_in_process(app: Any, tmp_path: Path) -> None:
    status, _, body = call(app, "GET", "/v2/models/pumps")
    assert status == 200 and orjson.loads(body)["name"] == "pumps"


def test_adaptive_batching_gives_each_request_its_own_answer(tmp_path: Path) -> None:
    """Concurrent requests run as one batch and get exactly what they would alone;
    a bad request in the batch fails alone."""
    key = generate_signing_key()
    ring = KeyRing(tmp_path / "agent" / "keys")
    ring.trust(key.public_key())
    batched = build_app(ServeOptions(agent_dir=tmp_path / "agent", token="t" * 10,
                                     keyring=ring, batch_max=8, batch_delay_us=0))
    batched.management.store.install(make_tabular_bundle(tmp_path, key))
    runs: list[int] = []
    session = batched.cache.get("pumps", None).session
    original = session.run

    def counting_run(*args: Any, **kwargs: Any) -> Any:
        runs.append(len(args[1]["temp"]))
        return original(*args, **kwargs)

    session.run = counting_run
    bodies = []
    for i in range(12):
        temp: Any = float(i) if i != 5 else "hot"
        bodies.append(json.dumps({"inputs": [
            {"name": "temp", "datatype": "FP32", "shape": [1, 1], "data": [temp]},
            {"name": "pressure", "datatype": "FP32", "shape": [1, 1], "data": [990.0 + i]},
            {"name": "site", "datatype": "BYTES", "shape": [1, 1], "data": ["north"]}]}
        ).encode())

    async def one(body: bytes) -> tuple[int, bytes]:
        sent: list[dict[str, Any]] = []
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            return messages.pop(0)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await batched({"type": "http", "method": "POST", "path": "/v2/models/pumps/infer",
                       "query_string": b"", "headers": []}, receive, send)
        return sent[0]["status"], sent[1]["body"]

    async def together() -> list[tuple[int, bytes]]:
        batched.arrivals.parsed += len(bodies)  # as the protocol does: all in one turn
        return await asyncio.gather(*(one(b) for b in bodies))

    results = asyncio.run(together())
    session.run = original
    alone = [asyncio.run(one(b)) for b in bodies]
    batched.recorder.close()
    assert [s for s, _ in results] == [400 if i == 5 else 200 for i in range(12)]
    for (_, got), (_, want) in zip(results, alone, strict=True):
        got_doc, want_doc = orjson.loads(got), orjson.loads(want)
        if "error" in want_doc:
            assert got_doc == want_doc
            continue
        assert got_doc["outputs"][0] == want_doc["outputs"][0]  # labels exactly
        # a batched GEMM may sum in another order: the last float bits can differ
        assert got_doc["outputs"][1]["data"] == pytest.approx(want_doc["outputs"][1]["data"],
                                                              abs=1e-6)
    assert max(runs) > 1  # some requests really did run together


def test_a_lone_request_runs_without_waiting_for_company(tmp_path: Path) -> None:
    """No other request parsed in this turn: the batcher runs it at once, no loop turn."""
    from edge_agent.serving.batching import Batcher

    key = generate_signing_key()
    ring = KeyRing(tmp_path / "agent" / "keys")
    ring.trust(key.public_key())
    app = build_app(ServeOptions(agent_dir=tmp_path / "agent", token="t" * 10, keyring=ring))
    app.management.store.install(make_tabular_bundle(tmp_path, key))
    served = app.cache.get("pumps", None)
    feeds = {"temp": np.asarray([[20.0]], np.float32),
             "pressure": np.asarray([[1000.0]], np.float32),
             "site": np.asarray([["north"]], object)}
    company = [False]
    batcher = Batcher(16, 0.0, lambda: company[0])

    async def run_one() -> bool:
        call = batcher(served, feeds, 1)
        try:
            call.send(None)  # a coroutine that finishes without suspending raises here
        except StopIteration:
            return True
        call.close()
        return False

    try:
        assert asyncio.run(run_one()) is True
        company[0] = True  # another request waits to start: this one joins a batch
        assert asyncio.run(run_one()) is False
    finally:
        app.recorder.close()
