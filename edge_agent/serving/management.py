"""Management routes under /v1 (bearer token): bundles, versions, status, telemetry, keys.

Every call that touches the disk or the model store runs in one worker thread,
so installs never block inference and management calls never race each other.
"""

from __future__ import annotations

import asyncio
import binascii
import dataclasses
import functools
import hmac
import platform
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from edge_agent.contract.asgi import (
    BadRequest,
    Deadlines,
    MethodNotAllowed,
    NotFound,
    Receive,
    Reply,
    Scope,
    Unauthorized,
    header,
    json_reply,
    query,
    read_body,
    stream_body,
)
from edge_agent.contract.capture import CapturePolicy, feedback_items
from edge_agent.contract.errors import AgentError
from edge_agent.serving.metrics import AgentMetrics
from edge_agent.serving.serving import ServedCache
from edge_agent.store.identity import AgentIdentity
from edge_agent.telemetry.capture import Capturer
from edge_agent.telemetry.outbox import Outbox

T = TypeVar("T")
MAX_TELEMETRY_PAGE = 10_000
_SMALL_BODY = 1024 * 1024


@functools.cache
def agent_version() -> str:
    import importlib.metadata  # here: it costs ~2 MB resident, and serving never asks

    try:
        return importlib.metadata.version("outpost")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _int(text: str | None, what: str, default: int | None = None) -> int:
    if text is None and default is not None:
        return default
    try:
        return int(text or "")
    except ValueError:
        raise BadRequest(f"{what} must be an integer") from None


def _json_int(body: bytes, key: str) -> int:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("body is not valid JSON") from None
    value = doc.get(key) if isinstance(doc, dict) else None
    if type(value) is not int:
        raise BadRequest(f'body must be {{"{key}": <integer>}}')
    return value


def _plain(obj: Any) -> Any:
    to_dict = getattr(obj, "to_dict", None)
    return to_dict() if callable(to_dict) else dataclasses.asdict(obj)


