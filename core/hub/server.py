"""Running the hub: uvicorn on a thread of the process that owns the catalog.

DuckDB lets one process write the catalog, so the hub cannot be a process of its own
beside the GUI: `start_hub` runs it inside whichever process opened the catalog (the
GUI's Fleet view toggle, or `outpost hub serve`) and returns a handle to stop it.
The socket is bound first, so "port in use" is one clear error before anything starts.
"""
from __future__ import annotations

import errno
import logging
import socket
import sys
import threading
import time
from dataclasses import dataclass, field

import uvicorn

from core.catalog import Catalog
from core.errors import OutpostError
from core.hub import DEFAULT_PORT
from core.hub.app import HubApp, HubOptions
from core.hub.tls import hub_certificate
from edge_agent.contract.http_limits import ConnectionLimits, limited_protocol
from edge_agent.contract.tls import server_context
from edge_agent.contract.uvicorn_server import Server

log = logging.getLogger(__name__)


class HubStartFailed(OutpostError):
    """The hub could not listen or did not start."""


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        why = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise HubStartFailed(f"hub cannot listen on {host}:{port}: {why}") from None
    sock.listen(1024)
    return sock


@dataclass
class HubHandle:
    """A running hub. `stop()` drains requests, commits what is queued, and returns."""

    host: str
    port: int
    app: HubApp
    _server: uvicorn.Server
    _thread: threading.Thread
    tls_spki: str | None = None  # None: plain HTTP (--insecure-http)
    _stopped: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'http' if self.tls_spki is None else 'https'}://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stopped.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the hub stops (True) or `timeout` passes (False)."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._server.should_exit = True
        self._thread.join(timeout)
        self.app.close()


def start_hub(catalog: Catalog, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
              options: HubOptions | None = None, *, ready_timeout: float = 15.0,
              connections: ConnectionLimits | None = None,
              insecure_http: bool = False) -> HubHandle:
    """Serve the hub on host:port (0 = a free port) from a background thread, with the
    same connection limits as the agent (header size and time, a connection cap), over
    TLS 1.3 with the hub's certificate (whose key enrolment files pin) unless
    `insecure_http`."""
    cert = None if insecure_http else hub_certificate(catalog.settings)
    context = None if cert is None else server_context(cert)
    sock = _listen(host, port)
    if insecure_http:
        log.warning("hub --insecure-http: plain HTTP on %s:%d; only behind a TLS-terminating "
                    "proxy", host, port)
    app = HubApp(catalog, options)
    config = uvicorn.Config(
        app, loop="uvloop" if sys.platform != "win32" else "asyncio",
        http=limited_protocol(connections or ConnectionLimits()),
        lifespan="on", access_log=False, log_level="warning", timeout_graceful_shutdown=5,
        timeout_keep_alive=30, proxy_headers=False, server_header=False, date_header=False,
        ssl_context_factory=None if context is None else lambda _config, _default: context)
    server = Server(config)
    app.start()
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="hub-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + ready_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            app.close()
            sock.close()
            raise HubStartFailed(f"hub did not start on {host}:{port}")
        time.sleep(0.01)
    return HubHandle(host, int(sock.getsockname()[1]), app, server, thread,
                     None if cert is None else cert.spki)

