"""The few raw-ASGI primitives the agent's routes share: requests, replies, bodies.

No framework: a request is the ASGI scope plus a receive callable, a reply is
(status, headers, body). Bodies are read whole, with a byte limit (413) and a
deadline (408), so neither a huge nor a never-ending body can hold a worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import parse_qsl

import orjson

from edge_agent.errors import AgentError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON = b"application/json"
OCTETS = b"application/octet-stream"


class BodyTooLarge(AgentError):
    http_status = 413


class BodyTimeout(AgentError):
    http_status = 408


class BadRequest(AgentError):
    http_status = 400


class MethodNotAllowed(AgentError):
    http_status = 405


class NotFound(AgentError):
    http_status = 404


class Unauthorized(AgentError):
    http_status = 401


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes
    content_type: bytes = JSON
    extra: Headers = field(default_factory=list)
    close: bool = False  # drop the connection after replying (unread body left behind)


def json_reply(doc: Any, status: int = 200) -> Reply:
    return Reply(status, orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY))


def error_reply(exc: AgentError) -> Reply:
    close = isinstance(exc, BodyTooLarge | BodyTimeout)
    return Reply(exc.http_status, orjson.dumps({"error": exc.message}), close=close)


async def send_reply(send: Send, reply: Reply) -> None:
    headers: Headers = [(b"content-type", reply.content_type),
                        (b"content-length", str(len(reply.body)).encode()), *reply.extra]
    if reply.close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def query(scope: Scope) -> dict[str, str]:
    raw: bytes = scope.get("query_string", b"")
    return dict(parse_qsl(raw.decode("latin-1"))) if raw else {}


def _declared_length(scope: Scope, limit: int) -> None:
    value = header(scope, b"content-length")
    if value is not None and value.isdigit() and int(value) > limit:
        raise BodyTooLarge(f"request body of {int(value)} bytes is over the {limit} byte limit")


async def read_body(scope: Scope, receive: Receive, limit: int, timeout: float) -> bytes:
    """The whole request body, or BodyTooLarge / BodyTimeout."""
    _declared_length(scope, limit)
    try:
        async with asyncio.timeout(timeout):
            message = await receive()
            body = message.get("body", b"")
            if not message.get("more_body", False):
                if len(body) > limit:
                    _too_large(limit)
                return bytes(body)
            chunks = [body]
            size = len(body)
            while message.get("more_body", False):
                message = await receive()
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    _too_large(limit)
                chunks.append(chunk)
            return b"".join(chunks)
    except TimeoutError:
        raise BodyTimeout(f"request body did not arrive within {timeout:g}s") from None


def _too_large(limit: int) -> NoReturn:
    raise BodyTooLarge(f"request body is over the {limit} byte limit")


async def stream_body(scope: Scope, receive: Receive, write: Callable[[bytes], Any], limit: int,
                      idle_timeout: float) -> int:
    """Pass the body to write() chunk by chunk; a pause over idle_timeout is BodyTimeout."""
    _declared_length(scope, limit)
    size, more = 0, True
    while more:
        try:
            message = await asyncio.wait_for(receive(), idle_timeout)
        except TimeoutError:
            raise BodyTimeout(f"upload stalled for {idle_timeout:g}s") from None
        if message["type"] == "http.disconnect":
            raise BadRequest("client disconnected during the upload")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            _too_large(limit)
        write(chunk)
        more = message.get("more_body", False)
    return size
