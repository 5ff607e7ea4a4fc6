"""Shadow cost on the agent: the bench_agent RandomForest served with no challenger and
with a challenger (another RandomForest) run in shadow on 100 % of requests, same run.

/v1 predict over plain HTTP (`--insecure-http`, as bench_agent's main table), one
row, c1 and c16, the two agents measured alternately (`--rounds`
times each) so machine noise hits both. Server pinned to core 0, wrk to core 1.

    python bench/bench_shadow.py [--duration 5] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from bench_agent import (
    COLUMNS,
    PLAIN_HTTP,
    REPO,
    RESULTS_DIR,
    build_model,
    request_bodies,
    start,
    stop,
    wrk,
)

RESULTS = RESULTS_DIR / "bench_shadow.json"


def measure(agent_dir: Path, token_file: Path, pub: Path, case: Any, duration: float,
            workdir: Path) -> dict[str, dict[str, float]]:
    path, body, headers = case
    proc, url, _ = start(["-m", "edge_agent", "serve", "--dir", str(agent_dir),
                          "--token-file", str(token_file), "--trust-key", str(pub),
                          "--telemetry-max-mb", "16", *PLAIN_HTTP], "/v2/models/rf/ready")
    try:
        wrk(url + path, body, headers, 4, 1.0, workdir, proc.pid)  # warm-up
        return {f"c{c}": wrk(url + path, body, headers, c, duration, workdir, proc.pid)
                for c in (1, 16)}
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs per variant")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: one 0.5 s round per variant (figures mean nothing)")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.rounds = 0.5, 1
    from edge_agent.contract.protocol import generate_signing_key, write_bundle, write_public_key

    model, baseline, canary = build_model(0)
    challenger, _, _ = build_model(1)
    rng = np.random.default_rng(1)
    case = request_bodies({c: rng.normal(size=(1, 1)).astype(np.float32)
                           for c in COLUMNS})["v1_predict"]
    runs: dict[str, list[dict[str, dict[str, float]]]] = {"none": [], "shadow_100": []}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        key = generate_signing_key()
        pub = write_public_key(key.public_key(), tmp / "trusted.pub")
        token_file = tmp / "token"
        token_file.write_text("bench-token-123456")
        dirs = {}
        for variant, extra in (("none", {}), ("shadow_100", {"challenger": (2, challenger,
                                                                          1.0)})):
            (tmp / variant).mkdir()
            bundle = write_bundle(tmp / variant / "rf-1.outpost", model="rf", version=1,
                                  model_bytes=model, baseline=baseline, canary=canary, key=key,
                                  task="classification", labels=["alarm", "normal"], **extra)
            dirs[variant] = tmp / variant / "agent"
            subprocess.run([sys.executable, "-m", "edge_agent", "install", str(bundle),
                            "--dir", str(dirs[variant]), "--trust-key", str(pub)], check=True,
                           cwd=REPO, capture_output=True)
        for i in range(args.rounds):  # the order flips each round: no variant always first
            for variant, agent_dir in (list(dirs.items()) if i % 2 == 0
                                       else list(dirs.items())[::-1]):
                runs[variant].append(measure(agent_dir, token_file, pub, case, args.duration,
                                             tmp))
    summary = {v: {"c1_p99_us": statistics.median(r["c1"]["p99_us"] for r in rs),
                   "c1_p50_us": statistics.median(r["c1"]["p50_us"] for r in rs),
                   "c16_req_s": statistics.median(r["c16"]["req_s"] for r in rs),
                   "c16_server_cpu_us_per_req": statistics.median(
                       r["c16"]["server_cpu_us_per_req"] for r in rs)}
               for v, rs in runs.items()}
    for variant, s in summary.items():
        print(f"{variant:11s} c1 p50 {s['c1_p50_us']:6.0f} us p99 {s['c1_p99_us']:6.0f} us | "
              f"c16 {s['c16_req_s']:6.0f} req/s, server CPU "
              f"{s['c16_server_cpu_us_per_req']:.0f} us/req")
    d = summary["shadow_100"]["c1_p99_us"] - summary["none"]["c1_p99_us"]
    print(f"shadow 100 %: c1 p99 {d:+.0f} us, c16 req/s x"
          f"{summary['shadow_100']['c16_req_s'] / summary['none']['c16_req_s']:.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"duration_s": args.duration, "rounds": args.rounds,
                                   "summary": summary, "runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
