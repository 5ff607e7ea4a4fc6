"""How long a bundle takes to verify and install, against the least work any verifier must
do: decompress every member and sha256 it (zipfile + hashlib, measured in the same run).

    .venv/bin/python bench/bench_bundle.py [--mb 64]
Writes bench/results/bundle.json."""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge_agent.contract.protocol import (  # noqa: E402
    extract_bundle,
    generate_signing_key,
    verify_bundle,
    write_bundle,
)
from edge_agent.store.keys import KeyRing  # noqa: E402
from edge_agent.store.store import ModelStore  # noqa: E402


def big_model(mb: int) -> bytes:
    """y = x @ W with W of `mb` MiB of random FP32 (incompressible, like real weights)."""
    n = int((mb * 1024 * 1024 / 4) ** 0.5)
    w = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, n])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, n])
    init = helper.make_tensor("W", TensorProto.FLOAT, [n, n], w.tobytes(), raw=True)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "mm", [x], [y],
                              [init])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return model.SerializeToString()


def best_of(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def baseline(path: Path) -> None:
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            h = hashlib.sha256()
            with zf.open(info) as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-bundle-"))
    key = generate_signing_key()
    model = big_model(args.mb)
    n = int((args.mb * 1024 * 1024 / 4) ** 0.5)
    x = [[0.0] * n]
    canary = {"inputs": {"x": x}, "expected": {"y": [[0.0] * n]}}
    baseline_doc = {"rows": 0, "features": []}
    start = time.perf_counter()
    bundle = write_bundle(tmp / "big-1.outpost", model="big", version=1, model_bytes=model,
                          baseline=baseline_doc, canary=canary, key=key)
    write_s = time.perf_counter() - start
    trusted = [key.public_key()]
    base_s = best_of(lambda: baseline(bundle), args.runs)
    verify_s = best_of(lambda: verify_bundle(bundle, trusted), args.runs)
    verified = verify_bundle(bundle, trusted)

    def extract() -> None:
        out = Path(tempfile.mkdtemp(dir=tmp))
        extract_bundle(verified, out)

    extract_s = best_of(extract, args.runs)
    installs = []
    for v in range(args.runs):
        ring = KeyRing(tmp / f"agent{v}" / "keys")
        ring.trust(key.public_key())
        store = ModelStore(tmp / f"agent{v}", ring)
        store.open()
        start = time.perf_counter()
        store.install(bundle)
        installs.append(time.perf_counter() - start)
    result = {
        "model_mb": round(len(model) / 2**20, 1),
        "bundle_mb": round(bundle.stat().st_size / 2**20, 1),
        "write_bundle_s": round(write_s, 3),
        "baseline_unzip_sha256_s": round(base_s, 3),
        "verify_bundle_s": round(verify_s, 3),
        "verify_over_baseline": round(verify_s / base_s, 2),
        "extract_bundle_s": round(extract_s, 3),
        "install_s_median": round(statistics.median(installs), 3),
        "install_over_baseline": round(statistics.median(installs) / base_s, 2),
    }
    print(json.dumps(result, indent=2))
    out = REPO / "bench" / "results" / "bundle.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
