"""Open Inference Protocol conformance: the same requests to a real Outpost agent and to
MLServer (Seldon's OIP server from PyPI, independent of Outpost) serving the model files of
`model export --format triton`, through a minimal onnxruntime model class
(tests/support/oip_mlserver_runtime.py). KServe's own ModelServer cannot be installed beside this
stack (every kserve release pins pandas < 3).

JSON goes over REST to both. Binary tensors go to the agent over REST with Triton's
binary extension (tritonclient.http) and to MLServer over gRPC raw contents
(tritonclient.grpc): MLServer's REST has no binary extension. Outputs must agree to
1e-6, with the same names, datatypes and shapes."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import onnx
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http

from core.fleet.agents import add_agent
from core.fleet.dispatch import deploy
from core.keys import signing_key
from tests.conftest import run_cli
from tests.support.agents import tabular_model, triton_client, verify_for
from tests.support.fleet import agents, open_catalog, train_mini
from tests.support.interop import MLServer, kinds_model, running_mlserver

pytestmark = pytest.mark.xdist_group("fleet")

MODELS = ("pumps", "kinds", "alarms")
BATCHES = (1, 5, 64)
# OIP datatype → numpy, for building requests.
NUMPY = {"FP32": np.float32, "FP64": np.float64, "INT32": np.int32, "BOOL": np.bool_,
         "BYTES": object}


@dataclass
class Servers:
    agent: str
    mlserver: MLServer
    inputs: dict[str, list[tuple[str, str]]]  # model → [(input, datatype)]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """pumps (trained: FP32 + BYTES in, INT64 + FP32 out), kinds (FP64, INT32, BOOL in and
    out) and alarms (BYTES labels out), deployed to an agent and served by MLServer."""
    root = tmp_path_factory.mktemp("oip")
    home = root / "home"
    catalog = open_catalog(home)
    train_mini(catalog)
    catalog.close()
    onnx.save(kinds_model(), root / "kinds.onnx")
    (root / "alarms.onnx").write_bytes(tabular_model("classification").onnx_bytes)
    inputs: dict[str, list[tuple[str, str]]] = {}
    for name in MODELS:
        if name != "pumps":
            run_cli(home, "model", "import", str(root / f"{name}.onnx"), "--name", name,
                    check=True)
        run_cli(home, "model", "export", f"{name}@1", "--format", "triton", "--out",
                str(root / "repo"), check=True)
        described = run_cli(home, "model", "versions", name, "--json", check=True).json()
        inputs[name] = [(i["name"], i["datatype"]) for i in described["versions"][0]["inputs"]]
    catalog = open_catalog(home)
    try:
        with agents(root, signing_key(catalog), 1) as (agent,):
            add_agent(catalog, "edge", agent.url, agent.token)
            for name in MODELS:
                assert deploy(catalog, f"{name}@1", "edge").status == "active"
            files = {name: root / "repo" / name / "1" / "model.onnx" for name in MODELS}
            with running_mlserver(root / "mlserver", files) as mlserver:
                yield Servers(agent.url, mlserver, inputs)
    finally:
        catalog.close()


def batch(inputs: list[tuple[str, str]], rows: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for name, datatype in inputs:
        if datatype == "BYTES":
            values = rng.choice(["north", "south", "east", "west", "", "unseen"], rows)
            arrays[name] = values.astype(object).reshape(rows, 1)
        elif datatype == "BOOL":
            arrays[name] = (rng.random((rows, 1)) < 0.5)
        elif datatype == "INT32":
            arrays[name] = rng.integers(-1000, 1000, (rows, 1)).astype(np.int32)
        else:
            scale = 1000.0 if name == "pressure" else 20.0
            arrays[name] = (rng.normal(0, 1, (rows, 1)) * scale).astype(NUMPY[datatype])
    return arrays


def json_body(arrays: dict[str, np.ndarray], datatypes: dict[str, str]) -> dict[str, Any]:
    return {"inputs": [{"name": n, "datatype": datatypes[n], "shape": list(a.shape),
                        "data": [str(v) for v in a.ravel()] if a.dtype == object
                        else a.ravel().tolist()} for n, a in arrays.items()]}


def assert_same_outputs(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    """Two OIP JSON responses: same outputs, datatypes, shapes; values within 1e-6."""
    mine = {o["name"]: o for o in ours["outputs"]}
    other = {o["name"]: o for o in theirs["outputs"]}
    assert sorted(mine) == sorted(other)
    for name, out in mine.items():
        assert (out["datatype"], out["shape"]) == (other[name]["datatype"], other[name]["shape"])
        if out["datatype"] in ("BYTES", "BOOL", "INT64", "INT32"):
            assert out["data"] == other[name]["data"], name
        else:
            diff = np.abs(np.array(out["data"], float) - np.array(other[name]["data"], float))
            assert diff.max() <= 1e-6, (name, diff.max())


@pytest.mark.parametrize("model", MODELS)
def test_json_requests_agree(servers: Servers, model: str) -> None:
    datatypes = dict(servers.inputs[model])
    for rows in BATCHES:
        body = json_body(batch(servers.inputs[model], rows, rows), datatypes)
        for path in (f"/v2/models/{model}/infer", f"/v2/models/{model}/versions/1/infer"):
            ours = httpx.post(servers.agent + path, json=body, timeout=30,
                              verify=verify_for(servers.agent))
            theirs = httpx.post(servers.mlserver.url + path, json=body, timeout=30)
            assert ours.status_code == theirs.status_code == 200, (ours.text, theirs.text)
            assert ours.json()["model_name"] == theirs.json()["model_name"] == model
            assert_same_outputs(ours.json(), theirs.json())
        first_output = ours.json()["outputs"][0]["name"]
        only = {**body, "outputs": [{"name": first_output}]}
        ours = httpx.post(f"{servers.agent}/v2/models/{model}/infer", json=only, timeout=30,
                          verify=verify_for(servers.agent))
        theirs = httpx.post(f"{servers.mlserver.url}/v2/models/{model}/infer", json=only,
                            timeout=30)
        assert [o["name"] for o in ours.json()["outputs"]] == [first_output]
        assert_same_outputs(ours.json(), theirs.json())


@pytest.mark.parametrize("model", MODELS)
def test_binary_requests_agree(servers: Servers, model: str) -> None:
    agent = triton_client(servers.agent)
    mlserver = triton_grpc.InferenceServerClient(servers.mlserver.grpc)
    datatypes = dict(servers.inputs[model])
    try:
        for rows in BATCHES:
            arrays = batch(servers.inputs[model], rows, 100 + rows)
            http_inputs, grpc_inputs = [], []
            for name, array in arrays.items():
                h = triton_http.InferInput(name, list(array.shape), datatypes[name])
                h.set_data_from_numpy(array, binary_data=True)
                g = triton_grpc.InferInput(name, list(array.shape), datatypes[name])
                g.set_data_from_numpy(array)
                http_inputs.append(h)
                grpc_inputs.append(g)
            ours = agent.infer(model, http_inputs, model_version="1")
            theirs = mlserver.infer(model, grpc_inputs, model_version="1")
            names = [o["name"] for o in ours.get_response()["outputs"]]
            assert names == [o.name for o in theirs.get_response().outputs]
            for name in names:
                a, b = ours.as_numpy(name), theirs.as_numpy(name)
                assert a is not None and b is not None
                assert (a.dtype, a.shape) == (b.dtype, b.shape), name
                if a.dtype.kind in "fc":
                    assert np.abs(a - b).max() <= 1e-6, name
                else:
                    assert np.array_equal(a, b), name
    finally:
        agent.close()
        mlserver.close()
