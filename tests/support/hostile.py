"""Shared by the hostile-peer tests: raw sockets to a running server, its RSS, polling."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.support.agents import ssl_context_for


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", int(parts.port or 80)


def open_socket(url: str, timeout: float = 10.0) -> socket.socket:
    """A connection to the server behind `url` (what a hostile peer opens), inside TLS
    when the server speaks it: the hostility is in the HTTP that follows."""
    sock = socket.create_connection(address(url), timeout=timeout)
    context = ssl_context_for(url)
    return sock if context is None else context.wrap_socket(sock,
                                                            server_hostname=address(url)[0])


def client_hello(url: str) -> bytes:
    """The first flight of a TLS client to the server behind `url` (its ClientHello): what
    a peer sends before the server has said anything."""
    context = ssl_context_for(url)
    assert context is not None, f"{url} does not speak TLS"
    outgoing = ssl.MemoryBIO()
    tls = context.wrap_bio(ssl.MemoryBIO(), outgoing, server_hostname=address(url)[0])
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:  # waits for the server's answer: the hello is out
        pass
    return outgoing.read()


def raw_exchange(url: str, request: bytes, timeout: float = 20.0) -> bytes:
    """Send `request` as is and read until the server closes or answers one response."""
    with open_socket(url, timeout) as sock:
        try:
            sock.sendall(request)
        except OSError:  # the server may close before reading everything: that is fine
            pass
        return read_response(sock)


def read_response(sock: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return data
        if not chunk:
            return data
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length" and \
                        len(body) >= int(value.strip()):
                    return data


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/") else 0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout}s")
