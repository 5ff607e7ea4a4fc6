"""Carrying out the hub's desired state on the device: key rotations, deployments and
rollbacks, each through the model store with every check an upload gets.

Each deployment is carried out once. Its outcome is saved in DIR/hub/state.json before
it is reported, so a crash or a hub that is away between the two repeats only the
report, never the install or the rollback (a rollback done twice would undo itself).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import orjson

from edge_agent.contract.errors import AgentError
from edge_agent.contract.files import atomic_write
from edge_agent.contract.hub_protocol import Enrolment, agent_path, token_sha256
from edge_agent.hub.transport import HubRefused, HubTransport, HubUnavailable

log = logging.getLogger(__name__)
STATE_FILE = "state.json"


class DesiredState:
    def __init__(self, enrolment: Enrolment, hub_dir: Path, store: Any, cache: Any) -> None:
        self.agent = enrolment.agent
        # Deployment ids are a desktop's own numbering: state kept under another
        # enrolment (another desktop, a replaced token) must not mark new ones as done.
        self.enrolment_id = token_sha256(enrolment.token)[:16]
        self.dir = hub_dir
        self.store = store
        self.cache = cache
        self._lock = threading.Lock()
        self._handled: dict[str, dict[str, Any]] = self._load()

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            doc = orjson.loads((self.dir / STATE_FILE).read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, orjson.JSONDecodeError) as exc:
            log.warning("hub state %s unreadable (%s): starting afresh", self.dir, exc)
            return {}
        if not isinstance(doc, dict) or doc.get("enrolment") != self.enrolment_id:
            return {}
        handled = doc.get("handled")
        return handled if isinstance(handled, dict) else {}

    def _save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.dir / STATE_FILE, orjson.dumps(
            {"enrolment": self.enrolment_id, "handled": self._handled}))

    def apply(self, transport: HubTransport, items: list[dict[str, Any]]) -> None:
        """Carry out each desired item not handled yet, and report what is unreported.
        HubUnavailable propagates: the same items come back with the next poll."""
        with self._lock:
            for item in items:
                model, deployment = item.get("model"), item.get("deployment")
                if not isinstance(model, str) or type(deployment) is not int:
                    log.warning("hub sent a malformed desired item: %r", item)
                    continue
                done = self._handled.get(model)
                if done is None or done.get("deployment") != deployment:
                    outcome = self._carry_out(transport, item, done)
                    done = {"deployment": deployment, "outcome": outcome, "reported": False,
                            "bundle": _bundle_sha(item) if outcome["error"] is None else None}
                    self._handled[model] = done
                    self._save()
                if not done["reported"]:
                    self._report(transport, model, deployment, done["outcome"])
                    done["reported"] = True
                    self._save()

    def _report(self, transport: HubTransport, model: str, deployment: int,
                outcome: dict[str, Any]) -> None:
        body = orjson.dumps({"deployment": deployment, "model": model, **outcome})
        try:
            transport.call("POST", agent_path(self.agent, "outcome"), body)
        except HubRefused as exc:  # e.g. the deployment was deleted: nothing to tell
            log.warning("hub refused the outcome of deployment %d: %s", deployment, exc)

    def _active(self, model: str) -> int | None:
        for status in self.store.models():
            if status.name == model:
                return int(status.active) if status.active is not None else None
        return None

    def _carry_out(self, transport: HubTransport, item: dict[str, Any],
                   before: dict[str, Any] | None) -> dict[str, Any]:
        model, version = str(item["model"]), item.get("version")
        try:
            if item.get("action") == "rollback":
                now = self.store.rollback(model)
                self.cache.warm()
                log.info("hub: rolled %s back to version %d", model, now)
                return {"status": "active", "version": now, "error": None}
            # The active version from the same bundle: nothing to fetch. Another bundle of
            # it (a challenger added, replaced or removed) goes to the store, which swaps
            # the challenger or refuses another champion.
            if version == self._active(model) and before is not None \
                    and before.get("bundle") == _bundle_sha(item):
                return {"status": "active", "version": version, "error": None}
            return self._install(transport, item)
        except HubUnavailable:
            raise
        except AgentError as exc:
            log.warning("hub deployment %s of %s failed: %s", item.get("deployment"), model,
                        exc.message)
            return {"status": "failed", "version": None, "error": exc.message}

    def _install(self, transport: HubTransport, item: dict[str, Any]) -> dict[str, Any]:
        bundle = item.get("bundle")
        if not isinstance(bundle, dict) or not isinstance(bundle.get("sha256"), str):
            return {"status": "failed", "version": None,
                    "error": f"the hub named no bundle for {item['model']}@{item['version']}"}
        path = transport.download(str(bundle["path"]), bundle["sha256"], self.dir / "downloads")
        try:
            result = self.store.install(path, activate=True,
                                        allow_rollback=bool(item.get("allow_downgrade")))
            self.cache.warm()
        finally:
            path.unlink(missing_ok=True)
        log.info("hub: installed %s version %d (%s)", result.model, result.version,
                 result.status)
        return {"status": result.status, "version": result.version, "error": None}


def _bundle_sha(item: dict[str, Any]) -> str | None:
    bundle = item.get("bundle")
    sha = bundle.get("sha256") if isinstance(bundle, dict) else None
    return sha if isinstance(sha, str) else None
