"""An outside client, tritonclient.http, against a live agent: default (binary) settings and
binary_data=False, outputs compared with onnxruntime run directly on the same model."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from edge_agent.contract.protocol import generate_signing_key
from tests.support.agents import (
    AgentProcess,
    json_request,
    make_tabular_bundle,
    running_agent,
    tabular_model,
)

pytestmark = pytest.mark.xdist_group("agent_tritonclient")


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    tmp = tmp_path_factory.mktemp("triton")
    key = generate_signing_key()
    with running_agent(tmp / "agent", trust_key=key) as proc:
        for task in ("classification", "regression"):
            bundle = make_tabular_bundle(tmp, key, version=1, model=f"pumps-{task}", task=task)
            status, doc = json_request(f"{proc.url}/v1/bundles", headers=proc.headers(),
                                       data=bundle.read_bytes(), method="POST")
            assert status == 200, doc
        yield proc


@pytest.fixture(scope="module")
def client(agent: AgentProcess) -> Iterator[httpclient.InferenceServerClient]:
    # over TLS, trusting the agent's own self-signed certificate (as docs/agent.md shows)
    assert agent.url.startswith("https://")
    c = httpclient.InferenceServerClient(agent.url.removeprefix("https://"), ssl=True,
                                         ssl_options={"ca_certs": str(agent.cafile)})
    yield c
    c.close()


def columns(rows: int) -> dict[str, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(rows)
    temp = rng.normal(20, 5, (rows, 1)).astype(np.float32)
    temp[0, 0] = np.nan  # the pipeline imputes it: binary inputs can carry NaN
    return {"temp": temp,
            "pressure": rng.normal(1000, 30, (rows, 1)).astype(np.float32),
            "site": rng.choice(np.array(["north", "south", "east", ""], dtype=object),
                               (rows, 1))}


def infer_inputs(cols: dict[str, np.ndarray[Any, Any]], binary: bool
                 ) -> list[httpclient.InferInput]:
    out = []
    for name, arr in cols.items():
        datatype = "BYTES" if arr.dtype == object else "FP32"
        tensor = httpclient.InferInput(name, list(arr.shape), datatype)
        tensor.set_data_from_numpy(arr, binary_data=binary)
        out.append(tensor)
    return out


def direct(task: str, cols: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
    session = ort.InferenceSession(tabular_model(task).onnx_bytes,
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, cols), strict=True))


def same(got: np.ndarray[Any, Any], want: np.ndarray[Any, Any]) -> None:
    if want.dtype == object:
        assert [x.decode() if isinstance(x, bytes) else x for x in got.ravel()] == list(
            want.ravel())
    else:
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("binary", [True, False], ids=["default-binary", "binary_data=False"])
def test_outputs_match_onnxruntime(client: httpclient.InferenceServerClient, task: str,
                                   binary: bool) -> None:
    cols = columns(7)
    if not binary:
        cols["temp"][0, 0] = 15.0  # JSON has no NaN
    model = f"pumps-{task}"
    want = direct(task, cols)
    outputs = None if binary else [httpclient.InferRequestedOutput(n, binary_data=False)
                                   for n in want]
    result = client.infer(model, infer_inputs(cols, binary), outputs=outputs,
                          request_id="req-42")
    response = result.get_response()
    assert response["id"] == "req-42" and response["model_version"] == "1"
    for name, value in want.items():
        output = result.get_output(name)
        assert ("parameters" in output) == binary  # binary_data_size only when binary
        same(result.as_numpy(name), value)


def test_health_metadata_and_readiness(client: httpclient.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("pumps-classification")
    assert client.is_model_ready("pumps-classification", "1")
    assert not client.is_model_ready("nope")
    meta = client.get_model_metadata("pumps-regression")
    assert [i["name"] for i in meta["inputs"]] == ["temp", "pressure", "site"]
    assert meta["versions"] == ["1"]
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]


def test_errors_reach_the_client_as_messages(client: httpclient.InferenceServerClient) -> None:
    cols = columns(2)
    del cols["site"]
    with pytest.raises(InferenceServerException, match="missing inputs"):
        client.infer("pumps-classification", infer_inputs(cols, True))
    with pytest.raises(InferenceServerException, match="not installed"):
        client.infer("nope", infer_inputs(columns(2), True))
