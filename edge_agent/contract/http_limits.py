"""Connection limits below the ASGI app, for both Outpost servers (the agent and the hub).

uvicorn offers `limit_concurrency` (a 503 once headers have arrived) and a keep-alive
timeout, but with httptools nothing bounds how long request headers take to arrive or
how large they grow, and nothing stops idle sockets from using up the file limit. So
the servers run uvicorn's httptools protocol with three limits added:

- request headers larger than `max_header_bytes` get 431 and the connection closes;
- headers not complete `header_timeout_s` after the connection opened (or after the
  request began, on a kept-alive connection) get 408 and the connection closes; one
  shared timer checks every connection, no timer per request;
- at most `cap()` connections: `max_connections`, and never more than the file limit
  minus `reserved_files` (the store, the outbox, uploads and the log need files too). A
  new connection over the cap closes the connection idle the longest (in its TLS
  handshake, waiting for headers or kept alive between requests), so a new client,
  management included, gets in even when idle sockets fill the cap; only when every
  connection has a request in flight is the newcomer refused (503 over plain HTTP; over
  TLS, where nothing can be said before a handshake, the socket is reset).

Over TLS a connection counts from accept, not from the end of its handshake: a peer that
connects and never sends a ClientHello holds a file all the same. So the loop is given
no `ssl=` (`serve_tls`, called by the shared uvicorn Server) and the protocol does each
handshake itself with `loop.start_tls`, within `header_timeout_s` (the handshake is part
of the time the headers have to arrive in); the clock for the headers starts at accept.
After the handshake the protocol reads from the same SSL transport the loop would have
given it: the per-request path is unchanged.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import edge_agent.contract.uvicorn_package  # noqa: F401  # first: uvicorn without its CLI

# isort: split
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large",
            503: b"Service Unavailable"}
_DRAIN_S = 1.0  # after a refusal, read and drop what the peer still sends, then close


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 1000
    max_header_bytes: int = 64 * 1024
    header_timeout_s: float = 10.0
    reserved_files: int = 64

    def __post_init__(self) -> None:
        # 0 would time out every handshake and request (and spin the header check)
        if not (self.header_timeout_s > 0 and self.max_header_bytes > 0
                and self.max_connections > 0):
            raise ValueError("connection limits must be positive: "
                             f"{self.max_connections=}, {self.max_header_bytes=}, "
                             f"{self.header_timeout_s=}")

    def cap(self) -> int:
        """Connections allowed at once: below the process's file limit, with room left."""
        if sys.platform == "win32":
            return self.max_connections
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return self.max_connections
        return max(1, min(self.max_connections, soft - self.reserved_files))


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request already refused."""


def _refusal(status: int, message: str) -> bytes:
    body = b'{"error": "' + message.encode() + b'"}'
    return (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n" % (status, _REASONS[status], len(body))) + body


class Arrivals:
    """Requests whose headers the protocol has parsed, and those the app has started.

    uvicorn starts the app for a request as a task, so requests parsed in one event-loop
    turn wait for the tasks before them. ``waiting()`` is true while some parsed request
    has not reached the app yet: the adaptive batcher's cue that a request has company in
    this turn. Both counts only grow, so a request that never reaches the app (its
    connection dropped) leaves the answer wrong by one at worst: a batch that waits one
    turn, never a wrong result.
    """

    __slots__ = ("parsed", "started")

    def __init__(self) -> None:
        self.parsed = 0
        self.started = 0

    def waiting(self) -> bool:
        return self.parsed > self.started


def limited_protocol(limits: ConnectionLimits, arrivals: Arrivals | None = None
                     ) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with `limits`: pass it as `uvicorn.Config(http=...)`;
    it counts parsed requests in `arrivals`."""
    cap = limits.cap()

    class LimitedHttpToolsProtocol(_Limited):
        pass

    LimitedHttpToolsProtocol.limits = limits
    LimitedHttpToolsProtocol.cap = cap
    LimitedHttpToolsProtocol.arrivals = arrivals
    return LimitedHttpToolsProtocol


