"""The raw-ASGI pieces the hub's routes share: errors as replies, bodies with a byte cap,
byte ranges for resumable downloads.

Kept apart from ``edge_agent.http`` on purpose: the desktop imports only the agent's
protocol, and the hub's needs (Range, NDJSON) are not the agent's.
"""
from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON = b"application/json"
OCTETS = b"application/octet-stream"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class HubHTTPError(Exception):
    """A refusal the client should see: HTTP status plus a one-line reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes
    content_type: bytes = JSON
    extra: Headers = field(default_factory=list)


def json_reply(doc: Any, status: int = 200) -> Reply:
    return Reply(status, orjson.dumps(doc))


def error_reply(exc: HubHTTPError) -> Reply:
    return Reply(exc.status, orjson.dumps({"error": exc.message}))


async def send_reply(send: Send, reply: Reply, *, close: bool = False) -> None:
    headers: Headers = [(b"content-type", reply.content_type),
                        (b"content-length", str(len(reply.body)).encode()), *reply.extra]
    if close:
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


def bearer(scope: Scope) -> str:
    scheme, _, token = (header(scope, b"authorization") or b"").partition(b" ")
    if scheme.lower() != b"bearer" or not token.strip():
        raise HubHTTPError(401, "missing bearer token (the agent's enrolment token)")
    return token.strip().decode("latin-1")


async def read_body(scope: Scope, receive: Receive, limit: int, timeout: float,
                    what: str = "request body") -> bytes:
    """The whole body, or 413 past `limit` bytes, or 408 if it does not arrive in time."""
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HubHTTPError(413, f"{what} of {int(declared)} bytes is over the {limit} byte limit")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            more = True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise HubHTTPError(400, "client disconnected before sending its body")
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise HubHTTPError(413, f"{what} is over the {limit} byte limit")
                chunks.append(chunk)
                more = message.get("more_body", False)
    except TimeoutError:
        raise HubHTTPError(408, f"{what} did not arrive within {timeout:g} s") from None
    return b"".join(chunks)


def json_body(body: bytes, what: str) -> dict[str, Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise HubHTTPError(400, f"{what} is not valid JSON") from None
    if not isinstance(doc, dict):
        raise HubHTTPError(400, f"{what} must be a JSON object")
    return doc


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive
    partial: bool  # answer 206 with Content-Range


def parse_range(value: bytes | None, size: int) -> ByteRange:
    """One `bytes=a-b`, `bytes=a-` or `bytes=-n` range (RFC 9110); none means the whole file.
    A range that starts past the end is 416, as a client resuming a changed file must learn."""
    if value is None:
        return ByteRange(0, size - 1, False)
    match = _RANGE.match(value.decode("latin-1").strip())
    if match is None or match[1] == match[2] == "":
        raise HubHTTPError(416, f"unsupported Range {value.decode('latin-1')!r}: "
                                "one bytes=START-[END] range only")
    if match[1] == "":  # the last n bytes
        n = int(match[2])
        return ByteRange(max(size - n, 0), size - 1, True)
    start = int(match[1])
    end = min(int(match[2]), size - 1) if match[2] else size - 1
    if start >= size or end < start:
        raise HubHTTPError(416, f"range start {start} is outside the {size} byte bundle")
    return ByteRange(start, end, True)
