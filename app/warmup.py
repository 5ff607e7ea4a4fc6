"""Load the heavy libraries in the background once the window is up.

Training needs scikit-learn, registering skl2onnx, deploying onnxruntime: seconds of
imports the window does not wait for (see app/fleet_calls.py). Importing them while
the user looks at the first view means the first Train or Deploy starts at once.
"""
from __future__ import annotations

import importlib

# The modules behind Train, Register, Deploy and Monitoring, in the order a user meets them.
MODULES = (
    "core.training.trainer",
    "core.training.searcher",
    "core.training.reproduce",
    "core.registry.register",
    "core.registry.card",
    "core.bundles",
    "core.fleet.dispatch",
    "core.fleet.local",
    "core.telemetry.pull",
    "core.telemetry.ingest",
    "core.drift",
    "core.feature_distribution",
)


def warm_up() -> int:
    """Import every module above; returns how many. Safe to run in a worker thread."""
    for name in MODULES:
        importlib.import_module(name)
    # A run records package versions; the first lookup scans site-packages (cached after).
    from core.training.runs import package_versions

    package_versions()
    return len(MODULES)
