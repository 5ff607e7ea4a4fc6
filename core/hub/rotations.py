"""Key rotations for hub agents: the desktop cannot call them, so each poll answer carries
the rotation records an agent still needs, computed from the keys it says it trusts.

The agent reports the fingerprints of its trusted keys and its own rotation count; the
newest desktop key among them tells how far it is, and the records for the rotations
after that are signed afresh with the agent's next numbers (as `core.keys` does for
push agents enrolled after a rotation).
"""
from __future__ import annotations

import base64
import threading
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.catalog import Catalog
from core.keys import key_at, rotation_record_for
from edge_agent.contract.protocol import key_fingerprint


@dataclass(frozen=True)
class KeyState:
    records: list[str]  # base64 rotation records to apply in order
    key_index: int | None  # the newest desktop rotation whose key the agent trusts
    key_counter: int | None  # rotations the agent has applied


class KeyChain:
    """Fingerprints of the desktop's keys by rotation, read from the key files once."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._lock = threading.Lock()
        self._fingerprints: dict[int, str] = {}
        self._records: dict[tuple[int, int], str] = {}
        self._signing: tuple[int, Ed25519PrivateKey] | None = None

    def signing_key(self, rotation: int) -> Ed25519PrivateKey:
        """The desktop key of `rotation` (the current one), which signs poll answers."""
        with self._lock:
            if self._signing is None or self._signing[0] != rotation:
                self._signing = (rotation, key_at(self.catalog, rotation))
            return self._signing[1]

    def _fingerprint(self, rotation: int) -> str:
        with self._lock:
            if rotation not in self._fingerprints:
                self._fingerprints[rotation] = key_fingerprint(key_at(self.catalog, rotation))
            return self._fingerprints[rotation]

    def _record(self, rotation: int, counter: int) -> str:
        with self._lock:
            if (rotation, counter) not in self._records:
                record = rotation_record_for(self.catalog, rotation, counter)
                self._records[(rotation, counter)] = base64.b64encode(record).decode()
            return self._records[(rotation, counter)]

    def state(self, current: int, keys: Any) -> KeyState:
        """What an agent reporting `keys` ({"rotation", "trusted"}) needs to reach `current`."""
        if not isinstance(keys, dict):
            return KeyState([], None, None)
        trusted, counter = keys.get("trusted"), keys.get("rotation")
        if not isinstance(trusted, list) or type(counter) is not int:
            return KeyState([], None, None)
        known = [r for r in range(current, -1, -1) if self._fingerprint(r) in trusted]
        if not known:  # it trusts none of ours: its installs will say so
            return KeyState([], None, counter)
        index = known[0]
        records = [self._record(r, counter + i) for i, r in enumerate(range(index + 1,
                                                                           current + 1))]
        return KeyState(records, index, counter)
