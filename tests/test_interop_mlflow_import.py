"""`model import DIR --format mlflow`: folders written by MLflow itself (onnx and sklearn
flavors) and by `model export --format mlflow`, through the real CLI; bad folders refused
in one line with the catalog unchanged."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from tests.conftest import run_cli
from tests.support.fleet import mini_frame, open_catalog, train_mini
from tests.support.interop import kinds_model
from tests.support.training import catalog_state


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mlflow-import") / "home"
    catalog = open_catalog(path)
    train_mini(catalog)  # pumps@1, and the dataset `mini`
    catalog.close()
    return path


def cli_json(home: Path, *args: str) -> dict[str, Any]:
    return run_cli(home, *args, "--json", check=True).json()  # type: ignore[no-any-return]


def frame() -> pd.DataFrame:
    data = mini_frame()
    data["site"] = data["site"].fillna("")
    return data


def fitted_pipeline() -> Pipeline:
    data = frame()
    pre = ColumnTransformer([
        ("num", Pipeline([("imp", SimpleImputer(strategy="median")),
                          ("scale", StandardScaler())]), ["temp", "load"]),
        ("cat", Pipeline([("imp", SimpleImputer(missing_values="", strategy="constant",
                                                fill_value="missing")),
                          ("hot", OneHotEncoder(handle_unknown="ignore"))]), ["site"]),
    ])
    return Pipeline([("pre", pre), ("model", LogisticRegression(max_iter=500))]).fit(
        data[["temp", "site", "load"]], data["fail"])


def save_sklearn(model: Any, folder: Path, example: Any, fmt: str = "cloudpickle",
                 **options: Any) -> Path:
    import mlflow.sklearn

    mlflow.sklearn.save_model(model, str(folder), input_example=example,
                              serialization_format=fmt, **options)
    return folder


def refused(home: Path, *args: str) -> str:
    """The import fails with one line on stderr and the catalog and object store unchanged."""
    before = catalog_state(home)
    result = run_cli(home, "model", "import", *args)
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert catalog_state(home) == before
    return lines[0]


def test_an_exported_mlflow_folder_comes_back_as_the_same_model(home: Path,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "pumps-mlflow"
    cli_json(home, "model", "export", "pumps@1", "--format", "mlflow", "--out", str(out))
    imported = cli_json(home, "model", "import", str(out), "--format", "mlflow",
                        "--name", "pumps-back")
    assert imported["source"]["kind"] == "mlflow" and imported["source"]["flavor"] == "onnx"
    original = cli_json(home, "model", "versions", "pumps")["versions"][0]
    back = cli_json(home, "model", "versions", "pumps-back")["versions"][0]
    assert back["onnx_object"] == original["onnx_object"]
    assert back["inputs"] == original["inputs"] and back["outputs"] == original["outputs"]


def test_onnx_flavor_written_by_mlflow(home: Path, tmp_path: Path) -> None:
    import mlflow.models
    import mlflow.onnx

    model = kinds_model()
    example = {"x": np.array([[1.5], [2.0]]), "n": np.array([[3], [4]], np.int32),
               "b": np.array([[True], [False]])}
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = dict(zip(["y", "m", "nb"], session.run(None, example), strict=True))
    folder = tmp_path / "kinds-mlflow"
    mlflow.onnx.save_model(model, str(folder), input_example=example,
                           signature=mlflow.models.infer_signature(example, outputs))
    imported = cli_json(home, "model", "import", str(folder), "--format", "mlflow",
                        "--name", "kinds")
    assert [(i["name"], i["datatype"]) for i in imported["inputs"]] == [
        ("x", "FP64"), ("n", "INT32"), ("b", "BOOL")]
    assert imported["parity"]["checked"] is False and imported["flagged"] is False


def test_sklearn_flavor_is_unpickled_only_when_trusted_and_checked_for_parity(
        home: Path, tmp_path: Path) -> None:
    pipeline = fitted_pipeline()
    data = frame()
    columns = ["temp", "site", "load"]
    folder = save_sklearn(pipeline, tmp_path / "sk", data[columns].dropna().head(12))

    line = refused(home, str(folder), "--format", "mlflow", "--name", "sk")
    assert "unpickling runs code" in line and "--trust-pickle" in line

    imported = cli_json(home, "model", "import", str(folder), "--format", "mlflow",
                        "--name", "sk", "--trust-pickle")
    assert imported["source"]["flavor"] == "sklearn"
    assert imported["source"]["estimator"] == "Pipeline"
    assert [i["name"] for i in imported["inputs"]] == columns
    assert imported["parity"]["passed"] is True and imported["parity"]["rows"] == 12
    assert imported["flagged"] is False

    out = tmp_path / "sk.onnx"
    cli_json(home, "model", "export", "sk@1", "--out", str(out))
    session = ort.InferenceSession(out.read_bytes(), providers=["CPUExecutionProvider"])
    feeds = {"temp": data[["temp"]].to_numpy(np.float32),
             "site": data[["site"]].to_numpy(object),
             "load": data[["load"]].to_numpy(np.float32)}
    labels, proba = session.run(["label", "probabilities"], feeds)
    assert np.array_equal(labels, pipeline.predict(data[columns]))
    assert np.abs(proba - pipeline.predict_proba(data[columns])).max() < 1e-4

    on_dataset = cli_json(home, "model", "import", str(folder), "--format", "mlflow",
                          "--name", "sk", "--trust-pickle", "--dataset", "mini")
    assert on_dataset["version"] == 2 and on_dataset["parity"]["rows"] == len(mini_frame())


def test_skops_files_load_without_trust_only_when_skops_trusts_every_type(
        home: Path, tmp_path: Path) -> None:
    data = frame()
    numeric = data[["temp", "load"]].fillna(0)
    bare = save_sklearn(LogisticRegression().fit(numeric, data["fail"]), tmp_path / "bare",
                        numeric.head(10), fmt="skops")
    imported = cli_json(home, "model", "import", str(bare), "--format", "mlflow",
                        "--name", "skops-bare")
    assert imported["parity"]["passed"] is True and imported["parity"]["rows"] == 10

    columns = ["temp", "site", "load"]
    # MLflow writes the types its caller trusted into MLmodel; the folder's own word is not
    # taken for it on import.
    pipeline = save_sklearn(fitted_pipeline(), tmp_path / "pipe", data[columns].dropna().head(10),
                            fmt="skops", skops_trusted_types=["numpy.dtype"])
    line = refused(home, str(pipeline), "--format", "mlflow", "--name", "skops-pipe")
    assert "needs types skops does not trust (numpy.dtype)" in line and "--trust-pickle" in line
    trusted = cli_json(home, "model", "import", str(pipeline), "--format", "mlflow",
                       "--name", "skops-pipe", "--trust-pickle")
    assert trusted["parity"]["passed"] is True and trusted["source"]["estimator"] == "Pipeline"


def test_sklearn_flavor_with_a_tensor_signature(home: Path, tmp_path: Path) -> None:
    data = frame()
    X = data[["temp", "load"]].fillna(0).to_numpy()
    model = Ridge().fit(X, data["fail"])
    folder = save_sklearn(model, tmp_path / "ridge", X[:20])
    imported = cli_json(home, "model", "import", str(folder), "--format", "mlflow",
                        "--name", "ridge", "--trust-pickle")
    assert [i["name"] for i in imported["inputs"]] == ["input_0", "input_1"]
    assert imported["parity"]["passed"] is True and imported["parity"]["rows"] == 20


def _mlflow_copy(home: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "m"
    cli_json(home, "model", "export", "pumps@1", "--format", "mlflow", "--out", str(folder))
    return folder


def _edit(folder: Path, change: Any) -> None:
    spec = yaml.safe_load((folder / "MLmodel").read_text())
    change(spec)
    (folder / "MLmodel").write_text(yaml.safe_dump(spec))


def _retype(spec: dict[str, Any], name: str, dtype: str) -> None:
    inputs = json.loads(spec["signature"]["inputs"])
    for field in inputs:
        if field["name"] == name:
            field["tensor-spec"]["dtype"] = dtype
    spec["signature"]["inputs"] = json.dumps(inputs)


BAD_FOLDERS = {
    "missing artifact": (lambda f: (f / "model.onnx").unlink(),
                         "m is missing model.onnx, the ONNX model its MLmodel names"),
    "unknown flavor": (lambda f: _edit(f, lambda s: s.update(flavors={
        "pytorch": {"model_data": "data"}, "python_function": {"loader_module": "x"}})),
        "m has flavors python_function, pytorch; Outpost imports the onnx and sklearn flavors"),
    "signature dtype": (lambda f: _edit(f, lambda s: _retype(s, "temp", "float64")),
                        "the MLmodel signature disagrees with the ONNX graph: input 'temp' has "
                        "dtype float64 but the graph has FP32"),
    "signature name": (lambda f: _edit(f, lambda s: s["signature"].update(inputs=json.dumps([
        {"name": "pressure", "type": "tensor",
         "tensor-spec": {"dtype": "float32", "shape": [-1, 1]}}]))),
        "the MLmodel signature has input 'pressure' but the ONNX graph has inputs"),
    "outside the folder": (lambda f: _edit(f, lambda s: s["flavors"]["onnx"].update(
        data="../../catalog.duckdb")), "m/MLmodel points ONNX model outside the folder"),
    "no MLmodel": (lambda f: (f / "MLmodel").unlink(),
                   "m is not an MLflow model folder: it has no MLmodel file"),
    "not YAML": (lambda f: (f / "MLmodel").write_text("flavors: [unclosed"),
                 "m/MLmodel is not valid YAML"),
    "serialization": (lambda f: _edit(f, lambda s: s.update(flavors={"sklearn": {
        "pickled_model": "model.onnx", "serialization_format": "marshal"}})),
        "m: serialization format 'marshal' is not supported"),
    "not a skops file": (lambda f: _edit(f, lambda s: s.update(flavors={"sklearn": {
        "pickled_model": "model.onnx", "serialization_format": "skops"}})),
        "model.onnx is not a readable skops file"),
    "not an onnx file": (lambda f: (f / "model.onnx").write_bytes(b"\x00garbage" * 10),
                         "model.onnx is not an ONNX model"),
}


@pytest.mark.parametrize("case", list(BAD_FOLDERS))
def test_bad_mlflow_folders_are_refused_in_one_line(home: Path, tmp_path: Path,
                                                    case: str) -> None:
    folder = _mlflow_copy(home, tmp_path)
    spoil, message = BAD_FOLDERS[case]
    spoil(folder)
    line = refused(home, str(folder), "--format", "mlflow", "--name", "bad")
    assert message in line


def test_unknown_import_format_and_missing_folder(home: Path, tmp_path: Path) -> None:
    assert "unknown import format 'pytorch'" in refused(
        home, str(tmp_path), "--format", "pytorch", "--name", "x")
    assert "no such folder" in refused(home, str(tmp_path / "nope"), "--format", "mlflow",
                                       "--name", "x")
