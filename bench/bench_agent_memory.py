"""Resident memory and idle CPU of a serving agent, code now vs another tree, same run.

    python bench/bench_agent_memory.py [--baseline-tree DIR] [--rounds 2] [--load-s 5]

Each agent (plain HTTP, `--insecure-http`) serves the peers harness's model
(StandardScaler + RandomForest(50, depth 8), one FP32 [N, 8] input, as
../shared/peers-serving/make_model.py builds it; `--model columns`: bench_agent.py's model
with one input per column, as the desktop exports it) from a folder it installed itself. Read
from /proc: VmRSS after start and one request, the idle CPU (utime + stime) and
voluntary context switches (wakeups) over `--idle-s`, VmRSS after `--load-s` of
16-connection wrk load (a Python loop when wrk is missing) and that load's req/s, and
smaps_rollup's anonymous and file-backed parts. `--baseline-tree` is a checkout of
another commit (e.g. a `git worktree add --detach` of main): its agent runs from there
with the same model, in alternating order, so the ratio is same-run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.bench_agent import (  # noqa: E402
    COLUMNS,
    RESULTS_DIR,
    build_model,
    cpu_seconds,
    free_port,
    request_bodies,
    signed_bundle,
    stop,
    wait_ready,
)


def peers_model() -> tuple[bytes, dict[str, Any], dict[str, Any], list[float]]:
    """The peers harness model (make_model.py's data and pipeline), baseline, canary, row."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, 8)).astype(np.float32)
    score = (np.sin(x[:, 0] * 1.5) + x[:, 1] * x[:, 2] - 0.5 * x[:, 3] ** 2
             + np.abs(x[:, 4]) * x[:, 5] + 0.3 * x[:, 6] - 0.1 * x[:, 7] + 0.25)
    y = (score + rng.normal(scale=0.5, size=len(x)) > 0).astype(np.int64)
    pipe = Pipeline([("scaler", StandardScaler()),
                     ("rf", RandomForestClassifier(50, max_depth=8, random_state=0))])
    pipe.fit(x[:16_000], y[:16_000])
    onx = to_onnx(pipe, initial_types=[("input", FloatTensorType([None, 8]))],
                  options={id(pipe.steps[-1][1]): {"zipmap": False}}, target_opset=17)
    features = []
    for i in range(8):
        edges = np.quantile(x[:, i], [0.1, 0.25, 0.5, 0.75, 0.9]).tolist()
        counts = np.bincount(np.searchsorted(edges, x[:, i], side="right"), minlength=6)
        features.append({"name": f"f{i}", "kind": "numeric", "edges": edges,
                         "counts": counts.tolist(), "nulls": 0})
    preds = pipe.predict(x)
    baseline = {"rows": len(x), "features": features, "prediction": {
        "name": "__prediction__", "kind": "categorical", "categories": ["0", "1"],
        "counts": [int((preds == 0).sum()), int((preds == 1).sum()), 0], "nulls": 0}}
    sample = x[16_000:16_004]
    canary = {"inputs": {"input": sample.tolist()},
              "expected": {"label": [int(v) for v in pipe.predict(sample)],
                           "probabilities": pipe.predict_proba(sample).tolist()},
              "atol": 1e-4, "label_output": "label"}
    return onx.SerializeToString(), baseline, canary, x[16_000].tolist()


@dataclass(frozen=True)
class ServedModel:
    """A bench model signed as a bundle in a scratch folder, with its trust key and an
    OIP JSON body of one row: what each agent bench serves."""

    name: str  # the model's name in the agent's URLs
    model: bytes  # the ONNX file's bytes (the FastAPI peer serves it as is)
    bundle: Path
    pub: Path
    body: bytes


def peers_setup(folder: Path) -> ServedModel:
    """The peers harness's model: one FP32 [N, 8] input."""
    model, baseline, canary, row = peers_model()
    body = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 8],
                                   "data": row}]}).encode()
    bundle, pub = signed_bundle(folder, "peers", model, baseline, canary, ["0", "1"])
    return ServedModel("peers", model, bundle, pub, body)


def columns_setup(folder: Path) -> ServedModel:
    """bench_agent.py's model, exported as the desktop exports a table's model: one ONNX
    input per column (8 FP32 [N, 1] inputs)."""
    model, baseline, canary = build_model()
    rng = np.random.default_rng(1)
    row = {c: rng.normal(size=(1, 1)).astype(np.float32) for c in COLUMNS}
    body = request_bodies(row)["oip_json"][1]
    bundle, pub = signed_bundle(folder, "rf", model, baseline, canary, ["alarm", "normal"])
    return ServedModel("rf", model, bundle, pub, body)


SETUPS = {"peers": peers_setup, "columns": columns_setup}


