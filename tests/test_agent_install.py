"""Installing against a real agent process: every bad bundle over HTTP is a 4xx with a
one-line JSON error while the agent keeps serving the same version; `outpost-agent install`
and the --inbox folder do the same checks."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.contract.protocol import Ed25519PrivateKey, generate_signing_key, write_public_key
from tests.support.agents import (
    BAD_BUNDLES,
    AgentProcess,
    bad_bundle,
    identity_canary,
    identity_model,
    json_request,
    make_identity_bundle,
    running_agent,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return generate_signing_key()


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, key: Ed25519PrivateKey
          ) -> Iterator[AgentProcess]:
    tmp = tmp_path_factory.mktemp("install")
    with running_agent(tmp / "agent", trust_key=key) as proc:
        code, _ = upload(proc, make_identity_bundle(tmp, key, version=1))
        assert code == 200
        yield proc


def upload(agent: AgentProcess, bundle: Path, query: str = "") -> tuple[int, dict[str, str]]:
    return json_request(f"{agent.url}/v1/bundles{query}", data=bundle.read_bytes(),
                        headers=agent.headers(), method="POST")


def served(agent: AgentProcess, model: str = "adder") -> tuple[int, float]:
    """(active version from /v1/status, y for x = 2 from /v2 infer)."""
    code, status = json_request(f"{agent.url}/v1/status", headers=agent.headers())
    assert code == 200
    (entry,) = [m for m in status["models"] if m["name"] == model]
    code, reply = json_request(f"{agent.url}/v2/models/{model}/infer", body={
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [2.0]}]})
    assert code == 200, reply
    return entry["active"], reply["outputs"][0]["data"][0]


@pytest.mark.xdist_group("agent-install")
@pytest.mark.parametrize("case", sorted(BAD_BUNDLES))
def test_bad_bundle_over_http(agent: AgentProcess, key: Ed25519PrivateKey, tmp_path: Path,
                              case: str) -> None:
    code, doc = upload(agent, bad_bundle(tmp_path, key, case))
    assert code == BAD_BUNDLES[case].http_status
    assert set(doc) == {"error"} and doc["error"] and "\n" not in doc["error"]
    assert served(agent) == (1, 3.0)
    assert agent.proc.poll() is None


@pytest.mark.xdist_group("agent-install")
def test_older_version_refused_unless_rollback(agent: AgentProcess, key: Ed25519PrivateKey,
                                               tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    assert upload(agent, make_identity_bundle(tmp_path, key, version=3, model="older"))[0] == 200
    old = make_identity_bundle(tmp_path / "old", key, version=2, model="older",
                               model_bytes=identity_model(bias_value=5.0),
                               canary=identity_canary(offset=5.0))
    code, doc = upload(agent, old)
    assert code == 409 and "older than version 3" in doc["error"]
    assert served(agent, "older") == (3, 3.0)
    assert upload(agent, old, "?rollback=true")[0] == 200
    assert served(agent, "older") == (2, 7.0)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge_agent", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=60)


def test_cli_install(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    pub = write_public_key(key.public_key(), tmp_path / "k.pub")
    agent_dir = tmp_path / "agent"
    good = make_identity_bundle(tmp_path, key, version=1)
    ok = _cli("install", str(good), "--dir", str(agent_dir), "--trust-key", str(pub))
    assert ok.returncode == 0, ok.stderr
    bad = _cli("install", str(bad_bundle(tmp_path, key, "failing_canary")), "--dir",
               str(agent_dir), "--trust-key", str(pub))
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.startswith("error: canary failed") and len(bad.stderr.splitlines()) == 1
    assert (agent_dir / "models/adder/active").read_text().strip() == "1"


@pytest.mark.xdist_group("agent-install")
def test_inbox_of_a_running_agent(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    make_identity_bundle(inbox, key, version=1)  # there before the agent starts
    with running_agent(tmp_path / "agent", trust_key=key,
                       extra_args=("--inbox", str(inbox))) as agent:
        deadline = time.monotonic() + 15
        while not (inbox / "adder-1.result.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert json.loads((inbox / "adder-1.result.json").read_text())["status"] == "installed"
        assert served(agent) == (1, 3.0)
        (tmp_path / "src").mkdir()
        make_identity_bundle(tmp_path / "src", key, version=2,
                             model_bytes=identity_model(bias_value=2.0),
                             canary=identity_canary(offset=2.0)).rename(inbox / "adder-2.outpost")
        while not (inbox / "adder-2.result.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert served(agent) == (2, 4.0)
