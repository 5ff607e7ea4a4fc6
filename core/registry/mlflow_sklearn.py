"""MLflow's sklearn flavor → an ONNX model version, checked for parity like a trained run.

A pickled flavor (cloudpickle, pickle) runs whatever code the file names when loaded,
so nothing is unpickled unless the caller says it trusts the folder. A skops file
(MLflow 3's default) is loaded without that when it holds only types skops trusts
(scikit-learn's and numpy's); other types need the same trust. The model must take a table
(a column signature: one ONNX input per column, as Outpost's own models do) or one
2-D numeric tensor. Parity is checked on the folder's input example or on a dataset
the user names; a version that fails is stored flagged, as ``model register`` does.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import is_classifier
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from core.catalog import Catalog
from core.errors import InvalidInput
from core.registry.mlflow_io import INPUT_EXAMPLE, MLflowModel, SignatureField
from core.registry.models import ModelVersion
from core.registry.register import export_with_parity, store_version
from core.training.features import Feature, prepare_features
from core.training.pipeline import single_threaded

_PICKLE_FORMATS = ("cloudpickle", "pickle")
_NUMERIC_COLUMNS = {"double", "float", "long", "integer", "boolean"}


def _untrusted(path: Path) -> list[str]:
    """Types in a skops file that skops would not construct without being told to."""
    from skops.io import get_untrusted_types

    try:
        return list(get_untrusted_types(file=path))
    except Exception as exc:  # a damaged or hostile archive: say so, load nothing
        raise InvalidInput(f"{path.name} is not a readable skops file: {type(exc).__name__}: "
                           f"{' '.join(str(exc).split())[:200]}") from None


def _load_estimator(model: MLflowModel, trust_pickle: bool) -> Any:
    """The flavor's model; a pickle only when trusted, a skops file when its types are safe."""
    flavor = model.flavors["sklearn"]
    path = model.artifact(flavor.get("pickled_model"), "serialized scikit-learn model")
    fmt = flavor.get("serialization_format", "cloudpickle")
    if fmt == "skops":
        untrusted = _untrusted(path)
        if untrusted and not trust_pickle:
            raise InvalidInput(f"{model.folder.name}/{path.name} needs types skops does not "
                               f"trust ({', '.join(untrusted[:3])}"
                               f"{', …' if len(untrusted) > 3 else ''}): pass --trust-pickle "
                               "only if you trust it")
        from skops.io import load as skops_load

        def loader() -> Any:
            return skops_load(path, trusted=untrusted or None)
    elif fmt in _PICKLE_FORMATS:
        if not trust_pickle:
            raise InvalidInput(f"{model.folder.name} holds a pickled scikit-learn model; "
                               "unpickling runs code from the file: pass --trust-pickle only "
                               "if you trust it")

        def loader() -> Any:
            with path.open("rb") as f:
                return pickle.load(f)  # noqa: S301 - vouched for with --trust-pickle
    else:
        raise InvalidInput(f"{model.folder.name}: serialization format {fmt!r} is not "
                           "supported (skops, cloudpickle or pickle)")
    try:
        return loader()
    except Exception as exc:  # loading can raise anything the file's code raises
        raise InvalidInput(f"cannot load {path.name}: {type(exc).__name__}: "
                           f"{' '.join(str(exc).split())[:200]}") from None


def _example_frame(model: MLflowModel, columns: list[str]) -> pd.DataFrame:
    info = model.spec.get("saved_input_example_info") or {}
    path = model.artifact(info.get("artifact_path", INPUT_EXAMPLE), "input example")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidInput(f"{model.folder.name}/{path.name} is not JSON") from None
    if isinstance(data, dict) and "inputs" in data:
        data = data["inputs"]
    if isinstance(data, dict) and "columns" in data and "data" in data:
        return pd.DataFrame(data["data"], columns=data["columns"])
    if isinstance(data, dict):
        return pd.DataFrame(data)
    return pd.DataFrame(np.asarray(data, dtype=np.float64), columns=columns)