def serve_tls(protocol: type[asyncio.Protocol], context: ssl.SSLContext) -> bool:
    """Have `protocol` (from `limited_protocol`) do each TLS handshake with `context`
    itself, counted from accept; the server's loop must then be given no `ssl=`. False
    (nothing changed) for any other protocol: the loop has to do TLS for it."""
    if not issubclass(protocol, _Limited):
        return False
    protocol.tls = context
    return True


def _run_from_now(coro: Coroutine[Any, Any, None]) -> None:
    """Run `coro` up to its first await at once (a Task would start it at the loop's next
    turn), then on each time what it awaits is done.

    The loop starts reading an accepted socket as connection_made returns, even if it was
    paused there (CPython gh-103607; uvloop alike): start_tls's SSL layer has to be the
    socket's protocol by then, or the ClientHello goes to the HTTP parser. start_tls puts
    it in before its first await; bytes read before the layer's own connection_made wait
    in its incoming buffer."""
    try:
        awaited = coro.send(None)
    except StopIteration:
        return
    awaited.add_done_callback(lambda _: _run_from_now(coro))


class _Handshake(asyncio.Protocol):
    """start_tls's protocol until start_tls returns. asyncio's loop passes on the data that
    came with the end of the handshake (and an EOF or the loss) before the code awaiting
    start_tls resumes; uvloop's waits for it. Kept here and handed over, so both work."""

    def __init__(self) -> None:
        self.owner: _Limited | None = None
        self.early: list[bytes] = []
        self.eof = False
        self.lost: tuple[Exception | None] | None = None

    def data_received(self, data: bytes) -> None:
        self.early.append(data)

    def eof_received(self) -> None:
        self.eof = True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.owner is not None:  # scheduled before the hand-over, run after it
            self.owner.connection_lost(exc)
        else:
            self.lost = (exc,)

    def hand_over(self, owner: _Limited) -> None:
        self.owner = owner
        if self.early:
            owner.data_received(b"".join(self.early))
        if self.eof:
            owner.eof_received()
        if self.lost is not None:
            owner.connection_lost(self.lost[0])


