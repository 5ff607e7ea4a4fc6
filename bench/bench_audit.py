"""Audit benchmark: "what served agent A at time T" over a year of events.

Builds a catalog holding a year of audit history — N agents, each deployed to every
few hours, each deploy chained with the agent's own signed install and activate
events — plus 10 M prediction (request) records, then times `serving_at` (both views,
evidence, requests served in the interval) at random instants beside the plain SQL
lookup of the latest active deployment row before T, in the same run. Also times
`verify_catalog` over the whole chain. Target: `at` under 1 s.

    python bench/bench_audit.py [--scale 1.0]
"""
from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.audit.chain import COLUMNS, GENESIS, canonical, entry_hash  # noqa: E402
from core.audit.query import serving_at, verify_catalog  # noqa: E402
from core.catalog import Catalog  # noqa: E402
from core.config import Settings  # noqa: E402
from edge_agent.contract.audit_events import AgentEvent, sign_event  # noqa: E402
from edge_agent.contract.protocol import generate_signing_key, public_key_b64  # noqa: E402

RESULTS = REPO / "bench" / "results" / "bench_audit.json"
YEAR_S = 365 * 24 * 3600.0
T0 = datetime(2025, 1, 1, tzinfo=UTC).timestamp()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")


def build(catalog: Catalog, agents: int, every_s: float, requests: int) -> dict[str, Any]:
    """The chained history, built as record_event would write it, in one bulk insert."""
    con = catalog.con
    keys = {f"agent-{i}": generate_signing_key() for i in range(agents)}
    for name, key in keys.items():
        con.execute("INSERT INTO agent (name, url, token, agent_id, public_key, mode, key_index,"
                    " key_counter) VALUES (?, 'https://127.0.0.1:9', 't', ?, ?, 'push', 0, 0)",
                    [name, f"id-{name}", public_key_b64(key)])
    steps = []  # (ts, agent, version)
    for i, name in enumerate(keys):
        t = T0 + i * 60.0
        version = 0
        while t < T0 + YEAR_S:
            version += 1
            steps.append((t, name, version))
            t += every_s
    steps.sort()
    rows: dict[str, list[Any]] = {c: [] for c in (*COLUMNS, "prev_hash", "hash")}
    deployments: list[tuple[Any, ...]] = []
    prev, position, seqs = GENESIS, 0, dict.fromkeys(keys, 0)

    def add(entry: dict[str, Any]) -> None:
        nonlocal prev, position
        position += 1
        entry["position"] = position
        digest = entry_hash(prev, entry)
        for c in COLUMNS:
            rows[c].append(entry[c])
        rows["prev_hash"].append(prev)
        rows["hash"].append(digest)
        prev = digest

    blank = dict.fromkeys(COLUMNS)
    for ts, name, version in steps:
        sha = f"{version:064x}"
        for event in ("install", "activate"):
            seqs[name] += 1
            ev = AgentEvent(f"id-{name}", "boot", seqs[name], ts, event, "pumps", version,
                            None if event == "install" else version - 1 or None,
                            sha if event == "install" else None)
            rec = sign_event(ev, keys[name])
            add({**blank, "recorded_at": _iso(ts + 1), "kind": "agent_event", "actor": "agent",
                 "agent": name, "model": "pumps", "version": version, "sha256": ev.sha256,
                 "detail": canonical({"event": event, "previous": ev.previous,
                                      "agent_id": ev.agent_id, "outbox_seq": 0}).decode(),
                 "agent_seq": ev.seq, "agent_ts": ts, "agent_boot": "boot",
                 "agent_body": rec["body"], "agent_sig": rec["signature"],
                 "agent_key": public_key_b64(keys[name])})
        deployments.append((len(deployments) + 1, name, "pumps", version, _iso(ts + 2)))
        add({**blank, "recorded_at": _iso(ts + 2), "kind": "deploy", "actor": "bench",
             "agent": name, "model": "pumps", "version": version, "sha256": sha,
             "detail": canonical({"deployment": len(deployments), "status": "active",
                                  "error": None}).decode()})
    table = pa.table({k: pa.array(v) for k, v in rows.items()})
    con.register("built", table)
    con.execute("INSERT INTO audit_event SELECT * FROM built")
    con.unregister("built")
    ids, names, models, versions, stamps = (list(c) for c in zip(*deployments, strict=True))
    con.register("deployed", pa.table({"id": ids, "agent": names, "model": models,
                                       "version": versions, "stamp": stamps}))
    con.execute("INSERT INTO deployment (id, agent, model, version, action, status, started_at,"
                " finished_at) SELECT id, agent, model, version, 'deploy', 'active', "
                "CAST(stamp AS TIMESTAMPTZ), CAST(stamp AS TIMESTAMPTZ) FROM deployed")
    con.unregister("deployed")
    con.execute(
        "INSERT INTO telemetry_request SELECT 'agent-' || (i % $agents), i, "
        "$t0 + i * ($year / $n), 'pumps', 1 + (i * ($year / $n) // $every)::INTEGER, 200, "
        "900 + i % 300, 1 FROM range($n) r(i)",
        {"agents": agents, "t0": T0, "year": YEAR_S, "n": requests, "every": every_s})
    return {"audit_events": position, "deployments": len(deployments),
            "requests": requests, "agents": agents}


