"""Forwarding benchmark: an `outpost` command alone vs forwarded to the catalog's holder.

Alone (baseline, same run): nothing holds the catalog, so each command opens it itself.
Forwarded: `outpost hub serve` holds it and each command is sent over the admin socket
and run there. Both are whole `outpost` processes, timed from spawn to exit; the median
of `--runs` each, and the ratio forwarded / alone.

    python bench/bench_forward.py [--runs 15]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results" / "bench_forward.json"
OUTPOST = [sys.executable, "-m", "core.cli.__main__"]
COMMANDS = {"info": ["info", "--json"], "agent_status": ["agent", "status", "dev1", "--json"]}


def outpost(home: Path, *args: str) -> float:
    env = dict(os.environ, OUTPOST_HOME=str(home), PYTHONPATH=str(REPO))
    t0 = time.perf_counter()
    proc = subprocess.run([*OUTPOST, *args], capture_output=True, text=True, env=env, cwd=REPO)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"outpost {' '.join(args)} failed: {proc.stderr.strip()}")
    return elapsed


def timings(home: Path, runs: int) -> dict[str, list[float]]:
    return {name: [outpost(home, *args) for _ in range(runs)] for name, args in COMMANDS.items()}


def hold(home: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, OUTPOST_HOME=str(home), PYTHONPATH=str(REPO))
    hub = subprocess.Popen([*OUTPOST, "hub", "serve", "--port", "0", "--json"], cwd=REPO,
                           env=env, stdout=subprocess.PIPE, text=True)
    assert hub.stdout is not None
    while hub.stdout.readline().strip() != "}":
        pass
    return hub


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        outpost(home, "agent", "enroll", "dev1", "--json")
        outpost(home, "info", "--json")  # warm the file cache
        alone = timings(home, args.runs)
        hub = hold(home)
        try:
            forwarded = timings(home, args.runs)
        finally:
            hub.terminate()
            hub.wait(30)
    result: dict[str, Any] = {"runs": args.runs, "cpu_count": os.cpu_count()}
    for name in COMMANDS:
        a, f = statistics.median(alone[name]) * 1000, statistics.median(forwarded[name]) * 1000
        result[name] = {"alone_ms": round(a, 1), "forwarded_ms": round(f, 1),
                        "ratio": round(f / a, 3)}
    print(json.dumps(result, indent=2))
    for name in COMMANDS:
        r = result[name]
        print(f"{name}: alone {r['alone_ms']:.0f} ms, forwarded {r['forwarded_ms']:.0f} ms "
              f"(forwarded/alone {r['ratio']:.2f})")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