class _Limited(HttpToolsProtocol):
    limits: ConnectionLimits = ConnectionLimits()
    cap: int = 1000
    arrivals: Arrivals | None = None
    tls: ssl.SSLContext | None = None  # set by serve_tls: the handshakes are done here
    _timer_armed: bool = False  # one header-timeout checker per server (per subclass)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._handshake: asyncio.Transport | None = None  # the raw socket, in TLS handshake
        self._header_since: float | None = None  # waiting for headers since
        self._header_bytes = 0  # bytes read while headers were incomplete
        self._field_bytes = 0  # URL and header fields of the current request
        self._idle_since = 0.0
        self._refused = False

    # --- connections ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """At accept (over TLS too: see serve_tls)."""
        if len(self.connections) >= self.cap and not self._make_room():
            self._refused = True
            self.transport = transport
            if self.tls is not None:  # no TLS yet to answer in: spend nothing on it
                transport.abort()
                return
            transport.write(_refusal(503, "too many connections"))
            transport.close()
            return
        if self.tls is None:
            super().connection_made(transport)
        else:
            self.connections.add(self)  # counted (and evictable) from accept
            self._handshake = transport
            _run_from_now(self._start_tls(transport, self.tls))
        self._header_since = self._idle_since = time.monotonic()
        cls = type(self)
        if not cls._timer_armed:
            cls._timer_armed = True
            self.loop.call_later(self._tick(), self._check_headers)

    async def _start_tls(self, raw: asyncio.Transport, context: ssl.SSLContext) -> None:
        gate = _Handshake()
        try:
            tls = await self.loop.start_tls(
                raw, gate, context, server_side=True,
                ssl_handshake_timeout=self.limits.header_timeout_s)
        except Exception:  # failed, timed out, or evicted (aborted): the peer's loss alone
            tls = None     # (the loop logs it at debug)
        except BaseException:  # cancelled
            self._drop_handshake(raw)
            raise
        # tls is None also when the connection was lost as the handshake ended (asyncio's
        # start_tls returns None then); _handshake is None once evicted or shut down
        if tls is None or self._handshake is None:
            self._drop_handshake(raw)
            return
        self._handshake = None
        super().connection_made(tls)
        tls.set_protocol(self)
        gate.hand_over(self)

    def _drop_handshake(self, raw: asyncio.Transport) -> None:
        self._handshake = None
        self.connections.discard(self)
        raw.abort()  # start_tls may have closed it: abort, so no close waits on a silent peer

    def connection_lost(self, exc: Exception | None) -> None:
        if self.flow is None:  # refused, or aborted in its handshake: uvicorn never knew it
            self._handshake = None
            self.connections.discard(self)
            return
        super().connection_lost(exc)

    def shutdown(self) -> None:
        if self._handshake is not None:
            self._abort()
        else:
            super().shutdown()

    def _make_room(self) -> bool:
        idle = [c for c in self.connections if isinstance(c, _Limited) and c._is_idle()]
        if not idle:
            return False
        min(idle, key=lambda c: c._idle_since)._abort()
        return True

    def _abort(self) -> None:
        """Close now and free the slot. Abort, not close: a TLS transport's close waits
        (up to 30 s) for an idle peer's close_notify, holding the file the cap is there
        to free."""
        self.connections.discard(self)
        raw, self._handshake = self._handshake, None
        (raw or self.transport).abort()

    def _is_idle(self) -> bool:
        return not self._refused and (self.cycle is None or self.cycle.response_complete)

    # --- header size and time ------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # draining what a refused peer still sends
        super().data_received(data)
        if self._header_since is not None and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > self.limits.max_header_bytes:
                self._refuse(431, f"request headers over {self.limits.max_header_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_since is None:
            self._header_since = time.monotonic()
        self._header_bytes = self._field_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._field_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._field_bytes += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._header_since = None
        if self._field_bytes > self.limits.max_header_bytes:  # all arrived in one read
            self._refuse(431, f"request headers over {self.limits.max_header_bytes} bytes")
            raise _Refused  # stops the parser; uvicorn's 400 for it is suppressed below
        cycle = self.cycle
        super().on_headers_complete()
        if self.arrivals is not None and self.cycle is not cycle:  # a request for the app
            self.arrivals.parsed += 1

    def send_400_response(self, msg: str) -> None:
        if not self._refused:
            super().send_400_response(msg)

    def on_response_complete(self) -> None:
        self._idle_since = time.monotonic()
        super().on_response_complete()

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status`, stop parsing, drain for a moment, close (no reset that could
        destroy the answer before the peer reads it)."""
        self._refused = True
        self._header_since = None
        self.connections.discard(self)
        transport = self.transport
        transport.write(_refusal(status, message))
        if transport.can_write_eof():
            transport.write_eof()
        self.loop.call_later(_DRAIN_S, transport.abort)  # answered and drained: free the file

    def _tick(self) -> float:
        return min(1.0, self.limits.header_timeout_s / 4)

    def _check_headers(self) -> None:
        cls = type(self)
        deadline = time.monotonic() - self.limits.header_timeout_s
        live = [c for c in self.connections if isinstance(c, _Limited)]
        for conn in live:
            since = conn._header_since
            # a handshake not done in time is ended by the loop (ssl_handshake_timeout)
            if (since is not None and since < deadline and conn._handshake is None
                    and not conn.transport.is_closing()):
                conn._refuse(408, "request headers did not arrive in time")
        if self.connections:
            self.loop.call_later(self._tick(), self._check_headers)
        else:
            cls._timer_armed = False
