"""The model registry: ONNX versions of trained runs or imported files, parity, aliases.

Import names from here. They load on first use: registering needs scikit-learn
and skl2onnx (seconds to import), looking a version up needs neither, and every
CLI start imports this package.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from core.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from core.registry.aliases import (
        AliasEvent,
        alias_at,
        alias_during,
        alias_history,
        set_alias,
    )
    from core.registry.card import model_card
    from core.registry.export import export_model
    from core.registry.imports import import_onnx
    from core.registry.models import ModelVersion, list_models, list_versions, resolve_model
    from core.registry.register import register_model
    from core.registry.signature import TensorSig, onnx_feeds

_HOMES = {
    "AliasEvent": "aliases", "alias_at": "aliases", "alias_during": "aliases",
    "alias_history": "aliases", "set_alias": "aliases", "model_card": "card",
    "export_model": "export", "import_onnx": "imports", "ModelVersion": "models",
    "list_models": "models", "list_versions": "models", "resolve_model": "models",
    "register_model": "register", "TensorSig": "signature", "onnx_feeds": "signature",
}
__all__ = [
    "AliasEvent",
    "ModelVersion",
    "TensorSig",
    "alias_at",
    "alias_during",
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


__getattr__ = lazy_exports(__name__, _HOMES)
