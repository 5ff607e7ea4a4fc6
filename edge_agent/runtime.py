"""Assembling a running agent: store, telemetry, metrics, app, and uvicorn around them.

uvicorn with httptools and uvloop is the ASGI server: the fastest HTTP/1.1
parser and event loop available to Python, and the conventional server for
ASGI apps. The socket is bound before anything else so that "port in use" is
one line and exit 1, not a traceback after models have loaded.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.contract.http_limits import Arrivals, ConnectionLimits, limited_protocol
from edge_agent.contract.tls import short
from edge_agent.store.keys import KeyRing

log = logging.getLogger("edge_agent")


@dataclass(frozen=True)
class ServeOptions:
    agent_dir: Path
    token: str | None
    keyring: KeyRing
    inbox: Path | None = None
    max_body_bytes: int = 16 * 1024 * 1024
    body_timeout_s: float = 10.0
    max_bundle_bytes: int = 512 * 1024 * 1024
    telemetry_max_bytes: int = 64 * 1024 * 1024
    window_s: float = 60.0
    flush_s: float = 0.25
    batch_max: int = 16
    batch_delay_us: int = 0
    shadow_timeout_ms: float = 500.0  # longest challenger call in shadow
    shadow_queue: int = 256  # shadow jobs waiting; more are dropped and counted
    hub: Any = None  # edge_agent.hub.settings.HubSettings: device-initiated mode
    connections: ConnectionLimits = ConnectionLimits()
    feedback_token: str | None = None  # may only post feedback (a label-entry tablet)
    capture_max_bytes: int = 16 * 1024 * 1024
    insecure_http: bool = False  # plain HTTP behind a TLS-terminating proxy


def build_app(options: ServeOptions) -> Any:
    """The ASGI app over an opened store; the telemetry writer is already running."""
    from edge_agent.serving.management import Management
    from edge_agent.serving.metrics import AgentMetrics
    from edge_agent.serving.server import AgentApp, Limits
    from edge_agent.serving.serving import ServedCache
    from edge_agent.serving.shadow import Shadow
    from edge_agent.store.boot import next_boot
    from edge_agent.store.events import AgentEventLog
    from edge_agent.store.identity import load_or_create_identity, load_or_create_tls
    from edge_agent.store.store import ModelStore
    from edge_agent.telemetry.capture import Capturer
    from edge_agent.telemetry.ids import PredictionIds
    from edge_agent.telemetry.outbox import Outbox
    from edge_agent.telemetry.recorder import Recorder

    identity = load_or_create_identity(options.agent_dir)
    tls_proof = None if options.insecure_http else \
        load_or_create_tls(options.agent_dir, identity)[1]
    ids = PredictionIds(identity.agent_id, next_boot(options.agent_dir))
    capturer = Capturer(options.agent_dir, ids.prefix, options.window_s)
    outbox = Outbox(options.agent_dir / "telemetry.sqlite", options.telemetry_max_bytes,
                    options.capture_max_bytes)
    store = ModelStore(options.agent_dir, options.keyring, options.max_bundle_bytes,
                       on_event=AgentEventLog(identity, outbox))
    store.open()
    capturer.forget_unserved(store.names())
    metrics = AgentMetrics(outbox.stats)
    for status in store.models():
        if status.degraded:
            metrics.load_failed(status.name)
    recorder = Recorder(outbox, window_s=options.window_s, flush_s=options.flush_s,
                        on_flush=metrics.observe, capturer=capturer)
    metrics.track_backpressure(recorder.backpressure)
    recorder.start()
    cache = ServedCache(store)
    cache.warm()
    management = Management(store, cache, outbox, identity, metrics, options.token,
                            options.agent_dir, max_bundle_bytes=options.max_bundle_bytes,
                            body_timeout_s=options.body_timeout_s, cut_windows=recorder.cut,
                            feedback_token=options.feedback_token, capturer=capturer,
                            tls_proof=tls_proof)
    limits = Limits(max_body_bytes=options.max_body_bytes,
                    body_timeout_s=options.body_timeout_s, batch_max=options.batch_max,
                    batch_delay_s=options.batch_delay_us / 1e6)
    shadow = Shadow(recorder.add_record, window_s=options.window_s,
                    queue_size=options.shadow_queue, timeout_s=options.shadow_timeout_ms / 1e3)
    shadow.start()
    return AgentApp(cache, recorder, metrics, management, limits, ids, shadow, Arrivals())


def serve(sock: socket.socket, options: ServeOptions) -> int:
    from edge_agent.contract.uvicorn_server import Config, Server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s", stream=sys.stderr)
    if options.token is None:
        log.warning("no management token (run `outpost-agent init` or pass --token-file): "
                    "management routes are disabled")
    app = build_app(options)
    ssl_context = _ssl_context(options)
    watcher = _start_inbox(options, app)
    hub = _start_hub(options, app)
    config = Config(app, loop="uvloop" if sys.platform != "win32" else "asyncio",
                   http=limited_protocol(options.connections, app.arrivals),
                   lifespan="on",
                   access_log=False, log_level="warning", timeout_graceful_shutdown=30,
                   timeout_keep_alive=30, proxy_headers=False, server_header=False,
                   date_header=False, ssl_context_factory=ssl_context)
    server = Server(config)
    # uvicorn re-raises the signal that stopped it once it is done; by then the agent has
    # drained and flushed, so the re-raised signal only has to end the process cleanly.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    host, port = sock.getsockname()[:2]
    if options.insecure_http:
        log.warning("--insecure-http: serving plain HTTP on %s:%d; only behind a "
                    "TLS-terminating proxy (tokens and bundles travel in clear)", host, port)
    else:
        log.info("serving on https://%s:%d (TLS 1.3, certificate key %s)", host, port,
                 short(app.management.tls_proof["spki_sha256"]))
    try:
        server.run(sockets=[sock])
    finally:
        if watcher is not None:
            watcher.stop()
        if hub is not None:
            hub.stop()
    log.info("stopped")
    return 0


def _ssl_context(options: ServeOptions) -> Any:
    """uvicorn's ssl_context_factory: the agent's own TLS 1.3 context, or None."""
    if options.insecure_http:
        return None
    from edge_agent.contract.tls import load_or_create_cert, server_context

    context = server_context(load_or_create_cert(options.agent_dir, "outpost-agent"))
    return lambda _config, _default: context


def _start_inbox(options: ServeOptions, app: Any) -> Any:
    if options.inbox is None:
        return None
    from edge_agent.store.inbox import InboxWatcher

    watcher = InboxWatcher(options.inbox, app.management.store)
    watcher.start()
    return watcher


def _start_hub(options: ServeOptions, app: Any) -> Any:
    if options.hub is None:
        return None
    from edge_agent.hub.client import start_hub_client

    return start_hub_client(options.hub, app)
