"""The hub's ASGI application: enrolment claims, polls, bundle downloads, outcomes and
telemetry batches from hub-mode agents (routes in ``edge_agent.contract.hub_protocol``).

Catalog reads run on a small pool of reader threads, each with its own cursor; every
write goes to the single :class:`~core.hub.writer.Writer`. The event loop itself only
parses, routes and streams.
"""
from __future__ import annotations

import asyncio
import base64
import functools
import io
import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from core.catalog import Catalog
from core.errors import OutpostError
from core.hub import desired, enrolment
from core.hub.contacts import Contact, ContactBook
from core.hub.http import bearer, parse_range
from core.hub.ingest import Batch
from core.hub.rotations import KeyChain
from core.hub.writer import Writer
from core.telemetry.ingest import RECORD_SCHEMA
from edge_agent.contract.asgi import (
    OCTETS,
    AgentError,
    Deadlines,
    HTTPError,
    Receive,
    Reply,
    Scope,
    Send,
    error_reply,
    header,
    json_body,
    json_reply,
    read_body,
    send_reply,
)
from edge_agent.contract.hub_protocol import ANSWER_SIGNATURE, answer_message

log = logging.getLogger(__name__)
T = TypeVar("T")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 256 * 1024
_PARSE = pajson.ParseOptions(explicit_schema=RECORD_SCHEMA, unexpected_field_behavior="ignore")


@dataclass(frozen=True)
class HubOptions:
    max_batch_bytes: int = 8 * 1024 * 1024  # one telemetry post
    max_batch_records: int = 100_000
    max_status_bytes: int = 256 * 1024  # one poll body
    body_timeout_s: float = 30.0
    contact_flush_s: float = 2.0
    commit_interval_s: float = 0.1  # telemetry commits at most this often (batched between)
    readers: int = 2


