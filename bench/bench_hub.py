"""Hub benchmark: many hub-mode agents polling one hub and posting telemetry.

The hub runs in its own process (as under `outpost hub serve`), pinned to core 0; the
simulated agents are light threads in this process, on core 1, each with one keep-alive
connection (the agent's own `HubTransport`). Every agent polls its desired state every
`--poll-s` seconds and posts the telemetry of `--rate` requests per second, batched once
per poll interval, from a random phase so the fleet does not call in step. Measured over
`--duration` s after a warm-up: hub CPU (per agent), rows committed per second, poll and
post latency (p50/p99).

Baseline, same run: the hub commits the batches that queue up together in one
transaction (`core.hub.ingest`); the baseline commits the same batches one transaction
each through `core.telemetry.ingest.ingest_table`. Ratio = baseline CPU / hub CPU per batch.

With `--deploys N`, N `outpost deploy` commands run one after another from the CLI in the
second half of the measured window: the hub process holds the catalog, so each is
forwarded to it over the admin socket. Reported: poll p99 before and during the deploys,
and the deploy command's time, against the same command alone (nothing holding the
catalog) after the fleet stops.

    python bench/bench_hub.py [--agents 200] [--duration 60] [--deploys 20] [--quick]
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS_DIR = Path(os.environ.get("OUTPOST_BENCH_RESULTS") or REPO / "bench" / "results")
RESULTS = RESULTS_DIR / "bench_hub.json"
HUB_CPU, AGENTS_CPU = {0}, {1}
TARGETS = {"poll_p99_ms": 100.0, "hub_cores": 1.0}

import orjson  # noqa: E402

from edge_agent.contract.hub_protocol import agent_path, claim_message  # noqa: E402
from edge_agent.hub.transport import HubRefused, HubTransport, HubUnavailable  # noqa: E402


def request_lines(first: int, n: int, now: float) -> bytes:
    return b"".join(orjson.dumps(
        {"seq": first + i, "kind": "request", "ts": now + i * 0.02, "model": "adder",
         "version": 1, "status": 200, "latency_us": 300 + i % 50, "rows": 1}) + b"\n"
        for i in range(n))


def setup(home: Path, agents: int) -> list[dict[str, str]]:
    """A catalog with `agents` enrolled hub agents, each with adder@1 desired."""
    from core.catalog import Catalog
    from core.config import Settings
    from core.fleet.dispatch import deploy
    from core.hub import enroll_agent
    from core.registry import import_onnx
    from tests.support.agents import identity_model

    with Catalog.open(Settings(home)) as catalog:
        model = home / "adder.onnx"
        model.write_bytes(identity_model())
        ref = import_onnx(catalog, model, "adder").ref
        model.write_bytes(identity_model(bias_value=2.0))
        import_onnx(catalog, model, "adder")  # adder@2, for the CLI's deploys
        enrolled = []
        for i in range(agents):
            # https: the hub serves TLS by default and the enrolment carries its pin
            e = enroll_agent(catalog, f"dev{i:03d}", "https://127.0.0.1:0")
            deploy(catalog, ref, e.agent)
            enrolled.append({"agent": e.agent, "token": e.token, "pin": e.hub_tls_spki})
    return enrolled


def serve_hub(home: Path) -> None:
    """Child process: the hub on a free port until SIGTERM; prints its URL, then stats."""
    from core.catalog import Catalog
    from core.cli import run
    from core.cli.forwarding import serving
    from core.config import Settings
    from core.hub import start_hub

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # As under `outpost hub serve`: the user's `outpost` commands run in this process.
    with Catalog.open(Settings(home)) as catalog, serving(catalog, run):
        hub = start_hub(catalog, "127.0.0.1", 0)
        print(json.dumps({"url": hub.url}), flush=True)
        stop.wait()
        flushes = hub.app.writer.flushes
        hub.stop()
        rows = catalog.cursor().execute("SELECT count(*) FROM telemetry_request").fetchone()
        print(json.dumps({"flushes": flushes, "rows": int(rows[0]) if rows else 0}), flush=True)


class SimAgent:
    def __init__(self, url: str, agent: str, token: str, poll_s: float, rate: float,
                 pin: str = "") -> None:
        self.agent, self.poll_s, self.rate = agent, poll_s, rate
        self.transport = HubTransport(url, token, timeout_s=30, tls_pin=pin)
        self.token = token
        self.seq = 0
        self.polls: list[float] = []
        self.poll_ends: list[float] = []
        self.posts: list[float] = []
        self.inserted = 0
        self.errors: list[str] = []

    def claim(self) -> None:
        from edge_agent.contract.protocol import generate_signing_key, public_key_b64

        key = generate_signing_key()
        proof = key.sign(claim_message(self.agent, self.token))
        self.transport.call("POST", agent_path(self.agent, "enroll"), orjson.dumps(
            {"agent_id": self.agent, "public_key": public_key_b64(key),
             "signature": base64.b64encode(proof).decode()}))

    def run(self, until: float, measure_from: float) -> None:
        status = orjson.dumps({"hub": {"poll_s": self.poll_s}, "models": [],
                               "keys": {"rotation": 0, "trusted": []}})
        batch = max(1, int(self.rate * self.poll_s))
        next_at = time.monotonic() + random.uniform(0, self.poll_s)
        while next_at < until:
            time.sleep(max(0.0, next_at - time.monotonic()))
            try:
                t0 = time.perf_counter()
                self.transport.call("POST", agent_path(self.agent, "poll"), status)
                t1 = time.perf_counter()
                body = request_lines(self.seq + 1, batch, time.time())
                t2 = time.perf_counter()
                ack = self.transport.call("POST", agent_path(self.agent, "telemetry"), body,
                                          "application/x-ndjson").json()
                t3 = time.perf_counter()
            except (HubRefused, HubUnavailable) as exc:
                self.errors.append(exc.message)
            else:
                self.seq += batch
                if time.monotonic() >= measure_from:
                    self.polls.append(t1 - t0)
                    self.poll_ends.append(time.monotonic())
                    self.posts.append(t3 - t2)
                    self.inserted += int(ack["inserted"])
            next_at += self.poll_s


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


def deploy_cli(home: Path, agent: str) -> float:
    """`outpost deploy adder@2 --to AGENT --json`, a process of its own; seconds."""
    env = dict(os.environ, OUTPOST_HOME=str(home), PYTHONPATH=str(REPO))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "core.cli.__main__", "deploy", "adder@2",
                           "--to", agent, "--json"], capture_output=True, text=True, env=env,
                          cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"deploy to {agent} failed: {proc.stderr.strip()}")
    return time.perf_counter() - t0


def fleet(home: Path, args: argparse.Namespace, enrolled: list[dict[str, str]]
          ) -> dict[str, Any]:
    hub = subprocess.Popen([sys.executable, __file__, "--serve-hub", str(home)],
                           stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert hub.stdout is not None
    url = json.loads(hub.stdout.readline())["url"]
    os.sched_setaffinity(hub.pid, HUB_CPU)
    for task in Path(f"/proc/{hub.pid}/task").iterdir():  # threads started before pinning
        os.sched_setaffinity(int(task.name), HUB_CPU)
    sims = [SimAgent(url, e["agent"], e["token"], args.poll_s, args.rate, e["pin"])
            for e in enrolled]
    for sim in sims:
        sim.claim()
    start = time.monotonic()
    measure_from, until = start + args.warmup, start + args.warmup + args.duration
    threads = [threading.Thread(target=s.run, args=(until, measure_from)) for s in sims]
    for t in threads:
        t.start()
    time.sleep(max(0.0, measure_from - time.monotonic()))
    cpu0, wall0 = cpu_seconds(hub.pid), time.monotonic()
    deploys_from = measure_from + args.duration / 2
    deploy_s: list[float] = []
    if args.deploys:
        time.sleep(max(0.0, deploys_from - time.monotonic()))
        deploy_s = [deploy_cli(home, e["agent"]) for e in enrolled[:args.deploys]]
        deploys_until = time.monotonic()
    time.sleep(max(0.0, until - time.monotonic()))
    cpu1, wall1 = cpu_seconds(hub.pid), time.monotonic()
    for t in threads:
        t.join()
    hub.terminate()
    final = json.loads(hub.stdout.read().strip().splitlines()[-1])
    hub.wait()
    polls = [p for s in sims for p in s.polls]
    posts = [p for s in sims for p in s.posts]
    deploys: dict[str, Any] = {}
    if deploy_s:
        timed = [(end, p) for s in sims for end, p in zip(s.poll_ends, s.polls, strict=True)]
        before = [p for end, p in timed if end < deploys_from]
        during = [p for end, p in timed if deploys_from <= end <= deploys_until]
        alone = [deploy_cli(home, e["agent"]) for e in enrolled[args.deploys:args.deploys + 5]]
        deploys = {"deploys": len(deploy_s),
                   "deploy_forwarded_ms_median": round(sorted(deploy_s)[len(deploy_s) // 2]
                                                       * 1000, 1),
                   "deploy_forwarded_ms_max": round(max(deploy_s) * 1000, 1),
                   "deploy_alone_ms_median": round(sorted(alone)[len(alone) // 2] * 1000, 1),
                   "poll_p99_ms_before_deploys": round(pct(before, 0.99), 2),
                   "poll_p99_ms_during_deploys": round(pct(during, 0.99), 2),
                   "polls_during_deploys": len(during)}
    cores = (cpu1 - cpu0) / (wall1 - wall0)
    return {
        "agents": len(sims), "poll_s": args.poll_s, "records_per_s_per_agent": args.rate,
        "duration_s": round(wall1 - wall0, 1), "hub_cpu_cores": round(cores, 3),
        "hub_cpu_ms_per_agent_per_s": round(cores * 1000 / len(sims), 3),
        "rows_per_s": round(sum(s.inserted for s in sims) / (wall1 - wall0), 1),
        "offered_rows_per_s": args.rate * len(sims),
        "polls": len(polls), "poll_p50_ms": round(pct(polls, 0.5), 2),
        "poll_p99_ms": round(pct(polls, 0.99), 2), "post_p50_ms": round(pct(posts, 0.5), 2),
        "post_p99_ms": round(pct(posts, 0.99), 2),
        "errors": sum(len(s.errors) for s in sims),
        "first_error": next((s.errors[0] for s in sims if s.errors), None),
        "telemetry_commits": final["flushes"], "rows_stored": final["rows"],
        "rows_sent": sum(s.seq for s in sims), **deploys,
    }


def baseline(home: Path, batches: int, rows: int, group: int) -> dict[str, Any]:
    """CPU per batch: one transaction each (ingest_table) against groups (ingest_batches)."""
    import pyarrow as pa
    import pyarrow.json as pajson

    from core.catalog import Catalog
    from core.config import Settings
    from core.hub.ingest import Batch, ingest_batches
    from core.telemetry.ingest import RECORD_SCHEMA, ingest_table

    options = pajson.ParseOptions(explicit_schema=RECORD_SCHEMA)
    tables = [pajson.read_json(pa.BufferReader(request_lines(1 + (i // group) * rows, rows,
                                                             1.7e9)),
                               parse_options=options) for i in range(batches)]
    results = {}
    with Catalog.open(Settings(home)) as catalog:
        t0 = time.process_time()
        for i, table in enumerate(tables):
            ingest_table(catalog, f"one{i % group}", table, where="bench")
        results["per_batch_cpu_ms"] = (time.process_time() - t0) * 1000 / batches
        t0 = time.process_time()
        for start in range(0, batches, group):
            ingest_batches(catalog, [Batch(f"grp{i % group}", tables[i])
                                     for i in range(start, start + group)])
        results["coalesced_cpu_ms"] = (time.process_time() - t0) * 1000 / batches
    results["ratio"] = results["per_batch_cpu_ms"] / results["coalesced_cpu_ms"]
    return {k: round(v, 3) for k, v in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--poll-s", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=50.0, help="records/s per agent")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--deploys", type=int, default=20,
                        help="`outpost deploy` commands from the CLI meanwhile")
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 agents, 2 s, 1 deploy")
    parser.add_argument("--serve-hub", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_hub:
        serve_hub(args.serve_hub)
        return
    if args.quick:
        args.agents, args.duration, args.warmup = 3, 2.0, 0.5
        args.deploys = min(args.deploys, 1)
    os.sched_setaffinity(0, AGENTS_CPU)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.monotonic()
        enrolled = setup(Path(tmp) / "home", args.agents)
        setup_s = time.monotonic() - t0
        result = fleet(Path(tmp) / "home", args, enrolled)
        base = baseline(Path(tmp) / "base", batches=200, rows=int(args.rate * args.poll_s),
                        group=20)
    result.update(setup_s=round(setup_s, 1), baseline=base, targets=TARGETS,
                  target_met=result["poll_p99_ms"] < TARGETS["poll_p99_ms"]
                  and result["hub_cpu_cores"] <= TARGETS["hub_cores"]
                  and result["errors"] == 0 and result["rows_stored"] == result["rows_sent"],
                  cpu_count=os.cpu_count())
    print(json.dumps(result, indent=2))
    print(f"ingest ratio (per-batch / coalesced CPU): {base['ratio']:.1f}x; "
          f"hub {result['hub_cpu_cores']:.2f} cores for {result['agents']} agents, "
          f"poll p99 {result['poll_p99_ms']:.1f} ms")
    if result.get("deploys"):
        forwarded, alone = result["deploy_forwarded_ms_median"], result["deploy_alone_ms_median"]
        print(f"{result['deploys']} CLI deploys forwarded to the hub: median {forwarded:.0f} ms"
              f" vs {alone:.0f} ms alone (ratio {forwarded / alone:.2f}); poll p99 "
              f"{result['poll_p99_ms_before_deploys']:.1f} ms before, "
              f"{result['poll_p99_ms_during_deploys']:.1f} ms during")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
