"""Installs versions of the `adder` model in a loop, forever, until killed (the crash test
kills it with SIGKILL at random moments). Version v computes y = x + v.

    python -m tests.support.agent_install_loop AGENT_DIR SIGNING_KEY_PEM BUNDLE_DIR
Prints "open", then "begin V" / "done V" around each install, flushed."""

from __future__ import annotations

import sys
from pathlib import Path

from edge_agent.contract.protocol import load_private_key
from edge_agent.store.keys import KeyRing
from edge_agent.store.store import ModelStore
from tests.support.agents import identity_canary, identity_model, make_identity_bundle


def bundle_for(out_dir: Path, key_path: Path, version: int) -> Path:
    path = out_dir / f"adder-{version}.outpost"
    if not path.exists():
        make_identity_bundle(out_dir, load_private_key(key_path), version=version,
                             model_bytes=identity_model(bias_value=float(version)),
                             canary=identity_canary(offset=float(version)))
    return path


def main(agent_dir: Path, key_path: Path, bundle_dir: Path) -> None:
    key = load_private_key(key_path)
    ring = KeyRing(agent_dir / "keys")
    ring.trust(key.public_key())
    store = ModelStore(agent_dir, ring)
    store.open()
    print("open", flush=True)
    version = max((m.highest_seen for m in store.models()), default=0)
    while True:
        version += 1
        bundle = bundle_for(bundle_dir, key_path, version)
        print(f"begin {version}", flush=True)
        store.install(bundle)
        print(f"done {version}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
