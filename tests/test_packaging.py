"""The frozen programs, built with PyInstaller and used as a field site would use them.

The agent binary is built once per session (and not at all when `dist/` already holds a
build of the same sources: see packaging/build.py). The desktop one-folder build takes
minutes, so the normal suite uses it only when it is up to date; `.ci/run` builds it in a
step of its own with OUTPOST_BUILD_DESKTOP=1.
"""
from __future__ import annotations

import configparser
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from importlib.metadata import version
from pathlib import Path
from types import ModuleType

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.contract.protocol import generate_signing_key, write_public_key
from tests.support.agents import (
    free_port,
    json_request,
    make_identity_bundle,
    make_tabular_bundle,
    trust_cert,
    wait_http_ok,
)

# A test's setup may include a PyInstaller build (agent ~1 min, desktop ~3 min on 2 busy cores).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("packaging"), pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[1]
PACKAGE_VERSION = version("outpost")
AGENT_MAX_BYTES = 80_000_000  # 80 MB
# What the agent must not carry (regular expressions matched at the start of each entry).
DESKTOP_STACK = {
    "Qt": r"PySide6|shiboken6|libQt6|libpyside6",
    "DuckDB": r"_?duckdb|libduckdb",
    "scikit-learn": r"sklearn|scipy\b|skl2onnx",
    "pandas": r"pandas",
    "pyarrow": r"pyarrow|libarrow|libparquet",
    "desktop code": r"core\b|app\b",
}


def _load(name: str) -> ModuleType:
    path = REPO / "packaging" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"outpost_packaging_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def frozen_agent() -> Path:
    result = _load("build").build("agent")
    return Path(result.executable)


@pytest.fixture(scope="session")
def frozen_desktop() -> Path:
    build = _load("build")
    if os.environ.get("OUTPOST_BUILD_DESKTOP") == "1":
        return Path(build.build("desktop").executable)
    target = build.TARGETS["desktop"]
    dist = REPO / "dist"
    stamp = dist / ".desktop.fingerprint"
    if not (stamp.exists() and stamp.read_text().strip() == build.fingerprint(target)):
        pytest.skip("the desktop build (minutes) is its own step in .ci/run: "
                    "OUTPOST_BUILD_DESKTOP=1 pytest "
                    "tests/test_packaging.py -k frozen_desktop")
    return target.executable(dist)


def _contents(program: Path, *forbid: str) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, str(REPO / "packaging" / "contents.py"), str(program), "--json"]
    for pattern in forbid:
        args += ["--forbid", pattern]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def test_agent_binary_bundles_no_desktop_stack_and_fits(frozen_agent: Path) -> None:
    # sqlite-utils: the outbox needs only the standard library's sqlite3 (issue 20)
    listing = _contents(frozen_agent, *DESKTOP_STACK.values(), r"sqlite_utils")
    assert listing.returncode == 0, listing.stderr
    entries: list[str] = json.loads(listing.stdout)
    for what in ("edge_agent.cli", "edge_agent.store.store", "onnxruntime", "numpy", "uvicorn",
                 "uvloop", "httptools", "cryptography", "watchdog.observers"):
        assert any(e == what or e.startswith(what + ".") for e in entries), what
    # The package metadata (`--version`), as dist-info or as the editable install's egg-info.
    assert any(e.startswith(("outpost-", "outpost.egg-info/")) and e.endswith("/METADATA")
               or e == "outpost.egg-info/PKG-INFO" for e in entries)
    assert frozen_agent.stat().st_size <= AGENT_MAX_BYTES


def test_contents_script_catches_what_it_forbids(frozen_agent: Path) -> None:
    listing = _contents(frozen_agent, r"onnxruntime")
    assert listing.returncode == 1
    assert listing.stderr.startswith("error:") and "onnxruntime" in listing.stderr