def baseline_lookup(catalog: Catalog, agent: str, when: datetime) -> Any:
    return catalog.cursor().execute(
        "SELECT model, version, finished_at FROM deployment WHERE agent = ? AND "
        "status = 'active' AND finished_at <= ? ORDER BY id DESC LIMIT 1",
        [agent, when]).fetchone()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--profile", action="store_true", help="profile `at` and print")
    args = parser.parse_args()
    agents, every_s = max(2, int(20 * args.scale)), 4 * 3600.0
    requests = int(10_000_000 * args.scale)
    home = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    try:
        catalog = Catalog.open(Settings(home))
        started = time.perf_counter()
        sizes = build(catalog, agents, every_s, requests)
        build_s = time.perf_counter() - started
        if args.profile:
            import cProfile
            import pstats
            when = datetime.fromtimestamp(T0 + YEAR_S / 2, UTC)
            with cProfile.Profile() as prof:
                for _ in range(5):
                    serving_at(catalog, "agent-1", when)
            pstats.Stats(prof).sort_stats("cumulative").print_stats(15)
        rng = random.Random(7)
        instants = [(f"agent-{rng.randrange(agents)}",
                     datetime.fromtimestamp(T0 + rng.uniform(0, YEAR_S), UTC))
                    for _ in range(args.queries)]
        at_s, base_s = [], []
        for agent, when in instants:
            t = time.perf_counter()
            answer = serving_at(catalog, agent, when)
            at_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            base = baseline_lookup(catalog, agent, when)
            base_s.append(time.perf_counter() - t)
            if base is not None:
                assert answer["version"] == base[1], (agent, when, answer, base)
        t = time.perf_counter()
        check = verify_catalog(catalog)
        verify_s = time.perf_counter() - t
        assert check.ok, check
        catalog.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    result = {
        **sizes, "build_s": round(build_s, 1),
        "at_median_s": round(statistics.median(at_s), 4), "at_max_s": round(max(at_s), 4),
        "baseline_median_s": round(statistics.median(base_s), 4),
        "ratio": round(statistics.median(at_s) / statistics.median(base_s), 1),
        "verify_s": round(verify_s, 2), "target_at_max_s": 1.0,
        "machine": platform.platform(), "python": platform.python_version(),
    }
    print(json.dumps(result, indent=2))
    print(f"audit at: median {result['at_median_s'] * 1000:.1f} ms, max "
          f"{result['at_max_s'] * 1000:.1f} ms over {sizes['audit_events']:,} events and "
          f"{requests:,} requests; plain SQL lookup {result['baseline_median_s'] * 1000:.1f} ms "
          f"(ratio {result['ratio']}x); verify {verify_s:.2f} s")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