class HubApp:
    def __init__(self, catalog: Catalog, options: HubOptions | None = None) -> None:
        self.catalog = catalog
        self.options = options or HubOptions()
        self.contacts = ContactBook()
        self.keys = KeyChain(catalog)
        self.writer = Writer(catalog, periodic=self.contacts.flush,
                             period_s=self.options.contact_flush_s,
                             commit_interval_s=self.options.commit_interval_s)
        self._readers = ThreadPoolExecutor(self.options.readers, thread_name_prefix="hub-read")
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._deadlines = Deadlines()

    def start(self) -> None:
        self.writer.start()

    def close(self) -> None:
        self._readers.shutdown(wait=True)
        self.writer.stop()
        for cur in self._cursors:
            cur.close()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._local.cursor = self.catalog.cursor()
            self._cursors.append(cur)
        return cur

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, functools.partial(fn, *args))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            reply = await self._route(scope, receive, send)
        except AgentError as exc:
            reply = error_reply(exc)
        except OutpostError as exc:
            reply = error_reply(HTTPError(422, str(exc)))
        except Exception as exc:  # noqa: BLE001 -- one request must not take the hub down
            log.exception("hub: unexpected error on %s %s", scope["method"], scope["path"])
            reply = json_reply({"error": f"internal error: {type(exc).__name__}"}, 500)
        if reply is not None:
            await send_reply(send, reply, close=reply.status in (408, 413))

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> Reply | None:
        parts = scope["path"].strip("/").split("/")
        method = scope["method"]
        if parts[:2] != ["hub", "v1"]:
            raise HTTPError(404, f"no route for {scope['path']}")
        match (method, *parts[2:]):
            case ("GET", "health"):
                return json_reply({"hub": "outpost", "ok": True})
            case ("POST", "agents", name, "enroll"):
                return await self._enroll(scope, receive, name)
            case ("POST", "agents", name, "poll"):
                return await self._poll(scope, receive, name)
            case ("GET", "agents", name, "bundles", sha):
                await self._bundle(scope, send, name, sha)
                return None
            case ("POST", "agents", name, "outcome"):
                return await self._outcome(scope, receive, name)
            case ("POST", "agents", name, "telemetry"):
                return await self._telemetry(scope, receive, name)
        raise HTTPError(404 if method in ("GET", "POST") else 405,
                           f"no route for {method} {scope['path']}")

    def _auth(self, name: str, token: str, *, claimed: bool = True) -> enrolment.HubAgent:
        agent = enrolment.authenticate(self._cursor(), name, token)
        if claimed and not agent.claimed:
            raise HTTPError(409, f"agent {name!r} has not claimed its enrolment yet "
                                    "(POST .../enroll first)")
        return agent

    async def _enroll(self, scope: Scope, receive: Receive, name: str) -> Reply:
        token = bearer(scope)
        agent = await self._read(functools.partial(self._auth, claimed=False), name, token)
        doc = json_body(await read_body(scope, receive, 64 * 1024, self.options.body_timeout_s,
                                          self._deadlines),
                        "enrolment claim")
        agent_id, public_key, signature = (doc.get(k) for k in
                                           ("agent_id", "public_key", "signature"))
        if not (isinstance(agent_id, str) and isinstance(public_key, str)
                and isinstance(signature, str) and agent_id):
            raise HTTPError(400, 'enrolment claim must be {"agent_id", "public_key", '
                                    '"signature"} (strings)')
        await asyncio.wrap_future(self.writer.call(
            lambda catalog: enrolment.claim(catalog, agent, token, agent_id, public_key,
                                            signature)))
        return json_reply({"agent": name})

    def _poll_answer(self, name: str, token: str, status: dict[str, Any]) -> dict[str, Any]:
        self._auth(name, token)
        cur = self._cursor()
        current = cur.execute("SELECT coalesce(max(rotation), 0) FROM key_rotation").fetchall()
        rotation = int(current[0][0])
        keys = self.keys.state(rotation, status.get("keys"))
        nonce = status.get("hub_nonce")
        return {"agent": name, "nonce": nonce if isinstance(nonce, str) else None,
                "desired": desired.desired_for(cur, name),
                "capture": desired.capture_for(cur, name), "rotations": keys.records,
                "key_index": keys.key_index, "key_counter": keys.key_counter,
                "rotation": rotation}

    async def _poll(self, scope: Scope, receive: Receive, name: str) -> Reply:
        token = bearer(scope)
        body = await read_body(scope, receive, self.options.max_status_bytes,
                               self.options.body_timeout_s, self._deadlines, "status")
        status = json_body(body, "status")
        answer = await self._read(self._poll_answer, name, token, status)
        self.contacts.seen(name, Contact(datetime.now(UTC), body, answer.pop("key_index"),
                                         answer.pop("key_counter")))
        key = await self._read(self.keys.signing_key, answer.pop("rotation"))
        signed = orjson.dumps(answer)
        signature = base64.b64encode(key.sign(answer_message(signed)))
        return Reply(200, signed, extra=[(ANSWER_SIGNATURE.encode(), signature)])

    def _bundle_path(self, name: str, token: str, sha: str) -> Any:
        self._auth(name, token)
        if not _SHA256.match(sha) or not desired.bundle_allowed(self._cursor(), name, sha):
            raise HTTPError(404, f"no bundle {sha[:16]} for agent {name!r}")
        return self.catalog.objects.require(sha)

    async def _bundle(self, scope: Scope, send: Send, name: str, sha: str) -> None:
        """Stream the bundle, or the byte range asked for (a download resuming)."""
        path = await self._read(self._bundle_path, name, bearer(scope), sha)
        with path.open("rb") as fh:
            size = path.stat().st_size
            span = parse_range(header(scope, b"range"), size)
            headers = [(b"content-type", OCTETS), (b"accept-ranges", b"bytes"),
                       (b"content-length", str(span.end - span.start + 1).encode())]
            if span.partial:
                headers.append((b"content-range",
                                f"bytes {span.start}-{span.end}/{size}".encode()))
            await send({"type": "http.response.start", "status": 206 if span.partial else 200,
                        "headers": headers})
            fh.seek(span.start)
            left = span.end - span.start + 1
            while left > 0:
                chunk = fh.read(min(_CHUNK, left))
                left -= len(chunk)
                await send({"type": "http.response.body", "body": chunk,
                            "more_body": left > 0 and bool(chunk)})
                if not chunk:
                    break

    async def _outcome(self, scope: Scope, receive: Receive, name: str) -> Reply:
        token = bearer(scope)
        await self._read(self._auth, name, token)
        doc = json_body(await read_body(scope, receive, 64 * 1024, self.options.body_timeout_s,
                                          self._deadlines),
                        "outcome")
        outcome = desired.Outcome.from_doc(doc)
        await asyncio.wrap_future(self.writer.call(
            lambda catalog: desired.record_outcome(catalog, name, outcome)))
        return json_reply({"deployment": outcome.deployment, "status": outcome.status})

    async def _telemetry(self, scope: Scope, receive: Receive, name: str) -> Reply:
        token = bearer(scope)
        await self._read(self._auth, name, token)
        body = await read_body(scope, receive, self.options.max_batch_bytes,
                               self.options.body_timeout_s, self._deadlines,
                               "telemetry batch")
        records = await self._read(parse_batch, body, self.options.max_batch_records)
        result = await asyncio.wrap_future(self.writer.telemetry(Batch(name, records)))
        return json_reply({"acked": result.last_seq, "inserted": result.rows})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def parse_batch(body: bytes, max_records: int) -> pa.Table:
    """NDJSON outbox records as the ingest's Arrow table; 400/413 saying what is wrong."""
    if not body.strip():
        raise HTTPError(400, "telemetry batch holds no records")
    try:
        table = pajson.read_json(io.BytesIO(body), parse_options=_PARSE)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        reason = str(exc).splitlines()[0][:200]
        raise HTTPError(400, f"telemetry batch is not NDJSON records: {reason}") from None
    if table.num_rows > max_records:
        raise HTTPError(413, f"telemetry batch of {table.num_rows} records is over the "
                                f"{max_records} record limit")
    seq = table["seq"]
    if seq.null_count or (table.num_rows and pc.min(seq).as_py() < 1):
        raise HTTPError(400, "every telemetry record needs a seq >= 1")
    if pc.count_distinct(seq).as_py() != table.num_rows:
        raise HTTPError(400, "telemetry batch repeats a seq")
    return table.combine_chunks()
