"""Edge agent serving benchmark: one agent on loopback, load from wrk on another core.

Model: scikit-learn RandomForest (50 trees) behind a ColumnTransformer over 8 float
columns, exported like the desktop does (one ONNX input per column). Measured in
one run: raw onnxruntime session.run for one row, a bare ASGI app on the same
uvicorn + httptools + uvloop stack (the HTTP floor), and the agent on single-row
OIP JSON, OIP binary and /v1 predict at concurrency 1 and 16, with and without
adaptive batching (on by default: up to 16 requests that arrive together; the
variants turn it off or let it wait 200 us), over TLS 1.3 (the default) and over
plain HTTP (`--insecure-http`) for the cost of TLS, and a hand-written FastAPI +
onnxruntime server on the same model and body (the baseline of issue 20; skipped when
fastapi is not installed). In-process, the ASGI app is also called with 16 requests in
one event-loop turn (the adaptive batcher's c16 path: one session.run for the 16).
Server pinned to core 0, wrk (1 thread) to core 1.

    python bench/bench_agent.py [--duration 10] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = Path(os.environ.get("OUTPOST_BENCH_RESULTS") or REPO / "bench" / "results")
RESULTS = RESULTS_DIR / "bench_agent.json"
COLUMNS = [f"f{i}" for i in range(8)]
SERVER_CPU, LOAD_CPU = "0", "1"
PLAIN_HTTP = ["--insecure-http"]
TURN = 16  # requests in one event-loop turn (the in-process c16 case)
TARGETS = {"overhead_p50_us_c1": 200, "req_s_c16": 4000, "rss_mb": 120, "ready_s": 2.0}


def build_model(seed: int = 0) -> tuple[bytes, dict[str, Any], dict[str, Any]]:
    import pandas as pd
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(2000, 8)).astype(np.float32), columns=COLUMNS)
    y = (frame["f0"] + frame["f1"] * frame["f2"] > 0).map({True: "alarm", False: "normal"})
    pipe = Pipeline([("pre", ColumnTransformer([("num", SimpleImputer(), COLUMNS)])),
                     ("rf", RandomForestClassifier(50, max_depth=10, random_state=seed))])
    pipe.fit(frame, y)
    onx = convert_sklearn(pipe, initial_types=[(c, FloatTensorType([None, 1])) for c in COLUMNS],
                          options={id(pipe.steps[-1][1]): {"zipmap": False}}, target_opset=17)
    features = []
    for c in COLUMNS:
        edges = np.quantile(frame[c], [0.1, 0.25, 0.5, 0.75, 0.9]).tolist()
        counts = np.bincount(np.searchsorted(edges, frame[c], side="right"), minlength=6)
        features.append({"name": c, "kind": "numeric", "edges": edges,
                         "counts": counts.tolist(), "nulls": 0})
    labels = [str(x) for x in pipe.classes_]
    preds = pipe.predict(frame)
    baseline = {"rows": len(frame), "features": features, "prediction": {
        "name": "__prediction__", "kind": "categorical", "categories": labels,
        "counts": [int((preds == lab).sum()) for lab in labels] + [0], "nulls": 0}}
    sample = frame.iloc[:4]
    canary = {"inputs": {c: sample[c].astype(float).tolist() for c in COLUMNS},
              "expected": {"label": [str(v) for v in pipe.predict(sample)],
                           "probabilities": pipe.predict_proba(sample).tolist()},
              "atol": 1e-4, "label_output": "label"}
    return onx.SerializeToString(), baseline, canary


def signed_bundle(folder: Path, name: str, model: bytes, baseline: dict[str, Any],
                  canary: dict[str, Any], labels: list[str]) -> tuple[Path, Path]:
    """`model` signed as version 1 of `name` in `folder`, with the trust key to install it."""
    from edge_agent.contract.protocol import generate_signing_key, write_bundle, write_public_key

    key = generate_signing_key()
    pub = write_public_key(key.public_key(), folder / "trusted.pub")
    bundle = write_bundle(folder / f"{name}-1.outpost", model=name, version=1,
                          model_bytes=model, baseline=baseline, canary=canary, key=key,
                          task="classification", labels=labels)
    return bundle, pub


def raw_run_us(model: bytes, row: dict[str, np.ndarray[Any, Any]]) -> dict[str, float]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    for _ in range(200):
        session.run(None, row)
    times = []
    for _ in range(3000):
        t = time.perf_counter()
        session.run(None, row)
        times.append((time.perf_counter() - t) * 1e6)
    return {"p50_us": statistics.median(times), "p99_us": float(np.percentile(times, 99))}


def in_process_us(agent_dir: Path, pub: Path, bodies: dict[str, Case], n: int = 5000
                  ) -> dict[str, float]:
    """The agent's ASGI app called directly, no sockets: its own cost per request."""
    import asyncio

    from edge_agent.contract.signing import load_public_key
    from edge_agent.runtime import ServeOptions, build_app
    from edge_agent.store.keys import KeyRing

    ring = KeyRing(agent_dir / "keys")
    ring.trust(load_public_key(pub))
    app = build_app(ServeOptions(agent_dir=agent_dir, token=None, keyring=ring))

    async def one(path: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        message = {"type": "http.request", "body": body, "more_body": False}

        async def receive() -> dict[str, Any]:
            return message

        async def send(_: dict[str, Any]) -> None:
            return None

        await app({"type": "http", "method": "POST", "path": path, "query_string": b"",
                   "headers": headers}, receive, send)

    async def turn(path: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        """16 requests that reach the app in one event-loop turn, as at c16: the protocol
        counts them parsed, so the adaptive batcher gathers them into one run."""
        app.arrivals.parsed = app.arrivals.started + TURN
        await asyncio.gather(*(one(path, body, headers) for _ in range(TURN)))

    async def measure() -> dict[str, float]:
        out = {}
        for name, (path, body, hdrs) in bodies.items():
            headers = [(k.lower().encode(), v.encode()) for k, v in hdrs.items()]
            for _ in range(500):
                await one(path, body, headers)
            start = time.process_time()
            for _ in range(n):
                await one(path, body, headers)
            out[name] = (time.process_time() - start) / n * 1e6
            for _ in range(500 // TURN):
                await turn(path, body, headers)
            runs = batched[0]
            start = time.process_time()
            for _ in range(n // TURN):
                await turn(path, body, headers)
            out[f"{name}_turn{TURN}"] = (time.process_time() - start) / (n // TURN * TURN) * 1e6
            if batched[0] - runs != n // TURN:  # the case measures the batcher's path
                raise SystemExit(f"{name}: {batched[0] - runs} batched runs for {n // TURN} "
                                 f"turns of {TURN}")
        return out

    import edge_agent.serving.batching as batching

    batched = [0]
    together = batching._run_together

    def counted(*a: Any) -> None:
        batched[0] += 1
        together(*a)

    batching._run_together = counted  # type: ignore[assignment]
    try:
        return asyncio.run(measure())
    finally:
        batching._run_together = together  # type: ignore[assignment]
        app.recorder.close()


def stages_us(agent_dir: Path, pub: Path, body: bytes, n: int = 3000) -> dict[str, float]:
    """Where an OIP JSON request's CPU goes, stage by stage, on the agent's own functions
    (best of 3 loops of n): parse, bind, run, encode, the request path's telemetry put,
    and the telemetry writer thread's share per request."""
    from edge_agent.contract.signing import load_public_key
    from edge_agent.runtime import ServeOptions, build_app
    from edge_agent.serving.oip import decode_infer_request, encode_infer_response
    from edge_agent.serving.serving import run
    from edge_agent.serving.signature import bind_inputs
    from edge_agent.store.keys import KeyRing

    ring = KeyRing(agent_dir / "keys")
    ring.trust(load_public_key(pub))
    app = build_app(ServeOptions(agent_dir=agent_dir, token=None, keyring=ring))
    # The writer thread stopped (a chunk queued would wake it): its flush is called here,
    # so its cost is measured apart.
    app.recorder.close()
    served = app.cache.get("rf", None)
    request = decode_infer_request(body, None)
    feeds, rows = bind_inputs(served.signature, request.inputs)
    outputs = run(served, feeds)

    def best(fn: Any) -> float:
        times = []
        for _ in range(3):
            start = time.process_time()
            for _ in range(n):
                fn()
            times.append((time.process_time() - start) / n * 1e6)
        return min(times)

    def submit() -> None:
        app._event(time.perf_counter(), served, 200, rows, feeds, outputs, 1)

    try:
        out = {"parse": best(lambda: decode_infer_request(body, None)),
               "bind": best(lambda: bind_inputs(served.signature, request.inputs)),
               "run": best(lambda: run(served, feeds)),
               "encode": best(lambda: encode_infer_response("rf", 1, request, outputs,
                                                            ["a:1:1"])),
               "telemetry_put": best(submit)}
        app.recorder._flush(final=False)  # what the loops above queued
        for _ in range(n):
            submit()
        start = time.process_time()
        app.recorder._flush(final=False)
        out["telemetry_writer"] = (time.process_time() - start) / n * 1e6
        return out
    finally:
        app.recorder.close()
        app.shadow.close()


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        from edge_agent.contract.tls import pinned_client_context

        try:  # trust on first use: the bench measures TLS, it does not authenticate
            with urllib.request.urlopen(url, timeout=1, context=(
                    pinned_client_context(None) if url.startswith("https") else None)) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.005)
    raise SystemExit(f"{url} not ready after {timeout}s")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(args: list[str], ready_path: str, *, tls: bool = False
          ) -> tuple[subprocess.Popen[bytes], str, float]:
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen(["taskset", "-c", SERVER_CPU, sys.executable, *args,
                             "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=REPO)
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    wait_ready(url + ready_path, proc)
    return proc, url, time.perf_counter() - t0


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def rss_mb(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    found = dict(re.findall(r"(VmRSS|VmHWM):\s+(\d+) kB", status))
    return {"rss_mb": int(found["VmRSS"]) / 1024, "peak_rss_mb": int(found["VmHWM"]) / 1024}


def _us(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its threads so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, body: bytes, headers: dict[str, str], conns: int, duration: float,
        workdir: Path, pid: int) -> dict[str, float]:
    """wrk's req/s and latency, plus the server's CPU time per request (robust to the
    noise of a shared machine, unlike wall-clock figures)."""
    body_file = workdir / "body.bin"
    body_file.write_bytes(body)
    script = workdir / "post.lua"
    lines = ['wrk.method = "POST"', f'local f = io.open("{body_file}", "rb")',
             "wrk.body = f:read(\"*a\")", "f:close()"]
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    cpu0 = cpu_seconds(pid)
    out = subprocess.run(["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{conns}",
                          f"-d{max(1, round(duration))}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        raise SystemExit(f"wrk saw {bad.group(1)} error responses on {url}:\n{out}")
    cpu = cpu_seconds(pid) - cpu0
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return {"req_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
            "p50_us": _us(lat["50"]), "p99_us": _us(lat["99"]),
            "server_cpu_us_per_req": cpu / max(total, 1) * 1e6}


Case = tuple[str, bytes, dict[str, str]]


def request_bodies(row: dict[str, np.ndarray[Any, Any]]) -> dict[str, Case]:
    json_doc = {"inputs": [{"name": c, "datatype": "FP32", "shape": [1, 1],
                            "data": [float(row[c][0, 0])]} for c in COLUMNS]}
    head = json.dumps({"inputs": [{"name": c, "datatype": "FP32", "shape": [1, 1],
                                   "parameters": {"binary_data_size": 4}} for c in COLUMNS],
                       "parameters": {"binary_data_output": True}}).encode()
    binary = head + b"".join(row[c].tobytes() for c in COLUMNS)
    predict = {"records": [{c: float(row[c][0, 0]) for c in COLUMNS}]}
    return {
        "oip_json": ("/v2/models/rf/infer", json.dumps(json_doc).encode(),
                     {"Content-Type": "application/json"}),
        "oip_binary": ("/v2/models/rf/infer", binary,
                       {"Content-Type": "application/octet-stream",
                        "Inference-Header-Content-Length": str(len(head))}),
        "v1_predict": ("/v1/models/rf/predict", json.dumps(predict).encode(),
                       {"Content-Type": "application/json"}),
    }


def floor_app_main(port: int) -> None:
    """A bare ASGI app with a fixed JSON reply: what uvicorn + httptools cost alone."""
    import uvicorn

    reply = b'{"outputs": []}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"15")]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": reply})

    uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                access_log=False, log_level="warning", lifespan="off", proxy_headers=False,
                server_header=False, date_header=False)


def fastapi_app_main(port: int, model_file: str) -> None:
    """What a user would write by hand (the peers harness's fastapi-ort, for this model's
    8 inputs): FastAPI + pydantic route, onnxruntime on one thread, uvicorn with
    httptools + uvloop. The baseline the agent is compared with in the same run."""
    import onnxruntime as ort
    import uvicorn
    from fastapi import FastAPI
    from pydantic import BaseModel

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    session = ort.InferenceSession(model_file, opts, providers=["CPUExecutionProvider"])

    class Tensor(BaseModel):
        name: str
        shape: list[int]
        datatype: str
        data: list[Any]

    class InferRequest(BaseModel):
        inputs: list[Tensor]

    app = FastAPI()

    @app.get("/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    async def infer(req: InferRequest) -> dict[str, Any]:
        feeds = {t.name: np.asarray(t.data, dtype=np.float32).reshape(t.shape)
                 for t in req.inputs}
        label, proba = session.run(None, feeds)
        return {"model_name": "rf", "outputs": [
            {"name": "label", "shape": list(label.shape), "datatype": "BYTES",
             "data": label.ravel().tolist()},
            {"name": "probabilities", "shape": list(proba.shape), "datatype": "FP32",
             "data": proba.ravel().tolist()}]}

    # this module's annotations are strings, and FastAPI cannot resolve a local class
    # from one: give it the class itself
    infer.__annotations__.update(req=InferRequest, **{"return": dict})
    app.post("/infer")(infer)
    uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                access_log=False, log_level="warning")


def fastapi_baseline(model: bytes, body: bytes, duration: float, tmp: Path
                     ) -> dict[str, Any] | None:
    """The hand-written FastAPI + onnxruntime server under the same load, if installed."""
    import importlib.util

    if importlib.util.find_spec("fastapi") is None:
        print("FastAPI baseline skipped: fastapi is not installed")
        return None
    model_file = tmp / "rf.onnx"
    model_file.write_bytes(model)
    proc, url, _ = start([__file__, "--fastapi-server", str(model_file)], "/ready")
    try:
        out: dict[str, Any] = {f"c{c}": wrk(url + "/infer", body,
                                            {"Content-Type": "application/json"}, c,
                                            duration, tmp, proc.pid) for c in (1, 16)}
        return {**out, **rss_mb(proc.pid)}
    finally:
        stop(proc)


def run_agent_suite(agent_dir: Path, token_file: Path, pub: Path, bodies: dict[str, Any],
                    duration: float, workdir: Path, extra: list[str]) -> dict[str, Any]:
    proc, url, ready = start(["-m", "edge_agent", "serve", "--dir", str(agent_dir),
                              "--token-file", str(token_file), "--trust-key", str(pub),
                              "--telemetry-max-mb", "16", *extra], "/v2/models/rf/ready",
                             tls="--insecure-http" not in extra)
    try:
        out: dict[str, Any] = {"ready_s": ready, **rss_mb(proc.pid)}
        for name, (path, body, headers) in bodies.items():
            wrk(url + path, body, headers, 4, 1.0, workdir, proc.pid)  # warm-up
            for conns in ((16,) if extra and extra != PLAIN_HTTP else (1, 16)):
                out[f"{name}_c{conns}"] = wrk(url + path, body, headers, conns, duration,
                                              workdir, proc.pid)
        out.update({f"after_load_{k}": v for k, v in rss_mb(proc.pid).items()})
        return out
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--quick", action="store_true", help="smoke run: 0.5 s runs, no variants")
    parser.add_argument("--floor-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fastapi-server", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_server:
        floor_app_main(args.port)
        return
    if args.fastapi_server:
        fastapi_app_main(args.port, args.fastapi_server)
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    duration = 0.5 if args.quick else args.duration

    model, baseline, canary = build_model()
    rng = np.random.default_rng(1)
    row = {c: rng.normal(size=(1, 1)).astype(np.float32) for c in COLUMNS}
    raw = raw_run_us(model, row)
    print(f"raw session.run, 1 row: p50 {raw['p50_us']:.1f} us, p99 {raw['p99_us']:.1f} us")

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        bundle, pub = signed_bundle(tmp, "rf", model, baseline, canary, ["alarm", "normal"])
        agent_dir = tmp / "agent"
        subprocess.run([sys.executable, "-m", "edge_agent", "install", str(bundle), "--dir",
                        str(agent_dir), "--trust-key", str(pub)], check=True, cwd=REPO,
                       capture_output=True)
        in_process = in_process_us(agent_dir, pub, request_bodies(row))
        stages = stages_us(agent_dir, pub, request_bodies(row)["oip_json"][1],
                           300 if args.quick else 3000)
        token_file = tmp / "token"
        token_file.write_text("bench-token-123456")
        bodies = request_bodies(row)

        floor_proc, floor_url, _ = start([__file__, "--floor-server"], "/")
        try:
            floor = {f"c{c}": wrk(floor_url + "/", bodies["oip_json"][1], {}, c, duration, tmp,
                                  floor_proc.pid) for c in (1, 16)}
        finally:
            stop(floor_proc)
        fastapi = fastapi_baseline(model, bodies["oip_json"][1], duration, tmp)
        plain = run_agent_suite(agent_dir, token_file, pub, bodies, duration, tmp, [])
        # the same agent without TLS, for the cost of TLS (wrk keeps connections alive:
        # one handshake per connection, as the desktop's and clients' pools do)
        no_tls = run_agent_suite(agent_dir, token_file, pub, bodies, duration, tmp, PLAIN_HTTP)
        variants = {} if args.quick else {
            "unbatched": run_agent_suite(agent_dir, token_file, pub, bodies, duration, tmp,
                                         ["--batch-max", "1"]),
            "batch_delay_200us": run_agent_suite(agent_dir, token_file, pub, bodies, duration,
                                                 tmp, ["--batch-delay-us", "200"])}
    report(raw, floor, plain, variants, duration, in_process, no_tls, fastapi, stages)


def report(raw: dict[str, float], floor: dict[str, Any], plain: dict[str, Any],
           variants: dict[str, Any], duration: float, in_process: dict[str, float],
           no_tls: dict[str, Any], fastapi: dict[str, Any] | None,
           stages: dict[str, float]) -> None:
    overhead = {k: plain[f"{k}_c1"]["p50_us"] - raw["p50_us"]
                for k in ("oip_json", "oip_binary", "v1_predict")}
    over_floor = {k: plain[f"{k}_c1"]["p50_us"] - floor["c1"]["p50_us"] for k in overhead}
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "server_cpu": SERVER_CPU, "load_cpu": LOAD_CPU,
                    "load_tool": "wrk 4.1 (1 thread)", "duration_s": duration},
        "raw_session_run": raw, "in_process_cpu_us_per_request": in_process,
        "http_floor": floor, "agent": plain,
        "agent_variants_c16": variants, "agent_without_tls": no_tls,
        "fastapi_onnxruntime": fastapi, "oip_json_stages_cpu_us": stages,
        "overhead_p50_us_c1": overhead, "overhead_over_floor_p50_us_c1": over_floor,
        "targets": TARGETS,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"HTTP floor (bare ASGI, same server): c1 p50 {floor['c1']['p50_us']:.0f} us, "
          f"{floor['c1']['req_s']:.0f} req/s; c16 {floor['c16']['req_s']:.0f} req/s")
    print("in-process (ASGI app called directly, CPU per request, telemetry included): " +
          ", ".join(f"{k} {v:.0f} us" for k, v in in_process.items()
                    if not k.endswith(f"_turn{TURN}")))
    print(f"in-process, {TURN} requests in one event-loop turn (the adaptive batcher's c16 "
          "path, one session.run per turn), CPU per request: " +
          ", ".join(f"{k} {in_process[f'{k}_turn{TURN}']:.0f} us "
                    f"({in_process[f'{k}_turn{TURN}'] / in_process[k]:.2f}x one at a time)"
                    for k in in_process if f"{k}_turn{TURN}" in in_process))
    print("OIP JSON, CPU per request by stage (in-process): " +
          ", ".join(f"{k} {v:.1f} us" for k, v in stages.items()) +
          f"; whole app call {in_process['oip_json']:.0f} us")
    for name in ("oip_json", "oip_binary", "v1_predict"):
        c1, c16 = plain[f"{name}_c1"], plain[f"{name}_c16"]
        line = (f"{name:11s} c1 p50 {c1['p50_us']:6.0f} us p99 {c1['p99_us']:6.0f} us "
                f"{c1['req_s']:6.0f} req/s | c16 p50 {c16['p50_us']:6.0f} us p99 "
                f"{c16['p99_us']:6.0f} us {c16['req_s']:6.0f} req/s "
                f"({c16['req_s'] / floor['c16']['req_s']:.2f}x floor)")
        print(line)
        for variant, runs in variants.items():
            b = runs[f"{name}_c16"]
            print(f"{'':11s} {variant} c16 p50 {b['p50_us']:6.0f} us p99 "
                  f"{b['p99_us']:6.0f} us {b['req_s']:6.0f} req/s "
                  f"(default/this {c16['req_s'] / b['req_s']:.2f}x)")
        print(f"{'':11s} overhead p50 at c1 = {overhead[name]:.0f} us over session.run "
              f"({over_floor[name]:.0f} us over the HTTP floor); server CPU per request at "
              f"c16 {c16['server_cpu_us_per_req']:.0f} us (floor "
              f"{floor['c16']['server_cpu_us_per_req']:.0f} us, session.run {raw['p50_us']:.0f})")
    print("TLS cost (agent default TLS 1.3 vs --insecure-http, same run, keep-alive):")
    for name in overhead:
        tls1, http1 = plain[f"{name}_c1"], no_tls[f"{name}_c1"]
        tls16, http16 = plain[f"{name}_c16"], no_tls[f"{name}_c16"]
        cpu_t, cpu_h = tls16["server_cpu_us_per_req"], http16["server_cpu_us_per_req"]
        print(f"  {name:10s} c1 p50 {tls1['p50_us']:6.0f} us vs {http1['p50_us']:6.0f} us "
              f"({tls1['p50_us'] / http1['p50_us']:.2f}x) | c16 {tls16['req_s']:6.0f} vs "
              f"{http16['req_s']:6.0f} req/s ({tls16['req_s'] / http16['req_s']:.2f}x) | "
              f"server CPU c16 {cpu_t:.0f} vs {cpu_h:.0f} us/req ({cpu_t / cpu_h:.2f}x)")
    if fastapi is not None:
        json16, json1 = no_tls["oip_json_c16"], no_tls["oip_json_c1"]
        print(f"agent (plain HTTP, OIP JSON) vs FastAPI + onnxruntime, same run: c16 "
              f"{json16['req_s']:.0f} vs {fastapi['c16']['req_s']:.0f} req/s "
              f"({json16['req_s'] / fastapi['c16']['req_s']:.2f}x; floor share "
              f"{json16['req_s'] / floor['c16']['req_s']:.2f}); c1 p99 {json1['p99_us']:.0f} vs "
              f"{fastapi['c1']['p99_us']:.0f} us; c16 p99 {json16['p99_us']:.0f} vs "
              f"{fastapi['c16']['p99_us']:.0f} us; RSS {no_tls['rss_mb']:.1f} vs "
              f"{fastapi['rss_mb']:.1f} MB")
    print(f"RSS with the model loaded: {plain['rss_mb']:.1f} MB "
          f"(after load {plain['after_load_rss_mb']:.1f} MB); start to ready "
          f"{plain['ready_s']:.2f} s")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
