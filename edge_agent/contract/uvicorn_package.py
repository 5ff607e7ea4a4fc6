"""uvicorn without its command line: imported before any ``uvicorn.*`` module.

uvicorn's package ``__init__`` imports its command line (``uvicorn.main``, built on
click): 2.4 MB of the serving agent's memory (import deltas, same run) for nothing it
runs. This module puts in ``sys.modules`` a ``uvicorn`` package module whose
``__init__`` has not run, so its submodules (config, server, protocols, lifespan) import
without the CLI. The package answers ``Config`` and ``__version__`` from their own
submodules (``uvicorn.lifespan.on`` asks for ``Config``); any other name
(``uvicorn.run``, ``uvicorn.Server``) runs the real ``__init__`` first, so a process
that also uses uvicorn the usual way (the desktop's hub) sees no difference. Where
uvicorn is already imported it does nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

_FROM_SUBMODULES = {"Config": "uvicorn.config", "__version__": "uvicorn._version"}


def _package_without_cli() -> None:
    if "uvicorn" in sys.modules:
        return
    spec = importlib.util.find_spec("uvicorn")
    if spec is None or spec.loader is None:  # not installed: the import after says so
        return
    loader = spec.loader
    package = importlib.util.module_from_spec(spec)

    def attribute(name: str) -> object:
        if name in _FROM_SUBMODULES:
            return getattr(importlib.import_module(_FROM_SUBMODULES[name]), name)
        if name.startswith("__"):  # __all__, __wrapped__…: what a bare module lacks
            raise AttributeError(name)
        del package.__dict__["__getattr__"]
        loader.exec_module(package)  # the real __init__, CLI included
        return getattr(package, name)

    package.__dict__["__getattr__"] = attribute
    sys.modules["uvicorn"] = package


_package_without_cli()
