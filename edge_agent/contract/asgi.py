"""The raw-ASGI kit both Outpost servers speak with: the agent and the desktop's hub.

No framework: a request is the ASGI scope plus a receive callable, a reply is
(status, headers, body). Bodies are read whole, with a byte limit (413) and a
deadline (408), so neither a huge nor a never-ending body can hold a worker.
It lives in the contract package because the hub (in core) shares it: one
implementation of the HTTP framing for every Outpost server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import parse_qsl

import orjson

from edge_agent.contract.errors import AgentError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON = b"application/json"
OCTETS = b"application/octet-stream"


class HTTPError(AgentError):
    """A refusal with an explicit status: for routes whose status depends on the case."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.http_status = status


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


async def send_reply(send: Send, reply: Reply, *, close: bool = False) -> None:
    headers: Headers = [(b"content-type", reply.content_type),
                        (b"content-length", str(len(reply.body)).encode()), *reply.extra]
    if reply.close or close:
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


def json_body(body: bytes, what: str) -> dict[str, Any]:
    """A JSON object from a request body, or BadRequest naming `what`."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest(f"{what} is not valid JSON") from None
    if not isinstance(doc, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return doc


def _declared_length(scope: Scope, limit: int, what: str = "request body") -> None:
    value = header(scope, b"content-length")
    if value is not None and value.isdigit() and int(value) > limit:
        raise BodyTooLarge(f"{what} of {int(value)} bytes is over the {limit} byte limit")


class Deadlines:
    """Cancels body reads that run past their deadline, checked every `tick` seconds.

    One shared timer rather than asyncio.timeout per request: a uvloop timer costs
    several microseconds to arm and disarm, more than the rest of reading a body."""

    def __init__(self, tick: float = 0.25) -> None:
        self.tick = tick
        self._reads: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._armed = False

    def start(self, task: asyncio.Task[Any], timeout: float) -> None:
        self._reads[task] = time.monotonic() + timeout
        loop = task.get_loop()
        if not self._armed or loop is not self._loop:
            self._loop, self._armed = loop, True
            loop.call_later(self.tick, self._check, loop)

    def finish(self, task: asyncio.Task[Any]) -> bool:
        """Forget the task; True if its deadline passed (and it was cancelled for it)."""
        self._reads.pop(task, None)
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._loop:
            return
        now = time.monotonic()
        for task, deadline in list(self._reads.items()):
            if deadline <= now:
                del self._reads[task]
                self._expired.add(task)
                task.cancel()
        self._armed = bool(self._reads)
        if self._armed:
            loop.call_later(self.tick, self._check, loop)


async def read_body(scope: Scope, receive: Receive, limit: int, timeout: float,
                    deadlines: Deadlines, what: str = "request body") -> bytes:
    """The whole request body, or BodyTooLarge / BodyTimeout (BadRequest on a disconnect)."""
    _declared_length(scope, limit, what)
    task = asyncio.current_task()
    assert task is not None
    deadlines.start(task, timeout)
    try:
        message = await receive()
        _check_connected(message, what)
        body = message.get("body", b"")
        if not message.get("more_body", False):
            if len(body) > limit:
                _too_large(limit, what)
            return bytes(body)
        chunks = [body]
        size = len(body)
        while message.get("more_body", False):
            message = await receive()
            _check_connected(message, what)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                _too_large(limit, what)
            chunks.append(chunk)
        return b"".join(chunks)
    except asyncio.CancelledError:
        if deadlines.finish(task):
            task.uncancel()
            raise BodyTimeout(f"{what} did not arrive within {timeout:g}s") from None
        raise
    finally:
        deadlines.finish(task)


def _check_connected(message: Message, what: str) -> None:
    if message.get("type") == "http.disconnect":
        raise BadRequest(f"client disconnected before sending its {what}")


def _too_large(limit: int, what: str = "request body") -> NoReturn:
    raise BodyTooLarge(f"{what} is over the {limit} byte limit")


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
