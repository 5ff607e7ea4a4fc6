"""ONNX models with tensor inputs, built here without torch and without downloads."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=OPSET, producer_name="outpost-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def vector_model(path: Path, seed: int = 0) -> Path:
    """``x: float[N, 8]`` → ``score: float[N]`` (a weighted sum) and ``scores: float[N, 2]``."""
    rng = np.random.default_rng(seed)
    weights = numpy_helper.from_array(rng.normal(size=(8, 2)).astype(np.float32), "w")
    bias = numpy_helper.from_array(np.array([0.5, -0.5], np.float32), "b")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["xw"]),
             helper.make_node("Add", ["xw", "b"], ["scores"]),
             helper.make_node("ReduceSum", ["scores", "axes"], ["score"], keepdims=0)]
    graph = helper.make_graph(
        nodes, "vector",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 2])],
        [weights, bias, axes])
    return _save(graph, path)


def image_model(path: Path, seed: int = 0) -> Path:
    """A small CNN: ``image: float[N, 3, 224, 224]`` → ``probs: float[N, 3]``, ``logits``."""
    rng = np.random.default_rng(seed)
    conv = numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32) / 9, "k")
    dense = numpy_helper.from_array(rng.normal(size=(4, 3)).astype(np.float32), "d")
    nodes = [helper.make_node("Conv", ["image", "k"], ["c"], strides=[4, 4]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("MatMul", ["f", "d"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probs"], axis=1)]
    graph = helper.make_graph(
        nodes, "cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
        [conv, dense])
    return _save(graph, path)


def sklearn_vector_model(path: Path) -> Path:
    """A scikit-learn regression converted by skl2onnx with one ``float[N, 8]`` input."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 8)).astype(np.float32)
    y = X @ np.arange(8, dtype=np.float32) + rng.normal(size=200).astype(np.float32)
    onx = to_onnx(Ridge().fit(X, y), initial_types=[("features", FloatTensorType([None, 8]))],
                  target_opset=17)
    path.write_bytes(onx.SerializeToString())
    return path