@contextmanager
def serving(agent: Path, agent_dir: Path, *extra: str, token: str = "field-token"
            ) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    agent_dir.mkdir(parents=True, exist_ok=True)
    token_file = agent_dir.parent / "token"
    token_file.write_text(token + "\n")
    port = free_port()
    with (agent_dir.parent / "agent.log").open("wb") as log:
        # Its own process group: the one-file binary is a bootloader whose child serves,
        # and killing the bootloader alone would leave that child running.
        proc = subprocess.Popen([str(agent), "serve", "--dir", str(agent_dir), "--port",
                                 str(port), "--token-file", str(token_file), *extra],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"https://127.0.0.1:{port}"
    trust_cert(url, agent_dir / "tls.crt")
    try:
        wait_http_ok(f"{url}/v2/health/ready", 60, proc)
        yield proc, url
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _trust(tmp_path: Path, key: Ed25519PrivateKey) -> Path:
    return write_public_key(key.public_key(), tmp_path / "desktop.pub")


def test_frozen_agent_serves_installs_infers_and_stops_on_sigterm(frozen_agent: Path,
                                                                  tmp_path: Path) -> None:
    key = generate_signing_key()
    bundle = make_tabular_bundle(tmp_path, key)
    auth = {"Authorization": "Bearer field-token"}
    with serving(frozen_agent, tmp_path / "agent", "--trust-key",
                 str(_trust(tmp_path, key))) as (proc, url):
        assert json_request(f"{url}/v2/health/live")[0] == 200
        status, doc = json_request(f"{url}/v1/bundles?activate=true", headers=auth,
                                   data=bundle.read_bytes(), method="POST")
        assert status == 200 and doc["status"] == "active" and doc["canary"] == "passed", doc
        row = {"temp": 21.0, "pressure": 1010.0, "site": "north"}
        body = {"inputs": [{"name": k, "datatype": "BYTES" if isinstance(v, str) else "FP32",
                            "shape": [1, 1], "data": [v]} for k, v in row.items()]}
        status, doc = json_request(f"{url}/v2/models/pumps/infer", body)
        assert status == 200 and doc["outputs"][0]["data"] == ["alarm"], doc
        status, doc = json_request(f"{url}/v1/status", headers=auth)
        assert status == 200 and doc["version"] == PACKAGE_VERSION
        assert [m["active"] for m in doc["models"] if m["name"] == "pumps"] == [1]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    # The install outlived the process: the active pointer is on disk.
    assert (tmp_path / "agent" / "models" / "pumps" / "active").read_text().strip() == "1"


def test_frozen_agent_refuses_an_inbox_bundle_signed_by_an_unknown_key(
        frozen_agent: Path, tmp_path: Path) -> None:
    trusted, stranger = generate_signing_key(), generate_signing_key()
    inbox = tmp_path / "inbox"
    with serving(frozen_agent, tmp_path / "agent", "--trust-key", str(_trust(tmp_path, trusted)),
                 "--inbox", str(inbox)) as (proc, url):
        dropped = make_identity_bundle(tmp_path, stranger)
        shutil.copyfile(dropped, inbox / ".adder-1.outpost.part")
        os.replace(inbox / ".adder-1.outpost.part", inbox / dropped.name)
        result = inbox / "adder-1.result.json"
        deadline = time.monotonic() + 30
        while not result.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        doc = json.loads(result.read_text())
        assert doc["status"] == "refused" and doc["error_type"] == "BundleUnknownKey", doc
        assert (inbox / "refused" / dropped.name).exists()
        assert json_request(f"{url}/v2/models/adder/ready")[0] == 404
        assert proc.poll() is None


def _one_line_error(args: list[str]) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr
    return proc.stderr


def test_frozen_agent_on_a_port_in_use_says_so_in_one_line(frozen_agent: Path,
                                                          tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = _one_line_error([str(frozen_agent), "serve", "--dir", str(tmp_path / "a"),
                                "--port", str(port)])
    assert "in use" in line


def test_frozen_agent_with_an_unwritable_dir_says_so_in_one_line(frozen_agent: Path,
                                                                tmp_path: Path) -> None:
    if os.geteuid() == 0:  # root writes anywhere: a path through a regular file cannot exist
        (tmp_path / "file").write_text("")
        agent_dir = tmp_path / "file" / "agent"
    else:
        agent_dir = tmp_path / "locked"
        agent_dir.mkdir(mode=0o500)
    line = _one_line_error([str(frozen_agent), "serve", "--dir", str(agent_dir), "--port", "0"])
    assert "not writable" in line


def _first_line(args: list[str]) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_versions_agree_with_the_package(frozen_agent: Path) -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert PACKAGE_VERSION == declared, "the installed metadata is stale: pip install -e ."
    bin_dir = Path(sys.executable).parent
    assert _first_line([str(bin_dir / "outpost"), "--version"]) == f"outpost {declared}"
    assert _first_line([str(bin_dir / "outpost-agent"), "--version"]) == \
        f"outpost-agent {declared}"
    assert _first_line([str(frozen_agent), "--version"]) == f"outpost-agent {declared}"


def test_bundles_record_the_desktop_version_that_built_them(outpost_home: Path,
                                                             tmp_path: Path) -> None:
    from core.bundles import build_bundle
    from edge_agent.contract.protocol import read_bundle_manifest
    from tests.support.fleet import open_catalog, train_mini

    catalog = open_catalog(outpost_home)
    try:
        train_mini(catalog)
        built = build_bundle(catalog, "pumps@1", tmp_path)
    finally:
        catalog.close()
    assert read_bundle_manifest(built.path).built_by == f"outpost {PACKAGE_VERSION}"


def test_frozen_desktop_self_test_and_cli(frozen_desktop: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    proc = subprocess.run([str(frozen_desktop), "--self-test"], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["frozen"] is True and report["platform"] == "offscreen"
    assert report["inference"] == [[2.5]] and report["migrations"]
    assert Path(report["resources"]).is_relative_to(frozen_desktop.parent)
    assert _first_line([str(frozen_desktop), "--version"]) == f"outpost {PACKAGE_VERSION}"
    # How the desktop starts its local agent: `sys.executable -m edge_agent serve ...`.
    assert _first_line([str(frozen_desktop), "-m", "edge_agent", "--version"]) == \
        f"outpost-agent {PACKAGE_VERSION}"


def test_frozen_desktop_runs_the_whole_loop(frozen_desktop: Path, tmp_path: Path) -> None:
    """import, train, convert, bundle, local agent, deploy, traffic, telemetry, drift."""
    env = dict(os.environ, OUTPOST_HOME=str(tmp_path / "home"))
    proc = subprocess.run([str(frozen_desktop), "demo", "--json"], capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["passed"] is True


UNIT = REPO / "packaging" / "systemd" / "outpost-agent.service"


def test_service_unit_restarts_and_is_hardened() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(UNIT)
    service = unit["Service"]
    assert service["Restart"] == "on-failure"
    for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                       ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                       ("CapabilityBoundingSet", ""), ("User", "outpost-agent")):
        assert service[key] == value, key
    state = "/var/lib/outpost-agent"
    assert service["ReadWritePaths"] == state
    assert f"--dir {state}" in service["ExecStart"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_service_unit_passes_systemd_analyze(tmp_path: Path) -> None:
    # verify wants the ExecStart binary to exist: point it at a stand-in of the same name.
    stand_in = tmp_path / "outpost-agent"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    unit = tmp_path / "outpost-agent.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/outpost-agent", str(stand_in)))
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                          capture_output=True, text=True, timeout=60)
    problems = [line for line in proc.stderr.splitlines() if "outpost-agent.service" in line]
    assert proc.returncode == 0 and not problems, proc.stderr
