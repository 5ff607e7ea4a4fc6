"""The agent's status document (`GET /v1/status`, and the body of each hub poll): the
parts the desktop reads, typed. Values come from a device, so readers treat every key
as possibly missing."""
from __future__ import annotations

from typing import Any, Literal, TypedDict

# What serving looks like for one model: its active version loads (ready), a fallback
# serves because the active one failed verification (degraded), none was ever activated
# (inactive), or the active one and every fallback fail (unavailable).
ServingState = Literal["ready", "degraded", "inactive", "unavailable"]
InstallStatus = Literal["active", "installed"]  # an upload's outcome: switched to, or not
RUNTIME_KEYS = ("version", "python", "onnxruntime", "opset_max", "uptime_s", "disk_free_bytes")


class Runtime(TypedDict, total=False):
    """What an agent runs on (None: it did not say)."""

    version: str | None
    python: str | None
    onnxruntime: str | None
    opset_max: dict[str, int] | None  # domain -> highest opset its onnxruntime loads
    uptime_s: float | None
    disk_free_bytes: int | None


class ModelReport(TypedDict, total=False):
    """One model the agent serves, as `models` in its status lists it."""

    name: str
    active: int | None
    versions: list[int]
    highest_seen: int
    state: ServingState
    degraded: str | None
    capture: dict[str, Any] | None  # the sample-capture policy in force (CapturePolicy)
    capture_from: Literal["agent", "bundle"] | None  # set on the agent, or the bundle's
