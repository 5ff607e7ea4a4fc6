"""Bad input against a real agent process: a 4xx with a JSON error, the agent keeps serving,
and the active models are unchanged after every single case."""
from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_agent.contract.protocol import generate_signing_key
from tests.support.agents import (
    AgentProcess,
    free_port,
    http_connection,
    json_request,
    make_identity_bundle,
    make_tabular_bundle,
    open_socket,
    running_agent,
    trust_cert,
    wait_http_ok,
)

pytestmark = pytest.mark.xdist_group("agent_http")

ROW = {"temp": 21.0, "pressure": 1010.0, "site": "north"}


def oip(row: dict[str, Any] = ROW, **changes: Any) -> dict[str, Any]:
    inputs = [{"name": k, "datatype": "BYTES" if isinstance(v, str) else "FP32",
               "shape": [1, 1], "data": [v]} for k, v in row.items()]
    for name, change in changes.items():
        for tensor in inputs:
            if tensor["name"] == name:
                tensor.update(change)
    return {"inputs": inputs}


def post(agent: AgentProcess, path: str, body: bytes, headers: dict[str, str] | None = None
         ) -> tuple[int, dict[str, str], bytes]:
    conn = http_connection(agent.url)
    try:
        conn.request("POST", path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    tmp = tmp_path_factory.mktemp("agent-http")
    key = generate_signing_key()
    bundles = [make_tabular_bundle(tmp, key), make_identity_bundle(tmp, key, version=1),
               make_identity_bundle(tmp, key, version=2)]
    with running_agent(tmp / "agent", trust_key=key,
                       extra_args=("--max-body-mb", "1", "--body-timeout-s", "1")) as proc:
        for bundle in bundles:
            status, doc = json_request(f"{proc.url}/v1/bundles?activate=true",
                                       headers=proc.headers(), data=bundle.read_bytes(),
                                       method="POST")
            assert status == 200, doc
        yield proc


def healthy(agent: AgentProcess) -> None:
    """Still serving, with pumps v1 and adder v2 active."""
    assert agent.proc.poll() is None
    status, doc = json_request(f"{agent.url}/v2/models/pumps/infer", oip())
    assert status == 200 and doc["outputs"][0]["data"] == ["alarm"], doc
    status, doc = json_request(f"{agent.url}/v1/status", headers=agent.headers())
    assert {m["name"]: m["active"] for m in doc["models"]} == {"pumps": 1, "adder": 2}


def test_good_requests(agent: AgentProcess) -> None:
    status, doc = json_request(f"{agent.url}/v2/models/pumps/infer", {**oip(), "id": "r1"})
    assert status == 200 and doc["id"] == "r1" and doc["model_version"] == "1"
    probs = np.array(doc["outputs"][1]["data"]).reshape(doc["outputs"][1]["shape"])
    assert probs.shape == (1, 2) and abs(probs.sum() - 1) < 1e-5
    x = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 1], "data": [1.0, 2.0]}]}
    for path, version in (("adder/infer", "2"), ("adder/versions/1/infer", "1"),
                          ("adder/versions/2/infer", "2")):
        status, doc = json_request(f"{agent.url}/v2/models/{path}", x)
        assert status == 200 and doc["model_version"] == version
        assert doc["outputs"][0]["data"] == [2.0, 3.0]
    status, doc = json_request(f"{agent.url}/v1/models/pumps/predict",
                               {"records": [ROW, {"pressure": 990.0}]})
    assert status == 200 and doc["predictions"][0] == "alarm" and len(doc["predictions"]) == 2
    for path in ("/v2/health/live", "/v2/health/ready", "/v2", "/v2/models/pumps",
                 "/v2/models/adder/versions/1", "/v2/models/pumps/ready"):
        status, _ = json_request(agent.url + path)
        assert status == 200, path
    healthy(agent)


def binary(header: dict[str, Any], raw: bytes, claimed: int | None = None
           ) -> tuple[bytes, dict[str, str]]:
    head = json.dumps(header).encode()
    return head + raw, {"Inference-Header-Content-Length": str(claimed or len(head))}


def _nan_x(value: float) -> tuple[bytes, dict[str, str]]:
    return binary({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1],
                               "parameters": {"binary_data_size": 4}}]},
                  np.array([value], np.float32).tobytes())


_BIN_TEMP = {"inputs": [{"name": "temp", "datatype": "FP32", "shape": [1, 1],
                         "parameters": {"binary_data_size": 4}},
                        *oip()["inputs"][1:]]}

