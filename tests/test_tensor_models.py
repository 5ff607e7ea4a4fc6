"""Imported ONNX models with tensor inputs: import (with or without a sample), deploy to a real
agent, answer through tritonclient's binary default; canary and baseline record what they are."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as httpclient

from core.fleet.agents import add_agent
from core.keys import signing_key
from tests.conftest import run_cli
from tests.support.agents import triton_client
from tests.support.datasets import state
from tests.support.fleet import agents, open_catalog
from tests.support.onnx_models import image_model, sklearn_vector_model, vector_model

pytestmark = pytest.mark.xdist_group("fleet")


def direct(model: Path, feeds: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds), strict=True))


def infer(url: str, model: str, feeds: dict[str, np.ndarray[Any, Any]]
          ) -> httpclient.InferResult:
    client = triton_client(url)
    try:
        inputs = []
        for name, arr in feeds.items():
            tensor = httpclient.InferInput(name, list(arr.shape), "FP32")
            tensor.set_data_from_numpy(arr)  # binary_data=True: tritonclient's default
            inputs.append(tensor)
        return client.infer(model, inputs)
    finally:
        client.close()


def imported(home: Path, path: Path, name: str, *extra: str) -> dict[str, Any]:
    result = run_cli(home, "model", "import", str(path), "--name", name, "--json", *extra)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = result.json()
    return data


def test_tensor_models_import_deploy_and_answer_tritonclient(outpost_home: Path,
                                                             tmp_path: Path) -> None:
    vec, img, skl = (vector_model(tmp_path / "vec.onnx"), image_model(tmp_path / "img.onnx"),
                     sklearn_vector_model(tmp_path / "skl.onnx"))
    rng = np.random.default_rng(3)
    np.savez(tmp_path / "vec.npz", x=rng.normal(size=(40, 8)).astype(np.float32))
    assert imported(outpost_home, vec, "vec", "--sample", str(tmp_path / "vec.npz"))[
        "canary"] == "sample"
    image = imported(outpost_home, img, "cnn")
    assert image["canary"] == "generated"
    assert image["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 3, 224, 224]}]
    assert [o["name"] for o in image["outputs"]] == ["probs", "logits"]
    assert imported(outpost_home, skl, "ridge")["canary"] == "generated"
    card = run_cli(outpost_home, "model", "card", "cnn@1").stdout
    assert "canary: generated to the signature" in card
    assert "canary: from the sample `vec.npz` (40 rows)" in run_cli(
        outpost_home, "model", "card", "vec@1").stdout

    catalog = open_catalog(outpost_home)
    with agents(tmp_path, signing_key(catalog), 1) as (a,):
        add_agent(catalog, "edge", a.url, a.token)
        catalog.close()
        for ref in ("vec@1", "cnn@1", "ridge@1"):
            done = run_cli(outpost_home, "deploy", ref, "--to", "edge", "--json")
            assert done.returncode == 0, done.stderr
            assert done.json()["status"] == "active"
        batch = {"x": rng.normal(size=(5, 8)).astype(np.float32)}
        result = infer(a.url, "vec", batch)
        for name, want in direct(vec, batch).items():
            np.testing.assert_allclose(result.as_numpy(name), want, rtol=1e-5, atol=1e-5)
        pictures = {"image": rng.random((2, 3, 224, 224), dtype=np.float32)}
        result = infer(a.url, "cnn", pictures)
        for name, want in direct(img, pictures).items():
            np.testing.assert_allclose(result.as_numpy(name), want, rtol=1e-5, atol=1e-5)
        rows = {"features": rng.normal(size=(3, 8)).astype(np.float32)}
        want = direct(skl, rows)["variable"]
        np.testing.assert_allclose(infer(a.url, "ridge", rows).as_numpy("variable"), want,
                                   rtol=1e-5, atol=1e-4)


BAD_SAMPLES = {
    "wrong width": (lambda: {"x": np.zeros((4, 7), np.float32)}, "has shape [4, 7]"),
    "wrong name": (lambda: {"x": np.zeros((4, 8), np.float32),
                            "y": np.zeros((4, 8), np.float32)}, "do not match the model inputs"),
    "text": (lambda: {"x": np.array([["a"] * 8] * 2)}, "holds <U1"),
    "nan": (lambda: {"x": np.full((2, 8), np.nan, np.float32)}, "NaN or infinity"),
}


@pytest.mark.parametrize("case", list(BAD_SAMPLES))
def test_a_bad_sample_is_refused_and_nothing_stored(outpost_home: Path, tmp_path: Path,
                                                    case: str) -> None:
    make, needle = BAD_SAMPLES[case]
    vec = vector_model(tmp_path / "vec.onnx")
    sample = tmp_path / "s.npz"
    np.savez(sample, **make())  # type: ignore[arg-type]
    before = state(outpost_home)
    result = run_cli(outpost_home, "model", "import", str(vec), "--name", "vec",
                     "--sample", str(sample))
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert state(outpost_home) == before
    assert run_cli(outpost_home, "model", "list", "--json").json()["models"] == []


def test_a_pickled_sample_is_refused(outpost_home: Path, tmp_path: Path) -> None:
    vec = vector_model(tmp_path / "vec.onnx")
    sample = tmp_path / "p.npz"
    np.savez(sample, x=np.array([{"a": 1}] * 8, dtype=object))
    result = run_cli(outpost_home, "model", "import", str(vec), "--name", "vec",
                     "--sample", str(sample))
    assert result.returncode == 1 and "pickled arrays are refused" in result.stderr
