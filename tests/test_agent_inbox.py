"""The drop folder: install what is dropped (also slowly, also before start), refuse and
move aside what is bad, say why in NAME.result.json."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.contract.protocol import Ed25519PrivateKey, generate_signing_key
from edge_agent.store.inbox import InboxWatcher
from edge_agent.store.keys import KeyRing
from edge_agent.store.store import ModelStore
from tests.support.agents import identity_canary, make_identity_bundle


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return generate_signing_key()


@pytest.fixture
def store(tmp_path: Path, key: Ed25519PrivateKey) -> ModelStore:
    ring = KeyRing(tmp_path / "agent" / "keys")
    ring.trust(key.public_key())
    s = ModelStore(tmp_path / "agent", ring)
    s.open()
    return s


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


@pytest.fixture
def watcher(inbox: Path, store: ModelStore) -> Iterator[InboxWatcher]:
    w = InboxWatcher(inbox, store, stable_s=0.3, poll_s=0.05, rescan_s=0.5)
    yield w
    w.stop()


def wait_result(inbox: Path, stem: str, timeout: float = 10.0) -> dict[str, object]:
    path = inbox / f"{stem}.result.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            doc: dict[str, object] = json.loads(path.read_text())
            return doc
        time.sleep(0.02)
    raise AssertionError(f"no {path.name} after {timeout}s")


def test_file_present_at_start_is_installed(tmp_path: Path, inbox: Path, store: ModelStore,
                                            watcher: InboxWatcher,
                                            key: Ed25519PrivateKey) -> None:
    make_identity_bundle(inbox, key, version=1)
    watcher.start()
    doc = wait_result(inbox, "adder-1")
    assert doc["status"] == "installed" and doc["model"] == "adder" and doc["version"] == 1
    assert doc["active"] is True
    assert store.get("adder").version == 1
    assert (inbox / "installed" / "adder-1.outpost").exists()
    assert not (inbox / "adder-1.outpost").exists()


def test_refused_file_is_moved_aside(tmp_path: Path, inbox: Path, store: ModelStore,
                                     watcher: InboxWatcher, key: Ed25519PrivateKey) -> None:
    watcher.start()
    make_identity_bundle(inbox, key, version=1)
    assert wait_result(inbox, "adder-1")["status"] == "installed"
    (tmp_path / "src").mkdir()
    bad = make_identity_bundle(tmp_path / "src", key, version=2, canary=identity_canary(7.0))
    bad.rename(inbox / bad.name)
    doc = wait_result(inbox, "adder-2")
    assert doc["status"] == "refused" and doc["error_type"] == "CanaryFailed"
    assert "canary failed" in str(doc["error"])
    assert (inbox / "refused" / "adder-2.outpost").exists()
    assert store.get("adder").version == 1
    # A second copy under the same name does not overwrite the first refused one.
    (inbox / "adder-2.result.json").unlink()
    make_identity_bundle(tmp_path / "src", key, version=2,
                         canary=identity_canary(7.0)).rename(inbox / "adder-2.outpost")
    wait_result(inbox, "adder-2")
    assert sorted(p.name for p in (inbox / "refused").iterdir()) == [
        "adder-2.1.outpost", "adder-2.outpost"]


def test_slow_copy_waits_for_stable_size(tmp_path: Path, inbox: Path, store: ModelStore,
                                         watcher: InboxWatcher,
                                         key: Ed25519PrivateKey) -> None:
    data = make_identity_bundle(tmp_path, key, version=1).read_bytes()
    watcher.start()
    target = inbox / "adder-1.outpost"
    step = len(data) // 4 + 1
    with open(target, "wb") as fh:
        for i in range(0, len(data), step):
            fh.write(data[i : i + step])
            fh.flush()
            time.sleep(0.15)  # a USB stick: pauses shorter than stable_s
            assert not (inbox / "adder-1.result.json").exists()
    assert wait_result(inbox, "adder-1")["status"] == "installed"


def test_other_files_are_ignored(tmp_path: Path, inbox: Path, store: ModelStore,
                                 watcher: InboxWatcher, key: Ed25519PrivateKey) -> None:
    (inbox / "notes.txt").write_text("hello")
    (inbox / ".adder-9.outpost").write_bytes(b"partial rsync temp")
    watcher.start()
    make_identity_bundle(inbox, key, version=1)
    wait_result(inbox, "adder-1")
    time.sleep(0.5)
    assert (inbox / "notes.txt").exists() and (inbox / ".adder-9.outpost").exists()
    assert not (inbox / ".adder-9.result.json").exists() and store.models()[0].active == 1


def test_garbage_file_is_refused(inbox: Path, store: ModelStore,
                                 watcher: InboxWatcher) -> None:
    watcher.start()
    (inbox / "junk.outpost").write_bytes(b"PK\x03\x04 not really a zip")
    doc = wait_result(inbox, "junk")
    assert doc["status"] == "refused" and doc["error_type"] == "BundleCorrupt"
    assert (inbox / "refused" / "junk.outpost").exists() and store.models() == []
