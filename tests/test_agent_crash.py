"""kill -9 during repeated installs: after every restart exactly the old or the new version
is active, its checksums verify, and it answers with that version's output."""

from __future__ import annotations

import http.client
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge_agent.contract.protocol import generate_signing_key, save_private_key
from edge_agent.store.keys import KeyRing
from edge_agent.store.loaded_model import load_version
from edge_agent.store.store import ModelStore
from tests.support.agent_install_loop import bundle_for
from tests.support.agents import AgentProcess, json_request, running_agent

REPO = Path(__file__).resolve().parents[1]
CYCLES = 50


def _events(output: bytes) -> tuple[int | None, int | None]:
    """(last version begun, last version done) from the loop's stdout."""
    begun = done = None
    for line in output.decode().splitlines():
        word, _, value = line.partition(" ")
        if word == "begin":
            begun = int(value)
        elif word == "done":
            done = int(value)
    return begun, done


def _check_restart(agent_dir: Path, allowed: set[int | None]) -> int | None:
    ring = KeyRing(agent_dir / "keys")
    store = ModelStore(agent_dir, ring)
    store.open()
    statuses = store.models()
    if not statuses or statuses[0].active is None:
        assert None in allowed, f"no version active, expected one of {allowed}"
        return None
    st = statuses[0]
    assert st.active in allowed, f"version {st.active} active, expected one of {allowed}"
    assert st.state == "ready" and st.degraded is None, st.degraded
    m = store.get("adder")
    (y,) = m.session.run(None, {"x": np.array([[2.0]], dtype=np.float32)})
    assert float(y[0, 0]) == 2.0 + st.active  # version v computes x + v
    newest = max(st.versions)  # a version folder exists only when complete
    load_version(agent_dir / "models/adder" / str(newest), "adder", newest, ring.known())
    assert not list((agent_dir / "staging").iterdir())
    return st.active


def _run_and_kill(cmd: list[str], rng: random.Random) -> bytes:
    """Start the install loop and SIGKILL it: usually a moment after it finished an install
    (so each such cycle makes progress however slow the machine: a kill timed from the
    start alone can land before any install ends), sometimes at any moment from spawn
    (during start-up)."""
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    seen = b""
    if rng.random() < 0.2:
        delay = rng.uniform(0.0, 0.4)
    else:
        while not seen.endswith(b"\n") or not seen.splitlines()[-1].startswith(b"done "):
            line = proc.stdout.readline()
            assert line, f"install loop ended ({proc.wait()}) after {seen!r}"
            seen += line
        delay = rng.uniform(0.0, 0.15)  # into the next install, or between two
    try:
        proc.wait(delay)
    except subprocess.TimeoutExpired:
        proc.kill()
    out, _ = proc.communicate()
    assert proc.returncode == -9, f"install loop exited with {proc.returncode}"
    return seen + out


@pytest.mark.slow
@pytest.mark.xdist_group("agent-crash")
def test_kill9_during_installs_store_process(tmp_path: Path) -> None:
    key_path = save_private_key(generate_signing_key(), tmp_path / "signing.pem")
    agent_dir, bundles = tmp_path / "agent", tmp_path / "bundles"
    bundles.mkdir()
    cmd = [sys.executable, "-m", "tests.support.agent_install_loop", str(agent_dir), str(key_path),
           str(bundles)]
    rng = random.Random(4)
    active: int | None = None
    mid_install = 0  # cycles killed between "begin" and "done" of an install
    for _ in range(CYCLES):
        begun, done = _events(_run_and_kill(cmd, rng))
        before = done if done is not None else active
        active = _check_restart(agent_dir, {before, begun})
        mid_install += begun is not None and begun != done
    assert active is not None and active >= CYCLES // 2
    assert mid_install >= 5, f"only {mid_install} kills landed inside an install"


AGENT_CYCLES = 15


