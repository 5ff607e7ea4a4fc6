"""The desktop's bundle-signing key: made on first use, shown, rotated.

The private key lives in ``$OUTPOST_HOME/keys/signing.key`` (mode 0600). A
rotation writes the new key beside it first, records the rotation (signed by
both keys) in the catalog, then swaps the files; a crash in between is finished
on the next load, so the key on disk always matches the catalog's last rotation.
Sending rotation records to agents is :mod:`core.fleet.rotation`'s job.
"""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.audit import record_event
from core.catalog import Catalog
from core.errors import OutpostError, StorageError
from edge_agent.contract.files import fsync_dir
from edge_agent.contract.protocol import (
    KeyFileError,
    generate_signing_key,
    key_fingerprint,
    load_private_key,
    make_rotation_record,
    public_key_b64,
    save_private_key,
    write_public_key,
)


@dataclass(frozen=True)
class KeyInfo:
    fingerprint: str
    public_key: str  # base64 of the raw 32 bytes
    rotation: int
    path: Path


@dataclass(frozen=True)
class Rotation:
    rotation: int
    old_fingerprint: str
    new_fingerprint: str
    record: bytes


def _paths(catalog: Catalog) -> tuple[Path, Path]:
    keys = catalog.settings.keys_dir
    return keys / "signing.key", keys / "signing.next.key"


def _ensure_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o700)
    except OSError as exc:
        raise StorageError(f"cannot create key folder {path}: {exc.strerror}") from exc


def _load(path: Path) -> Ed25519PrivateKey:
    try:
        return load_private_key(path)
    except KeyFileError as exc:
        raise OutpostError(f"signing key: {exc}") from exc


def current_rotation(catalog: Catalog) -> int:
    row = catalog.cursor().execute("SELECT max(rotation) FROM key_rotation").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _last_new_key(catalog: Catalog) -> str | None:
    row = catalog.cursor().execute(
        "SELECT new_key FROM key_rotation ORDER BY rotation DESC LIMIT 1").fetchone()
    return str(row[0]) if row else None


def signing_key(catalog: Catalog) -> Ed25519PrivateKey:
    """The current signing key, created on first use."""
    current, pending = _paths(catalog)
    expected = _last_new_key(catalog)
    if pending.is_file():
        # A rotation stopped between the catalog commit and the file swap: finish it,
        # or drop the half-made key if the catalog never recorded it.
        if expected is not None and public_key_b64(_load(pending)) == expected:
            os.replace(pending, current)
        else:
            pending.unlink()
    if not current.is_file():
        if expected is not None:
            raise OutpostError(f"signing key {current} is missing but the catalog has rotated "
                               "keys: restore the keys folder from a backup")
        _ensure_dir(current.parent)
        _create_first_key(current)
    return _load(current)


def _create_first_key(current: Path) -> None:
    """Two callers making the first key at once (the GUI and a CLI, or two enrolments
    in threads) must end with one key, or an agent trusts a key that is then overwritten:
    write it aside, then link it into place, which fails for whoever comes second."""
    draft = save_private_key(generate_signing_key(),
                             current.with_name(f".{current.name}.{uuid.uuid4().hex}"))
    try:
        os.link(draft, current)
        fsync_dir(current.parent)
    except FileExistsError:
        pass  # the other caller's key won; use it
    finally:
        draft.unlink()


def key_info(catalog: Catalog) -> KeyInfo:
    key = signing_key(catalog)
    path, _ = _paths(catalog)
    return KeyInfo(key_fingerprint(key), public_key_b64(key), current_rotation(catalog), path)


def write_public_key_file(catalog: Catalog, out: Path) -> Path:
    """The file `outpost-agent serve --trust-key FILE` reads."""
    try:
        return write_public_key(signing_key(catalog).public_key(), out)
    except OSError as exc:
        raise StorageError(f"cannot write {out}: {exc.strerror}") from exc


def rotate_signing_key(catalog: Catalog) -> Rotation:
    """Make a new key and the record (signed by old and new) that moves agents onto it."""
    old = signing_key(catalog)
    current, pending = _paths(catalog)
    new = generate_signing_key()
    n = current_rotation(catalog) + 1
    record = make_rotation_record(old, new, n)
    save_private_key(new, pending)
    # Old keys are kept: records for agents that missed this rotation are signed with them.
    save_private_key(old, current.with_name(f"signing.{n - 1}.key"))
    with catalog.transaction() as cur:
        cur.execute(
            "INSERT INTO key_rotation (rotation, old_key, new_key, record) VALUES (?, ?, ?, ?)",
            [n, public_key_b64(old), public_key_b64(new), record])
        record_event(cur, "key_rotation",
                     detail={"rotation": n, "old_key": key_fingerprint(old),
                             "new_key": key_fingerprint(new)})
    os.replace(pending, current)
    return Rotation(n, key_fingerprint(old), key_fingerprint(new), record)


def key_at(catalog: Catalog, rotation: int) -> Ed25519PrivateKey:
    """The signing key that was current after `rotation` (0 = the first key)."""
    current = current_rotation(catalog)
    if rotation == current:
        return signing_key(catalog)
    path = _paths(catalog)[0].with_name(f"signing.{rotation}.key")
    if not 0 <= rotation < current or not path.is_file():
        raise OutpostError(f"signing key of rotation {rotation} is not in {path.parent}")
    return _load(path)


def rotation_record_for(catalog: Catalog, rotation: int, agent_counter: int) -> bytes:
    """The record moving an agent from key `rotation - 1` to key `rotation`.

    Agents count the rotations they have applied themselves; one enrolled after a
    desktop rotation starts at 0, so the record is signed afresh with the agent's
    next number rather than the desktop's."""
    return make_rotation_record(key_at(catalog, rotation - 1), key_at(catalog, rotation),
                                agent_counter + 1)
