"""Installing a very large signed model into a real agent: the bundle is streamed to disk,
checked (signature, hashes, graph) before anything loads, and the agent's peak memory
stays near twice the model's size, not the 3.4x of reading it whole several times; a
model that would unpack larger than the bundle cap is refused before it is loaded."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge_agent.contract.protocol import generate_signing_key, write_bundle
from tests.support.agents import (
    IDENTITY_SPECS,
    identity_baseline,
    json_request,
    read_members,
    running_agent,
)

pytestmark = pytest.mark.xdist_group("hostile_large_model")

MB = 1024 * 1024
WEIGHTS_MB = 64


def _peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def big_model(weights: np.ndarray) -> bytes:
    """y = x + w[0], with all of w (random, so incompressible) stored in the graph."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])
    nodes = [helper.make_node("Gather", ["w", "first"], ["w0"], axis=0),
             helper.make_node("Add", ["x", "w0"], ["y"])]
    inits = [numpy_helper.from_array(weights, "w"),
             numpy_helper.from_array(np.array([0], np.int64), "first")]
    graph = helper.make_graph(nodes, "big", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return model.SerializeToString()


def test_a_large_model_installs_with_bounded_peak_memory(tmp_path: Path) -> None:
    key = generate_signing_key()
    weights = np.random.default_rng(0).standard_normal(WEIGHTS_MB * MB // 4, np.float32)
    w0 = float(weights[0])
    canary = {"inputs": {"x": [0.0, 2.5]}, "expected": {"y": [[w0], [2.5 + w0]]},
              "atol": 1e-5, "label_output": None}
    bundle = write_bundle(tmp_path / "big-1.outpost", model="big", version=1,
                          model_bytes=big_model(weights), baseline=identity_baseline(),
                          canary=canary, key=key, task="regression", **IDENTITY_SPECS)
    del weights
    with running_agent(tmp_path / "agent", key) as agent:
        before = _peak_mb(agent.proc.pid)
        with bundle.open("rb") as body:
            status, doc = json_request(f"{agent.url}/v1/bundles", data=body.read(),
                                       headers=agent.headers())
        assert status == 200, doc
        grown = _peak_mb(agent.proc.pid) - before
        status, doc = json_request(f"{agent.url}/v1/models/big/predict",
                                   {"records": [{"x": 1.0}]})
        assert status == 200 and abs(doc["predictions"][0] - (1.0 + w0)) < 1e-5, doc
    # ~2.2x measured (3.2x before): the graph parsed once to check it, then onnxruntime's
    # own load from the file
    assert grown <= 2.6 * WEIGHTS_MB, f"peak RSS grew by {grown:.0f} MB for a " \
        f"{WEIGHTS_MB} MB model"


def test_a_model_larger_than_the_bundle_cap_is_refused_before_loading(tmp_path: Path) -> None:
    key = generate_signing_key()
    weights = np.zeros(3 * MB // 4, np.float32)  # 3 MiB that zip to ~1 MiB (ratio ~3)
    weights[: MB // 4] = np.random.default_rng(1).standard_normal(MB // 4, np.float32)
    canary = {"inputs": {"x": [0.0]}, "expected": {"y": [[float(weights[0])]]}, "atol": 1e-5,
              "label_output": None}
    bundle = write_bundle(tmp_path / "big-1.outpost", model="big", version=1,
                          model_bytes=big_model(weights), baseline=identity_baseline(),
                          canary=canary, key=key, task="regression", **IDENTITY_SPECS)
    members = read_members(bundle)
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as zf:  # the same, compressed
        for name, data in members.items():
            zf.writestr(name, data)
    with running_agent(tmp_path / "agent", key, extra_args=("--max-bundle-mb", "2")) as agent:
        status, doc = json_request(f"{agent.url}/v1/bundles", data=bundle.read_bytes(),
                                   headers=agent.headers())
        assert bundle.stat().st_size < 2 * MB
        assert status == 413 and "model.onnx" in doc["error"] and "big" not in str(
            json_request(f"{agent.url}/v1/status", headers=agent.headers())[1]["models"]), doc
