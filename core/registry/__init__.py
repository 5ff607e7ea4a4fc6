"""The model registry: ONNX versions of trained runs or imported files, parity, aliases.

Import names from here; the modules behind are split by idea.
"""
from core.registry.aliases import AliasEvent, alias_at, alias_history, set_alias
from core.registry.card import model_card
from core.registry.export import export_model
from core.registry.imports import import_onnx
from core.registry.models import ModelVersion, list_models, list_versions, resolve_model
from core.registry.onnx_export import TensorSig, onnx_feeds
from core.registry.register import register_model

__all__ = [
    "AliasEvent",
    "ModelVersion",
    "TensorSig",
    "alias_at",
    "alias_history",
    "export_model",
    "import_onnx",
    "list_models",
    "list_versions",
    "model_card",
    "onnx_feeds",
    "register_model",
    "resolve_model",
    "set_alias",
]