def _post_bundles(agent: AgentProcess, bundles: Path, key_path: Path, first: int,
                  log: list[tuple[str, int]], stop: threading.Event) -> None:
    """Upload versions first, first+1, ... one at a time until the agent dies."""
    version = first
    while not stop.is_set():
        data = bundle_for(bundles, key_path, version).read_bytes()
        log.append(("begin", version))
        try:
            code, _ = json_request(f"{agent.url}/v1/bundles?activate=true", data=data,
                                   headers=agent.headers(), method="POST")
        except (OSError, http.client.HTTPException):
            return  # killed mid-request (or mid-response: IncompleteRead)
        log.append(("done", version) if code == 200 else ("failed", code))
        version += 1


def _agent_active(agent: AgentProcess) -> int | None:
    code, status = json_request(f"{agent.url}/v1/status", headers=agent.headers())
    assert code == 200
    models = status["models"]
    if not models:
        return None
    if models[0]["active"] is None:
        # Killed between the first version's folder appearing and its activation: that
        # version is installed, none was ever active, and none is now (the old state).
        assert models[0]["state"] == "inactive" and models[0]["versions"], models[0]
        return None
    assert models[0]["state"] == "ready", models[0]
    active: int = models[0]["active"]
    code, reply = json_request(f"{agent.url}/v2/models/adder/infer", body={
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [2.0]}]})
    assert code == 200 and reply["outputs"][0]["data"] == [2.0 + active]
    return active


@pytest.mark.slow
@pytest.mark.xdist_group("agent-crash")
def test_kill9_real_agent_during_uploads(tmp_path: Path) -> None:
    key = generate_signing_key()
    key_path = save_private_key(key, tmp_path / "signing.pem")
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    rng = random.Random(7)
    allowed: set[int | None] = {None}
    for _ in range(AGENT_CYCLES + 1):
        with running_agent(tmp_path / "agent", trust_key=key) as agent:
            active = _agent_active(agent)  # after the previous cycle's kill -9
            assert active in allowed, f"version {active} active, expected one of {allowed}"
            log: list[tuple[str, int]] = []
            stop = threading.Event()
            client = threading.Thread(target=_post_bundles, args=(
                agent, bundles, key_path, (active or 0) + 1, log, stop))
            client.start()
            # After one upload has landed (progress however slow the machine), a random
            # moment: into the next upload, or between two.
            deadline = time.monotonic() + 120
            while not any(kind == "done" for kind, _ in log) and client.is_alive():
                assert time.monotonic() < deadline, f"no upload finished in 120 s: {log}"
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.15))
            agent.proc.kill()
            agent.proc.wait()
            stop.set()
            client.join(30)
        assert not [entry for entry in log if entry[0] == "failed"], log
        begun = [v for kind, v in log if kind == "begin"]
        done = [v for kind, v in log if kind == "done"]
        allowed = {done[-1] if done else active, begun[-1] if begun else None}
    assert active is not None and active >= AGENT_CYCLES


def test_first_install_cut_before_activation_reads_as_none_active(tmp_path: Path) -> None:
    """The state a kill -9 leaves between the first version folder's rename and the
    active pointer (the loop above once failed on it): a real agent reports the model
    'inactive' with no version active, and the crash loop counts that as the old state."""
    key = generate_signing_key()
    key_path = save_private_key(key, tmp_path / "signing.pem")
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    store = ModelStore(tmp_path / "agent", KeyRing(tmp_path / "agent" / "keys"))
    store.keys.trust(key.public_key())
    store.open()
    store.install(bundle_for(bundles, key_path, 1), activate=False)
    assert not (tmp_path / "agent" / "models" / "adder" / "active").exists()
    with running_agent(tmp_path / "agent", trust_key=key) as agent:
        assert _agent_active(agent) is None
        code, _ = json_request(f"{agent.url}/v1/bundles?activate=true",
                               data=bundle_for(bundles, key_path, 2).read_bytes(),
                               headers=agent.headers(), method="POST")
        assert code == 200 and _agent_active(agent) == 2
