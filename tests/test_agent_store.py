"""The model store with real ONNX models: installs, every refused bundle (the active model
unchanged each time), downgrade protection, rollback, delete, restart checks, key rotation."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from edge_agent.contract import errors
from edge_agent.contract.manifest import CHALLENGER
from edge_agent.contract.protocol import (
    Ed25519PrivateKey,
    generate_signing_key,
    make_rotation_record,
    public_key_b64,
    verify_signature,
    write_bundle,
)
from edge_agent.store.identity import load_or_create_identity
from edge_agent.store.keys import KeyRing
from edge_agent.store.model_dir import ModelState
from edge_agent.store.store import ModelStore
from tests.support.agents import (
    BAD_BUNDLES,
    NUMERIC,
    bad_bundle,
    identity_canary,
    identity_model,
    make_identity_bundle,
    make_tabular_bundle,
    read_members,
    resign,
    rezip,
    tabular_model,
)


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return generate_signing_key()


def open_store(agent_dir: Path, key: Ed25519PrivateKey | None = None) -> ModelStore:
    ring = KeyRing(agent_dir / "keys")
    if key is not None:
        ring.trust(key.public_key())
    store = ModelStore(agent_dir, ring)
    store.open()
    return store


@pytest.fixture
def store(tmp_path: Path, key: Ed25519PrivateKey) -> ModelStore:
    return open_store(tmp_path / "agent", key)


def answer(store: ModelStore, name: str, x: float = 2.0) -> float:
    m = store.get(name)
    (y,) = m.session.run(None, {"x": np.array([[x]], dtype=np.float32)})
    return float(y[0, 0])


def version_dirs(store: ModelStore, name: str) -> list[str]:
    return sorted(p.name for p in (store.root / "models" / name).iterdir() if p.is_dir())


def test_install_tabular_classifier(tmp_path: Path, store: ModelStore,
                                    key: Ed25519PrivateKey) -> None:
    result = store.install(make_tabular_bundle(tmp_path, key, version=1))
    assert result.to_dict() == {"model": "pumps", "version": 1, "status": "active",
                                "canary": "passed"}
    loaded = store.get("pumps")
    assert [t.name for t in loaded.inputs] == ["temp", "pressure", "site"]
    assert [t.datatype for t in loaded.inputs] == ["FP32", "FP32", "BYTES"]
    assert loaded.baseline is not None and loaded.baseline.feature("site") is not None
    assert loaded.manifest.labels == ["alarm", "normal"]
    tm = tabular_model()
    feeds = {c: np.array([[np.nan if v is None else v for v in tm.columns[c]]],
                         dtype=np.float32).T for c in NUMERIC}
    feeds["site"] = np.array([[s] for s in tm.columns["site"]], dtype=object)
    label, proba = loaded.session.run(None, feeds)
    assert label.tolist() == tm.canary["expected"]["label"]
    assert np.allclose(proba, tm.canary["expected"]["probabilities"], atol=1e-5)
    assert (store.root / "models" / "pumps" / "active").read_text().strip() == "1"


def test_install_tabular_regressor(tmp_path: Path, store: ModelStore,
                                   key: Ed25519PrivateKey) -> None:
    store.install(make_tabular_bundle(tmp_path, key, model="yield", task="regression"))
    assert store.get("yield").outputs[0].name == "variable"
    assert store.get("yield").manifest.task == "regression"


@pytest.mark.parametrize("case", sorted(BAD_BUNDLES))
def test_bad_bundle_refused_active_unchanged(tmp_path: Path, store: ModelStore,
                                             key: Ed25519PrivateKey, case: str) -> None:
    store.install(make_identity_bundle(tmp_path, key, version=1))
    bad = bad_bundle(tmp_path, key, case)
    with pytest.raises(BAD_BUNDLES[case]) as info:
        store.install(bad)
    assert info.value.http_status in (413, 422) and "\n" not in str(info.value)
    assert store.get("adder").version == 1 and answer(store, "adder") == 3.0
    assert version_dirs(store, "adder") == ["1"]
    assert list((store.root / "staging").iterdir()) == []
    assert not (tmp_path / "escape.txt").exists() and not Path("/tmp/abs.txt").exists()
    reopened = open_store(store.root, key)
    assert reopened.get("adder").version == 1 and reopened.models()[0].state == "ready"


def test_opset_message_names_the_limit(tmp_path: Path, store: ModelStore,
                                       key: Ed25519PrivateKey) -> None:
    with pytest.raises(errors.ModelInvalid, match="supports up to 28"):
        store.install(bad_bundle(tmp_path, key, "too_new_opset"))
    assert store.models() == []


def test_a_supported_model_costs_one_opset_probe_per_domain(tmp_path: Path, store: ModelStore,
                                                             key: Ed25519PrivateKey) -> None:
    """Loading a model whose opsets this onnxruntime runs tries just those (one tiny
    session per domain); the search for the limits (~13 sessions, ~1.4 MB resident in a
    serving agent) runs only to word a refusal, as above."""
    from edge_agent.contract import model_checks

    model_checks.supported_opsets.cache_clear()
    model_checks._loads.cache_clear()
    store.install(make_identity_bundle(tmp_path, key, version=1))
    assert model_checks.supported_opsets.cache_info().misses == 0
    assert model_checks._loads.cache_info().misses == 1  # the identity model: ai.onnx only


def test_downgrade_protection_survives_restart(tmp_path: Path, store: ModelStore,
                                               key: Ed25519PrivateKey) -> None:
    v1 = make_identity_bundle(tmp_path, key, version=1)
    store.install(make_identity_bundle(tmp_path, key, version=3))
    with pytest.raises(errors.DowngradeRefused, match="older than version 3") as info:
        store.install(v1)
    assert info.value.http_status == 409
    store.install(make_identity_bundle(tmp_path, key, version=4))
    store.delete("adder", 3)
    reopened = open_store(store.root, key)
    assert reopened.models()[0].highest_seen == 4
    with pytest.raises(errors.DowngradeRefused):
        reopened.install(v1)
    res = reopened.install(v1, allow_rollback=True)
    assert res.status == "active" and res.previous == 4 and reopened.get("adder").version == 1


def test_rollback_activate_delete(tmp_path: Path, store: ModelStore,
                                  key: Ed25519PrivateKey) -> None:
    with pytest.raises(errors.ModelNotFound):
        store.rollback("adder")
    store.install(make_identity_bundle(tmp_path, key, version=1))
    with pytest.raises(errors.VersionConflict):
        store.rollback("adder")
    store.install(make_identity_bundle(tmp_path, key, version=2,
                                       model_bytes=identity_model(), canary=identity_canary()))
    store.install(make_identity_bundle(tmp_path, key, version=3), activate=False)
    assert store.get("adder").version == 2 and store.get("adder", 3).version == 3
    store.activate("adder", 3)
    assert store.rollback("adder") == 2
    assert store.rollback("adder") == 1
    with pytest.raises(errors.VersionConflict):
        store.rollback("adder")
    with pytest.raises(errors.VersionConflict) as info:
        store.delete("adder", 1)
    assert info.value.http_status == 409
    store.delete("adder", 2)
    with pytest.raises(errors.ModelNotFound):
        store.get("adder", 2)
    with pytest.raises(errors.ModelNotFound):
        store.delete("adder", 2)
    assert version_dirs(store, "adder") == ["1", "3"]
    state = json.loads((store.root / "models/adder/state.json").read_text())
    assert state["highest_seen"] == 3 and 2 not in state["history"]
    status = store.models()[0].to_dict()
    assert status == {"name": "adder", "active": 1, "versions": [1, 3], "highest_seen": 3,
                      "state": "ready", "degraded": None}


def test_reinstall_same_and_conflicting(tmp_path: Path, store: ModelStore,
                                        key: Ed25519PrivateKey) -> None:
    b = make_identity_bundle(tmp_path, key, version=1)
    store.install(b)
    again = store.install(b)
    assert again.already_installed and again.status == "active"
    (tmp_path / "other").mkdir()
    rebuilt = make_identity_bundle(tmp_path / "other", key, version=1,
                                   created="2027-01-01T00:00:00+00:00")
    assert store.install(rebuilt).already_installed  # same champion, built again: a retry
    different = make_identity_bundle(tmp_path / "other", key, version=1,
                                     canary=identity_canary(offset=2.0))
    with pytest.raises(errors.VersionConflict, match="different content"):
        store.install(different)


def tabular_bundle(out: Path, key: Ed25519PrivateKey, challenger: bytes | None = None,
                   created: str | None = None) -> Path:
    tm = tabular_model("classification")
    return write_bundle(out, model="pumps", version=1, key=key, model_bytes=tm.onnx_bytes,
                        baseline=tm.baseline, canary=tm.canary, task="classification",
                        labels=tm.labels, created=created,
                        challenger=None if challenger is None else (2, challenger, 1.0))


def test_challenger_swapped_in_place_and_a_crash_mid_swap_recovers(
        tmp_path: Path, store: ModelStore, key: Ed25519PrivateKey) -> None:
    store.install(tabular_bundle(tmp_path / "plain.outpost", key))
    serving = store.get("pumps")
    # A challenger whose inputs are not the champion's: refused, nothing changes.
    with pytest.raises(errors.ModelInvalid, match="challenger inputs"):
        store.install(rezip(tmp_path / "bad.outpost", resign(
            with_challenger(read_members(tmp_path / "plain.outpost"), identity_model()), key)))
    assert store.get("pumps") is serving
    folder = tmp_path / "agent" / "models" / "pumps"
    assert sorted(p.name for p in folder.iterdir()) == ["1", "active", "state.json"]

    shadow = tabular_bundle(tmp_path / "shadow.outpost", key,
                            tabular_model("classification", 1).onnx_bytes)
    result = store.install(shadow)
    assert (result.status, result.already_installed) == ("active", False)
    swapped = store.get("pumps")
    assert swapped.session is serving.session and swapped.challenger is not None
    assert (folder / "1" / CHALLENGER).exists()
    assert store.install(shadow).already_installed  # a retry changes nothing

    # Crash after the old folder left and before the new one took its name.
    (folder / "1").rename(folder / "1.next")
    assert open_store(tmp_path / "agent", key).get("pumps").challenger is not None
    # Crash before the switch began: the old folder stays, the staged one is dropped.
    shutil.copytree(folder / "1", folder / "1.next")
    assert open_store(tmp_path / "agent", key).get("pumps").challenger is not None
    assert sorted(p.name for p in folder.iterdir()) == ["1", "active", "state.json"]

    # The plain bundle again removes the challenger; the champion's session stays.
    assert not store.install(tabular_bundle(tmp_path / "again.outpost", key)).already_installed
    assert store.get("pumps").challenger is None and store.get("pumps").session is serving.session
    assert not (folder / "1" / CHALLENGER).exists()


def with_challenger(members: dict[str, bytes], onnx: bytes) -> dict[str, bytes]:
    """`members` with `onnx` as a challenger the manifest describes (not yet re-signed)."""
    doc = json.loads(members["manifest.json"])
    doc["challenger"] = {"member": CHALLENGER, "version": 2, "share": 1.0,
                         "outputs": doc["outputs"]}
    doc["members"][CHALLENGER] = {"sha256": hashlib.sha256(onnx).hexdigest(), "size": len(onnx)}
    return {**members, CHALLENGER: onnx, "manifest.json": json.dumps(doc).encode()}


def test_unknown_model_and_inactive(tmp_path: Path, store: ModelStore,
                                    key: Ed25519PrivateKey) -> None:
    with pytest.raises(errors.ModelNotFound) as info:
        store.get("nope")
    assert info.value.http_status == 404
    store.install(make_identity_bundle(tmp_path, key, version=1), activate=False)
    with pytest.raises(errors.ModelNotFound, match="no active"):
        store.get("adder")
    assert store.models()[0].state == "inactive"


def test_corrupt_active_falls_back_to_last_good(tmp_path: Path, store: ModelStore,
                                                key: Ed25519PrivateKey) -> None:
    store.install(make_identity_bundle(tmp_path, key, version=1))
    store.install(make_identity_bundle(tmp_path, key, version=2))
    model = store.root / "models/adder/2/model.onnx"
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF
    model.write_bytes(bytes(data))
    reopened = open_store(store.root, key)
    st = reopened.models()[0]
    assert st.state == "degraded" and st.active == 1
    assert st.degraded and "version 2" in st.degraded and "checksum" in st.degraded
    assert answer(reopened, "adder") == 3.0
    # A new good install clears the degradation.
    reopened.install(make_identity_bundle(tmp_path, key, version=3))
    assert reopened.models()[0].state == "ready"


def test_nothing_loads_is_unavailable(tmp_path: Path, store: ModelStore,
                                      key: Ed25519PrivateKey) -> None:
    store.install(make_identity_bundle(tmp_path, key, version=1))
    (store.root / "models/adder/1/manifest.json").write_text("{}")
    reopened = open_store(store.root, key)
    assert reopened.models()[0].state == "unavailable"
    with pytest.raises(errors.ModelUnavailable) as info:
        reopened.get("adder")
    assert info.value.http_status == 503


def test_key_rotation_persists(tmp_path: Path, store: ModelStore,
                               key: Ed25519PrivateKey) -> None:
    store.install(make_identity_bundle(tmp_path, key, version=1))
    new = generate_signing_key()
    with pytest.raises(errors.KeyRotationError):
        store.rotate_key(make_rotation_record(key, new, 2))
    store.rotate_key(make_rotation_record(key, new, 1))
    (tmp_path / "n").mkdir()
    with pytest.raises(errors.BundleUnknownKey):
        store.install(make_identity_bundle(tmp_path, key, version=2))
    reopened = open_store(store.root, key)  # restart with the old --trust-key again
    assert reopened.keys.rotation == 1
    assert [public_key_b64(k) for k in reopened.keys.trusted()] == [public_key_b64(new)]
    assert reopened.get("adder").version == 1  # installed under the old key: still valid
    reopened.install(make_identity_bundle(tmp_path / "n", new, version=2))
    with pytest.raises(errors.KeyRotationError):  # replaying the record
        reopened.rotate_key(make_rotation_record(key, new, 1))


def test_install_while_serving(tmp_path: Path, store: ModelStore,
                               key: Ed25519PrivateKey) -> None:
    bundles = [make_identity_bundle(tmp_path, key, version=v) for v in range(1, 6)]
    store.install(bundles[0])
    stop, failures, seen = threading.Event(), [], set()

    def serve() -> None:
        while not stop.is_set():
            try:
                m = store.get("adder")
                seen.add(m.version)
                m.session.run(None, {"x": np.zeros((1, 1), np.float32)})
            except Exception as exc:  # noqa: BLE001 -- any failure is the test's finding
                failures.append(exc)

    threads = [threading.Thread(target=serve) for _ in range(2)]
    for t in threads:
        t.start()
    for b in bundles[1:]:
        store.install(b)
    stop.set()
    for t in threads:
        t.join()
    assert failures == [] and store.get("adder").version == 5 and len(seen) >= 2


def test_identity_created_once(tmp_path: Path) -> None:
    a = load_or_create_identity(tmp_path)
    b = load_or_create_identity(tmp_path)
    assert a.agent_id == b.agent_id and a.public_key == b.public_key
    assert (tmp_path / "identity.key").stat().st_mode & 0o777 == 0o600
    assert verify_signature(a.key.public_key(), a.sign(b"nonce"), b"nonce")


@pytest.mark.parametrize("history,pointer,installed,expected", [
    ([1, 2], 3, [1, 2, 3], [1, 2, 3]),  # killed after the pointer moved to a new install
    ([1, 2, 3], 2, [1, 2, 3], [1, 2]),  # killed after the pointer moved back (rollback)
    ([1, 2, 3], 3, [1, 3], [1, 3]),  # a deleted version leaves the history
    ([1, 2], None, [1, 2], [1, 2]),  # no pointer: nothing to repair
    ([1, 2], 7, [1, 2], [1, 2]),  # pointer at a missing folder: open() falls back instead
])
def test_state_reconciles_with_the_pointer(history: list[int], pointer: int | None,
                                           installed: list[int], expected: list[int]) -> None:
    state = ModelState(highest_seen=2, history=list(history))
    state.reconcile(pointer, installed)
    assert state.history == expected and state.highest_seen == max(2, *installed)