def proc_figures(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    kb = {k: int(v) for k, v in re.findall(r"^(\w+):\s+(\d+) kB", rollup, re.M)}
    rss = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]
    return {"rss_mb": rss / 1024, "anon_mb": kb.get("Anonymous", 0) / 1024,
            "file_mb": (kb.get("Rss", 0) - kb.get("Anonymous", 0)) / 1024}


def wakeups(pid: int) -> int:
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        total += int(re.search(r"voluntary_ctxt_switches:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return total


def load(url: str, body: bytes, seconds: float, workdir: Path) -> float:
    """Requests per second served under the load."""
    if shutil.which("wrk"):
        lua = workdir / "post.lua"
        lua.write_text(f"wrk.method = 'POST'\nwrk.body = {json.dumps(body.decode())}\n"
                       "wrk.headers['Content-Type'] = 'application/json'\n")
        out = subprocess.run(["wrk", "-t1", "-c16", f"-d{seconds:g}s", "-s", str(lua), url],
                             check=True, capture_output=True, text=True).stdout
        return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    end, n, t0 = time.monotonic() + seconds, 0, time.monotonic()
    while time.monotonic() < end:
        post(url, body)
        n += 1
    return n / (time.monotonic() - t0)


def post(url: str, body: bytes) -> None:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


def measure(tree: Path, served: ServedModel, args: argparse.Namespace, workdir: Path
            ) -> dict[str, float]:
    bundle, pub, body = served.bundle, served.pub, served.body
    env = dict(os.environ, PYTHONPATH=str(tree))
    agent_dir = Path(tempfile.mkdtemp(dir=workdir))
    subprocess.run([sys.executable, "-m", "edge_agent", "install", str(bundle), "--dir",
                    str(agent_dir), "--trust-key", str(pub)], check=True, env=env, cwd=tree,
                   capture_output=True)
    (workdir / "token").write_text("bench-token-123456")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "edge_agent", "serve", "--dir",
                             str(agent_dir), "--token-file", str(workdir / "token"),
                             "--trust-key", str(pub), "--insecure-http", "--port", str(port)],
                            env=env, cwd=tree, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url + f"/v2/models/{served.name}/ready", proc)
        infer = url + f"/v2/models/{served.name}/infer"
        post(infer, body)
        out = {f"start_{k}": v for k, v in proc_figures(proc.pid).items()}
        time.sleep(1.0)  # the request's aftermath (connection close), then the idle window
        cpu0, wake0, t0 = cpu_seconds(proc.pid), wakeups(proc.pid), time.monotonic()
        time.sleep(args.idle_s)
        elapsed = time.monotonic() - t0
        out["idle_cpu_pct"] = 100 * (cpu_seconds(proc.pid) - cpu0) / elapsed
        out["idle_wakeups_per_s"] = (wakeups(proc.pid) - wake0) / elapsed
        out["load_req_s"] = load(infer, body, args.load_s, workdir)
        out.update({f"load_{k}": v for k, v in proc_figures(proc.pid).items()})
        return out
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-tree", type=Path, help="a checkout of another commit")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", choices=SETUPS, default="peers",
                        help="peers: one [N, 8] input; columns: the desktop's one input per "
                             "column")
    parser.add_argument("--idle-s", type=float, default=20.0)
    parser.add_argument("--load-s", type=float, default=5.0)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round, 2 s idle")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.idle_s, args.load_s = 1, 2.0, 1.0
    trees = {"now": REPO} | ({"baseline": args.baseline_tree} if args.baseline_tree else {})
    results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        served = SETUPS[args.model](tmp)
        for r in range(args.rounds):
            order = list(trees) if r % 2 == 0 else list(reversed(trees))
            for name in order:
                figures = measure(trees[name], served, args, tmp)
                results[name].append(figures)
                print(name, json.dumps({k: round(v, 2) for k, v in figures.items()}))
    for name, runs in results.items():
        keys = runs[0].keys()
        print(f"{name}: " + ", ".join(
            f"{k} {min(r[k] for r in runs):.2f}-{max(r[k] for r in runs):.2f}" for k in keys))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "bench_agent_memory.json").write_text(json.dumps(
        {"rounds": args.rounds, "idle_s": args.idle_s, "load_s": args.load_s,
         "baseline_tree": str(args.baseline_tree or ""), "model": args.model,
         "results": results}, indent=2))
    if args.baseline_tree:
        for k in ("start_rss_mb", "load_rss_mb", "load_req_s"):
            now = sum(r[k] for r in results["now"]) / len(results["now"])
            base = sum(r[k] for r in results["baseline"]) / len(results["baseline"])
            unit = "req/s" if k == "load_req_s" else "MB"
            print(f"{k}: now {now:.1f} {unit} vs baseline {base:.1f} {unit} "
                  f"(ratio {now / base:.3f})")


if __name__ == "__main__":
    main()
