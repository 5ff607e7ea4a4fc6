"""The agent's trusted key ring: the keys it was enrolled with, changed only by a rotation
record signed by both keys, persisted under DIR/keys so it survives restarts."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from edge_agent.contract.errors import KeyFileError
from edge_agent.contract.protocol import (
    RotationRecord,
    atomic_write,
    key_fingerprint,
    public_key_b64,
    verify_rotation_record,
)
from edge_agent.contract.signing import PublicKey, raw_public_key_from_b64

STATE_FILE = "keyring.json"


class KeyRing:
    """Trusted signing keys plus the rotation counter, all in one file so that a rotation
    is a single atomic write. Retired keys stay listed: they never become trusted again
    (a restart with the old `--trust-key` must not undo a rotation), but bundles already
    installed under them still verify."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        self._trusted: list[str] = []
        self._retired: list[str] = []
        self._rotation = 0
        self._load()

    def _load(self) -> None:
        path = self.root / STATE_FILE
        if not path.exists():
            return
        try:
            doc = json.loads(path.read_bytes())
            rotation, trusted, retired = doc["rotation"], doc["trusted"], doc["retired"]
            for b64 in [*trusted, *retired]:
                raw_public_key_from_b64(b64)
        except (OSError, ValueError, KeyError, TypeError, KeyFileError) as exc:
            raise KeyFileError(f"trusted key file {path} is unreadable: {exc}") from exc
        self._rotation, self._trusted, self._retired = int(rotation), list(trusted), list(retired)

    def _save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        doc = {"rotation": self._rotation, "trusted": self._trusted, "retired": self._retired}
        atomic_write(self.root / STATE_FILE, json.dumps(doc, indent=2).encode() + b"\n")

    @property
    def rotation(self) -> int:
        return self._rotation

    def trusted(self) -> list[bytes]:
        """The trusted keys, raw (contract/signing.py: verifying needs no cryptography)."""
        return [raw_public_key_from_b64(k) for k in self._trusted]

    def known(self) -> list[bytes]:
        """Trusted and retired keys (raw): what installed bundles may have been signed with.
        Raw, so that verifying them at start needs no cryptography (contract/signing.py)."""
        return [raw_public_key_from_b64(k) for k in [*self._trusted, *self._retired]]

    def fingerprints(self) -> list[str]:
        return [key_fingerprint(raw_public_key_from_b64(k)) for k in self._trusted]

    def trust(self, key: PublicKey) -> bool:
        """Enrol a key. False (and nothing changes) if a rotation retired it."""
        b64 = public_key_b64(key)
        with self._lock:
            if b64 in self._retired:
                return False
            if b64 not in self._trusted:
                self._trusted.append(b64)
                self._save()
            return True

    def rotate(self, record: bytes) -> RotationRecord:
        """Apply a rotation record: exactly rotation n+1, old key trusted, signed by both."""
        with self._lock:
            rec = verify_rotation_record(
                record, current_rotation=self._rotation, trusted=self.trusted()
            )
            old, new = public_key_b64(rec.old_key), public_key_b64(rec.new_key)
            self._trusted = [k for k in self._trusted if k != old]
            if new not in self._trusted:
                self._trusted.append(new)
            self._retired = [k for k in self._retired if k != new] + [old]
            self._rotation = rec.rotation
            self._save()
            return rec
