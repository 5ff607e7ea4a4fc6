"""HTTP client for one agent's management API (see docs/agent.md), over httpx.

Every failure becomes one of :mod:`core.fleet.errors` with a one-line message
naming the agent: unreachable, wrong token, refused (with the agent's reason),
or cut off mid-transfer.
"""
from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from core.fleet.errors import (
    AgentAuthFailed,
    AgentIdentityMismatch,
    AgentPinMismatch,
    AgentRefused,
    AgentUnreachable,
    TransferFailed,
)
from edge_agent.contract.protocol import (
    KeyFileError,
    key_fingerprint,
    public_key_from_b64,
    verify_signature,
)
from edge_agent.contract.tls import (
    find_pin_mismatch,
    pinned_client_context,
    proof_valid,
    short,
)

_CHUNK = 256 * 1024
DEFAULT_TIMEOUT = httpx.Timeout(10.0, read=120.0)


@dataclass(frozen=True)
class Identity:
    agent_id: str
    public_key: str  # base64 of the raw 32 bytes
    tls_spki: str | None = None  # the certificate key this connection saw, proven by it

    @property
    def fingerprint(self) -> str:
        return key_fingerprint(public_key_from_b64(self.public_key))


class AgentClient:
    """One agent, one connection pool. Use as a context manager.

    Over https the connection accepts only the certificate key `tls_pin` (checked after
    the handshake, before the request and its token are sent). `tls_pin=None` is an
    enrolment: the key first seen must then be proven by :meth:`identity`."""

    def __init__(self, name: str, url: str, token: str, tls_pin: str | None = None,
                 timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> None:
        self.name = name
        self.url = url.rstrip("/")
        self.https = self.url.startswith("https://")
        self._tls = pinned_client_context(tls_pin) if self.https else None
        self._auth = {"Authorization": f"Bearer {token}"}
        self._http = httpx.Client(base_url=self.url, timeout=timeout,
                                  verify=self._tls if self._tls is not None else True)

    @property
    def tls_pin(self) -> str | None:
        """The certificate key this client accepts (first seen, for an enrolment)."""
        return self._tls.pin if self._tls is not None else None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _request(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> Any:
        if auth:
            kwargs["headers"] = {**self._auth, **kwargs.get("headers", {})}
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            mismatch = find_pin_mismatch(exc)
            if mismatch is not None:
                raise AgentPinMismatch(
                    f"agent {self.name} at {self.url} presents TLS certificate key "
                    f"{short(mismatch.presented)}, not the pinned {short(mismatch.pinned)}: "
                    "refusing to talk to it (nothing was sent; re-enrol with `outpost agent "
                    "add --replace` if the device was replaced)") from exc
            raise AgentUnreachable(f"cannot reach agent {self.name} at {self.url}: "
                                   f"{_reason(exc)}") from exc
        except httpx.TimeoutException as exc:
            raise AgentUnreachable(f"agent {self.name} at {self.url} did not answer in time") \
                from exc
        except (httpx.WriteError, httpx.ReadError, httpx.RemoteProtocolError) as exc:
            if not self.https and path.startswith("/v1/identity"):
                raise AgentUnreachable(
                    f"agent {self.name} at {self.url} hung up on plain HTTP: agents serve "
                    "https by default (use https://)") from exc
            raise TransferFailed(f"connection to agent {self.name} broke during {method} "
                                 f"{path.split('?')[0]}: {_reason(exc)}") from exc
        except httpx.HTTPError as exc:
            raise AgentUnreachable(f"agent {self.name} at {self.url}: {_reason(exc)}") from exc
        return self._decode(response)

    def _decode(self, response: httpx.Response) -> Any:
        if response.status_code in (401, 403):
            raise AgentAuthFailed(f"agent {self.name} refused the token "
                                  f"(HTTP {response.status_code}): check --token")
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        if response.status_code >= 400:
            reason = body.get("error") if isinstance(body, dict) else None
            raise AgentRefused(f"agent {self.name} refused: "
                               f"{reason or f'HTTP {response.status_code}'}",
                               response.status_code)
        if body is None:
            raise AgentRefused(f"agent {self.name} at {self.url} did not answer with JSON "
                               "(is this an Outpost agent?)", response.status_code)
        return body

    def identity(self) -> Identity:
        """Ask the agent to sign a fresh nonce, and check the signature with the key it
        presents: whoever answers holds that key's private half."""
        nonce = secrets.token_bytes(32)
        doc = self._request("GET", "/v1/identity", auth=False, params={"nonce": nonce.hex()})
        try:
            agent_id, pub = str(doc["agent_id"]), str(doc["public_key"])
            key = public_key_from_b64(pub)
            signature = base64.b64decode(str(doc["signature"]), validate=True)
        except (KeyError, TypeError, binascii.Error, ValueError, KeyFileError) as exc:
            raise AgentIdentityMismatch(
                f"agent {self.name} sent a malformed identity answer") from exc
        if not verify_signature(key, signature, nonce):
            raise AgentIdentityMismatch(
                f"agent {self.name} could not prove its identity key (bad nonce signature)")
        if self._tls is None:
            return Identity(agent_id, pub)
        seen = self._tls.seen
        if seen is None or doc.get("tls_spki_sha256") != seen \
                or not proof_valid(key, seen, doc.get("tls_signature")):
            raise AgentIdentityMismatch(
                f"agent {self.name} at {self.url}: its identity key does not vouch for the TLS "
                f"certificate key {short(seen or '')} this connection saw (a man in the "
                "middle?): refusing to send the token")
        return Identity(agent_id, pub, seen)

    def verify_pinned(self, pinned: str) -> Identity:
        ident = self.identity()
        if ident.public_key != pinned:
            raise AgentIdentityMismatch(
                f"agent {self.name} at {self.url} presents identity key {ident.fingerprint}, "
                f"not the key {key_fingerprint(public_key_from_b64(pinned))} pinned at "
                "enrolment: refusing to talk to it (re-enrol with `outpost agent add` if the "
                "device was replaced)")
        return ident

    def status(self) -> dict[str, Any]:
        return dict(self._request("GET", "/v1/status"))

    def push_bundle(self, path: Path, *, activate: bool = True,
                    allow_rollback: bool = False) -> dict[str, Any]:
        params = {"activate": str(activate).lower()}
        if allow_rollback:
            params["rollback"] = "true"
        size = path.stat().st_size
        return dict(self._request(
            "POST", "/v1/bundles", params=params, content=_chunks(path),
            headers={"Content-Type": "application/octet-stream",
                     "Content-Length": str(size)}))

    def activate(self, model: str, version: int) -> dict[str, Any]:
        return dict(self._request("POST", f"/v1/models/{model}/activate",
                                  json={"version": version}))

    def rollback(self, model: str) -> dict[str, Any]:
        return dict(self._request("POST", f"/v1/models/{model}/rollback"))

    def telemetry(self, after: int, limit: int) -> dict[str, Any]:
        return dict(self._request("GET", "/v1/telemetry",
                                  params={"after": after, "limit": limit}))

    def ack(self, seq: int) -> None:
        self._request("POST", "/v1/telemetry/ack", json={"seq": seq})

    def set_capture(self, model: str, policy: dict[str, Any] | None) -> dict[str, Any]:
        """Set the model's sample-capture policy on the agent (None: the bundle's again)."""
        return dict(self._request("PUT", f"/v1/models/{model}/capture",
                                  json={"policy": policy}))

    def rotate_key(self, record: bytes) -> dict[str, Any]:
        return dict(self._request("POST", "/v1/keys/rotate", content=record,
                                  headers={"Content-Type": "application/json"}))


def pinned_http(url: str, tls_spki: str | None, timeout: float = 30.0) -> httpx.Client:
    """An httpx client for an agent's inference routes (no token), pinned to its enrolled
    certificate key like the management calls."""
    verify = pinned_client_context(tls_spki) if url.startswith("https://") else True
    return httpx.Client(base_url=url.rstrip("/"), timeout=timeout, verify=verify)


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            yield chunk


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    return text.splitlines()[0]
