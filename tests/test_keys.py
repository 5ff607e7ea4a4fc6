"""The desktop signing key: made on first use (0600), shown, rotated onto agents."""
from __future__ import annotations

import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from core.catalog import Catalog
from core.fleet.agents import add_agent
from core.fleet.push import deploy_bundle_file
from core.fleet.records import get_agent
from core.fleet.rotation import rotate_keys
from core.keys import key_at, key_info, rotate_signing_key, signing_key
from edge_agent.contract.protocol import (
    generate_signing_key,
    key_fingerprint,
    load_public_key,
    public_key_b64,
    public_key_bytes,
    save_private_key,
    verify_rotation_record,
)
from tests.conftest import run_cli
from tests.support.agents import make_identity_bundle
from tests.support.fleet import agents, open_catalog, start_agent


def test_key_is_made_once_with_private_modes(catalog: Catalog) -> None:
    key = signing_key(catalog)
    path = catalog.settings.keys_dir / "signing.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert public_key_bytes(signing_key(catalog)) == public_key_bytes(key)


def test_cli_show_writes_the_trust_key_file(outpost_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "desktop.pub"
    doc = run_cli(outpost_home, "keys", "show", "--out", str(out), "--json", check=True).json()
    with open_catalog(outpost_home) as cat:
        key = signing_key(cat)
    assert doc["fingerprint"] == key_fingerprint(key) and doc["rotation"] == 0
    assert public_key_bytes(load_public_key(out)) == public_key_bytes(key)


def test_rotation_record_is_signed_by_old_and_new(catalog: Catalog) -> None:
    old = signing_key(catalog)
    rotation = rotate_signing_key(catalog)
    new = signing_key(catalog)
    assert rotation.rotation == 1 and public_key_bytes(new) != public_key_bytes(old)
    rec = verify_rotation_record(rotation.record, current_rotation=0, trusted=[old.public_key()])
    assert public_key_bytes(rec.new_key) == public_key_bytes(new)
    assert public_key_bytes(key_at(catalog, 0)) == public_key_bytes(old)
    assert key_info(catalog).rotation == 1


def test_interrupted_rotation_is_finished_or_dropped(catalog: Catalog) -> None:
    signing_key(catalog)
    rotate_signing_key(catalog)
    current = catalog.settings.keys_dir / "signing.key"
    pending = catalog.settings.keys_dir / "signing.next.key"
    recorded = signing_key(catalog)
    # Crash after the catalog commit, before the swap: the recorded key must win.
    save_private_key(recorded, pending)
    save_private_key(generate_signing_key(), current)
    assert public_key_bytes(signing_key(catalog)) == public_key_bytes(recorded)
    # A half-made key the catalog never recorded is dropped.
    save_private_key(generate_signing_key(), pending)
    assert public_key_bytes(signing_key(catalog)) == public_key_bytes(recorded)
    assert not pending.exists()


def test_rotate_moves_online_agents_now_and_offline_ones_on_next_deploy(
        catalog: Catalog, tmp_path: Path) -> None:
    old = signing_key(catalog)
    with agents(tmp_path, old, 2) as (up, down):
        add_agent(catalog, "up", up.url, up.token)
        add_agent(catalog, "down", down.url, down.token)
        down.stop()
        rotation, outcomes = rotate_keys(catalog)
        moved = {o.agent: o.ok for o in outcomes}
        assert moved == {"up": True, "down": False}
        new = signing_key(catalog)
        assert rotation.rotation == 1
        # The online agent now takes bundles signed with the new key...
        result = deploy_bundle_file(catalog, "up", make_identity_bundle(tmp_path, new),
                                    model="adder", version=1)
        assert result.status == "active"
        # ...and the one that was offline gets the rotation before its next bundle.
        back = start_agent(tmp_path / "agent1", old, port=down.port, token=down.token)
        try:
            assert get_agent(catalog, "down").key_index == 0
            result = deploy_bundle_file(catalog, "down", make_identity_bundle(tmp_path, new),
                                        model="adder", version=1)
            assert result.status == "active"
            assert get_agent(catalog, "down").key_index == 1
        finally:
            back.stop()



def test_first_key_made_by_racing_callers_is_one_key(catalog: Catalog) -> None:
    """Two enrolments in threads (or the GUI and a CLI) each made 'the first key' and the
    later one overwrote it: an agent enrolled by the first trusted a key no longer used."""
    keys_dir = catalog.settings.keys_dir
    assert not (keys_dir / "signing.key").exists()
    start = threading.Barrier(8)

    def first_key(_: int) -> str:
        local = catalog.for_thread()
        start.wait(10)
        return public_key_b64(signing_key(local))

    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(first_key, range(8)))
    assert keys == {public_key_b64(signing_key(catalog))}
    assert [p.name for p in keys_dir.iterdir() if p.name.startswith(".")] == []  # no drafts
