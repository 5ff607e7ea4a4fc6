"""Closed-loop benchmarks, each beside its baseline measured in the same run.

1. Feedback ingest: `import_feedback` of N labels (CSV id,label) into a catalog holding N
   predictions, against a raw DuckDB join of the same two files (labels CSV x
   predictions Parquet) into a table. Target: ours <= 1.5x the raw join. Best of
   --ingest-rounds alternated runs of each (a fresh copy of the catalog per import); the
   process CPU seconds of each are reported beside the wall time.
2. Capture on the hot path: /v1 predict req/s at 16 connections with a 10% random capture
   policy, against the same agent with no capture (same load generator, same run,
   alternated). Target: <= 5% fewer req/s. The load generator is a keep-alive asyncio
   client in its own process.

    python bench/bench_feedback.py [--labels 10000000] [--ingest-rounds 3] [--duration 10]
        [--rounds 3] [--only ingest|capture] [--quick]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS_DIR = Path(os.environ.get("OUTPOST_BENCH_RESULTS") or REPO / "bench" / "results")
RESULTS = RESULTS_DIR / "bench_feedback.json"
BODY = json.dumps({"records": [{"temp": 21.5, "pressure": 1001.0, "site": "north"}]}).encode()


# --- 1. feedback ingest -------------------------------------------------------------------

def ingest(n: int, rounds: int, work: Path) -> dict[str, Any]:
    """Best of `rounds` alternated runs of each arm, every import into a fresh copy of the
    same checkpointed catalog and every raw join into a fresh database: on a machine other
    jobs share, one run of each moved by up to 2x."""
    import duckdb

    from core.catalog import Catalog
    from core.config import Settings
    from core.feedback import import_feedback
    from tests.support.fleet import train_mini

    setup_home = work / "setup"
    os.environ["OUTPOST_HOME"] = str(setup_home)
    catalog = Catalog.open(Settings.from_env())
    train_mini(catalog)
    per = 1000  # ids per prediction record, as an agent's flush would carry
    catalog.con.execute(
        "INSERT INTO telemetry_prediction SELECT 'edge', r, 0, 'pumps', 1, "
        "list_transform(range(r * $per, (r + 1) * $per), lambda i: 'a:1:' || i), "
        "list_transform(range($per), lambda i: (i % 2)::VARCHAR), "
        "list_transform(range($per), lambda i: 0.0) FROM range($n // $per) t(r)",
        {"per": per, "n": n})
    labels, preds = work / "labels.csv", work / "predictions.parquet"
    catalog.con.execute(
        f"COPY (SELECT 'a:1:' || i AS id, ((i * 7) % 2)::VARCHAR AS label FROM range({n}) t(i))"
        f" TO '{labels}' (HEADER)")
    catalog.con.execute(
        f"COPY (SELECT unnest(ids) AS id, unnest(predicted) AS predicted FROM "
        f"telemetry_prediction) TO '{preds}' (FORMAT parquet)")
    catalog.con.execute("CHECKPOINT")  # the setup's writes are not the import's to flush
    catalog.close()

    def ours(r: int) -> tuple[float, float]:
        home = work / f"home{r}"
        shutil.copytree(setup_home, home)
        os.environ["OUTPOST_HOME"] = str(home)
        catalog = Catalog.open(Settings.from_env())
        t, c = time.perf_counter(), time.process_time()
        result = import_feedback(catalog, labels, "pumps")
        spent = time.perf_counter() - t, time.process_time() - c
        assert result.new == n and result.orphans == 0, result
        t, c = time.perf_counter(), time.process_time()  # the same file again
        again = import_feedback(catalog, labels, "pumps")
        runs["reimport"].append((time.perf_counter() - t, time.process_time() - c))
        assert again.unchanged == n and again.new == again.replaced == 0, again
        catalog.close()
        shutil.rmtree(home)
        return spent

    def raw(r: int) -> tuple[float, float]:
        path = work / f"raw{r}.duckdb"
        con = duckdb.connect(str(path))
        t, c = time.perf_counter(), time.process_time()
        con.execute(f"CREATE TABLE joined AS SELECT l.id, l.label, p.predicted FROM "
                    f"read_csv('{labels}', header = true) l JOIN read_parquet('{preds}') p "
                    "USING (id)")
        spent = time.perf_counter() - t, time.process_time() - c
        con.close()
        path.unlink()
        return spent

    runs: dict[str, list[tuple[float, float]]] = {"import": [], "raw_join": [], "reimport": []}
    for r in range(rounds):  # alternated: neither arm always runs on a warmer machine
        arms = [("import", ours), ("raw_join", raw)]
        for name, arm in arms if r % 2 == 0 else arms[::-1]:
            runs[name].append(arm(r))
    wall = {k: min(w for w, _ in v) for k, v in runs.items()}
    cpu = {k: min(c for _, c in v) for k, v in runs.items()}
    return {"labels": n, "rounds": rounds, "import_s": round(wall["import"], 3),
            "raw_join_s": round(wall["raw_join"], 3),
            "ratio": round(wall["import"] / wall["raw_join"], 3), "target_ratio": 1.5,
            "import_cpu_s": round(cpu["import"], 3), "raw_join_cpu_s": round(cpu["raw_join"], 3),
            "cpu_ratio": round(cpu["import"] / cpu["raw_join"], 3),
            # the same file imported again, unchanged (right after each import)
            "reimport_s": round(wall["reimport"], 3), "reimport_cpu_s": round(cpu["reimport"], 3),
            "load_avg": [round(x, 2) for x in os.getloadavg()],
            "runs_s": {k: [[round(w, 3), round(c, 3)] for w, c in v] for k, v in runs.items()}}


# --- 2. capture on the hot path ------------------------------------------------------------

async def _hammer(port: int, conns: int, duration: float) -> int:
    request = (f"POST /v1/models/pumps/predict HTTP/1.1\r\nHost: x\r\nContent-Type: "
               f"application/json\r\nContent-Length: {len(BODY)}\r\n\r\n").encode() + BODY
    done = 0
    stop = time.monotonic() + duration

    async def one() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.monotonic() < stop:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise SystemExit(f"agent answered {head[:40]!r}")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            done += 1
        writer.close()

    await asyncio.gather(*(one() for _ in range(conns)))
    return done


def load_main(port: int, conns: int, duration: float) -> None:
    print(asyncio.run(_hammer(port, conns, duration)))


def _start_agent(work: Path, key: Any) -> tuple[subprocess.Popen[bytes], int]:
    from tests.support.agents import free_port, wait_http_ok

    port = free_port()
    token = work / "token"
    token.write_text("bench-token-123")
    proc = subprocess.Popen([sys.executable, "-m", "edge_agent", "serve", "--dir",
                             str(work / "agent"), "--port", str(port), "--token-file",
                             str(token), "--trust-key", str(work / "trusted.pub"),
                             "--insecure-http"],  # both arms alike: capture's cost, not TLS's
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    wait_http_ok(f"http://127.0.0.1:{port}/v2/health/ready", 60, proc)
    return proc, port


def _policy(port: int, share: float) -> None:
    body = json.dumps({"policy": {"share": share}}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models/pumps/capture", body,
                                 {"Authorization": "Bearer bench-token-123"}, method="PUT")
    urllib.request.urlopen(req, timeout=10).read()


def _cpu_s(pid: int) -> float | None:
    """The process's user+system CPU seconds (Linux): the agent's work per request is a
    steadier measure than req/s on a machine other jobs share."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def capture(duration: float, rounds: int, work: Path) -> dict[str, Any]:
    from edge_agent.contract.protocol import generate_signing_key, write_public_key
    from tests.support.agents import make_tabular_bundle

    key = generate_signing_key()
    write_public_key(key.public_key(), work / "trusted.pub")
    bundle = make_tabular_bundle(work, key)
    subprocess.run([sys.executable, "-m", "edge_agent", "install", str(bundle), "--dir",
                    str(work / "agent"), "--trust-key", str(work / "trusted.pub")],
                   check=True, cwd=REPO, capture_output=True)
    proc, port = _start_agent(work, key)
    rates: dict[str, list[float]] = {"none": [], "capture_10pct": []}
    cpu_us: dict[str, list[float]] = {"none": [], "capture_10pct": []}
    try:
        load = [sys.executable, __file__, "--load", str(port)]
        subprocess.run([*load, "--duration", "1"], check=True, capture_output=True)  # warm-up
        for _ in range(rounds):
            for name, share in (("none", 0.0), ("capture_10pct", 0.1)):
                _policy(port, share)
                before = _cpu_s(proc.pid)
                out = subprocess.run([*load, "--duration", str(duration)], check=True,
                                     capture_output=True, text=True).stdout
                after, done = _cpu_s(proc.pid), int(out.strip())
                rates[name].append(done / duration)
                if before is not None and after is not None and done:
                    cpu_us[name].append(round((after - before) / done * 1e6, 1))
    finally:
        proc.terminate()
        proc.wait(30)
    best = {k: max(v) for k, v in rates.items()}
    cost = 1 - best["capture_10pct"] / best["none"]
    cpu = {k: min(v) for k, v in cpu_us.items() if v}
    cpu_cost = cpu["capture_10pct"] / cpu["none"] - 1 if len(cpu) == 2 else None
    return {"req_s_c16": {k: round(v, 1) for k, v in best.items()}, "rounds": rates,
            "cost": round(cost, 4), "target_cost": 0.05, "agent_cpu_us_per_req": cpu,
            "cpu_rounds": cpu_us, "cpu_cost": None if cpu_cost is None else round(cpu_cost, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=10_000_000)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ingest-rounds", type=int, default=3,
                        help="alternated runs of the import and the raw join (best of each)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 k labels, 1 s, 1 round")
    parser.add_argument("--only", choices=["ingest", "capture"], help="run one benchmark")
    parser.add_argument("--load", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        load_main(args.load, 16, args.duration)
        return
    if args.quick:
        args.labels, args.duration, args.rounds, args.ingest_rounds = 20_000, 1.0, 1, 1
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "ingest").mkdir()
        (work / "capture").mkdir()
        results: dict[str, Any] = {}
        if args.only != "capture":
            results["ingest"] = ing = ingest(args.labels, args.ingest_rounds, work / "ingest")
            print(f"feedback ingest of {ing['labels']:,} labels (best of {ing['rounds']}): "
                  f"{ing['import_s']} s vs raw DuckDB join {ing['raw_join_s']} s -> ratio "
                  f"{ing['ratio']} (target <= 1.5); CPU {ing['import_cpu_s']} s vs "
                  f"{ing['raw_join_cpu_s']} s -> {ing['cpu_ratio']}; the same file again "
                  f"{ing['reimport_s']} s (CPU {ing['reimport_cpu_s']} s); load average "
                  f"{ing['load_avg']}")
        if args.only != "ingest":
            results["capture"] = cap = capture(args.duration, args.rounds, work / "capture")
            print(f"c16 req/s: no capture {cap['req_s_c16']['none']}, 10% capture "
                  f"{cap['req_s_c16']['capture_10pct']} -> cost {cap['cost']:.1%} "
                  "(target <= 5%)")
            if cap["cpu_cost"] is not None:
                cpu = cap["agent_cpu_us_per_req"]
                print(f"agent CPU per request: no capture {cpu['none']} us, 10% capture "
                      f"{cpu['capture_10pct']} us -> cost {cap['cpu_cost']:.1%}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
