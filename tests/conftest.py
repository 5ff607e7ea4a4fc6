"""Fixtures shared by every test: an isolated OUTPOST_HOME and the CLI as a subprocess."""
from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Every process this pytest process starts inherits the mark (pytest-xdist workers replace
# their controller's with their own), so one left running is found even once orphaned.
SESSION_MARK = "OUTPOST_TEST_SESSION"
os.environ[SESSION_MARK] = uuid.uuid4().hex

REPO = Path(__file__).resolve().parents[1]
# The installed console script, as a user runs it (it lives beside this interpreter).
OUTPOST = [str(Path(sys.executable).with_name("outpost"))]


def _ends_with_us(proc: psutil.Process) -> bool:
    """A resource tracker (multiprocessing's, or joblib's): a helper of this very process
    that exits when it does, on the end of file of our pipe."""
    return proc.ppid() == os.getpid() and "resource_tracker" in " ".join(proc.cmdline())


def _marked_survivors() -> list[psutil.Process]:
    mark, found = os.environ[SESSION_MARK], []
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            if (proc.status() != psutil.STATUS_ZOMBIE and not _ends_with_us(proc)
                    and proc.environ().get(SESSION_MARK) == mark):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def unreaped_children() -> list[subprocess.Popen[Any]]:
    """The Popen objects of this process whose exit status nobody has read, whatever holds
    them (a global, a cache, a fixture, a cycle not yet collected). One still held when
    the process exits makes Python print "ResourceWarning: subprocess N is still running"
    then, past any test that could fail for it; its process, once ended, is a zombie."""
    return [obj for obj in gc.get_objects() if isinstance(obj, subprocess.Popen)
            and getattr(obj, "_child_created", False) and obj.returncode is None]


def _describe(proc: subprocess.Popen[Any]) -> str:
    where = tracemalloc.get_object_traceback(proc)
    started = ("\n" + "\n".join(where.format())) if where is not None else (
        " (PYTHONTRACEMALLOC=20 shows where it was started)")
    return f"{proc.pid} {str(proc.args)[:200]}{started}"


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind() -> Iterator[None]:
    """Fail the run if a process the suite started is still running once it ends (after
    ten seconds for those already shutting down), or if this process still holds a child
    it never reaped; the survivors are killed, the children reaped."""
    yield
    if "joblib.externals.loky" in sys.modules:  # in-process searches keep a worker pool
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)
    deadline = time.monotonic() + 10
    while (survivors := _marked_survivors()) and time.monotonic() < deadline:
        psutil.wait_procs(survivors, timeout=0.5)
    failures = []
    if survivors:
        described = [f"{p.pid} {' '.join(p.cmdline())[:200]}" for p in survivors]
        for proc in survivors:
            proc.kill()
        failures.append("processes started by the suite outlived it (killed now):\n"
                        + "\n".join(described))
    if unreaped := unreaped_children():
        failures.append("children started in this process were never reaped (reaped now):\n"
                        + "\n".join(_describe(proc) for proc in unreaped))
        for child in unreaped:
            if child.poll() is None:
                child.kill()
                child.wait()
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture
def outpost_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh, empty Outpost home for this test (also for in-process core calls)."""
    home = tmp_path / "outpost-home"
    monkeypatch.setenv("OUTPOST_HOME", str(home))
    yield home


@pytest.fixture
def catalog(outpost_home: Path) -> Iterator[Any]:
    """The catalog of this test's home, open in-process (closed after the test)."""
    from tests.support.fleet import open_catalog  # core loads only for tests that ask

    cat = open_catalog(outpost_home)
    yield cat
    cat.close()


def run_cli(home: Path, *args: str, timeout: float = 120, check: bool = False,
            input_text: str | None = None) -> CliResult:
    """Run ``outpost ARGS`` in a real subprocess against ``home``."""
    env = dict(os.environ, OUTPOST_HOME=str(home), COLUMNS="200", NO_COLOR="1")
    proc = subprocess.run(
        [*OUTPOST, *args], capture_output=True, text=True, env=env, timeout=timeout,
        cwd=REPO, input=input_text,
    )
    result = CliResult(proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise AssertionError(f"outpost {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return result


@pytest.fixture
def cli(outpost_home: Path):  # type: ignore[no-untyped-def]
    """``cli("dataset", "list", "--json")`` runs the real CLI against this test's home."""

    def run(*args: str, **kwargs: Any) -> CliResult:
        return run_cli(outpost_home, *args, **kwargs)

    return run