INFER_CASES: dict[str, tuple[str, bytes, dict[str, str], int]] = {
    "malformed JSON": ("pumps", b'{"inputs": [{"name": ', {}, 400),
    "missing input": ("pumps", json.dumps(oip({"temp": 1.0, "site": "a"})).encode(), {}, 400),
    "extra input": ("pumps", json.dumps(oip({**ROW, "wind": 3.0})).encode(), {}, 400),
    "misnamed input": ("pumps", json.dumps(oip({"tmp": 1.0, "pressure": 1.0, "site": "a"})
                                           ).encode(), {}, 400),
    "wrong shape": ("pumps", json.dumps(oip(temp={"shape": [1]})).encode(), {}, 400),
    "wrong datatype": ("pumps", json.dumps(oip(temp={"datatype": "FP64"})).encode(), {}, 400),
    "data length != shape": ("pumps", json.dumps(oip(temp={"data": [1.0, 2.0]})).encode(), {},
                             400),
    "string for number": ("pumps", json.dumps(oip(temp={"data": ["21.0"]})).encode(), {}, 400),
    "number for string": ("pumps", json.dumps(oip(site={"data": [3]})).encode(), {}, 400),
    "NaN where the model has no imputer": ("adder", *_nan_x(float("nan")), 400),
    "Inf": ("pumps", *binary(_BIN_TEMP, np.array([np.inf], np.float32).tobytes()), 400),
    "header length longer than body": ("pumps", *binary(_BIN_TEMP, b"\0" * 4, claimed=10**6),
                                       400),
    "header length cuts the JSON": ("pumps", *binary(_BIN_TEMP, b"\0" * 4, claimed=20), 400),
    "header length not a number": ("pumps", *binary(_BIN_TEMP, b"\0" * 4, claimed=None)[:1],
                                   {"Inference-Header-Content-Length": "x"}, 400),
    "binary size lies": ("pumps", *binary(_BIN_TEMP, b"\0" * 6), 400),
    "unknown model": ("nope", json.dumps(oip()).encode(), {}, 404),
    "unknown version": ("pumps/versions/9", json.dumps(oip()).encode(), {}, 404),
    "bad version": ("pumps/versions/x", json.dumps(oip()).encode(), {}, 404),
    "unknown output": ("pumps", json.dumps({**oip(), "outputs": [{"name": "zzz"}]}).encode(),
                       {}, 400),
}


@pytest.mark.parametrize("case", INFER_CASES.values(), ids=INFER_CASES.keys())
def test_bad_infer_requests(agent: AgentProcess, case: tuple[str, bytes, dict[str, str], int]
                            ) -> None:
    model, body, headers, expected = case
    status, _, raw = post(agent, f"/v2/models/{model}/infer", body, headers)
    assert status == expected, raw
    error = json.loads(raw)["error"]
    assert isinstance(error, str) and error and "\n" not in error
    healthy(agent)


PREDICT_CASES: dict[str, tuple[str, Any, int]] = {
    "not JSON": ("pumps", b"{", 400),
    "no records": ("pumps", {"records": []}, 400),
    "record not an object": ("pumps", {"records": [1]}, 400),
    "unknown column": ("pumps", {"records": [{**ROW, "wind": 1}]}, 400),
    "string for number": ("pumps", {"records": [{**ROW, "temp": "hot"}]}, 400),
    "bool for number": ("pumps", {"records": [{**ROW, "temp": True}]}, 400),
    "missing number, no imputer": ("adder", {"records": [{}]}, 400),
    "unknown model": ("nope", {"records": [ROW]}, 404),
}


@pytest.mark.parametrize("case", PREDICT_CASES.values(), ids=PREDICT_CASES.keys())
def test_bad_predict_requests(agent: AgentProcess, case: tuple[str, Any, int]) -> None:
    model, body, expected = case
    raw_body = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, _, raw = post(agent, f"/v1/models/{model}/predict", raw_body)
    assert status == expected, raw
    assert json.loads(raw)["error"]
    healthy(agent)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token"},
                                     {"Authorization": "Basic dGVzdC10b2tlbg=="}],
                         ids=["none", "wrong", "not bearer"])
@pytest.mark.parametrize("method,path", [("GET", "/v1/status"), ("POST", "/v1/bundles"),
                                         ("POST", "/v1/models/pumps/rollback"),
                                         ("DELETE", "/v1/models/adder/versions/1"),
                                         ("GET", "/v1/telemetry?after=0")])
