"""`model export --format triton|kserve|mlflow`: each output read back by the other side's own
code — Triton's model_config.proto (tritonclient), MLflow's pyfunc loader — and compared
with the ONNX graph and with a real agent's answers.

KServe's SDK (`kserve`) cannot be installed beside this stack (every release pins
pandas < 3): the manifest is read back by the SDK's own model classes in a side
environment (`.venv-kserve`, tests/support/kserve_validate.py), besides being checked
field by field here, and its repository with Triton's proto like the triton export."""
from __future__ import annotations

import copy
import hashlib
import json
import subprocess
from pathlib import Path

import httpx
import numpy as np
import onnx
import pytest
import yaml
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from core.fleet.agents import add_agent
from core.fleet.dispatch import deploy
from core.keys import signing_key
from tests.conftest import run_cli
from tests.support.agents import verify_for
from tests.support.fleet import agents, open_catalog, train_mini
from tests.support.interop import KSERVE_VALIDATE, kinds_model, kserve_python

pytestmark = pytest.mark.xdist_group("fleet")

# ONNX element type → Triton data type, written out here independently of core.
TRITON_OF_ONNX = {
    onnx.TensorProto.FLOAT: mc.TYPE_FP32, onnx.TensorProto.DOUBLE: mc.TYPE_FP64,
    onnx.TensorProto.INT32: mc.TYPE_INT32, onnx.TensorProto.INT64: mc.TYPE_INT64,
    onnx.TensorProto.BOOL: mc.TYPE_BOOL, onnx.TensorProto.STRING: mc.TYPE_STRING,
}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pumps@1 (trained: FP32 and BYTES in), kinds@1 (imported: FP64, INT32, BOOL) and
    fixed@1 (imported, fixed shape [2, 3]: not batchable)."""
    root = tmp_path_factory.mktemp("interop")
    path = root / "home"
    catalog = open_catalog(path)
    train_mini(catalog)
    catalog.close()
    onnx.save(kinds_model(), root / "kinds.onnx")
    fixed = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["a"], ["z"])], "fixed",
        [onnx.helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, [2, 3])],
        [onnx.helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [2, 3])]),
        opset_imports=[onnx.helper.make_opsetid("", 17)])
    fixed.ir_version = 8
    onnx.save(fixed, root / "fixed.onnx")
    for name in ("kinds", "fixed"):
        run_cli(path, "model", "import", str(root / f"{name}.onnx"), "--name", name, check=True)
    return path


def export(home: Path, *args: str) -> dict:  # type: ignore[type-arg]
    return run_cli(home, "model", "export", *args, "--json", check=True).json()  # type: ignore[no-any-return]


def parse_config(path: Path) -> mc.ModelConfig:
    return text_format.Parse(path.read_text(), mc.ModelConfig())


def graph_tensors(model: onnx.ModelProto) -> tuple[list[onnx.ValueInfoProto],
                                                   list[onnx.ValueInfoProto]]:
    init = {i.name for i in model.graph.initializer}
    return [v for v in model.graph.input if v.name not in init], list(model.graph.output)


def dims_of(value: onnx.ValueInfoProto) -> list[int]:
    return [d.dim_value if d.HasField("dim_value") else -1
            for d in value.type.tensor_type.shape.dim]


def check_against_graph(config: mc.ModelConfig, model: onnx.ModelProto, name: str,
                        version: int) -> None:
    """Every field of the Triton config, derived again from the ONNX graph."""
    inputs, outputs = graph_tensors(model)
    batched = all(dims_of(v)[0] == -1 for v in (*inputs, *outputs))
    assert config.name == name and config.platform == "onnxruntime_onnx"
    assert list(config.version_policy.specific.versions) == [version]
    assert (config.max_batch_size > 0) is batched
    assert config.HasField("dynamic_batching") is batched
    for declared, values in ((config.input, inputs), (config.output, outputs)):
        assert [t.name for t in declared] == [v.name for v in values]
        for t, v in zip(declared, values, strict=True):
            assert t.data_type == TRITON_OF_ONNX[v.type.tensor_type.elem_type]
            dims = dims_of(v)[1:] if batched else dims_of(v)
            if dims:
                assert list(t.dims) == dims and not t.HasField("reshape")
            else:  # a plain [batch] vector: Triton's [1] reshaped to []
                assert list(t.dims) == [1] and list(t.reshape.shape) == []


@pytest.mark.parametrize("name", ["pumps", "kinds", "fixed"])
def test_triton_repository_matches_the_graph(home: Path, tmp_path: Path, name: str) -> None:
    repo = tmp_path / "repo"
    result = export(home, f"{name}@1", "--format", "triton", "--out", str(repo))
    onnx_file = repo / name / "1" / "model.onnx"
    assert result["format"] == "triton" and result["path"] == str(repo / name)
    assert sorted(result["files"]) == sorted([str(repo / name / "config.pbtxt"), str(onnx_file)])
    assert hashlib.sha256(onnx_file.read_bytes()).hexdigest() == result["sha256"]
    config = parse_config(repo / name / "config.pbtxt")
    check_against_graph(config, onnx.load(onnx_file), name, 1)
    assert (config.max_batch_size == 0) is (name == "fixed")


def test_kserve_manifest_and_repository(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "isvc"
    result = export(home, "pumps@1", "--format", "kserve", "--out", str(out),
                    "--storage-uri", "s3://models/pumps-repo")
    manifest = yaml.safe_load((out / "inferenceservice.yaml").read_text())
    assert result["path"] == str(out)
    assert manifest["apiVersion"] == "serving.kserve.io/v1beta1"
    assert manifest["kind"] == "InferenceService"
    assert manifest["metadata"]["name"] == "pumps"
    assert manifest["metadata"]["annotations"]["outpost/sha256"] == result["sha256"]
    assert set(manifest["spec"]) == {"predictor"}
    assert manifest["spec"]["predictor"] == {"model": {
        "modelFormat": {"name": "onnx"}, "protocolVersion": "v2",
        "storageUri": "s3://models/pumps-repo"}}
    repo = out / "repository"
    assert sorted(p.name for p in repo.iterdir()) == ["pumps"]
    check_against_graph(parse_config(repo / "pumps" / "config.pbtxt"),
                        onnx.load(repo / "pumps" / "1" / "model.onnx"), "pumps", 1)

    bad = run_cli(home, "model", "export", "pumps@1", "--format", "kserve", "--out",
                  str(tmp_path / "other"), "--storage-uri", "not a uri")
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1
    assert "--storage-uri" in bad.stderr and not (tmp_path / "other").exists()


@pytest.fixture
def kserve_py() -> Path:
    """Asked for before `home`, so a missing side environment says so at once."""
    return kserve_python()


def test_kserve_sdk_reads_the_manifest_back(kserve_py: Path, home: Path, tmp_path: Path) -> None:
    """`kserve.V1beta1InferenceService` (via the SDK's ApiClient) reads back every field,
    with its type; a misspelled or mistyped field, which the SDK would drop or coerce
    silently, is caught (the broken copies prove the check can fail)."""
    out = tmp_path / "isvc"
    result = export(home, "pumps@1", "--format", "kserve", "--out", str(out),
                    "--storage-uri", "gs://bucket/pumps-repo")
    written = out / "inferenceservice.yaml"
    manifest = yaml.safe_load(written.read_text())

    def broken(field: str, value: object, rename: str | None = None) -> Path:
        copied = copy.deepcopy(manifest)
        parent = copied["spec"]["predictor"]["model"] if field != "name" else copied["metadata"]
        del parent[field]
        parent[rename or field] = value
        path = tmp_path / f"broken-{rename or field}.yaml"
        path.write_text(yaml.safe_dump(copied))
        return path

    cases = {
        broken("storageUri", "gs://bucket/pumps-repo", rename="storageURI"):
            "spec.predictor.model.storageURI: not a field the SDK knows",
        broken("protocolVersion", 2): "spec.predictor.model.protocolVersion: written 2 (int)",
        broken("modelFormat", "onnx"): "spec.predictor.model.modelFormat: written 'onnx'",
        broken("name", 5): "ValidationError",
    }
    proc = subprocess.run([str(kserve_py), str(KSERVE_VALIDATE), str(written), *map(str, cases)],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    good, *bad = json.loads(proc.stdout)
    assert good["problems"] == []
    assert good["read"] == {
        "api_version": "serving.kserve.io/v1beta1", "kind": "InferenceService",
        "name": "pumps", "annotations": {"outpost/model": "pumps", "outpost/version": "1",
                                         "outpost/sha256": result["sha256"]},
        "model_format": "onnx", "protocol_version": "v2",
        "storage_uri": "gs://bucket/pumps-repo",
        "sdk_class": "kserve.models.v1beta1_model_spec.V1beta1ModelSpec"}
    for (path, expected), answer in zip(cases.items(), bad, strict=True):
        assert answer["file"] == str(path)
        assert len(answer["problems"]) == 1 and answer["problems"][0].startswith(expected), \
            answer["problems"]


def test_mlflow_model_predicts_what_the_agent_answers(home: Path, tmp_path: Path) -> None:
    import mlflow.pyfunc

    out = tmp_path / "mlflow-pumps"
    export(home, "pumps@1", "--format", "mlflow", "--out", str(out))
    spec = yaml.safe_load((out / "MLmodel").read_text())
    assert spec["flavors"]["onnx"]["data"] == "model.onnx"
    assert spec["metadata"]["outpost"]["card"].startswith("# Model card: pumps version 1")
    assert [f["name"] for f in json.loads(spec["signature"]["inputs"])] == [
        v.name for v in graph_tensors(onnx.load(out / "model.onnx"))[0]]
    example = json.loads((out / "input_example.json").read_text())
    rows = len(example["temp"])
    assert rows >= 4

    loaded = mlflow.pyfunc.load_model(str(out))
    feeds = {"temp": np.array(example["temp"], np.float32),
             "site": np.array(example["site"], dtype=object),
             "load": np.array(example["load"], np.float32)}
    predicted = loaded.predict(feeds)

    catalog = open_catalog(home)
    try:
        with agents(tmp_path, signing_key(catalog), 1) as (agent,):
            add_agent(catalog, "edge", agent.url, agent.token)
            assert deploy(catalog, "pumps@1", "edge").status == "active"
            body = {"inputs": [
                {"name": "temp", "datatype": "FP32", "shape": [rows, 1], "data": example["temp"]},
                {"name": "site", "datatype": "BYTES", "shape": [rows, 1], "data": example["site"]},
                {"name": "load", "datatype": "FP32", "shape": [rows, 1], "data": example["load"]}]}
            answer = httpx.post(f"{agent.url}/v2/models/pumps/infer", json=body, timeout=30,
                                verify=verify_for(agent.url))
    finally:
        catalog.close()
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    assert np.array_equal(predicted["label"], np.array(outputs["label"]["data"]))
    assert list(predicted["probabilities"].shape) == outputs["probabilities"]["shape"]
    agent_proba = np.array(outputs["probabilities"]["data"]).reshape(rows, 2)
    assert np.abs(predicted["probabilities"] - agent_proba).max() <= 1e-6


def test_an_existing_target_is_kept_unless_forced(home: Path, tmp_path: Path) -> None:
    for fmt, target in (("mlflow", tmp_path / "m"), ("kserve", tmp_path / "k"),
                        ("triton", tmp_path / "repo" / "pumps"), ("onnx", tmp_path / "p.onnx")):
        out = tmp_path / "repo" if fmt == "triton" else target
        if fmt == "onnx":
            target.write_text("keep me")
        else:
            target.mkdir(parents=True)
            (target / "keep.txt").write_text("keep me")
        refused = run_cli(home, "model", "export", "pumps@1", "--format", fmt, "--out", str(out))
        assert refused.returncode == 1 and refused.stdout == ""
        assert refused.stderr.strip() == f"error: {target} already exists; pass --force to " \
            "replace it"
        kept = target if fmt == "onnx" else target / "keep.txt"
        assert kept.read_text() == "keep me"
        forced = export(home, "pumps@1", "--format", fmt, "--out", str(out), "--force")
        assert forced["path"] == str(target)
        assert all(Path(f).is_file() for f in forced["files"])
        if fmt == "onnx":
            assert hashlib.sha256(target.read_bytes()).hexdigest() == forced["sha256"]
        else:
            assert not (target / "keep.txt").exists()
        assert [p.name for p in target.parent.iterdir() if p.name.startswith(".")] == []

    unknown = run_cli(home, "model", "export", "pumps@1", "--format", "torchscript", "--out",
                      str(tmp_path / "t"))
    assert unknown.returncode == 1 and "unknown export format 'torchscript'" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1 and not (tmp_path / "t").exists()
