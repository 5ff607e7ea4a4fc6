"""The systemd unit that runs `outpost hub serve` on the desktop box for its user."""
from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

UNIT = REPO / "packaging" / "systemd" / "outpost-hub.service"


def _unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(UNIT)
    return unit


def test_hub_unit_serves_the_users_catalog_and_restarts() -> None:
    unit = _unit()
    service = unit["Service"]
    assert service["ExecStart"].split()[1:3] == ["hub", "serve"]
    assert service["Environment"] == "OUTPOST_HOME=%h/.local/share/outpost"
    for key, value in (("Restart", "on-failure"), ("UMask", "0077"), ("KillSignal", "SIGTERM"),
                       ("NoNewPrivileges", "yes")):
        assert service[key] == value, key
    assert "User" not in service  # a user unit: the catalog's owner runs it
    assert "PrivateTmp" not in service  # the socket's fallback folder is in the temp dir
    assert unit["Install"]["WantedBy"] == "default.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_hub_unit_passes_systemd_analyze(tmp_path: Path) -> None:
    stand_in = tmp_path / "outpost"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    unit = tmp_path / "outpost-hub.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/outpost", str(stand_in)))
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                          capture_output=True, text=True, timeout=60)
    problems = [line for line in proc.stderr.splitlines() if "outpost-hub.service" in line]
    assert proc.returncode == 0 and not problems, proc.stderr
