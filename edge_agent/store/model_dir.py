"""One model's folder: its version folders, the active pointer and state.json."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.contract.files import atomic_write, fsync_dir
from edge_agent.contract.manifest import MAX_VERSION

ACTIVE_FILE = "active"
STATE_FILE = "state.json"
HISTORY_LIMIT = 32
# A version folder being replaced in place (a challenger change): the complete new folder
# waits as V.next, the old one leaves as V.old. Neither name is a version (see recover).
NEXT, OLD = ".next", ".old"


@dataclass
class ModelState:
    """What survives restarts besides the version folders: the highest version ever
    installed (downgrade protection) and the activation history (rollback)."""

    highest_seen: int = 0
    history: list[int] = field(default_factory=list)  # activations, most recent last
    last_good: int | None = None

    @property
    def previous(self) -> int | None:
        return self.history[-2] if len(self.history) >= 2 else None

    def activated(self, version: int) -> None:
        self.history = [v for v in self.history if v != version][-HISTORY_LIMIT + 1 :]
        self.history.append(version)
        self.last_good = version

    def reconcile(self, active: int | None, installed: list[int]) -> None:
        """Repair after a crash between writing the active pointer and this state: the
        pointer is the truth."""
        self.history = [v for v in self.history if v in installed]
        self.highest_seen = max([self.highest_seen, *installed])
        if active not in installed or (self.history and self.history[-1] == active):
            return
        if len(self.history) >= 2 and self.history[-2] == active:
            self.history.pop()  # a rollback had switched the pointer already
        else:
            self.activated(active)  # an activation had switched the pointer already


class ModelDir:
    def __init__(self, models_root: Path, name: str) -> None:
        self.name = name
        self.path = Path(models_root) / name

    def version_path(self, version: int) -> Path:
        return self.path / str(version)

    def versions(self) -> list[int]:
        if not self.path.is_dir():
            return []
        return sorted(
            int(p.name) for p in self.path.iterdir()
            if p.is_dir() and _version_name(p.name)
        )

    def replace_version(self, version: int, staged: Path) -> None:
        """Put the complete, verified folder `staged` in place of version `version`. Two
        renames, so a crash between them leaves V.next and no V: recover() finishes it."""
        final = self.version_path(version)
        nxt, old = final.with_name(final.name + NEXT), final.with_name(final.name + OLD)
        shutil.rmtree(old, ignore_errors=True)
        os.rename(staged, nxt)
        fsync_dir(self.path)
        os.rename(final, old)
        os.rename(nxt, final)
        fsync_dir(self.path)
        shutil.rmtree(old, ignore_errors=True)

    def recover(self) -> None:
        """After a crash inside replace_version: the old folder or the new one, never none."""
        if not self.path.is_dir():
            return
        for path in self.path.iterdir():
            if path.name.endswith(NEXT) and _version_name(path.name[: -len(NEXT)]):
                final = path.with_name(path.name[: -len(NEXT)])
                if final.exists():
                    shutil.rmtree(path, ignore_errors=True)  # the switch never began
                else:
                    os.rename(path, final)  # the old one had left: the new one takes over
                    fsync_dir(self.path)
        for path in self.path.iterdir():
            if path.name.endswith(OLD) and _version_name(path.name[: -len(OLD)]):
                shutil.rmtree(path, ignore_errors=True)

    def read_active(self) -> int | None:
        try:
            text = (self.path / ACTIVE_FILE).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return int(text) if _version_name(text) else None

    def write_active(self, version: int) -> None:
        atomic_write(self.path / ACTIVE_FILE, f"{version}\n".encode())

    def read_state(self) -> ModelState:
        try:
            doc = json.loads((self.path / STATE_FILE).read_bytes())
            return ModelState(
                highest_seen=int(doc["highest_seen"]),
                history=[int(v) for v in doc["history"]],
                last_good=None if doc.get("last_good") is None else int(doc["last_good"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            # Lost state: reconcile() rebuilds highest_seen from the installed folders.
            return ModelState()

    def write_state(self, state: ModelState) -> None:
        doc = {
            "highest_seen": state.highest_seen,
            "previous": state.previous,
            "last_good": state.last_good,
            "history": state.history,
        }
        atomic_write(self.path / STATE_FILE, json.dumps(doc, indent=2).encode() + b"\n")


def _version_name(text: str) -> bool:
    """A folder or pointer naming a version this agent can hold (see MAX_VERSION)."""
    return (text.isascii() and text.isdigit() and not text.startswith("0") and len(text) <= 10
            and int(text) <= MAX_VERSION)
