"""Bad input to train / model commands: one line on stderr, exit 1, the catalog unchanged."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper

from core.datasets import import_frame
from core.registry import export_model, register_model
from core.training import train
from tests.conftest import run_cli
from tests.support.training import catalog_state, opened, run_main, seed_datasets


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bad-input") / "home"
    seed_datasets(path)
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    with opened(path) as catalog:
        import_frame(catalog, "one_class", pd.DataFrame({"x": x, "y": np.ones(40, dtype=int)}),
                     {"kind": "test"})
        import_frame(catalog, "null_feature", pd.DataFrame(
            {"x": x, "empty": [np.nan] * 40, "y": rng.integers(0, 2, 40)}), {"kind": "test"})
        import_frame(catalog, "null_target", pd.DataFrame({"x": x, "y": [np.nan] * 40}),
                     {"kind": "test"})
        run = train(catalog, "diabetes", "target", algo="ridge")
        register_model(catalog, run.id, "m")
        export_model(catalog, "m@1", path.parent / "good.onnx")
    return path


@pytest.fixture
def refuse(home: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Run the CLI in-process; assert one error line, exit 1 and an unchanged catalog."""
    monkeypatch.setenv("OUTPOST_HOME", str(home))

    def check(*args: str) -> str:
        before = catalog_state(home)
        code, out, err = run_main(*args)
        assert code == 1, (code, out, err)
        assert out == ""
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert "Traceback" not in err
        assert catalog_state(home) == before
        return lines[0]

    return check


@pytest.mark.parametrize("args,message", [
    (("train", "sensor", "--target", "nope"), "target 'nope' is not a column of sensor@"),
    (("train", "one_class", "--target", "y"), "target 'y' has only one class (1);"),
    (("train", "null_feature", "--target", "y"),
     "feature 'empty' is null in every row; leave it out with --features"),
    (("train", "sensor", "--target", "site", "--algo", "ridge"),
     "ridge does regression only; target 'site' is a classification target; pass --task "
     "regression"),
    (("train", "sensor", "--target", "site", "--task", "regression"),
     "regression needs a numeric target"),
    (("train", "null_target", "--target", "y"), "target 'y' is null in every row"),
    (("train", "sensor", "--target", "failure", "--features", "site,bogus"),
     "feature 'bogus' is not a column"),
    (("train", "sensor", "--target", "failure", "--algo", "xgboost"),
     "unknown algorithm 'xgboost'; choose one of: logistic_regression, linear_regression, "
     "ridge, random_forest, gradient_boosting, mlp"),
    (("train", "diabetes", "--target", "target", "--algo", "ridge", "--param", "beta=1"),
     "unknown parameter 'beta' for ridge; valid: alpha, fit_intercept"),
    (("train", "diabetes", "--target", "target", "--algo", "ridge", "--param", "alpha=abc"),
     "parameter alpha must be a number, got 'abc'"),
    (("train", "diabetes", "--target", "target", "--algo", "ridge", "--param", "alpha=-1"),
     "parameter alpha must be in [0, 1000000], got '-1'"),
    (("train", "sensor", "--target", "failure", "--algo", "random_forest",
      "--param", "n_estimators=2.5"), "parameter n_estimators must be an integer, got '2.5'"),
    (("train", "diabetes", "--target", "target", "--param", "alpha"),
     "--param takes NAME=VALUE"),
    (("train", "diabetes", "--target", "target", "--algo", "logistic_regression"),
     "logistic_regression does classification only; target 'target' is a regression target"),
    (("train", "diabetes", "--target", "target", "--algo", "ridge", "--search", "random",
      "--metric", "accuracy"), "unknown regression metric 'accuracy'"),
    (("train", "diabetes", "--target", "target", "--algo", "ridge", "--search", "grid",
      "--trials", "0"), "trials must be between 1 and 1000"),
    (("train", "nosuch", "--target", "y"), "nosuch"),
])
def test_training_refuses(refuse, args: tuple[str, ...], message: str) -> None:  # type: ignore[no-untyped-def]
    assert message in refuse(*args)


def _opset_99(path: Path) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "future",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 99)]), path)
    return path


def test_model_import_refuses_files_that_are_not_loadable(home: Path, refuse) -> None:  # type: ignore[no-untyped-def]
    files = home.parent
    (files / "notes.onnx").write_text("these are not the weights you are looking for\n")
    good = (files / "good.onnx").read_bytes()
    (files / "cut.onnx").write_bytes(good[: len(good) // 2])
    (files / "empty.onnx").write_bytes(b"")
    cases = {
        "notes.onnx": "notes.onnx is not an ONNX model (or is truncated)",
        "cut.onnx": "cut.onnx is not an ONNX model (or is truncated)",
        "empty.onnx": "empty.onnx is empty, not an ONNX model",
        _opset_99(files / "future.onnx").name:
            "future.onnx needs opset 99 of ai.onnx; this onnxruntime",
        "missing.onnx": "no such file",
    }
    for name, message in cases.items():
        assert message in refuse("model", "import", str(files / name), "--name", "ext")


def test_alias_and_export_of_missing_versions_are_refused(home: Path, refuse) -> None:  # type: ignore[no-untyped-def]
    out = home.parent / "never.onnx"
    assert "model 'm' has no version 5" in refuse("model", "alias", "m@5", "production")
    assert "no model 'ghost'" in refuse("model", "alias", "ghost@1", "production")
    assert "model 'm' has no version 5" in refuse("model", "export", "m@5", "--out", str(out))
    assert "model 'm' has no alias 'staging'" in refuse("model", "export", "m@staging",
                                                        "--out", str(out))
    assert "invalid alias '7'" in refuse("model", "alias", "m@1", "7")
    assert "no run 'ffffffff'" in refuse("model", "register", "ffffffff", "--name", "m")
    assert not out.exists()


def test_a_real_process_prints_one_line_and_exits_1(home: Path) -> None:
    result = run_cli(home, "train", "sensor", "--target", "failure", "--algo", "svm", "--json")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().startswith("error: unknown algorithm 'svm'")
    assert len(result.stderr.strip().splitlines()) == 1
