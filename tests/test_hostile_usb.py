"""Hostile files in a real agent's USB inbox: special files named like bundles, a copy
that stalls, names that try to forge log lines. The agent keeps serving, installs what
is good, refuses what is not, and SIGTERM still stops it."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from edge_agent.contract.protocol import Ed25519PrivateKey, generate_signing_key
from tests.support.agents import AgentProcess, json_request, make_identity_bundle, running_agent
from tests.support.hostile import wait_for

pytestmark = pytest.mark.xdist_group("hostile_usb")


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return generate_signing_key()


def _result(inbox: Path, stem: str) -> dict[str, Any] | None:
    path = inbox / f"{stem}.result.json"
    return json.loads(path.read_text()) if path.exists() else None


def _active(agent: AgentProcess, model: str = "adder") -> int | None:
    status, doc = json_request(f"{agent.url}/v1/status", headers=agent.headers())
    assert status == 200, doc
    return next((m["active"] for m in doc["models"] if m["name"] == model), None)


def _stop(agent: AgentProcess, within: float) -> int:
    agent.proc.send_signal(signal.SIGTERM)
    return agent.proc.wait(within)


def test_special_files_named_like_bundles_never_block_the_store(
        tmp_path: Path, key: Ed25519PrivateKey) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with running_agent(tmp_path / "agent", key, extra_args=("--inbox", str(inbox))) as agent:
        os.mkfifo(inbox / "fifo.outpost")
        unix = socket.socket(socket.AF_UNIX)
        unix.bind(str(inbox / "sock.outpost"))
        os.symlink("loop.outpost", inbox / "loop.outpost")
        os.symlink("/dev/zero", inbox / "zero.outpost")
        os.symlink(make_identity_bundle(tmp_path, key, version=9), inbox / "link.outpost")
        try:
            for stem in ("fifo", "sock", "loop", "zero", "link"):
                doc = wait_for(lambda stem=stem: _result(inbox, stem), 15, f"{stem} refused")
                assert doc["status"] == "refused", doc
                assert "regular file" in doc["error"], doc
            make_identity_bundle(inbox, key, version=1)
            doc = wait_for(lambda: _result(inbox, "adder-1"), 15, "adder-1 installed")
            assert doc["status"] == "installed", doc
            t0 = time.monotonic()
            assert _active(agent) == 1
            assert time.monotonic() - t0 < 5
            assert _stop(agent, 20) == 0
        finally:
            unix.close()


def test_a_stalled_usb_copy_is_retried_not_refused(tmp_path: Path, key: Ed25519PrivateKey
                                                   ) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    data = make_identity_bundle(tmp_path, key, version=1).read_bytes()
    with running_agent(tmp_path / "agent", key, extra_args=("--inbox", str(inbox))) as agent:
        with (inbox / "adder-1.outpost").open("wb") as fh:
            fh.write(data[: len(data) // 2])
            fh.flush()
            time.sleep(4.0)  # the stick stalls for twice the agent's 2 s "stable" time
            fh.write(data[len(data) // 2:])
        doc = wait_for(lambda: _result(inbox, "adder-1"), 20, "a result")
        assert doc["status"] == "installed", doc
        assert not list((inbox / "refused").iterdir())
        assert _active(agent) == 1


def test_inbox_file_names_cannot_forge_log_lines(tmp_path: Path, key: Ed25519PrivateKey
                                                 ) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    log = tmp_path / "agent.log"
    forged = "2026-01-01 00:00:00,000 WARNING edge_agent: FORGED"
    name = f"x\n{forged}\r.outpost"
    with running_agent(tmp_path / "agent", key, extra_args=("--inbox", str(inbox)),
                       log=log):
        stranger = make_identity_bundle(tmp_path, generate_signing_key(), version=1)
        (inbox / name).write_bytes(stranger.read_bytes())  # signed by an unknown key
        stem = name[: -len(".outpost")]
        doc = wait_for(lambda: _result(inbox, stem), 15, "the odd file refused")
        assert doc["status"] == "refused"
        wait_for(lambda: "x\\n" in log.read_text(errors="replace"), 10, "the refusal logged")
    lines = log.read_text(errors="replace").splitlines()
    assert not [line for line in lines if line.startswith(forged)], lines
