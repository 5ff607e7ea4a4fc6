"""Shared by the forwarding tests: the CLI run from a folder of the test's, and the whole
hub loop operated from the CLI while another process holds the catalog."""
from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path

import httpx

from tests.conftest import OUTPOST, REPO, CliResult
from tests.support.agents import identity_model, verify_for
from tests.support.hub import HubAgent, start_hub_agent, wait_until


def _env(home: Path) -> dict[str, str]:
    return dict(os.environ, OUTPOST_HOME=str(home), COLUMNS="120", NO_COLOR="1",
                PYTHONPATH=str(REPO))


def run_in(home: Path, cwd: Path, *args: str, timeout: float = 120) -> CliResult:
    """`outpost ARGS` from the folder `cwd` (relative paths are the caller's)."""
    proc = subprocess.run([*OUTPOST, *args], capture_output=True, text=True, env=_env(home),
                          cwd=cwd, timeout=timeout)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def ok(home: Path, cwd: Path, *args: str) -> CliResult:
    result = run_in(home, cwd, *args)
    assert result.returncode == 0, f"outpost {' '.join(args)}: {result.stderr}"
    return result


def popen_in(home: Path, cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*OUTPOST, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env(home), cwd=cwd)


def run_in_pty(home: Path, cwd: Path, *args: str, timeout: float = 120) -> tuple[int, bytes]:
    """`outpost ARGS` with a terminal for stdin, stdout and stderr: (exit code, what it drew)."""
    master, slave = pty.openpty()
    env = dict(_env(home), TERM="xterm-256color")
    env.pop("NO_COLOR")
    proc = subprocess.Popen([*OUTPOST, *args], stdin=slave, stdout=slave, stderr=slave,
                            env=env, cwd=cwd, close_fds=True)
    os.close(slave)
    drawn = bytearray()
    try:
        while chunk := _read(master):
            drawn += chunk
        return proc.wait(timeout), bytes(drawn)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the other side of the terminal closed
        return b""


def answer(agent: HubAgent, x: float) -> float | None:
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [x]}]}
    reply = httpx.post(f"{agent.url}/v2/models/adder/infer", json=body, timeout=10,
                       verify=verify_for(agent.url))
    return float(reply.json()["outputs"][0]["data"][0]) if reply.status_code == 200 else None


def operate_hub_from_cli(home: Path, work: Path, hub_url: str) -> None:
    """Enrol, start the device with --enroll, deploy, roll back, send traffic, read status
    and drift, revoke: every step an `outpost` command beside the catalog's holder."""
    ok(home, work, "agent", "enroll", "edge1", "--out", "edge1.enrol", "--hub-url", hub_url,
       "--json")
    agent = start_hub_agent(work / "edge1", "edge1", enrol=work / "edge1.enrol")
    try:
        for bias in (1.0, 2.0):
            (work / f"adder-{bias}.onnx").write_bytes(identity_model(bias_value=bias))
            ok(home, work, "model", "import", f"adder-{bias}.onnx", "--name", "adder", "--json")
        deployed = ok(home, work, "deploy", "adder@1", "--to", "edge1", "--json").json()
        assert (deployed["agent"], deployed["model"], deployed["version"]) == (
            "edge1", "adder", 1)
        wait_until(lambda: answer(agent, 1.0) == 2.0, 30, "version 1 serving")
        ok(home, work, "deploy", "adder@2", "--to", "edge1", "--json")
        wait_until(lambda: answer(agent, 1.0) == 3.0, 30, "version 2 serving")

        def reported(version: int) -> bool:  # rollback acts on what the last poll said
            found = ok(home, work, "agent", "status", "edge1", "--json").json()
            return [(m["name"], m["active"]) for m in found["models"]] == [("adder", version)]

        wait_until(lambda: reported(2), 30, "a poll reporting version 2", every=0.5)
        ok(home, work, "rollback", "adder", "--on", "edge1", "--json")
        wait_until(lambda: answer(agent, 1.0) == 2.0, 30, "rolled back to version 1")
        agent.infer(20)

        def status() -> dict[str, object] | None:
            found = ok(home, work, "agent", "status", "edge1", "--json").json()
            models = [(m["name"], m["active"]) for m in found["models"]]
            done = found["telemetry_rows"] >= 20 and models == [("adder", 1)]
            return found if done else None

        found = wait_until(status, 30, "agent status with its telemetry", every=0.5)
        assert (found["agent"], found["online"], found["mode"]) == ("edge1", True, "hub")
        # An imported ONNX file carries no training baseline, so drift has nothing to compare:
        # the one line says so, forwarded like any error; alerts list fine.
        drift = run_in(home, work, "drift", "report", "adder", "--agent", "edge1", "--json")
        assert (drift.returncode, drift.stdout) == (1, "")
        assert drift.stderr.startswith("error: no histogram telemetry for model adder")
        assert ok(home, work, "drift", "alerts", "--json").json() == {"alerts": []}
        assert ok(home, work, "agent", "revoke", "edge1", "--json").json() == {
            "agent": "edge1", "revoked": True}
    finally:
        agent.stop()
