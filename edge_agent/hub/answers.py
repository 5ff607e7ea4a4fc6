"""Checking a poll answer before anything in it is obeyed: signed by a desktop key this
agent trusts, addressed to this agent, and answering this poll's nonce (no replay).

Key rotations in the answer are records signed by the old and the new desktop key, so
they verify on their own: when the desktop has rotated its key, they are applied first
and the answer is then checked against the new key.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

import orjson

from edge_agent.contract.errors import AgentError
from edge_agent.contract.hub_protocol import answer_message
from edge_agent.contract.signing import verify_signature
from edge_agent.hub.transport import Answer, HubRefused

log = logging.getLogger(__name__)


class HubAnswerRefused(HubRefused):
    """The poll answer is unsigned, signed by an unknown key, or not for this poll."""

    def __init__(self, message: str) -> None:
        super().__init__(0, f"hub answer refused, nothing done: {message}")


def _signed_by_trusted(answer: Answer, store: Any) -> bool:
    if answer.signature is None:
        raise HubAnswerRefused("it is not signed (a hub without the desktop's key?)")
    try:
        signature = base64.b64decode(answer.signature, validate=True)
    except (binascii.Error, ValueError):
        raise HubAnswerRefused("its signature is not base64") from None
    message = answer_message(answer.body)
    return any(verify_signature(key, signature, message) for key in store.keys.trusted())


def _apply_rotations(records: list[Any], store: Any) -> None:
    for text in records:
        try:
            store.rotate_key(base64.b64decode(str(text), validate=True))
        except (AgentError, binascii.Error, ValueError) as exc:
            log.error("hub sent a key rotation this agent refuses: %s", exc)
            return
        log.info("applied key rotation from the hub (now rotation %d)", store.keys.rotation)


def verify_answer(answer: Answer, agent: str, nonce: str, store: Any) -> dict[str, Any]:
    """The answer's document once it is proven; HubAnswerRefused (one line) otherwise."""
    try:
        doc = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        raise HubAnswerRefused("it is not JSON") from None
    if not isinstance(doc, dict):
        raise HubAnswerRefused("it is not a JSON object")
    if not _signed_by_trusted(answer, store):
        # Rotation records verify on their own (old and new key sign them).
        _apply_rotations(list(doc.get("rotations") or []), store)
        if not _signed_by_trusted(answer, store):
            raise HubAnswerRefused("it is signed by a key this agent does not trust")
    if doc.get("agent") != agent:
        raise HubAnswerRefused(f"it is addressed to agent {doc.get('agent')!r}, not {agent!r}")
    if doc.get("nonce") != nonce:
        raise HubAnswerRefused("it answers another poll (a replayed answer?)")
    return doc
