"""The hub inside the GUI process, which owns the catalog (DuckDB allows one writer).

Starting and stopping run on task workers; :meth:`HubControl.stop` also runs at quit,
after the task pool has drained, so a hub whose start was still in flight stops too.
"""
from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from core.catalog import Catalog
from core.config import Settings

if TYPE_CHECKING:
    from core.hub import HubHandle
    from edge_agent.contract.hub_protocol import Enrolment

DEFAULT_HOST = "127.0.0.1"
_WILDCARDS = ("0.0.0.0", "::", "")


class HubControl:
    """One hub at a time, on its own catalog connection (closed when it stops)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._lock = threading.Lock()
        self._handle: HubHandle | None = None
        self._own: Catalog | None = None

    @property
    def handle(self) -> HubHandle | None:
        return self._handle

    @property
    def running(self) -> bool:
        handle = self._handle
        return handle is not None and handle.running

    def start(self, own: Catalog, host: str, port: int) -> HubHandle:
        """Serve the hub over `own`, a connection made on the UI thread for it alone."""
        from core.hub import start_hub

        with self._lock:
            if self._handle is not None and self._handle.running:
                own.con.close()
                return self._handle
            try:
                self._handle = start_hub(own, host, port)
            except BaseException:
                own.con.close()
                raise
            self._own = own
            return self._handle

    def stop(self) -> bool:
        """Drain and stop the hub; False when none was running."""
        with self._lock:
            handle, own = self._handle, self._own
            self._handle = self._own = None
            if handle is None:
                return False
            try:
                handle.stop()
            finally:
                if own is not None:
                    own.con.close()
            return True


def hub_url(host: str, port: int, handle: HubHandle | None) -> str:
    """The address devices are told to call: ${OUTPOST_}HUB_URL if set (as for the CLI),
    else the hub's; a wildcard listen address becomes this machine's name."""
    configured = Settings.from_env().hub_url
    if configured:
        return configured
    if handle is not None:
        host, port = handle.host, handle.port
    if host in _WILDCARDS:
        host = socket.getfqdn()
    scheme = "http" if handle is not None and handle.tls_spki is None else "https"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def enrol_for_hub(catalog: Catalog, name: str, url: str, out: Path) -> Enrolment:
    """What `outpost agent enroll NAME --out FILE` does."""
    from core.hub import enroll_agent, write_enrolment

    enrolment = enroll_agent(catalog, name, url)
    write_enrolment(enrolment, out)
    return enrolment