def test_management_without_the_token_is_401(agent: AgentProcess, headers: dict[str, str],
                                             method: str, path: str) -> None:
    status, doc = json_request(agent.url + path, headers=headers, method=method,
                               data=b"x" if method == "POST" else None)
    assert status == 401 and doc["error"]
    healthy(agent)


def test_unknown_routes_and_methods(agent: AgentProcess) -> None:
    assert json_request(f"{agent.url}/v3/whatever")[0] == 404
    assert json_request(f"{agent.url}/v2/models/pumps/infer")[0] == 405
    assert json_request(f"{agent.url}/v2/health/live", method="POST", data=b"")[0] == 405
    healthy(agent)


def raw_exchange(agent: AgentProcess, request: bytes) -> bytes:
    """Send request bytes, read until the server closes the connection."""
    with open_socket(agent.url) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def test_a_body_that_never_ends_times_out(agent: AgentProcess) -> None:
    start = time.monotonic()
    reply = raw_exchange(agent, b"POST /v2/models/pumps/infer HTTP/1.1\r\nHost: x\r\n"
                                b"Content-Length: 100000\r\n\r\n{\"inputs\": ")
    assert reply.startswith(b"HTTP/1.1 408"), reply
    assert b'"error"' in reply
    assert time.monotonic() - start < 10
    healthy(agent)


@pytest.mark.parametrize("path", ["/v2/models/pumps/infer", "/v1/models/pumps/predict"])
def test_a_body_over_the_limit_is_413_before_it_is_read(agent: AgentProcess, path: str
                                                        ) -> None:
    reply = raw_exchange(agent, f"POST {path} HTTP/1.1\r\nHost: x\r\n"
                                f"Content-Length: {5 * 1024 * 1024}\r\n\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 413"), reply
    healthy(agent)


def test_ready_and_metadata_of_unknown_models_are_404(agent: AgentProcess) -> None:
    for path in ("/v2/models/nope", "/v2/models/nope/ready", "/v2/models/pumps/versions/7"):
        status, doc = json_request(agent.url + path)
        assert status == 404 and doc["error"]


def test_agent_binds_loopback_by_default(tmp_path: Path) -> None:
    import subprocess
    import sys

    port = free_port()
    (tmp_path / "token").write_text("a-token-for-this-test")
    proc = subprocess.Popen([sys.executable, "-m", "edge_agent", "serve", "--dir",
                             str(tmp_path), "--port", str(port)])
    trust_cert(url := f"https://127.0.0.1:{port}", tmp_path / "tls.crt")
    try:
        wait_http_ok(f"{url}/v2/health/live", 20, proc)
        listening = Path("/proc/net/tcp").read_text()
        assert f"0100007F:{port:04X}" in listening  # 127.0.0.1, not 0.0.0.0
    finally:
        proc.terminate()
        assert proc.wait(20) == 0


def test_port_in_use_and_unwritable_dir_are_one_line_errors(tmp_path: Path) -> None:
    import subprocess
    import sys

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "edge_agent", "serve", "--dir",
                               str(tmp_path / "a"), "--port", str(port)],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("error:") and "in use" in proc.stderr
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = subprocess.run([sys.executable, "-m", "edge_agent", "serve", "--dir",
                           str(blocker / "sub")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "not writable" in proc.stderr
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "telemetry.sqlite").write_bytes(b"not a database, not at all" * 100)
    (corrupt / "token").write_text("a-token-for-this-test")
    proc = subprocess.run([sys.executable, "-m", "edge_agent", "serve", "--dir", str(corrupt),
                           "--port", "0"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: the telemetry outbox")


def test_body_deadlines_cancel_only_reads_that_run_late() -> None:
    import asyncio

    from edge_agent.contract.asgi import BodyTimeout, Deadlines, read_body

    deadlines = Deadlines(tick=0.02)

    async def never() -> dict[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def slow_chunks() -> dict[str, Any]:
        await asyncio.sleep(0.05)
        slow_chunks.left -= 1  # type: ignore[attr-defined]
        return {"body": b"ab", "more_body": slow_chunks.left > 0}  # type: ignore[attr-defined]

    slow_chunks.left = 4  # type: ignore[attr-defined]

    async def scenario() -> bytes:
        start = time.monotonic()
        with pytest.raises(BodyTimeout):
            await read_body({"headers": []}, never, 100, 0.1, deadlines)
        assert time.monotonic() - start < 1
        body = await read_body({"headers": []}, slow_chunks, 100, 1.0, deadlines)
        await asyncio.sleep(0.1)  # the checker must not cancel a finished read later
        return body

    assert asyncio.run(scenario()) == b"abababab"
