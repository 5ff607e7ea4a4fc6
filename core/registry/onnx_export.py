"""Pipeline → ONNX with one input per raw column, named as the columns."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import onnx
from skl2onnx import to_onnx
from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType
from sklearn.pipeline import Pipeline

from core.errors import InvalidInput
from core.registry.converters import install_converter_fixes
from core.training.features import Feature

Precision = Literal["float32", "float64"]
# Pinned so that a device's onnxruntime (>= 1.14) can load every exported model.
TARGET_OPSET = {"": 18, "ai.onnx.ml": 3}
CLASSIFIER_OUTPUTS = ("label", "probabilities")
REGRESSOR_OUTPUTS = ("variable",)

def _rename(model: onnx.ModelProto, values: Sequence[onnx.ValueInfoProto],
            names: Sequence[str]) -> None:
    for value, wanted in zip(values, names, strict=True):
        old = value.name
        if old == wanted:
            continue
        for node in model.graph.node:
            node.output[:] = [wanted if n == old else n for n in node.output]
            node.input[:] = [wanted if n == old else n for n in node.input]
        value.name = wanted


def _fix_names(model: onnx.ModelProto, features: Sequence[Feature], outputs: Sequence[str]) -> None:
    """Inputs named exactly as the raw columns, outputs with the fixed names the agent expects.

    skl2onnx rewrites names that are not identifiers ("mean radius" → "mean_radius");
    the graph inputs keep the order of the initial types, so position maps them back.
    """
    initializers = {init.name for init in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in initializers]
    taken = {n for node in model.graph.node for n in (*node.input, *node.output)} | initializers
    wanted = [f.name for f in features]
    clashes = (taken - {v.name for v in inputs}) & set(wanted)
    if clashes:
        raise InvalidInput(f"column name {sorted(clashes)[0]!r} clashes with a name inside the "
                           "exported graph; rename the column")
    _rename(model, inputs, wanted)
    _rename(model, model.graph.output, outputs)


def export_pipeline(pipeline: Pipeline, features: Sequence[Feature], task: str,
                    precision: Precision = "float32") -> onnx.ModelProto:
    install_converter_fixes()
    numeric = FloatTensorType if precision == "float32" else DoubleTensorType
    initial_types = [(f.name, numeric([None, 1]) if f.kind == "numeric"
                      else StringTensorType([None, 1])) for f in features]
    estimator = pipeline.steps[-1][1]
    options = {id(estimator): {"zipmap": False}} if task == "classification" else None
    try:
        model = to_onnx(pipeline, initial_types=initial_types, options=options,
                        target_opset=TARGET_OPSET)
    except (RuntimeError, ValueError, TypeError, NotImplementedError) as exc:
        first = str(exc).splitlines()[0][:300]
        raise InvalidInput(f"skl2onnx cannot convert this {type(estimator).__name__} "
                           f"pipeline at {precision}: {first}") from exc
    _fix_names(model, features,
               CLASSIFIER_OUTPUTS if task == "classification" else REGRESSOR_OUTPUTS)
    model.doc_string = f"Outpost {type(estimator).__name__} pipeline ({precision} inputs)"
    return model
