"""Secrets at rest: `$OUTPOST_HOME` 0700, the catalog and key files 0600, and agent tokens in
a 0600 file beside the catalog instead of a table any SQL the user runs could read."""
from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

from core.config import Settings
from core.errors import StorageError
from edge_agent.contract.files import atomic_write

_LOCK = threading.Lock()


def lock_down(settings: Settings) -> None:
    """Fix the modes of an existing home: owner-only folder, catalog and private keys."""
    _chmod(settings.home, 0o700)
    for path in settings.home.glob(f"{settings.catalog_path.name}*"):
        _chmod(path, 0o600)
    if settings.keys_dir.is_dir():
        for path in [settings.keys_dir, *settings.keys_dir.rglob("*")]:
            if path.is_dir():
                _chmod(path, 0o700)
            elif path.suffix == ".key" or path.name == "secrets.json":
                _chmod(path, 0o600)
    if settings.secrets_path.exists():
        _chmod(settings.secrets_path, 0o600)


def _chmod(path: Path, mode: int) -> None:
    try:
        if stat.S_IMODE(path.stat().st_mode) != mode:
            os.chmod(path, mode)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise StorageError(f"cannot restrict {path} to mode {mode:o}: {exc.strerror}") from exc


def _read(settings: Settings) -> dict[str, str]:
    try:
        doc = json.loads(settings.secrets_path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise StorageError(f"{settings.secrets_path} is unreadable: {exc}") from exc
    tokens = doc.get("agent_tokens") if isinstance(doc, dict) else None
    return {str(k): str(v) for k, v in tokens.items()} if isinstance(tokens, dict) else {}


def _write(settings: Settings, tokens: dict[str, str]) -> None:
    data = json.dumps({"agent_tokens": tokens}, indent=2, sort_keys=True).encode() + b"\n"
    atomic_write(settings.secrets_path, data, mode=0o600)


def agent_token(settings: Settings, name: str) -> str:
    with _LOCK:
        return _read(settings).get(name, "")


def set_agent_token(settings: Settings, name: str, token: str | None) -> None:
    """Store (or, with None, forget) an agent's management token."""
    with _LOCK:
        tokens = _read(settings)
        if token is None:
            if tokens.pop(name, None) is None:
                return
        else:
            tokens[name] = token
        _write(settings, tokens)


def move_tokens_out(settings: Settings, found: dict[str, str]) -> None:
    """Add tokens still held in the catalog (an older catalog) to the secrets file."""
    if not found:
        return
    with _LOCK:
        tokens = _read(settings)
        tokens.update(found)
        _write(settings, tokens)
