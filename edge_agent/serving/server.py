"""The agent's ASGI application: routing for inference, health, metrics and management.

A hand-written ASGI callable, no framework: a request is routed by splitting
its path once, and the inference path does body read, decode, run, encode and
one queue put for telemetry, nothing else.
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass
from typing import Any

from edge_agent.contract.asgi import (
    OCTETS,
    Deadlines,
    MethodNotAllowed,
    NotFound,
    Receive,
    Reply,
    Scope,
    Send,
    error_reply,
    header,
    json_reply,
    read_body,
    send_reply,
)
from edge_agent.contract.errors import AgentError
from edge_agent.contract.http_limits import Arrivals
from edge_agent.serving.batching import Batcher
from edge_agent.serving.management import Management, agent_version
from edge_agent.serving.metrics import CONTENT_TYPE, AgentMetrics
from edge_agent.serving.oip import (
    HEADER_LENGTH,
    InferRequestInvalid,
    decode_infer_request,
    encode_infer_response,
    parse_header_length,
)
from edge_agent.serving.predict import encode_predictions, parse_records, records_to_feeds
from edge_agent.serving.serving import Runner, Served, ServedCache
from edge_agent.serving.shadow import Shadow
from edge_agent.serving.signature import bind_inputs
from edge_agent.store.memory import release_memory
from edge_agent.telemetry.ids import PredictionIds
from edge_agent.telemetry.recorder import Recorder, RequestEvent

log = logging.getLogger(__name__)
_HEADER_LENGTH = HEADER_LENGTH.encode()


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 16 * 1024 * 1024
    body_timeout_s: float = 10.0
    inline_rows: int = 256
    batch_max: int = 1  # adaptive batching off unless > 1 (serve turns it on)
    batch_delay_s: float = 0.0


def _version(text: str) -> int:
    if not text.isdigit():
        raise NotFound(f"model version {text!r} is not a version number")
    return int(text)


class AgentApp:
    def __init__(self, cache: ServedCache, recorder: Recorder, metrics: AgentMetrics,
                 management: Management, limits: Limits | None = None,
                 ids: PredictionIds | None = None, shadow: Shadow | None = None,
                 arrivals: Arrivals | None = None) -> None:
        self.cache = cache
        self.ids = ids
        self.shadow = shadow
        self.recorder = recorder
        self.metrics = metrics
        self.management = management
        self.limits = limits or Limits()
        self.arrivals = arrivals or Arrivals()  # the protocol counts parsed requests in it
        batcher = (Batcher(self.limits.batch_max, self.limits.batch_delay_s,
                           self.arrivals.waiting if arrivals is not None else None)
                   if self.limits.batch_max > 1 else None)
        self.runner = Runner(self.limits.inline_rows, batcher)
        self.deadlines = Deadlines()
        self.ready = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.arrivals.started += 1
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # Everything loaded so far lives as long as the process: keep it out of
                # the collector's generations so collections stay short under load.
                release_memory()
                gc.freeze()
                self.ready = True
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.ready = False
                self.runner.close()
                self.management.close()
                if self.shadow is not None:
                    self.shadow.close()
                self.recorder.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        parts = scope["path"].strip("/").split("/")
        method = scope["method"]
        try:
            if parts[0] == "v2":
                reply = await self._v2(scope, receive, method, parts)
            elif parts[0] == "v1":
                reply = await self._v1(scope, receive, method, parts)
            elif parts == ["metrics"]:
                self._only(method, "GET")
                reply = Reply(200, self.metrics.render(), CONTENT_TYPE.encode())
            else:
                raise NotFound(f"no route for {scope['path']}")
        except AgentError as exc:
            reply = error_reply(exc)
        except Exception as exc:  # noqa: BLE001 -- one bad request must not take the agent down
            log.exception("unexpected error on %s %s", method, scope["path"])
            reply = json_reply({"error": f"internal error: {type(exc).__name__}"}, 500)
        await send_reply(send, reply)

    @staticmethod
    def _only(method: str, allowed: str) -> None:
        if method != allowed:
            raise MethodNotAllowed(f"method {method} is not allowed here")

    async def _v2(self, scope: Scope, receive: Receive, method: str, parts: list[str]) -> Reply:
        n = len(parts)
        if n >= 3 and parts[1] == "models":
            name = parts[2]
            rest = parts[3:]
            version = None
            if len(rest) >= 2 and rest[0] == "versions":
                version, rest = _version(rest[1]), rest[2:]
            if rest == ["infer"]:
                self._only(method, "POST")
                return await self._infer(scope, receive, name, version)
            self._only(method, "GET")
            if not rest:
                served = self.cache.get(name, version)
                return json_reply(served.metadata(self.cache.versions(name)))
            if rest == ["ready"]:
                served = self.cache.get(name, version)
                return json_reply({"name": served.name, "version": str(served.version),
                                   "ready": True})
            raise NotFound(f"no route for {scope['path']}")
        self._only(method, "GET")
        if parts == ["v2"]:
            return json_reply({"name": "outpost-agent", "version": agent_version(),
                               "extensions": ["binary_tensor_data"]})
        if parts == ["v2", "health", "live"]:
            return json_reply({"live": True})
        if parts == ["v2", "health", "ready"]:
            return json_reply({"ready": self.ready}, 200 if self.ready else 503)
        raise NotFound(f"no route for {scope['path']}")

    async def _v1(self, scope: Scope, receive: Receive, method: str, parts: list[str]) -> Reply:
        if len(parts) == 4 and parts[1] == "models" and parts[3] == "predict":
            self._only(method, "POST")
            return await self._predict(scope, receive, parts[2])
        return await self.management.handle(scope, receive, method, parts[1:])

    def _event(self, t0: float, served: Served | None, status: int, rows: int = 0,
               feeds: dict[str, Any] | None = None,
               outputs: list[tuple[str, Any]] | None = None, first_id: int = 0) -> None:
        if served is None or outputs is None:
            self.recorder.submit(RequestEvent(
                time.time(), served.name if served else "", served.version if served else 0,
                status, int((time.perf_counter() - t0) * 1e6), rows))
            return
        proba = None if served.proba_index is None else outputs[served.proba_index][1]
        self.recorder.submit(RequestEvent(
            time.time(), served.name, served.version, status,
            int((time.perf_counter() - t0) * 1e6), rows,
            served.binner if feeds is not None else None, feeds, outputs[0][1], first_id,
            proba, served.capture))
        if self.shadow is not None and feeds is not None:
            self.shadow.offer(served, feeds, outputs[0][1])

    def _ids(self, rows: int) -> tuple[int, list[str] | None]:
        if self.ids is None:
            return 0, None
        first = self.ids.take(rows)
        return first, self.ids.texts(first, rows)

    async def _infer(self, scope: Scope, receive: Receive, name: str, version: int | None
                     ) -> Reply:
        t0 = time.perf_counter()
        served: Served | None = None
        try:
            body = await read_body(scope, receive, self.limits.max_body_bytes,
                                   self.limits.body_timeout_s, self.deadlines)
            served = self.cache.get(name, version)
            request = decode_infer_request(
                body, parse_header_length(header(scope, _HEADER_LENGTH), len(body)))
            feeds, rows = bind_inputs(served.signature, request.inputs)
            if request.outputs is not None:
                unknown = request.outputs.keys() - set(served.output_names)
                if unknown:
                    raise InferRequestInvalid(f"unknown outputs requested: {sorted(unknown)}")
            outputs = await self.runner(served, feeds, rows)
            wanted = outputs if request.outputs is None else [
                o for o in outputs if o[0] in request.outputs]
            first, ids = self._ids(rows)
            payload, json_length = encode_infer_response(served.name, served.version, request,
                                                         wanted, ids)
        except AgentError as exc:
            self._event(t0, served, exc.http_status)
            raise
        self._event(t0, served, 200, rows, feeds, outputs, first)
        if json_length is None:
            return Reply(200, payload)
        return Reply(200, payload, OCTETS, [(_HEADER_LENGTH, str(json_length).encode())])

    async def _predict(self, scope: Scope, receive: Receive, name: str) -> Reply:
        t0 = time.perf_counter()
        served: Served | None = None
        try:
            body = await read_body(scope, receive, self.limits.max_body_bytes,
                                   self.limits.body_timeout_s, self.deadlines)
            served = self.cache.get(name, None)
            records = parse_records(body)
            feeds = records_to_feeds(served.signature, records)
            outputs = await self.runner(served, feeds, len(records))
        except AgentError as exc:
            self._event(t0, served, exc.http_status)
            raise
        first, ids = self._ids(len(records))
        self._event(t0, served, 200, len(records), feeds, outputs, first)
        return Reply(200, encode_predictions(served.name, served.version, len(records), outputs,
                                             ids))
