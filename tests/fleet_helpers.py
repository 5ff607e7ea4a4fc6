"""Shared by the fleet tests: a catalog in a temp home, agents enrolled by hand, telemetry
records written as agents write them, and a TCP proxy that can cut a transfer midway."""
from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.catalog import Catalog
from core.config import Settings
from edge_agent.protocol import (
    HistogramRecord,
    RequestRecord,
    generate_signing_key,
    public_key_b64,
    write_telemetry_export,
)


def open_catalog(home: Path) -> Catalog:
    return Catalog.open(Settings(home))


def enrol_row(catalog: Catalog, name: str, identity: Ed25519PrivateKey,
              agent_id: str | None = None) -> None:
    """An agent row as `agent add` leaves it, for tests that only need its pinned key."""
    catalog.con.execute(
        "INSERT INTO agent (name, url, token, agent_id, public_key, mode, key_index, "
        "key_counter) VALUES (?, 'http://127.0.0.1:9', 'token-token', ?, ?, 'push', 0, 0)",
        [name, agent_id or f"id-{name}", public_key_b64(identity)])


def requests(first_seq: int, n: int, *, model: str = "m", version: int = 1, t0: float = 1e9,
             status: int = 200) -> list[RequestRecord]:
    return [RequestRecord(first_seq + i, t0 + i, model, version, status, 1000 + i, 1)
            for i in range(n)]


def histogram(seq: int, feature: str, counts: list[int], *, nulls: int = 0,
              model: str = "m", version: int = 1, start: float = 1e9,
              length: float = 60.0) -> HistogramRecord:
    return HistogramRecord(seq, start, start + length, model, version, feature, counts, nulls)


def export_file(path: Path, records: list[Any], identity: Ed25519PrivateKey,
                agent_id: str = "id-a") -> Path:
    return write_telemetry_export(path, records, agent_id=agent_id, identity_key=identity)


def new_identity() -> Ed25519PrivateKey:
    return generate_signing_key()


class CuttingProxy:
    """Forwards 127.0.0.1:port to a target; `cut_after(n)` makes the next connection drop
    after n bytes from the client, as a network failing mid-upload would."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._cut: int | None = None
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut_after(self, n: int | None) -> None:
        self._cut = n

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            cut, self._cut = self._cut, None
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pipe, args=(client, upstream, cut), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, None),
                             daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, cut: int | None) -> None:
        sent = 0
        try:
            while data := src.recv(65536):
                if cut is not None and sent + len(data) >= cut:
                    dst.sendall(data[: max(cut - sent, 0)])
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()


@contextlib.contextmanager
def cutting_proxy(target_port: int) -> Iterator[CuttingProxy]:
    proxy = CuttingProxy(target_port)
    try:
        yield proxy
    finally:
        proxy.close()
