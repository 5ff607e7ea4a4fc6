"""uvicorn's Server, for the agent and the hub alike, with one change for TLS at shutdown.

uvicorn closes an idle keep-alive connection with `transport.close()`; over TLS that
waits for the peer's close_notify, which an idle client (an agent between polls, a
desktop's pool) never sends, so shutdown would hang until its graceful timeout and
then close the loop under an open transport. Idle connections are aborted instead;
those with a request in flight still finish it.

uvicorn's main loop also wakes every 0.1 s to see whether it should stop (and once a
second to refresh the Date header): an idle agent's main thread woke 10 times a second
for nothing. With no Date header, no notify callback and no request limit (the agent and
the hub use none of them) it sleeps until `should_exit` is set, by a signal or by
another thread (the hub's stop).

Over TLS the loop is given no `ssl=` when the protocol is `http_limits`'s: it does each
handshake itself, so that a socket counts against the connection cap from accept (see
`http_limits.serve_tls`). `config.ssl` stays the context for everything else that reads it.
"""

from __future__ import annotations

import asyncio
import socket

import edge_agent.contract.uvicorn_package  # noqa: F401  # first: uvicorn without its CLI

# isort: split
from uvicorn.config import Config
from uvicorn.server import Server as _UvicornServer

from edge_agent.contract.http_limits import serve_tls

__all__ = ["Config", "Server"]


class Server(_UvicornServer):
    _exit_loop: asyncio.AbstractEventLoop | None = None
    _exit_event: asyncio.Event | None = None

    @property
    def should_exit(self) -> bool:
        return bool(self.__dict__.get("_should_exit", False))

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self.__dict__["_should_exit"] = value
        loop, event = self._exit_loop, self._exit_event
        if value and loop is not None and event is not None:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the loop already closed: nothing left to wake
                pass

    async def main_loop(self) -> None:
        config = self.config
        if (config.date_header or config.callback_notify is not None
                or config.limit_max_requests is not None):
            await super().main_loop()  # these need uvicorn's ticks
            return
        self._exit_loop, self._exit_event = asyncio.get_running_loop(), asyncio.Event()
        while not await self.on_tick(0):  # checks should_exit, set before or since
            await self._exit_event.wait()
            self._exit_event.clear()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        config = self.config
        context = config.ssl
        if context is None or not serve_tls(config.http_protocol_class, context):
            await super().startup(sockets)
            return
        # uvicorn reads config.ssl here only for create_server's ssl= (and for its start
        # line, logged without sockets= alone: both servers pass their socket)
        config.ssl = None
        try:
            await super().startup(sockets)
        finally:
            config.ssl = context

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.config.ssl is not None:
            for connection in list(self.server_state.connections):
                cycle = getattr(connection, "cycle", None)
                transport = getattr(connection, "transport", None)
                if transport is not None and (cycle is None or cycle.response_complete):
                    transport.abort()
        await super().shutdown(sockets)
