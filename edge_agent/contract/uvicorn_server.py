"""uvicorn's Server, for the agent and the hub alike, with one change for TLS at shutdown.

uvicorn closes an idle keep-alive connection with `transport.close()`; over TLS that
waits for the peer's close_notify, which an idle client (an agent between polls, a
desktop's pool) never sends, so shutdown would hang until its graceful timeout and
then close the loop under an open transport. Idle connections are aborted instead;
those with a request in flight still finish it.
"""

from __future__ import annotations

import socket

import uvicorn


class Server(uvicorn.Server):
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.config.ssl is not None:
            for connection in list(self.server_state.connections):
                cycle = getattr(connection, "cycle", None)
                transport = getattr(connection, "transport", None)
                if transport is not None and (cycle is None or cycle.response_complete):
                    transport.abort()
        await super().shutdown(sockets)
