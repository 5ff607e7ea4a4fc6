"""The agent's latency tail beside a hand-written FastAPI + onnxruntime server, same run.

    python bench/bench_agent_tail.py [--baseline-tree DIR] [--rounds 3] [--duration 10]

The peers harness's model and request (../shared/peers-serving: StandardScaler +
RandomForest(50, depth 8), one FP32 [1, 8] input, V2 JSON; `--model columns`:
bench_agent.py's RandomForest with one FP32 [1, 1] input per column, as the desktop exports
a table's model, its FastAPI peer bench_agent.py's hand-written one), served by the agent of this
tree (plain HTTP, histograms and prediction records on), by the agent of `--baseline-tree`
(e.g. /work/main), and by the peers harness's `servers/fastapi_server.py` (uvicorn with
httptools + uvloop; skipped when fastapi or the harness is missing). Each server is one
process pinned to core 0; `wrk -t1` on core 1 runs a 2 s warm-up, then c1 and c16 for
`--duration` s each, with exact percentiles from wrk's done() hook. Rounds alternate the
order of the servers, so slow drift of a shared machine favours none; before each server
the script waits (up to `--quiet-wait` s) until the machine is < 10 % busy; every round
is printed, with the load average and that busy figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.bench_agent import (  # noqa: E402
    LOAD_CPU,
    RESULTS_DIR,
    SERVER_CPU,
    cpu_seconds,
    free_port,
    stop,
    wait_ready,
)
from bench.bench_agent_memory import SETUPS, ServedModel  # noqa: E402

# shared/ sits beside the main checkout (worktrees are one level further down)
PEERS = next((p / "shared" / "peers-serving" for p in REPO.parents
              if (p / "shared" / "peers-serving").is_dir()), REPO / "peers-serving")
FASTAPI_SERVER = Path(os.environ.get("PEERS_FASTAPI_SERVER",
                                     PEERS / "servers" / "fastapi_server.py"))
LUA = """wrk.method = "POST"
local f = assert(io.open(os.getenv("TAIL_BODY"), "rb"))
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  local o = assert(io.open(os.getenv("TAIL_OUT"), "w"))
  o:write(string.format('{"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,' ..
    '"p99_us":%d,"p999_us":%d,"max_us":%d,"errors":%d}', summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max,
    e.connect + e.read + e.write + e.status + e.timeout))
  o:close()
end
"""


def wrk(url: str, conns: int, seconds: float, workdir: Path, pid: int) -> dict[str, float]:
    out = workdir / "wrk.json"
    env = dict(os.environ, TAIL_BODY=str(workdir / "body.json"), TAIL_OUT=str(out))
    cpu0 = cpu_seconds(pid)
    subprocess.run(["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{conns}",
                    f"-d{max(1, round(seconds))}s", "-s", str(workdir / "tail.lua"), url],
                   env=env, check=True, capture_output=True)
    doc = json.loads(out.read_text())
    if doc["errors"]:  # kept in the results (timeouts on a starved machine), not fatal
        print(f"  wrk saw {doc['errors']} socket errors or timeouts at c{conns} on {url}",
              flush=True)
    doc["req_s"] = doc["requests"] / (doc["duration_us"] / 1e6)
    doc["server_cpu_us_per_req"] = (cpu_seconds(pid) - cpu0) / max(doc["requests"], 1) * 1e6
    return doc


def serve_agent(tree: Path, served: ServedModel, workdir: Path
                ) -> tuple[subprocess.Popen[bytes], str]:
    bundle, pub = served.bundle, served.pub
    env = dict(os.environ, PYTHONPATH=str(tree))
    agent_dir = Path(tempfile.mkdtemp(dir=workdir))
    subprocess.run([sys.executable, "-m", "edge_agent", "install", str(bundle), "--dir",
                    str(agent_dir), "--trust-key", str(pub)], check=True, env=env, cwd=tree,
                   capture_output=True)
    (workdir / "token").write_text("bench-token-123456")
    port = free_port()
    proc = subprocess.Popen(["taskset", "-c", SERVER_CPU, sys.executable, "-m", "edge_agent",
                             "serve", "--dir", str(agent_dir), "--token-file",
                             str(workdir / "token"), "--trust-key", str(pub),
                             "--insecure-http", "--port", str(port)],
                            env=env, cwd=tree, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + f"/v2/models/{served.name}/ready", proc)
    return proc, url + f"/v2/models/{served.name}/infer"


def serve_fastapi(model: Path, columns: bool) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    if columns:  # bench_agent.py's FastAPI server, written for that model's 8 inputs
        proc = subprocess.Popen(["taskset", "-c", SERVER_CPU, sys.executable,
                                 str(REPO / "bench" / "bench_agent.py"), "--fastapi-server",
                                 str(model), "--port", str(port)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        wait_ready(f"http://127.0.0.1:{port}/ready", proc)
        return proc, f"http://127.0.0.1:{port}/infer"
    env = dict(os.environ, MODEL_ONNX=str(model))
    proc = subprocess.Popen(["taskset", "-c", SERVER_CPU, sys.executable, "-m", "uvicorn",
                             "fastapi_server:app", "--app-dir", str(FASTAPI_SERVER.parent),
                             "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
                             "--http", "httptools", "--loop", "uvloop", "--log-level",
                             "warning"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/v2/health/ready", proc)
    return proc, url + "/v2/models/m/infer"


def busy_pct(seconds: float = 1.0) -> float:
    """Share of the machine's CPU time that was busy over `seconds` (all cores)."""
    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields[:8]) - idle, sum(fields[:8])
    busy0, total0 = sample()
    time.sleep(seconds)
    busy1, total1 = sample()
    return 100 * (busy1 - busy0) / max(total1 - total0, 1)


