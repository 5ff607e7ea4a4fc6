"""Every benchmark script runs its `--quick` smoke mode here, so none of them can rot.

Parametrised over the glob of `bench/bench_*.py`: a new script without `--quick` fails its
case (argparse rejects the flag). Only that the script runs to the end is checked: the
figures of a smoke run on a shared machine mean nothing, and none is asserted. Results go
to a temporary folder (OUTPOST_BENCH_RESULTS), never to bench/results/.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((REPO / "bench").glob("bench_*.py"))
# the load generator they run
NEEDS = {"bench_agent.py": "wrk", "bench_shadow.py": "wrk", "bench_agent_tail.py": "wrk"}


def test_every_bench_script_is_covered() -> None:
    assert len(SCRIPTS) >= 8, [s.name for s in SCRIPTS]


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_bench_quick(script: Path, tmp_path: Path) -> None:
    tool = NEEDS.get(script.name)
    if tool and shutil.which(tool) is None:
        pytest.skip(f"{script.name} needs {tool}")
    env = dict(os.environ, OUTPOST_BENCH_RESULTS=str(tmp_path / "results"),
               OUTPOST_HOME=str(tmp_path / "home"), QT_QPA_PLATFORM="offscreen",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(script), "--quick"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, f"{script.name} --quick failed:\n{proc.stdout[-3000:]}\n" \
                                 f"{proc.stderr[-3000:]}"
    written = list((tmp_path / "results").glob("*.json"))
    assert written or script.name == "bench_dist.py", "a quick run writes its results file"
