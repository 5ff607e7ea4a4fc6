"""Shared by the interop tests: a catalog with a trained and an imported model, a real
MLServer process (the independent OIP server) serving models from an exported repository,
and the KServe SDK's side environment."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from tests.conftest import REPO
from tests.support.agents import free_port, wait_http_ok

# `make test` names the side environment's interpreter here: then a missing one fails the
# test instead of skipping it.
KSERVE_PYTHON_ENV = "OUTPOST_KSERVE_PYTHON"
KSERVE_VALIDATE = REPO / "tests" / "support" / "kserve_validate.py"


def kserve_python() -> Path:
    """The interpreter of `.venv-kserve` (the KServe SDK, kept apart: it pins pandas < 3)."""
    named = os.environ.get(KSERVE_PYTHON_ENV)
    python = Path(named) if named else REPO / ".venv-kserve" / "bin" / "python"
    if not python.is_file():
        message = (f"the KServe SDK's side environment is missing ({python}): build it with "
                   "`make kserve-venv` (make install-dev and make test do)")
        if named:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return python


def kinds_model() -> onnx.ModelProto:
    """An external model over several OIP datatypes: FP64, INT32 and BOOL in, FP64, INT64 and
    BOOL out, every tensor [-1, 1] as the desktop's tabular models are."""
    def tensor(name: str, kind: int) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, kind, [None, 1])

    nodes = [
        helper.make_node("Constant", [], ["two"], value=helper.make_tensor(
            "two", TensorProto.DOUBLE, [], [2.5])),
        helper.make_node("Mul", ["x", "two"], ["y"]),
        helper.make_node("Cast", ["n"], ["n64"], to=TensorProto.INT64),
        helper.make_node("Neg", ["n64"], ["m"]),
        helper.make_node("Not", ["b"], ["nb"]),
    ]
    graph = helper.make_graph(
        nodes, "kinds",
        [tensor("x", TensorProto.DOUBLE), tensor("n", TensorProto.INT32),
         tensor("b", TensorProto.BOOL)],
        [tensor("y", TensorProto.DOUBLE), tensor("m", TensorProto.INT64),
         tensor("nb", TensorProto.BOOL)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="interop-test")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@dataclass
class MLServer:
    proc: subprocess.Popen[bytes]
    url: str
    grpc: str


@contextlib.contextmanager
def running_mlserver(folder: Path, models: dict[str, Path]) -> Iterator[MLServer]:
    """`mlserver start` on free loopback ports with `OnnxModel` serving each model.onnx."""
    folder.mkdir(parents=True)
    http, grpc, metrics = free_port(), free_port(), free_port()
    (folder / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": http, "grpc_port": grpc, "metrics_port": metrics,
        "parallel_workers": 0, "metrics_endpoint": None}))
    for name, onnx_file in models.items():
        (folder / name).mkdir()
        (folder / name / "model-settings.json").write_text(json.dumps({
            "name": name, "implementation": "tests.support.oip_mlserver_runtime.OnnxModel",
            "parameters": {"uri": str(onnx_file), "version": onnx_file.parent.name}}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    with (folder.parent / "mlserver.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from mlserver.cli.main import main; main()", "start",
             str(folder)], stdout=log, stderr=log, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{http}"
    try:
        for name in models:
            wait_http_ok(f"{url}/v2/models/{name}/ready", 60, proc)
        yield MLServer(proc, url, f"127.0.0.1:{grpc}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