def wait_quiet(max_pct: float, max_wait_s: float) -> float:
    """Wait (at most max_wait_s) until other jobs use < max_pct of the machine for 3 s."""
    deadline = time.monotonic() + max_wait_s
    while True:
        pct = busy_pct(3.0)
        if pct < max_pct or time.monotonic() > deadline:
            return pct


def measure(start: Any, seconds: float, workdir: Path, quiet: tuple[float, float]
            ) -> dict[str, Any]:
    other = wait_quiet(*quiet) if quiet[1] > 0 else busy_pct(1.0)
    proc, url = start()
    try:
        wrk(url, 1, 2, workdir, proc.pid)  # warm-up
        return {"load": os.getloadavg()[0], "other_busy_pct": other,
                "c1": wrk(url, 1, seconds, workdir, proc.pid),
                "c16": wrk(url, 16, seconds, workdir, proc.pid)}
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-tree", type=Path, help="another checkout's agent, same run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--model", choices=SETUPS, default="peers",
                        help="peers: one [N, 8] input; columns: the desktop's one input per "
                             "column")
    parser.add_argument("--no-fastapi", action="store_true")
    parser.add_argument("--quiet-wait", type=float, default=120.0,
                        help="seconds to wait before each server for other jobs to use "
                             "< --quiet-pct of the machine (0: don't wait)")
    parser.add_argument("--quiet-pct", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round of 1 s")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration, args.quiet_wait = 1, 1.0, 0.0
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    import importlib.util

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        served = SETUPS[args.model](tmp)
        columns = args.model == "columns"
        (tmp / "body.json").write_bytes(served.body)
        (tmp / "tail.lua").write_text(LUA)
        (tmp / "model.onnx").write_bytes(served.model)
        servers: dict[str, Any] = {"agent": lambda: serve_agent(REPO, served, tmp)}
        if args.baseline_tree:
            base = args.baseline_tree
            servers["baseline"] = lambda: serve_agent(base, served, tmp)
        if (not args.no_fastapi and (columns or FASTAPI_SERVER.exists())
                and importlib.util.find_spec("fastapi") is not None):
            servers["fastapi"] = lambda: serve_fastapi(tmp / "model.onnx", columns)
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
        for r in range(args.rounds):
            order = list(servers) if r % 2 == 0 else list(reversed(servers))
            for name in order:
                m = measure(servers[name], args.duration, tmp,
                            (args.quiet_pct, args.quiet_wait))
                results[name].append(m)
                c1, c16 = m["c1"], m["c16"]
                print(f"round {r + 1} {name:8s} load {m['load']:4.1f} other "
                      f"{m['other_busy_pct']:3.0f}% | c1 p50 "
                      f"{c1['p50_us']:5d} p99 {c1['p99_us']:5d} p99.9 {c1['p999_us']:6d} us "
                      f"{c1['req_s']:6.0f}/s | c16 p50 {c16['p50_us']:5d} p99 "
                      f"{c16['p99_us']:5d} us {c16['req_s']:6.0f}/s "
                      f"cpu {c16['server_cpu_us_per_req']:4.0f} us/req", flush=True)
    print(f"summary ({args.rounds} rounds of {args.duration:g} s, min-max):")
    def span(runs: list[dict[str, Any]], conns: str, key: str, scale: float = 1.0,
             fmt: str = "{:.0f}") -> str:
        values = [r[conns][key] * scale for r in runs]
        return f"{fmt.format(min(values))}-{fmt.format(max(values))}"

    for name, runs in results.items():
        print(f"  {name:8s} c1 p99 {span(runs, 'c1', 'p99_us', 1e-3, '{:.2f}')} ms, c16 p99 "
              f"{span(runs, 'c16', 'p99_us', 1e-3, '{:.2f}')} ms, c16 "
              f"{span(runs, 'c16', 'req_s')} req/s")
    if "fastapi" in results:
        for name in results:
            if name != "fastapi":
                ratio = [a["c1"]["p99_us"] / b["c1"]["p99_us"]
                         for a, b in zip(results[name], results["fastapi"], strict=True)]
                print(f"  {name} c1 p99 / fastapi's, per round: "
                      + ", ".join(f"{x:.2f}" for x in ratio))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "bench_agent_tail.json").write_text(json.dumps(
        {"rounds": args.rounds, "duration_s": args.duration, "model": args.model,
         "baseline_tree": str(args.baseline_tree or ""), "results": results}, indent=2))


if __name__ == "__main__":
    main()