def _parity_frame(catalog: Catalog, model: MLflowModel, columns: list[str],
                  dataset: str | None) -> pd.DataFrame:
    if dataset is not None:
        from core.datasets import read_frame, resolve_version

        frame = read_frame(catalog, resolve_version(catalog, dataset))
    elif model.spec.get("saved_input_example_info") or (model.folder / INPUT_EXAMPLE).is_file():
        frame = _example_frame(model, columns)
    else:
        raise InvalidInput(f"{model.folder.name} has no input example to check parity on: "
                           "name a dataset with --dataset")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidInput(f"the parity data lacks the model's input columns {missing}")
    if frame.empty:
        raise InvalidInput("the parity data has no rows")
    return frame[columns]


def _features(fields: list[SignatureField] | None) -> list[Feature]:
    """One feature per column; a single [-1, k] tensor becomes k columns NAME_0 … NAME_k-1."""
    if not fields:
        raise InvalidInput("the MLmodel has no input signature; Outpost needs one to convert "
                           "a scikit-learn model")
    if len(fields) == 1 and fields[0].kind == "tensor":
        shape = fields[0].shape or ()
        if len(shape) != 2 or shape[1] < 1 or fields[0].dtype not in ("float32", "float64"):
            raise InvalidInput("a scikit-learn model with a tensor signature must take one 2-D "
                               f"float tensor, not {fields[0].dtype} {list(shape)}")
        return [Feature(f"{fields[0].name or 'input'}_{i}", "numeric") for i in range(shape[1])]
    if any(f.kind == "tensor" or f.name is None for f in fields):
        raise InvalidInput("a scikit-learn model must have a column signature or one 2-D "
                           "tensor input")
    return [Feature(str(f.name), "numeric" if f.kind in _NUMERIC_COLUMNS else "string")
            for f in fields]


def _as_pipeline(estimator: Any, features: list[Feature], X: pd.DataFrame) -> Pipeline:
    """A pipeline that takes one input per column: a bare estimator gets a passthrough in front."""
    if isinstance(estimator, Pipeline) and isinstance(estimator.steps[0][1], ColumnTransformer):
        return estimator
    if any(f.kind != "numeric" for f in features):
        raise InvalidInput("a scikit-learn model with string columns must be a Pipeline that "
                           "starts with a ColumnTransformer")
    front = ColumnTransformer([("columns", "passthrough", [f.name for f in features])],
                              verbose_feature_names_out=False)
    if hasattr(estimator, "feature_names_in_"):  # fitted on a frame: hand it one
        front.set_output(transform="pandas")
    return Pipeline([("columns", front.fit(X)), ("model", estimator)])


def import_sklearn_flavor(catalog: Catalog, model: MLflowModel, name: str,
                          source: dict[str, Any], *, trust_pickle: bool,
                          dataset: str | None) -> ModelVersion:
    estimator = _load_estimator(model, trust_pickle)
    if not hasattr(estimator, "predict"):
        raise InvalidInput(f"{model.folder.name}: the pickled object is a "
                           f"{type(estimator).__name__}, not a scikit-learn model")
    features = _features(model.inputs)
    columns = [f.name for f in features]
    X = prepare_features(_parity_frame(catalog, model, columns, dataset), features)
    pipeline = _as_pipeline(estimator, features, X)
    task = "classification" if is_classifier(estimator) else "regression"
    try:
        with single_threaded():
            exported = export_with_parity(pipeline, features, task, X)
    except (ValueError, TypeError, AttributeError) as exc:  # the model's own checks on X
        raise InvalidInput(f"the {type(estimator).__name__} cannot predict on the parity data: "
                           f"{' '.join(str(exc).split())[:200]}") from None
    labels = [v.item() if hasattr(v, "item") else v for v in estimator.classes_] \
        if task == "classification" else None
    return store_version(catalog, name, exported.data, run=None,
                         source={**source, "estimator": type(estimator).__name__},
                         task=task, labels=labels, parity=exported.parity,
                         flagged=not exported.parity["passed"], model=exported.model)
