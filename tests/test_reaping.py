"""Every child is reaped: the local agent's bookkeeping in a long-lived process (the GUI),
and the suite's own check that no test leaves a child unreaped (issue #11: "subprocess N
is still running" printed after the last test)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.catalog import Catalog
from core.fleet import local
from tests.conftest import unreaped_children


def _state(pid: int) -> str:
    """The process's state letter in /proc (Z: ended, not reaped), or "gone"."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def _until_zombie(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while _state(proc.pid) != "Z":
        assert time.monotonic() < deadline, f"{proc.pid} did not end: {_state(proc.pid)}"
        time.sleep(0.01)


@pytest.fixture
def child(catalog: Catalog) -> Iterator[subprocess.Popen[bytes]]:
    """A child registered as this process's local agent, as `start_local_agent` does.
    Its command line does not name the agent folder: what /proc shows of an agent while it
    exits (its cmdline reads empty before waitpid sees it end)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    local._STARTED[proc.pid] = proc
    yield proc
    local._STARTED.pop(proc.pid, None)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_stop_reaps_our_agent_whatever_proc_shows(catalog: Catalog,
                                                  child: subprocess.Popen[bytes]) -> None:
    folder = local.local_dir(catalog)
    folder.mkdir(parents=True)
    (folder / "local.json").write_text(json.dumps({"pid": child.pid,
                                                   "url": "https://127.0.0.1:1"}))
    assert local.stop_local_agent(catalog) is True
    assert child.returncode == -signal.SIGTERM  # reaped, by the stop itself
    assert child.pid not in local._STARTED
    assert not (folder / "local.json").exists()


def test_an_agent_stopped_from_elsewhere_is_reaped_by_the_next_call(
        catalog: Catalog, child: subprocess.Popen[bytes]) -> None:
    """`outpost agent local stop` run beside the GUI: the agent ends, its state file goes,
    and the GUI, its parent, reaps it the next time it starts or stops the local agent."""
    os.kill(child.pid, signal.SIGTERM)  # as the other process does
    _until_zombie(child)
    assert local.stop_local_agent(catalog) is False  # no state file: it was not running
    assert child.returncode == -signal.SIGTERM
    assert child.pid not in local._STARTED


def test_the_suite_finds_a_child_nobody_reaped() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    _until_zombie(proc)
    assert proc in unreaped_children()
    proc.wait()
    assert proc not in unreaped_children()
