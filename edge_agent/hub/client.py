"""Device-initiated mode: the agent calls the desktop's hub instead of being called.

`outpost-agent serve --enroll FILE` (first start) or `--hub [URL]` (later starts) runs two
threads beside the server: one polls the desired state (every `poll_s`, with jitter so a
fleet started together does not call in step) and carries it out; one pushes the
telemetry outbox. When the hub is away both back off exponentially up to
`backoff_max_s`, and pick up where they were when it returns.
"""

from __future__ import annotations

import base64
import logging
import random
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from edge_agent.contract.hub_protocol import agent_path, claim_message
from edge_agent.hub.answers import verify_answer
from edge_agent.hub.capture import apply_capture
from edge_agent.hub.deploy import DesiredState
from edge_agent.hub.settings import HUB_DIR, HubSettings
from edge_agent.hub.telemetry import TelemetryPusher
from edge_agent.hub.transport import HubRefused, HubTransport, HubUnavailable
from edge_agent.telemetry.capture import Capturer

log = logging.getLogger(__name__)


class Backoff:
    """Waits that double after each failure (from `first_s` up to `max_s`), randomised."""

    def __init__(self, first_s: float, max_s: float) -> None:
        self.first_s, self.max_s, self.failures = first_s, max_s, 0

    def failed(self) -> float:
        self.failures += 1
        return min(self.max_s, self.first_s * 2 ** (self.failures - 1)) * random.uniform(0.5, 1)

    def reset(self) -> bool:
        """Back to normal; True if there had been failures."""
        had, self.failures = self.failures > 0, 0
        return had


class HubClient:
    def __init__(self, settings: HubSettings, *, agent_dir: Path, store: Any, cache: Any,
                 outbox: Any, identity: Any, status: Callable[[], dict[str, Any]],
                 cut_windows: Callable[[], object] | None = None,
                 capturer: Capturer | None = None) -> None:
        self.settings = settings
        self.capturer = capturer
        self.enrolment = settings.enrolment
        self.store = store
        self.identity = identity
        self.status = status
        self.desired = DesiredState(self.enrolment, agent_dir / HUB_DIR, store, cache)
        self.pusher = TelemetryPusher(self.enrolment.agent, outbox,
                                      batch_records=settings.batch_records,
                                      batch_bytes=settings.batch_bytes,
                                      cut_windows=cut_windows)
        self._stop = threading.Event()
        self._claimed = False
        self._threads = [
            threading.Thread(target=self._loop, args=(self.poll_once, settings.poll_s),
                             name="hub-poll", daemon=True),
            threading.Thread(target=self._loop, args=(self.push_once, settings.push_s),
                             name="hub-push", daemon=True)]

    def start(self) -> None:
        log.info("hub mode: agent %s calls %s", self.enrolment.agent, self.enrolment.hub_url)
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)

    def _transport(self) -> HubTransport:
        return HubTransport(self.enrolment.hub_url, self.enrolment.token,
                            self.settings.timeout_s, self.enrolment.hub_tls_spki)

    def _wait(self, seconds: float) -> bool:
        """Sleep unless stopped; True when stopping."""
        return self._stop.wait(seconds)

    def _loop(self, step: Callable[[HubTransport], bool], interval: float) -> None:
        transport = self._transport()
        backoff = Backoff(min(1.0, interval), self.settings.backoff_max_s)
        jitter = self.settings.jitter
        try:
            while not self._stop.is_set():
                try:
                    busy = step(transport)
                except (HubUnavailable, HubRefused) as exc:
                    if backoff.failures == 0 or isinstance(exc, HubRefused):
                        log.warning("%s; retrying with backoff", exc.message)
                    delay = backoff.failed()
                except Exception:  # noqa: BLE001 -- a bug here must not end hub mode
                    log.exception("hub mode: unexpected error; retrying with backoff")
                    delay = backoff.failed()
                else:
                    if backoff.reset():
                        log.info("hub %s reachable again", self.enrolment.hub_url)
                    delay = 0.0 if busy else interval * random.uniform(1 - jitter, 1 + jitter)
                if delay and self._wait(delay):
                    break
        finally:
            transport.close()

    def _claim(self, transport: HubTransport) -> None:
        proof = self.identity.sign(claim_message(self.enrolment.agent, self.enrolment.token))
        body = orjson.dumps({"agent_id": self.identity.agent_id,
                             "public_key": self.identity.public_key,
                             "signature": base64.b64encode(proof).decode()})
        transport.call("POST", agent_path(self.enrolment.agent, "enroll"), body)
        self._claimed = True

    def status_document(self) -> dict[str, Any]:
        keys = self.store.keys
        return {**self.status(), "keys": {"rotation": keys.rotation,
                                          "trusted": keys.fingerprints()},
                "hub": {"poll_s": self.settings.poll_s, "push_s": self.settings.push_s}}

    def poll_once(self, transport: HubTransport) -> bool:
        """Claim the enrolment if not yet done, poll, and carry out what the hub wants."""
        if not self._claimed:
            self._claim(transport)
        nonce = secrets.token_hex(16)
        try:
            reply = transport.call("POST", agent_path(self.enrolment.agent, "poll"),
                                   orjson.dumps({**self.status_document(), "hub_nonce": nonce}))
        except HubRefused as exc:
            if exc.status == 409:
                self._claimed = False
            raise
        answer = verify_answer(reply, self.enrolment.agent, nonce, self.store)
        self.desired.apply(transport, list(answer.get("desired") or []))
        if self.capturer is not None:
            apply_capture(self.capturer, answer.get("capture"),
                          self.store.names())
        return False

    def push_once(self, transport: HubTransport) -> bool:
        """One telemetry batch; True if the outbox holds more right now."""
        if not self._claimed:
            return False  # the poller claims first; posting before would be refused
        result = self.pusher.push(transport)
        return result is not None and result.more


def start_hub_client(settings: HubSettings, app: Any) -> HubClient:
    """Run hub mode beside a built agent app (`edge_agent.runtime.build_app`)."""
    m = app.management
    client = HubClient(settings, agent_dir=m.agent_dir, store=m.store, cache=m.cache,
                       outbox=m.outbox, identity=m.identity, status=m.status,
                       cut_windows=m.cut_windows, capturer=m.capturer)
    client.start()
    return client