class Management:
    def __init__(self, store: Any, cache: ServedCache, outbox: Outbox, identity: AgentIdentity,
                 metrics: AgentMetrics, token: str | None, agent_dir: Path,
                 max_bundle_bytes: int = 512 * 1024 * 1024, upload_idle_s: float = 30.0,
                 body_timeout_s: float = 10.0,
                 cut_windows: Callable[[], object] | None = None,
                 feedback_token: str | None = None, capturer: Capturer | None = None,
                 tls_proof: dict[str, str] | None = None) -> None:
        self.store = store
        self.tls_proof = tls_proof  # None: plain HTTP (--insecure-http)
        self.cache = cache
        self.outbox = outbox
        self.identity = identity
        self.metrics = metrics
        self._token = token.encode() if token else None
        self._feedback_token = feedback_token.encode() if feedback_token else None
        self.capturer = capturer
        self.agent_dir = agent_dir
        self.max_bundle_bytes = max_bundle_bytes
        self.upload_idle_s = upload_idle_s
        self.body_timeout_s = body_timeout_s
        # Closes the open histogram windows, so a pull sees all traffic served before it.
        self.cut_windows = cut_windows
        self.started = time.monotonic()
        self.deadlines = Deadlines()
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="management")

    def _authorize(self, scope: Scope, feedback: bool = False) -> None:
        """The management token; on the feedback route, the feedback-only token too."""
        given = header(scope, b"authorization") or b""
        scheme, _, token = given.partition(b" ")
        if self._token is None and not (feedback and self._feedback_token):
            raise Unauthorized("management is disabled: the agent was started without a token")
        accepted = [t for t in (self._token, self._feedback_token if feedback else None) if t]
        matches = [hmac.compare_digest(token.strip(), t) for t in accepted]
        if scheme.lower() != b"bearer" or not any(matches):
            raise Unauthorized("missing or wrong bearer token")

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, functools.partial(fn, *args, **kwargs))

    async def _small_body(self, scope: Scope, receive: Receive) -> bytes:
        return await read_body(scope, receive, _SMALL_BODY, self.body_timeout_s, self.deadlines)

    async def handle(self, scope: Scope, receive: Receive, method: str, parts: list[str]
                     ) -> Reply:
        """Route /v1/<parts...>; every route but the identity proof needs the token (the
        desktop checks who answers before it sends the token)."""
        if (method, *parts) == ("GET", "identity"):
            return self._identity(scope)
        route = (method, *parts)
        if route[:2] == ("POST", "models") and len(parts) == 3 and parts[2] == "feedback":
            self._authorize(scope, feedback=True)
            return await self._feedback(parts[1], await self._small_body(scope, receive))
        self._authorize(scope)
        match route:
            case ("POST", "bundles"):
                return await self._upload(scope, receive)
            case ("POST", "models", name, "activate"):
                version = _json_int(await self._small_body(scope, receive), "version")
                await self._call(self.store.activate, name, version)
                await self._call(self.cache.warm)
                return json_reply({"model": name, "active": version})
            case ("POST", "models", name, "rollback"):
                version = await self._call(self.store.rollback, name)
                await self._call(self.cache.warm)
                return json_reply({"model": name, "active": version})
            case ("PUT", "models", name, "capture"):
                return await self._capture(name, await self._small_body(scope, receive))
            case ("DELETE", "models", name, "versions", version):
                await self._call(self.store.delete, name, _int(version, "version"))
                return json_reply({"model": name, "deleted": int(version)})
            case ("GET", "status"):
                return json_reply(await self._call(self.status))
            case ("GET", "telemetry"):
                return await self._telemetry(scope)
            case ("POST", "telemetry", "ack"):
                seq = _json_int(await self._small_body(scope, receive), "seq")
                gone = await self._call(self.outbox.ack, seq)
                return json_reply({"acked": seq, "deleted": gone})
            case ("POST", "keys", "rotate"):
                record = await self._small_body(scope, receive)
                await self._call(self.store.rotate_key, record)
                return json_reply({"rotated": True})
        known = {"bundles", "status", "telemetry", "keys", "identity", "models"}
        if parts and parts[0] in known:
            raise MethodNotAllowed(f"{method} /v1/{'/'.join(parts)} is not a route")
        raise NotFound(f"no route for /v1/{'/'.join(parts)}")

    async def _feedback(self, name: str, body: bytes) -> Reply:
        """Ground-truth labels for earlier predictions, kept as telemetry for the desktop."""
        served = self.cache.get(name, None)
        task = getattr(getattr(served.loaded, "manifest", None), "task", None)
        regression = task == "regression" or (task is None and served.signature.outputs[0]
                                              .datatype in ("FP16", "FP32", "FP64"))
        try:
            ids, labels = feedback_items(orjson.loads(body), regression)
        except orjson.JSONDecodeError:
            raise BadRequest("body is not valid JSON") from None
        record = {"kind": "feedback", "ts": time.time(), "model": name, "ids": ids,
                  "labels": labels}
        await self._call(self.outbox.write, [record])
        return json_reply({"model": name, "accepted": len(ids)})

    async def _capture(self, name: str, body: bytes) -> Reply:
        """Set (or with {"policy": null} clear) the capture policy of a model."""
        if self.capturer is None:
            raise BadRequest("sample capture is off on this agent")
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise BadRequest("body is not valid JSON") from None
        if not isinstance(doc, dict) or "policy" not in doc:
            raise BadRequest('body must be {"policy": {...} or null}')
        policy = None if doc["policy"] is None else CapturePolicy.from_dict(doc["policy"])
        await self._call(self.capturer.set_policy, name, policy, self.store.names())
        return json_reply({"model": name, "policy": policy and policy.to_dict()})

    async def _upload(self, scope: Scope, receive: Receive) -> Reply:
        params = query(scope)
        activate = params.get("activate", "true").lower() != "false"
        rollback = params.get("rollback", "false").lower() == "true"
        path: Path = self.store.upload_path()
        try:
            with path.open("xb") as fh:
                await stream_body(scope, receive, fh.write, self.max_bundle_bytes,
                                  self.upload_idle_s)
            try:
                result = await self._call(self._install, path, activate, rollback)
            except Exception:
                self.metrics.load_failed("")
                raise
        finally:
            path.unlink(missing_ok=True)
        return json_reply(_plain(result))

    def _install(self, path: Path, activate: bool, rollback: bool) -> Any:
        result = self.store.install(path, activate=activate, allow_rollback=rollback)
        self.cache.warm()
        return result

    async def _telemetry(self, scope: Scope) -> Reply:
        params = query(scope)
        after = _int(params.get("after"), "after", 0)
        limit = min(max(_int(params.get("limit"), "limit", 1000), 1), MAX_TELEMETRY_PAGE)
        if self.cut_windows is not None:
            await self._call(self.cut_windows)
        records = await self._call(self.outbox.read, after, limit)
        stats = self.outbox.stats()
        return json_reply({"records": records, "last_seq": stats.last_seq,
                           "evicted": stats.evicted})

    def _identity(self, scope: Scope) -> Reply:
        nonce_hex = query(scope).get("nonce", "")
        try:
            nonce = bytes.fromhex(nonce_hex)
        except ValueError:
            nonce = b""
        # Short nonces only: the identity key also signs telemetry exports, and no export
        # file fits in 64 bytes, so this route cannot be used to sign a forged one.
        if not 8 <= len(nonce) <= 64:
            raise BadRequest("nonce must be 8 to 64 bytes, hex encoded")
        signature = binascii.b2a_base64(self.identity.sign(nonce), newline=False).decode()
        doc = {"agent_id": self.identity.agent_id, "public_key": self.identity.public_key,
               "signature": signature}
        if self.tls_proof is not None:
            doc["tls_spki_sha256"] = self.tls_proof["spki_sha256"]
            doc["tls_signature"] = self.tls_proof["signature"]
        return json_reply(doc)

    def status(self) -> dict[str, Any]:
        import onnxruntime

        from edge_agent.contract.model_checks import supported_opsets

        stats = self.outbox.stats()
        return {
            "agent_id": self.identity.agent_id, "public_key": self.identity.public_key,
            "version": agent_version(), "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__, "opset_max": supported_opsets(),
            "uptime_s": round(time.monotonic() - self.started, 3),
            "disk_free_bytes": shutil.disk_usage(self.agent_dir).free,
            "telemetry": {"backlog": stats.backlog, "last_seq": stats.last_seq,
                          "evicted": stats.evicted, "rejected": self.metrics.rejected_total(),
                          "capture_bytes": stats.capture_bytes,
                          "capture_evicted": stats.capture_evicted,
                          # models capturing every row because their own windows drifted
                          "capture_drift": [] if self.capturer is None
                          else self.capturer.drifting,
                          "capture_drift_switches": 0 if self.capturer is None
                          else self.capturer.drift_switches},
            # hub capture policies not taken (model -> why): the model is not served here
            "capture_refused": {} if self.capturer is None else dict(self.capturer.refused),
            "models": [{**_plain(m), **self._capture_of(m.name, m.active)}
                       for m in self.store.models()],
            # How many desktop key rotations this agent has applied: the desktop sends
            # the next one numbered from here.
            "key_rotation": self.store.keys.rotation,
        }

    def _capture_of(self, name: str, active: int | None) -> dict[str, Any]:
        """The policy the model's rows are captured under now, and where it comes from:
        "agent" (set on this agent, by the desktop or the hub) or "bundle"."""
        if self.capturer is None:
            return {"capture": None, "capture_from": None}
        override = self.capturer.override(name)
        if override is not None:
            return {"capture": override.to_dict(), "capture_from": "agent"}
        bundled = None
        if active is not None:
            try:
                bundled = self.cache.get(name, None).capture
            except AgentError:  # it does not load: it serves (and captures) nothing
                bundled = None
        return {"capture": bundled and bundled.to_dict(),
                "capture_from": "bundle" if bundled else None}

    def close(self) -> None:
        self._worker.shutdown(wait=True)
