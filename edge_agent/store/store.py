"""The model store under --dir: verified installs, an active pointer switched atomically,
rollback, delete, and a start-up check that falls back to the last good version."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edge_agent.contract.bundle_checks import (
    DEFAULT_MAX_BUNDLE_BYTES,
    BundleLimits,
    VerifiedBundle,
    extract_bundle,
    verify_bundle,
)
from edge_agent.contract.errors import (
    AgentError,
    DowngradeRefused,
    ModelNotFound,
    ModelUnavailable,
    VersionConflict,
)
from edge_agent.contract.files import fsync_dir
from edge_agent.contract.manifest import MANIFEST, Manifest, check_model_name
from edge_agent.contract.protocol import RotationRecord
from edge_agent.contract.status import InstallStatus, ServingState
from edge_agent.store.keys import KeyRing
from edge_agent.store.loaded_model import LoadedModel, load_version, with_challenger_of
from edge_agent.store.memory import release_memory
from edge_agent.store.model_dir import ModelDir, ModelState

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class InstallResult:
    model: str
    version: int
    status: InstallStatus
    canary: str = "passed"
    previous: int | None = None  # the version that was active before
    already_installed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "status": self.status,
                "canary": self.canary}


@dataclass(frozen=True)
class ModelStatus:
    name: str
    active: int | None
    versions: list[int]
    highest_seen: int
    state: ServingState
    degraded: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "active": self.active, "versions": self.versions,
                "highest_seen": self.highest_seen, "state": self.state,
                "degraded": self.degraded}


@dataclass
class _Entry:
    dir: ModelDir
    state: ModelState
    versions: list[int] = field(default_factory=list)  # installed version folders
    pointer: int | None = None  # what the active file says
    active: LoadedModel | None = None  # what is served: the pointer, or a fallback
    loaded: dict[int, LoadedModel] = field(default_factory=dict)
    degraded: str | None = None


class ModelStore:
    def __init__(
        self,
        root: Path,
        trusted_keys: KeyRing,
        max_bundle_bytes: int = DEFAULT_MAX_BUNDLE_BYTES,
        *,
        limits: BundleLimits | None = None,
        session_threads: int = 1,
        on_event: Callable[..., Any] | None = None,
    ) -> None:
        self.root = Path(root)
        # Called (under the store's lock, so in the order changes happen) with each
        # install, activation and rollback: edge_agent.store.events.AgentEventLog.
        self._on_event = on_event
        self.keys = trusted_keys
        # One knob bounds an install's peak memory (about 2.2x model.onnx, see
        # load_version): no member, the model included, may unpack larger than the bundle cap.
        self.limits = limits or BundleLimits(max_bundle_bytes=max_bundle_bytes,
                                             max_member_bytes=max_bundle_bytes)
        self.session_threads = session_threads
        self._models = self.root / "models"
        self._staging = self.root / "staging"
        self._lock = threading.RLock()  # every change: install, activate, rollback, delete
        self._load_lock = threading.Lock()  # lazy loads of non-active versions
        self._entries: dict[str, _Entry] = {}

    # --- start-up -------------------------------------------------------------------

    def open(self) -> None:
        """Load every model's active version, verifying its checksums; a corrupt one is
        replaced in memory by the last good version and reported as degraded."""
        with self._lock:
            self._models.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(self._staging, ignore_errors=True)  # half-done installs
            self._staging.mkdir(parents=True)
            entries = {}
            for path in sorted(self._models.iterdir()):
                if path.is_dir() and _valid_name(path.name):
                    entries[path.name] = self._open_model(ModelDir(self._models, path.name))
            self._entries = entries

    def _open_model(self, mdir: ModelDir) -> _Entry:
        mdir.recover()
        installed = mdir.versions()
        state = mdir.read_state()
        pointer = mdir.read_active()
        state.reconcile(pointer, installed)
        entry = _Entry(mdir, state, installed, pointer)
        if pointer is not None:
            try:
                entry.active = self._load(mdir, pointer)
            except AgentError as exc:
                entry.degraded = f"version {pointer} failed verification: {exc}"
                entry.active = self._fallback(entry, pointer, installed)
                serving = entry.active.version if entry.active else None
                entry.degraded += f"; serving version {serving}" if serving else "; none loads"
                log.error("model %s degraded: %s", mdir.name, entry.degraded)
        if entry.active is not None:
            entry.loaded[entry.active.version] = entry.active
        mdir.write_state(state)
        return entry

    def _fallback(self, entry: _Entry, bad: int, installed: list[int]) -> LoadedModel | None:
        order = [*reversed(entry.state.history), *sorted(installed, reverse=True)]
        tried = {bad}
        for version in order:
            if version in tried or version not in installed:
                continue
            tried.add(version)
            try:
                return self._load(entry.dir, version)
            except AgentError as exc:
                log.error("model %s version %d does not load: %s", entry.dir.name, version, exc)
        return None

    def _load(self, mdir: ModelDir, version: int, *, canary: bool = False) -> LoadedModel:
        return load_version(mdir.version_path(version), mdir.name, version, self.keys.known(),
                            threads=self.session_threads, canary=canary)

    # --- reading (no lock on the hot path: entries are replaced, never half-updated) --

    def get(self, name: str, version: int | None = None) -> LoadedModel:
        entry = self._entries.get(name)
        if entry is None:
            raise ModelNotFound(f"model {name!r} is not installed")
        if version is None:
            if entry.active is not None:
                return entry.active
            if entry.pointer is not None:
                raise ModelUnavailable(f"model {name!r}: {entry.degraded}")
            raise ModelNotFound(f"model {name!r} has no active version")
        loaded = entry.loaded.get(version)
        if loaded is not None:
            return loaded
        # Not under self._lock: an install may hold it for seconds. Version folders never
        # change once they exist; a concurrent delete makes this load fail, which is right.
        with self._load_lock:
            return self._loaded(entry, version)

    def _loaded(self, entry: _Entry, version: int) -> LoadedModel:
        loaded = entry.loaded.get(version)
        if loaded is None:
            if version not in entry.versions:
                raise ModelNotFound(f"model {entry.dir.name!r} has no version {version}")
            loaded = self._load(entry.dir, version)
            entry.loaded[version] = loaded
        return loaded

    def names(self) -> set[str]:
        """The installed models' names."""
        return set(self._entries)

    def models(self) -> list[ModelStatus]:
        out = []
        for name, entry in sorted(self._entries.items()):
            state: ServingState
            if entry.active is None:
                state = "unavailable" if entry.pointer is not None else "inactive"
            else:
                state = "degraded" if entry.degraded else "ready"
            out.append(ModelStatus(
                name, entry.active.version if entry.active else None, list(entry.versions),
                entry.state.highest_seen, state, entry.degraded,
            ))
        return out

    def upload_path(self) -> Path:
        """A fresh path on the store's file system to stream an uploaded bundle into."""
        self._staging.mkdir(parents=True, exist_ok=True)
        return self._staging / f"upload-{uuid.uuid4().hex}.outpost"

    # --- changing -------------------------------------------------------------------

    def install(
        self, bundle_path: Path, *, activate: bool = True, allow_rollback: bool = False
    ) -> InstallResult:
        """Verify, unpack to a new version folder, load, run the canary, then (optionally)
        switch the active pointer. Any failure leaves the store as it was."""
        try:
            return self._install(bundle_path, activate, allow_rollback)
        finally:
            release_memory()  # the bundle and the graph build are garbage now

    def _install(self, bundle_path: Path, activate: bool, allow_rollback: bool
                 ) -> InstallResult:
        with self._lock:
            bundle = verify_bundle(Path(bundle_path), self.keys.trusted(), self.limits)
            name, version = bundle.manifest.model, bundle.manifest.version
            entry = self._entries.get(name) or _Entry(
                ModelDir(self._models, name), ModelState()
            )
            previous = entry.active.version if entry.active else None
            going_back = activate and previous != version
            if version < entry.state.highest_seen and not allow_rollback and (
                    going_back or version not in entry.versions):
                # Also for a version still installed: re-delivering an old bundle must
                # not bring it back; only an explicit rollback goes back.
                raise DowngradeRefused(
                    f"model {name} version {version} is older than version "
                    f"{entry.state.highest_seen} seen before; refused (install it as a rollback)"
                )
            if version in entry.versions:
                return self._reinstall(entry, bundle, activate, previous)
            loaded = self._unpack_and_load(entry, bundle)
            entry.versions = sorted({*entry.versions, version})
            self._entries[name] = entry
            entry.state.highest_seen = max(entry.state.highest_seen, version)
            entry.dir.write_state(entry.state)
            entry.loaded[version] = loaded
            if self._on_event is not None:
                self._event("install", name, version, sha256=_file_sha256(bundle.path))
            if activate:
                self._switch(entry, loaded)
                self._event("activate", name, version, previous=previous)
            log.info("installed model %s version %d (active: %s)", name, version, activate)
            return InstallResult(name, version, "active" if activate else "installed",
                                 previous=previous)

    def _reinstall(self, entry: _Entry, bundle: VerifiedBundle, activate: bool,
                   previous: int | None) -> InstallResult:
        """The same version again: a retried upload, or the same champion with another
        challenger (added, replaced or removed), swapped in without a reload. A bundle
        whose champion differs from the installed one is refused."""
        name, version = bundle.manifest.model, bundle.manifest.version
        installed = _installed_manifest(entry, version)
        if installed is None or installed.champion_part() != bundle.manifest.champion_part():
            raise VersionConflict(
                f"model {name} version {version} is already installed with different content"
            )
        swapped = installed.challenger_part() != bundle.manifest.challenger_part()
        if swapped:
            self._swap_challenger(entry, bundle)
        if activate and previous != version:
            self._switch(entry, self._loaded(entry, version))
            self._event("activate", name, version, previous=previous)
        active = entry.active is not None and entry.active.version == version
        status: InstallStatus = "active" if active else "installed"
        return InstallResult(name, version, status, previous=previous,
                             already_installed=not swapped)

    def _swap_challenger(self, entry: _Entry, bundle: VerifiedBundle) -> None:
        """Replace the version folder with the bundle's (same champion, other challenger)
        and the served model with one holding the same champion session and the new
        challenger: requests never wait, and a refused challenger changes nothing."""
        name, version = bundle.manifest.model, bundle.manifest.version
        self._staging.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"challenger-{name}-", dir=self._staging))
        try:
            extract_bundle(bundle, tmp, self.limits)
            current = entry.loaded.get(version)
            swapped = (with_challenger_of(current, tmp, self.keys.known()) if current
                       else load_version(tmp, name, version, self.keys.known(),
                                         threads=self.session_threads, canary=True))
            entry.dir.replace_version(version, tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        swapped = replace(swapped, path=entry.dir.version_path(version))
        entry.loaded[version] = swapped
        was_active = entry.active is not None and entry.active.version == version
        if was_active:
            entry.active = swapped  # the atomic reference swap readers see
        if self._on_event is not None:
            self._event("install", name, version, sha256=_file_sha256(bundle.path))
        if was_active:  # the bundle now serving changed: the audit trail's "at" reads this
            self._event("activate", name, version, previous=version)
        challenger = bundle.manifest.challenger
        log.info("model %s version %d: challenger %s", name, version,
                 f"version {challenger.version} in shadow" if challenger else "removed")

    def _unpack_and_load(self, entry: _Entry, bundle: VerifiedBundle) -> LoadedModel:
        version = bundle.manifest.version
        self._staging.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"install-{entry.dir.name}-", dir=self._staging))
        try:
            extract_bundle(bundle, tmp, self.limits)
            loaded = load_version(tmp, entry.dir.name, version, self.keys.known(),
                                  threads=self.session_threads, canary=True)
            entry.dir.path.mkdir(parents=True, exist_ok=True)
            final = entry.dir.version_path(version)
            os.rename(tmp, final)  # the version folder appears complete or not at all
            fsync_dir(entry.dir.path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        # onnxruntime read the whole file while loading: the session does not depend on
        # the folder's name.
        return replace(loaded, path=final)

    def _switch(self, entry: _Entry, loaded: LoadedModel,
                history: list[int] | None = None) -> None:
        entry.dir.write_active(loaded.version)  # durable before anyone is served from it
        entry.pointer = loaded.version
        if history is None:
            entry.state.activated(loaded.version)
        else:
            entry.state.history, entry.state.last_good = history, loaded.version
        entry.dir.write_state(entry.state)
        entry.loaded[loaded.version] = loaded
        entry.active = loaded  # the atomic reference swap readers see
        entry.degraded = None
        keep = {loaded.version, entry.state.previous}
        entry.loaded = {v: m for v, m in entry.loaded.items() if v in keep}

    def _entry(self, name: str) -> _Entry:
        entry = self._entries.get(name)
        if entry is None:
            raise ModelNotFound(f"model {name!r} is not installed")
        return entry

    def activate(self, name: str, version: int) -> None:
        with self._lock:
            entry = self._entry(name)
            previous = entry.active.version if entry.active else None
            self._switch(entry, self._loaded(entry, version))
            self._event("activate", name, version, previous=previous)

    def rollback(self, name: str) -> int:
        """Activate the version that was active before the current one; returns it."""
        with self._lock:
            entry = self._entry(name)
            installed = entry.versions
            current = {entry.pointer, entry.active.version if entry.active else None}
            history = [v for v in entry.state.history if v in installed and v not in current]
            if not history:
                raise VersionConflict(f"model {name!r} has no previous version to roll back to")
            target = history[-1]
            previous = entry.active.version if entry.active else entry.pointer
            self._switch(entry, self._loaded(entry, target), history=history)
            self._event("rollback", name, target, previous=previous)
            return target

    def delete(self, name: str, version: int) -> None:
        with self._lock:
            entry = self._entry(name)
            if version not in entry.versions:
                raise ModelNotFound(f"model {name!r} has no version {version}")
            if version in (entry.pointer, entry.active.version if entry.active else None):
                raise VersionConflict(f"model {name!r} version {version} is active")
            trash = self._staging / f"delete-{name}-{version}-{uuid.uuid4().hex}"
            self._staging.mkdir(parents=True, exist_ok=True)
            os.rename(entry.dir.version_path(version), trash)
            fsync_dir(entry.dir.path)
            entry.versions = [v for v in entry.versions if v != version]
            entry.loaded.pop(version, None)
            entry.state.history = [v for v in entry.state.history if v != version]
            entry.dir.write_state(entry.state)
            shutil.rmtree(trash, ignore_errors=True)

    def rotate_key(self, record: bytes) -> RotationRecord:
        return self.keys.rotate(record)

    def _event(self, event: str, model: str, version: int, **details: Any) -> None:
        # After the change is durable: an event never claims what did not happen.
        if self._on_event is not None:
            self._on_event(event, model, version, **details)


def _installed_manifest(entry: _Entry, version: int) -> Manifest | None:
    try:
        return Manifest.from_json_bytes(
            (entry.dir.version_path(version) / MANIFEST).read_bytes())
    except (OSError, AgentError):
        return None


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _valid_name(name: str) -> bool:
    try:
        check_model_name(name)
    except AgentError:
        return False
    return True
