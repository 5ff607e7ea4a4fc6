"""Capture policies from the hub: the `capture` map of a verified (signed) poll answer."""

from __future__ import annotations

import logging
from typing import Any

from edge_agent.contract.capture import CapturePolicy
from edge_agent.contract.errors import SchemaError
from edge_agent.telemetry.capture import Capturer

log = logging.getLogger(__name__)


def apply_capture(capturer: Capturer, doc: Any) -> None:
    """Set each model's policy (null: back to the bundle's) that differs from what the agent
    holds; a policy this agent cannot read is refused with one log line and changes nothing.
    Models the map does not name keep theirs (set on the device, or never set)."""
    if doc is None:
        return
    if not isinstance(doc, dict):
        log.error("hub answer: capture must be a JSON object; ignored")
        return
    for model, entry in doc.items():
        try:
            policy = None if entry is None else CapturePolicy.from_dict(entry)
        except SchemaError as exc:
            log.error("hub answer: capture policy of %s refused: %s", model, exc)
            continue
        if capturer.override(str(model)) != policy:
            capturer.set_policy(str(model), policy)
            log.info("capture policy of %s set by the hub: %s", model,
                     "from the bundle" if policy is None else policy.to_dict())
