"""Package attributes that import their module on first use.

``core.training`` and ``core.registry`` are imported by every CLI start, while
what they export needs scikit-learn and skl2onnx (seconds to import).
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` finding ``name`` in ``package.<homes[name]>``."""

    def __getattr__(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f"{package}.{homes[name]}"), name)
        vars(sys.modules[package])[name] = value  # later lookups skip this function
        return value

    return __getattr__
