"""HTTP to the hub from the device, on the standard library (http.client): JSON calls and
bundle downloads that resume where a cut connection left them (HTTP Range).

One :class:`HubTransport` per thread: it keeps one keep-alive connection and drops it
after any failure, so the next call starts clean.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from edge_agent.contract.errors import AgentError
from edge_agent.contract.hub_protocol import ANSWER_SIGNATURE
from edge_agent.contract.tls import find_pin_mismatch, pinned_client_context, short

log = logging.getLogger(__name__)
_CHUNK = 256 * 1024


class HubUnavailable(AgentError):
    """The hub could not be reached, or the connection broke: try again later."""


class HubRefused(AgentError):
    """The hub answered with an error: it will say the same until something changes."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    signature: str | None = None  # the ANSWER_SIGNATURE header, when the hub signed it

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None


class HubTransport:
    def __init__(self, hub_url: str, token: str, timeout_s: float = 30.0,
                 tls_pin: str = "") -> None:
        parts = urlsplit(hub_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HubUnavailable(f"hub URL {hub_url!r} is not http(s)://HOST[:PORT]")
        self.url = hub_url.rstrip("/")
        self._https = parts.scheme == "https"
        if self._https and not tls_pin:
            raise HubUnavailable(f"hub {hub_url} is https but no certificate key is pinned")
        self._tls_pin = tls_pin
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._auth = f"Bearer {token}"
        self.timeout_s = timeout_s
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._https:
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self.timeout_s,
                    context=pinned_client_context(self._tls_pin))
            else:
                self._conn = http.client.HTTPConnection(self._host, self._port,
                                                        timeout=self.timeout_s)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _send(self, method: str, path: str, body: bytes | None,
              headers: dict[str, str]) -> http.client.HTTPResponse:
        conn = self._connection()
        try:
            try:
                conn.request(method, self._prefix + path, body=body,
                             headers={"Authorization": self._auth, **headers})
            except (BrokenPipeError, ConnectionResetError):
                # The hub may have refused a large body early (413) and closed: its
                # answer is still there to read.
                return conn.getresponse()
            return conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise HubUnavailable(f"hub {self.url}: {_reason(exc)}") from None

    def call(self, method: str, path: str, body: bytes | None = None,
             content_type: str = "application/json") -> Answer:
        """One request; 2xx is returned, anything else is HubRefused with the hub's reason."""
        response = self._send(method, path, body, {"Content-Type": content_type}
                              if body is not None else {})
        try:
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise HubUnavailable(f"hub {self.url}: answer cut off: {_reason(exc)}") from None
        if response.will_close:
            self.close()
        if response.status >= 400:
            raise HubRefused(response.status, _error_text(response.status, data))
        return Answer(response.status, data, response.getheader(ANSWER_SIGNATURE))

    def download(self, path: str, sha256: str, folder: Path) -> Path:
        """Fetch a bundle into `folder`/SHA.part, resuming from what is there already, and
        return it renamed to SHA.outpost once its sha256 is the one asked for."""
        folder.mkdir(parents=True, exist_ok=True)
        part = folder / f"{sha256}.part"
        have = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        response = self._send("GET", path, None, headers)
        try:
            total = self._receive(response, part, have)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            got = part.stat().st_size if part.exists() else 0
            raise HubUnavailable(f"bundle download cut at {got} bytes ({_reason(exc)}); "
                                 "it resumes from there") from None
        got = part.stat().st_size
        if got < total:
            self.close()
            raise HubUnavailable(f"bundle download cut at {got} of {total} bytes; it resumes "
                                 "from there")
        digest = _sha256(part)
        if digest != sha256:
            part.unlink()
            raise HubRefused(422, f"downloaded bundle has sha256 {digest[:16]}, not "
                                  f"{sha256[:16]}: discarded")
        done = part.with_suffix(".outpost")
        part.replace(done)
        return done

    def _receive(self, response: http.client.HTTPResponse, part: Path, have: int) -> int:
        """Append the body to `part`; returns the bundle's full size."""
        if response.status == 416:  # what we hold is not a prefix of it: start over
            response.read()
            part.unlink(missing_ok=True)
            raise HubUnavailable("the hub refused the resume range; starting over")
        if response.status >= 400:
            data = response.read()
            raise HubRefused(response.status, _error_text(response.status, data))
        if response.status == 206:
            span = (response.getheader("Content-Range") or "").removeprefix("bytes ")
            start, total = span.partition("-")[0], span.rpartition("/")[2]
            if not start.isdigit() or int(start) != have or not total.isdigit():
                raise HubRefused(502, f"hub answered range {span!r} to a resume at {have}")
            mode, size = "ab", int(total)
        else:
            mode, size = "wb", int(response.getheader("Content-Length") or -1)
        with part.open(mode) as fh:
            while chunk := response.read(_CHUNK):
                fh.write(chunk)
        return size


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _error_text(status: int, data: bytes) -> str:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        doc = None
    reason = doc.get("error") if isinstance(doc, dict) else None
    return f"hub refused (HTTP {status}): {reason or data[:200].decode(errors='replace')}"


def _reason(exc: BaseException) -> str:
    mismatch = find_pin_mismatch(exc)
    if mismatch is not None:
        return (f"TLS certificate key {short(mismatch.presented)} is not the pinned "
                f"{short(mismatch.pinned)} (nothing was sent)")
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return (str(exc) or type(exc).__name__).splitlines()[0]
