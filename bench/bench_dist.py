"""Frozen agent benchmark: binary size, cold start to ready, and memory with a model loaded.

Baseline, measured in the same run: the same agent from the venv (`python -m edge_agent
serve`). Both start on an agent folder holding one installed model (the tabular pipeline of
the tests), so "ready" includes opening the store and loading the ONNX session. The
one-file binary unpacks itself to a temp folder on every start: that is its extra cost.

    python bench/bench_dist.py [--runs 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge_agent.contract.protocol import generate_signing_key, write_public_key  # noqa: E402
from tests.support.agents import free_port, make_tabular_bundle  # noqa: E402

RESULTS_DIR = Path(os.environ.get("OUTPOST_BENCH_RESULTS") or REPO / "bench" / "results")
RESULTS = RESULTS_DIR / "bench_dist.json"
TARGETS = {"size_mb": 80.0}
ROW = {"inputs": [{"name": "temp", "datatype": "FP32", "shape": [1, 1], "data": [21.0]},
                  {"name": "pressure", "datatype": "FP32", "shape": [1, 1], "data": [1010.0]},
                  {"name": "site", "datatype": "BYTES", "shape": [1, 1], "data": ["north"]}]}


def build_agent() -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("outpost_build", REPO / "packaging" / "build.py")
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = build
    spec.loader.exec_module(build)
    result: dict[str, Any] = build.build("agent").to_dict()
    return result


def prepare(agent: list[str], folder: Path, bundle: Path, pub: Path) -> None:
    subprocess.run([*agent, "install", str(bundle), "--dir", str(folder), "--trust-key",
                    str(pub)], check=True, capture_output=True, timeout=120)


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _tree(pid: int) -> list[int]:
    """The process and its descendants (the one-file binary runs Python in a child)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        children = Path(f"/proc/{current}/task/{current}/children")
        if children.exists():
            queue.extend(int(c) for c in children.read_text().split())
    return found


_TOFU = ssl.create_default_context()  # the bench measures start-up, it does not authenticate
_TOFU.check_hostname, _TOFU.verify_mode = False, ssl.CERT_NONE


def start_once(agent: list[str], folder: Path, measure_rss: bool) -> dict[str, float]:
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    t0 = time.perf_counter()
    proc = subprocess.Popen([*agent, "serve", "--dir", str(folder), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"agent exited with {proc.returncode} before it was ready")
            try:
                with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1,
                                            context=_TOFU) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.01)
        ready_s = time.perf_counter() - t0
        out: dict[str, float] = {"ready_s": ready_s}
        if measure_rss:
            req = urllib.request.Request(f"{url}/v2/models/pumps/infer",
                                         data=json.dumps(ROW).encode(), method="POST")
            with urllib.request.urlopen(req, timeout=10, context=_TOFU) as resp:
                assert resp.status == 200
            pids = _tree(proc.pid)
            out["rss_mb"] = sum(_rss_kb(p) for p in pids) / 1024
            out["rss_python_mb"] = _rss_kb(pids[-1]) / 1024
        return out
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="starts per variant (5)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: no build, the venv agent started once")
    args = parser.parse_args()
    if args.quick:
        args.runs = 1
    variants = {"venv": [sys.executable, "-m", "edge_agent"]}
    if not args.quick:
        built = build_agent()
        binary = Path(built["executable"])
        variants = {"frozen": [str(binary)], **variants}
    with tempfile.TemporaryDirectory(prefix="bench-dist-") as tmp_name:
        tmp = Path(tmp_name)
        key = generate_signing_key()
        bundle = make_tabular_bundle(tmp, key)
        pub = write_public_key(key.public_key(), tmp / "desktop.pub")
        folders = {name: tmp / name for name in variants}
        for name, agent in variants.items():
            prepare(agent, folders[name], bundle, pub)
        starts: dict[str, list[float]] = {name: [] for name in variants}
        memory: dict[str, dict[str, float]] = {}
        for i in range(args.runs):  # alternate, so both see the same machine noise
            for name, agent in variants.items():
                result = start_once(agent, folders[name], measure_rss=i == args.runs - 1)
                starts[name].append(result["ready_s"])
                if "rss_mb" in result:
                    memory[name] = result
    ready = {name: statistics.median(values) for name, values in starts.items()}
    if args.quick:
        print(f"venv agent: ready in {ready['venv']:.2f} s, RSS with a model loaded "
              f"{memory['venv']['rss_mb']:.0f} MB (smoke run: no frozen build, nothing written)")
        return
    report: dict[str, Any] = {
        "benchmark": "bench_dist", "machine": platform.machine(),
        "cpus": len(os.sched_getaffinity(0)), "python": platform.python_version(),
        "agent_binary": {"size_bytes": binary.stat().st_size,
                         "size_mb": round(binary.stat().st_size / 1e6, 1),
                         "build_s": built["seconds"], "reused_build": built["reused"]},
        "cold_start_ready_s": {name: {"median": round(ready[name], 3),
                                      "runs": [round(v, 3) for v in starts[name]]}
                               for name in variants},
        "ratio_frozen_over_venv_start": round(ready["frozen"] / ready["venv"], 2),
        "rss_with_model_mb": {name: {k: round(v, 1) for k, v in memory[name].items()
                                     if k.startswith("rss")} for name in variants},
        "ratio_frozen_over_venv_rss": round(memory["frozen"]["rss_mb"]
                                            / memory["venv"]["rss_mb"], 2),
        "targets": TARGETS,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"agent binary: {report['agent_binary']['size_mb']} MB "
          f"(target <= {TARGETS['size_mb']})")
    print(f"cold start to ready: frozen {ready['frozen']:.2f} s, venv {ready['venv']:.2f} s "
          f"(ratio {report['ratio_frozen_over_venv_start']})")
    print(f"RSS with a model loaded: frozen {memory['frozen']['rss_mb']:.0f} MB "
          f"(python {memory['frozen']['rss_python_mb']:.0f} MB), venv "
          f"{memory['venv']['rss_mb']:.0f} MB (ratio {report['ratio_frozen_over_venv_rss']})")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
