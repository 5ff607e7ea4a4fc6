"""Which of the agent's requests are slow at c1, and what else ran at that moment.

    python bench/bench_agent_trace.py [--tree DIR] [--seconds 8] [--quick]

Serves the peers harness's model (bench_agent_memory.peers_model; `--model columns`:
bench_agent.py's, one input per column as the desktop exports it) from `--tree`'s agent,
plain HTTP, pinned to core 0, under a tracing wrapper that changes no agent file: it
wraps the app call, the protocol's `data_received`, the telemetry writer's `_flush`,
`_write` and its core yields, the body-deadline and header-timeout timers, and adds a
`gc.callbacks` hook, all timed on CLOCK_MONOTONIC (`perf_counter_ns`). A keep-alive c1
client on core 1 times each request on the same clock. The report: latency percentiles,
how the slowest 1 % split between reaching the event loop, the server and the way back,
which periodic work they overlapped (against the share of all requests that did), the
p99 if no request had met a writer chunk, and the writer's CPU between two yields; the
figures go to bench/results/bench_agent_trace.json.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
Span = tuple[int, ...]


def serve_traced(out: str, argv: list[str]) -> int:
    """The agent's `serve`, with every traced event appended to lists dumped at exit."""
    import atexit
    import gc
    import threading
    from time import perf_counter_ns as now
    from time import thread_time_ns

    import edge_agent.contract.asgi as asgi
    import edge_agent.contract.http_limits as limits
    import edge_agent.serving.server as server
    import edge_agent.telemetry.recorder as recorder
    from edge_agent.cli import main

    ev: dict[str, Any] = {k: [] for k in ("req", "data", "flush", "write", "yield", "gc",
                                          "deadline", "headers")}
    app_call = server.AgentApp.__call__

    async def traced_call(self: Any, scope: Any, receive: Any, send: Any) -> None:
        t0 = now()
        await app_call(self, scope, receive, send)
        if scope["type"] == "http":
            ev["req"].append((t0, now()))

    server.AgentApp.__call__ = traced_call  # type: ignore[method-assign]

    def timed(cls: Any, name: str, key: str, cpu: bool = False) -> None:
        original = getattr(cls, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0, c0 = now(), thread_time_ns()
            try:
                return original(*args, **kwargs)
            finally:
                ev[key].append((t0, now(), c0, thread_time_ns()) if cpu else (t0, now()))
        setattr(cls, name, wrapper)

    timed(limits._Limited, "data_received", "data")
    timed(recorder.Recorder, "_flush", "flush")
    timed(recorder.Recorder, "_write", "write", cpu=True)
    timed(asgi.Deadlines, "_check", "deadline")
    timed(limits._Limited, "_check_headers", "headers")
    core_yield = getattr(recorder, "_sched_yield", None)
    if core_yield is not None:  # trees whose writer yields the core
        def traced_yield() -> None:
            t0, c0 = now(), thread_time_ns()
            core_yield()
            ev["yield"].append((t0, now(), c0))
        recorder._sched_yield = traced_yield

    started: dict[int, int] = {}

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[threading.get_ident()] = now()
        else:
            ev["gc"].append((started.pop(threading.get_ident(), now()), now(),
                             info["generation"]))

    gc.callbacks.append(on_gc)
    atexit.register(lambda: Path(out).write_text(json.dumps(ev)))
    return main(argv)


def client(port: int, path: str, body: bytes, seconds: float) -> list[tuple[int, int]]:
    """Sequential keep-alive POSTs; (sent, answered) per request in perf_counter_ns."""
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter_ns()
        sock.sendall(head + body)
        buf = b""
        while True:
            buf += sock.recv(65536)
            i = buf.find(b"\r\n\r\n")
            if i >= 0:
                length = int(buf[:i].lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if len(buf) >= i + 4 + length:
                    break
        times.append((t0, time.perf_counter_ns()))
        if not buf.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"not a 200: {buf[:200]!r}")
    return times


def spans(trace: dict[str, Any], key: str) -> np.ndarray[Any, Any]:
    return np.array([x[:2] for x in trace[key]], np.int64).reshape(-1, 2)


def report(trace: dict[str, Any], times: list[tuple[int, int]]) -> dict[str, Any]:
    c = np.array(times, np.int64)
    lat = (c[:, 1] - c[:, 0]) / 1e3
    pct = {p: float(np.percentile(lat, p)) for p in (50, 90, 99, 99.9)}
    figures: dict[str, Any] = {"requests": len(c), **{f"p{p:g}_us": v for p, v in pct.items()}}
    print(f"{len(c)} requests: " + ", ".join(f"p{p:g} {v:.0f}" for p, v in pct.items())
          + f", max {lat.max():.0f} us")
    req = spans(trace, "req")
    data = spans(trace, "data")
    req, data = req[np.argsort(req[:, 0])], data[np.argsort(data[:, 0])]
    req_starts, data_starts = req[:, 0].tolist(), data[:, 0].tolist()

    def first_in(arr: np.ndarray[Any, Any], starts: list[int], t0: int, t1: int) -> Any:
        i = bisect.bisect_left(starts, t0)
        return arr[i] if i < len(arr) and arr[i, 0] <= t1 else None

    parts = []
    for t0, t1 in c:
        r, d = first_in(req, req_starts, t0, t1), first_in(data, data_starts, t0, t1)
        parts.append((np.nan,) * 3 if r is None or d is None else
                     ((d[0] - t0) / 1e3, (r[1] - d[0]) / 1e3, (t1 - r[1]) / 1e3))
    split = np.array(parts)
    slow = np.where(lat >= pct[99])[0]
    print("median split, to the event loop / in the server / back: all "
          + " / ".join(f"{v:.0f}" for v in np.nanmedian(split, axis=0)) + " us; slowest 1 % "
          + " / ".join(f"{v:.0f}" for v in np.nanmedian(split[slow], axis=0)) + " us")

    def overlapping(arr: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        if not len(arr):
            return np.zeros(len(c), bool)
        arr = arr[np.argsort(arr[:, 0])]
        ends = np.maximum.accumulate(arr[:, 1])
        i = np.searchsorted(arr[:, 0], c[:, 1], side="left")  # spans starting before t1
        return (i > 0) & (ends[np.maximum(i - 1, 0)] > c[:, 0])

    for key in ("write", "gc", "deadline", "headers"):
        arr = spans(trace, key)
        hit = overlapping(arr)
        dur = (arr[:, 1] - arr[:, 0]) / 1e3 if len(arr) else np.zeros(1)
        figures[f"slowest_1pct_overlapping_{key}"] = float(hit[slow].mean())
        figures[f"all_overlapping_{key}"] = float(hit.mean())
        print(f"{key:8s} n {len(arr):5d}, wall p50 {np.median(dur):5.0f} max {dur.max():6.0f} "
              f"us; overlapped by {hit[slow].mean():5.1%} of the slowest 1 % vs "
              f"{hit.mean():5.1%} of all")
    gens: dict[int, list[float]] = {}
    for x in trace["gc"]:
        gens.setdefault(x[2], []).append((x[1] - x[0]) / 1e3)
    print("gc passes by generation (n, max us): "
          + ", ".join(f"{g}: {len(v)}, {max(v):.0f}" for g, v in sorted(gens.items())))
    writing = overlapping(spans(trace, "write"))
    if writing.any() and (~writing).any():
        figures["p99_us_without_writer_chunks"] = float(np.percentile(lat[~writing], 99))
        met = lat[writing]
        print(f"requests that met a writer chunk: {writing.mean():.1%}, p50 "
              f"{np.percentile(met, 50):.0f} p90 {np.percentile(met, 90):.0f} p99 "
              f"{np.percentile(met, 99):.0f} us; the rest p99 "
              f"{np.percentile(lat[~writing], 99):.0f} us")
    writes = np.array(trace["write"], np.int64).reshape(-1, 4)
    yields = np.array(trace["yield"], np.int64).reshape(-1, 3)
    pieces: dict[int, list[float]] = {}
    for a, b, c0, c1 in writes:
        inside = yields[(yields[:, 0] >= a) & (yields[:, 1] <= b)]
        for i, cpu in enumerate(np.diff([c0, *inside[:, 2].tolist(), c1]) / 1e3):
            pieces.setdefault(i, []).append(cpu)
    if len(writes):
        print(f"writer chunk CPU p50 {np.median((writes[:, 3] - writes[:, 2]) / 1e3):.0f} us; "
              "between yields (p50 per piece): "
              + ", ".join(f"{np.median(v):.0f}" for _, v in sorted(pieces.items())) + " us")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=REPO, help="the agent checkout to trace")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--model", choices=("peers", "columns"), default="peers",
                        help="peers: one [N, 8] input; columns: the desktop's one input per "
                             "column")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 s of requests")
    parser.add_argument("--serve-traced", help=argparse.SUPPRESS)
    parser.add_argument("--client", nargs=4, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.serve_traced:
        sys.exit(serve_traced(args.serve_traced, rest))
    if args.client:
        port, path, body_file, out = args.client
        Path(out).write_text(json.dumps(client(int(port), path, Path(body_file).read_bytes(),
                                               args.seconds)))
        return
    if args.quick:
        args.seconds = 1.0
    sys.path.insert(0, str(REPO))
    from bench.bench_agent import RESULTS_DIR, free_port, wait_ready
    from bench.bench_agent_memory import SETUPS

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        served = SETUPS[args.model](tmp)
        bundle, pub = served.bundle, served.pub
        (tmp / "body.json").write_bytes(served.body)
        env = dict(os.environ, PYTHONPATH=str(args.tree))
        agent = tmp / "agent"
        subprocess.run([sys.executable, "-m", "edge_agent", "install", str(bundle), "--dir",
                        str(agent), "--trust-key", str(pub)], check=True, env=env,
                       cwd=args.tree, capture_output=True)
        (tmp / "token").write_text("bench-token-123456")
        port = free_port()
        proc = subprocess.Popen(
            ["taskset", "-c", "0", sys.executable, __file__, "--serve-traced",
             str(tmp / "trace.json"), "serve", "--dir", str(agent), "--token-file",
             str(tmp / "token"), "--trust-key", str(pub), "--insecure-http", "--port",
             str(port)], env=env, cwd=args.tree, stderr=subprocess.DEVNULL)
        try:
            wait_ready(f"http://127.0.0.1:{port}/v2/models/{served.name}/ready", proc)
            run = ["taskset", "-c", "1", sys.executable, __file__, "--client", str(port),
                   f"/v2/models/{served.name}/infer", str(tmp / "body.json")]
            subprocess.run([*run, str(tmp / "warm.json"), "--seconds",
                            str(min(2.0, args.seconds))], check=True)
            subprocess.run([*run, str(tmp / "client.json"), "--seconds", str(args.seconds)],
                           check=True)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        print(f"tree {args.tree}, load average {os.getloadavg()[0]:.1f}")
        figures = report(json.loads((tmp / "trace.json").read_text()),
                         json.loads((tmp / "client.json").read_text()))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "bench_agent_trace.json").write_text(json.dumps(
        {"tree": str(args.tree), "model": args.model, "seconds": args.seconds,
         "load": os.getloadavg()[0],
         **figures}, indent=2))


if __name__ == "__main__":
    main()
