"""A fix for skl2onnx's HistGradientBoosting converters under onnx >= 1.23.

Cause (skl2onnx 1.20, onnx 1.23): ``add_tree_to_attribute_pairs_hist_gradient_boosting``
fills ``nodes_missing_value_tracks_true`` with the Python ``False`` for leaves and a
numpy ``uint8`` for splits. onnx's ``make_attribute`` sees integers and calls
``AttributeProto.ints.extend``, and the protobuf runtime that onnx 1.23 ships with
refuses ``bool`` there: ``TypeError: Field onnx.AttributeProto.ints: Expected an
int, got a boolean`` (protobuf 7.x refuses it, 6.33 — which the dev extra's grpc
packages pin — accepts it). The tree structure and thresholds are otherwise right.

Fix: re-register the two converters with a wrapper that hands skl2onnx's own
converter a container whose ``add_node`` casts that one attribute to ``int``.
Everything else, including the missing-value direction of every split, is
skl2onnx's unchanged output.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from skl2onnx import update_registered_converter
from skl2onnx.common._registration import get_converter
from skl2onnx.common.shape_calculator import (
    calculate_linear_classifier_output_shapes,
    calculate_linear_regressor_output_shapes,
)
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

_BOOL_LIST_ATTRIBUTE = "nodes_missing_value_tracks_true"
_CLASSIFIER = "SklearnHistGradientBoostingClassifier"
_REGRESSOR = "SklearnHistGradientBoostingRegressor"
_installed = False

Converter = Callable[[Any, Any, Any], None]


def _with_int_attribute(convert: Converter) -> Converter:
    def converter(scope: Any, operator: Any, container: Any) -> None:
        add_node = container.add_node

        def add_node_with_ints(op_type: str, inputs: Any, outputs: Any, *args: Any,
                               **attrs: Any) -> Any:
            if _BOOL_LIST_ATTRIBUTE in attrs:
                attrs[_BOOL_LIST_ATTRIBUTE] = [int(v) for v in attrs[_BOOL_LIST_ATTRIBUTE]]
            return add_node(op_type, inputs, outputs, *args, **attrs)

        container.add_node = add_node_with_ints
        try:
            convert(scope, operator, container)
        finally:
            del container.add_node

    return converter


def install_converter_fixes() -> None:
    """Idempotent; call before converting a pipeline that may hold HistGradientBoosting."""
    global _installed
    if _installed:
        return
    classifier = get_converter(_CLASSIFIER)
    regressor = get_converter(_REGRESSOR)
    update_registered_converter(
        HistGradientBoostingClassifier, _CLASSIFIER, calculate_linear_classifier_output_shapes,
        _with_int_attribute(classifier),
        options={"zipmap": [True, False, "columns"], "raw_scores": [True, False],
                 "output_class_labels": [False, True], "nocl": [True, False]})
    update_registered_converter(
        HistGradientBoostingRegressor, _REGRESSOR, calculate_linear_regressor_output_shapes,
        _with_int_attribute(regressor), options={"raw_scores": [True, False]})
    _installed = True
