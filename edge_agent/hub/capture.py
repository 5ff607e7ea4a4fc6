"""Capture policies from the hub: the `capture` map of a verified (signed) poll answer."""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from edge_agent.contract.capture import CapturePolicy
from edge_agent.contract.errors import ModelNotFound, SchemaError
from edge_agent.telemetry.capture import Capturer

log = logging.getLogger(__name__)


def apply_capture(capturer: Capturer, doc: Any, served: Collection[str]) -> None:
    """Set each model's policy (null: back to the bundle's) that differs from what the agent
    holds; a policy this agent cannot read is refused with one log line and changes nothing.
    A policy for a model the agent does not serve (`served`: the models installed) is not
    stored: it is kept in `capturer.refused`, which the status document of every poll
    carries back to the desktop, and taken on the first poll after the model arrives.
    Models the map does not name keep theirs (set on the device, or never set)."""
    if doc is None:
        capturer.refused = {}
        return
    if not isinstance(doc, dict):
        log.error("hub answer: capture must be a JSON object; ignored")
        return
    refused: dict[str, str] = {}
    for model, entry in doc.items():
        try:
            policy = None if entry is None else CapturePolicy.from_dict(entry)
        except SchemaError as exc:
            log.error("hub answer: capture policy of %s refused: %s", model, exc)
            continue
        if capturer.override(str(model)) == policy:
            continue
        try:
            capturer.set_policy(str(model), policy, served)
        except ModelNotFound as exc:
            if policy is not None:  # a clear for a model not here has nothing to undo
                refused[str(model)] = str(exc)
                if capturer.refused.get(str(model)) != str(exc):
                    log.error("hub answer: %s", exc)
            continue
        log.info("capture policy of %s set by the hub: %s", model,
                 "from the bundle" if policy is None else policy.to_dict())
    capturer.refused = refused
