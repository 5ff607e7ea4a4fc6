"""The telemetry outbox and its writer thread: sequence numbers, windows, the byte cap."""
from __future__ import annotations

import json
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge_agent.contract.protocol import Ed25519PrivateKey, generate_signing_key
from edge_agent.contract.records import Baseline
from edge_agent.telemetry.histograms import binner_for
from edge_agent.telemetry.outbox import Outbox, OutboxStats
from edge_agent.telemetry.recorder import (
    BIG_CHUNK,
    CHUNK,
    MAX_QUEUED,
    Recorder,
    RequestEvent,
)
from tests.support.agents import (
    AgentProcess,
    http_connection,
    json_request,
    make_identity_bundle,
    open_socket,
    running_agent,
)
from tests.support.hub import wait_until

BASELINE = Baseline.from_dict({
    "rows": 10,
    "features": [
        {"name": "temp", "kind": "numeric", "edges": [0.0, 10.0], "counts": [1, 1, 1],
         "nulls": 0},
        {"name": "site", "kind": "categorical", "categories": ["a", "b"], "counts": [1, 1, 1],
         "nulls": 0}],
    "prediction": {"name": "__prediction__", "kind": "categorical", "categories": ["0", "1"],
                   "counts": [1, 1, 0], "nulls": 0},
})
INPUTS = [("temp", (-1, 1)), ("site", (-1, 1))]


def event(i: int = 0, ts: float | None = None, **kw: object) -> RequestEvent:
    base: dict[str, object] = dict(ts=ts or time.time(), model="m", version=1, status=200,
                                   latency_us=100 + i, rows=1)
    base.update(kw)
    return RequestEvent(**base)  # type: ignore[arg-type]


def all_seqs(outbox: Outbox) -> list[int]:
    return [r["seq"] for r in outbox.read(0, 10**9)]


def test_sequence_is_gapless_and_survives_restarts_and_acks(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite"
    outbox = Outbox(path)
    outbox.write([event(i).record() for i in range(5)])
    outbox.ack(3)
    outbox.close()
    outbox = Outbox(path)
    assert outbox.stats().last_seq == 5 and outbox.stats().backlog == 2
    outbox.write([event(i).record() for i in range(3)])
    assert all_seqs(outbox) == [4, 5, 6, 7, 8]
    assert outbox.read(5, 2)[0] == {"seq": 6, **event(0, ts=outbox.read(5, 1)[0]["ts"]).record()}
    assert [r["seq"] for r in outbox.read(5, 2)] == [6, 7]
    outbox.ack(8)
    outbox.close()
    assert Outbox(path).stats().backlog == 0 and Outbox(path).stats().last_seq == 8


def test_stats_never_show_a_write_half_done(tmp_path: Path) -> None:
    """/metrics and status read stats() while the recorder writes: with no acks and no cap,
    every snapshot has backlog == last_seq. A write raises the backlog before its commit
    and the sequence after it, so an unlocked read can see them apart. A tiny GIL switch
    interval makes the threads interleave inside a write (unlocked, every run here caught
    torn snapshots; locked, none can be). The writer makes 300 writes and goes on until
    the reader has 50 snapshots, taken while it writes however the threads are scheduled."""
    outbox = Outbox(tmp_path / "t.sqlite")
    snapshots: list[OutboxStats] = []
    deadline = time.monotonic() + 120

    def write() -> None:
        written = 0
        while (written < 300 or len(snapshots) < 50) and time.monotonic() < deadline:
            outbox.write([event().record()])
            written += 1

    writer = threading.Thread(target=write)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        writer.start()
        while writer.is_alive():
            snapshots.append(outbox.stats())
        writer.join()
    finally:
        sys.setswitchinterval(interval)
        outbox.close()
    torn = [(s.backlog, s.last_seq) for s in snapshots if s.backlog != s.last_seq]
    assert len(snapshots) >= 50 and torn == [], torn[:5]


def test_migrations_are_named_and_recorded_once(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite"
    Outbox(path).close()
    Outbox(path).close()
    names = [r[0] for r in sqlite3.connect(path).execute(
        "SELECT name FROM _sqlite_migrations ORDER BY id")]
    assert names == ["001_records", "002_state", "003_open_windows", "004_capture_evicted",
                     "005_counters"]
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# What sqlite-utils 4.2 (the agent's outbox up to issue 20) left on disk, read back from a
# file the old code wrote: its migrations table and index, the outbox tables, WAL mode.
SQLITE_UTILS_SCHEMA = [
    'CREATE TABLE "_sqlite_migrations" (\n   "id" INTEGER PRIMARY KEY,\n'
    '   "migration_set" TEXT,\n   "name" TEXT,\n   "applied_at" TEXT\n)',
    'CREATE UNIQUE INDEX "idx__sqlite_migrations_migration_set_name"\n'
    '    ON "_sqlite_migrations" ("migration_set", "name")',
    "CREATE TABLE records (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, "
    "body TEXT NOT NULL, size INTEGER NOT NULL)",
    "CREATE TABLE state (id INTEGER PRIMARY KEY CHECK (id = 1), last_seq INTEGER NOT NULL, "
    "evicted INTEGER NOT NULL, capture_evicted INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE open_windows (model TEXT NOT NULL, version INTEGER NOT NULL, "
    "feature TEXT NOT NULL, window_start REAL NOT NULL, counts TEXT NOT NULL, "
    "nulls INTEGER NOT NULL, PRIMARY KEY (model, version, feature, window_start))",
]


def test_an_outbox_written_with_sqlite_utils_opens_migrates_and_keeps_its_records(
        tmp_path: Path) -> None:
    """An agent upgraded in the field keeps its telemetry.sqlite: the file as the
    sqlite-utils outbox wrote it (migrations 001-004 recorded, 005 not yet: an agent of
    that time) opens, gets 005 once, and keeps its records, sequence and open windows."""
    path = tmp_path / "telemetry.sqlite"
    old = sqlite3.connect(path)
    old.execute("PRAGMA journal_mode=wal")
    for sql in SQLITE_UTILS_SCHEMA:
        old.execute(sql)
    old.executemany("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
                    "VALUES ('outpost-telemetry', ?, '2026-12-05 05:03:50.170300+00:00')",
                    [("001_records",), ("002_state",), ("003_open_windows",),
                     ("004_capture_evicted",)])
    bodies = [json.dumps({"kind": "request", "ts": 1.5, "n": n}) for n in (8, 9)]
    old.executemany("INSERT INTO records VALUES (?, 'request', ?, ?)",
                    [(8, bodies[0], len(bodies[0]) + 16), (9, bodies[1], len(bodies[1]) + 16)])
    old.execute("INSERT INTO state VALUES (1, 9, 2, 0)")
    old.execute("INSERT INTO open_windows VALUES ('m', 1, 'temp', 3600.0, '[1, 2, 3]', 4)")
    old.commit()
    old.close()

    outbox = Outbox(path)
    assert [(r["seq"], r["n"]) for r in outbox.read(0, 10)] == [(8, 8), (9, 9)]
    stats = outbox.stats()
    assert (stats.backlog, stats.last_seq, stats.evicted) == (2, 9, 2)
    counts, nulls = outbox.open_windows()[("m", 1, "temp", 3600.0)]
    assert counts.tolist() == [1, 2, 3] and nulls == 4
    outbox.write_counted("audit", lambda n: [{"kind": "evicted", "number": n}])  # needs 005
    outbox.close()
    outbox = Outbox(path)
    outbox.write([event().record()])
    assert all_seqs(outbox) == [8, 9, 10, 11]
    outbox.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT id, migration_set, name FROM _sqlite_migrations "
                      "ORDER BY id").fetchall()[3:] == [
        (4, "outpost-telemetry", "004_capture_evicted"),
        (5, "outpost-telemetry", "005_counters")]
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert [r[1] for r in db.execute("PRAGMA index_list(_sqlite_migrations)")] == [
        "idx__sqlite_migrations_migration_set_name"]


def test_a_failed_commit_leaves_nothing_and_nested_blocks_undo_only_their_part(
        tmp_path: Path) -> None:
    """atomic(): all or nothing; inside an open transaction a savepoint, so a failing inner
    block undoes its own writes and the outer one still commits the rest."""
    from edge_agent.telemetry.sqlite_db import atomic, connect

    conn = connect(tmp_path / "t.sqlite")
    conn.execute("CREATE TABLE t (x INTEGER)")
    with pytest.raises(KeyboardInterrupt), atomic(conn):
        conn.execute("INSERT INTO t VALUES (1)")
        raise KeyboardInterrupt
    assert not conn.in_transaction and conn.execute("SELECT * FROM t").fetchall() == []
    with atomic(conn):
        conn.execute("INSERT INTO t VALUES (2)")
        with pytest.raises(RuntimeError), atomic(conn):
            conn.execute("INSERT INTO t VALUES (3)")
            raise RuntimeError("inner")
        with atomic(conn):
            conn.execute("INSERT INTO t VALUES (4)")
    other = sqlite3.connect(tmp_path / "t.sqlite")  # committed: another connection sees it
    assert other.execute("SELECT x FROM t ORDER BY x").fetchall() == [(2,), (4,)]
    with pytest.raises(sqlite3.IntegrityError), atomic(conn):
        conn.execute("INSERT INTO t VALUES (5)")
        conn.execute("CREATE UNIQUE INDEX u ON t (x)")
        conn.execute("INSERT INTO t VALUES (5)")
    assert other.execute("SELECT x FROM t ORDER BY x").fetchall() == [(2,), (4,)]
    assert conn.execute("PRAGMA index_list(t)").fetchall() == []


def test_counted_records_take_each_number_once_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite"
    outbox = Outbox(path)
    outbox.write_counted("c", lambda n: [{"kind": "evicted", "number": n}])

    def fails(n: int) -> list[dict[str, object]]:
        raise RuntimeError("signing failed")

    with pytest.raises(RuntimeError):  # nothing taken when the records are not stored
        outbox.write_counted("c", fails)
    outbox.close()
    outbox = Outbox(path)
    outbox.write_counted("c", lambda n: [{"kind": "evicted", "number": n}])
    assert [(r["seq"], r["number"]) for r in outbox.read(0, 10)] == [(1, 1), (2, 2)]
    outbox.close()


def test_cap_evicts_oldest_first_and_says_so(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "t.sqlite", max_bytes=20_000)
    for _ in range(10):
        outbox.write([event(i).record() for i in range(30)])
    stats = outbox.stats()
    assert stats.bytes <= 20_000 and stats.evicted > 0 and stats.last_seq > 300
    records = outbox.read(0, 10**6)
    notes = [r for r in records if r["kind"] == "evicted"]
    assert sum(n["count"] for n in notes) == stats.evicted
    kept = [r["seq"] for r in records if r["kind"] == "request"]
    # what is left is the newest, contiguous run (requests and the notes among them),
    # and every gap is explained by a note
    present = {r["seq"] for r in records}
    assert set(range(kept[0], stats.last_seq + 1)) <= present
    explained = {s for n in notes for s in range(n["first_seq"], n["last_seq"] + 1)}
    assert explained | present == set(range(1, stats.last_seq + 1))
    assert max(explained) < min(kept)


def test_writer_flushes_in_batches_off_the_caller(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "t.sqlite")
    seen: list[int] = []
    recorder = Recorder(outbox, window_s=60, flush_s=0.05,
                        on_flush=lambda evs, _s: seen.append(len(evs)))
    recorder.start()
    for i in range(200):
        recorder.submit(event(i))
    # on_flush runs after each chunk is committed: wait for it, not for the backlog
    wait_until(lambda: sum(seen) == 200, 10, "every event flushed")
    assert outbox.stats().backlog == 200 and max(seen) > 1
    recorder.close()


def test_a_full_queue_makes_requests_wait_for_the_writer_and_loses_none(
        tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "t.sqlite")
    recorder = Recorder(outbox, window_s=3600, flush_s=0.01)
    recorder.start()
    # the writer takes one chunk (at most BIG_CHUNK) before its commit blocks
    n = MAX_QUEUED + BIG_CHUNK + 10

    def submit_all() -> None:
        for i in range(n):
            recorder.submit(event(i))

    submitter = threading.Thread(target=submit_all)
    with outbox._lock:  # the writer cannot commit: a writer starved of the CPU
        submitter.start()
        # a waiting submitter resumes below half of MAX_QUEUED
        wait_until(lambda: recorder._queue.qsize() > MAX_QUEUED // 2, 20, "a full queue")
        submitter.join(0.2)  # a submitter that did not wait would be done by now
        # and the queue would hold more than MAX_QUEUED
        assert submitter.is_alive() and recorder._queue.qsize() <= MAX_QUEUED
    submitter.join(30)
    assert not submitter.is_alive()
    recorder.close()
    waits, waited_s = recorder.backpressure()
    assert waits >= 1 and waited_s > 0
    latencies = [r["latency_us"] for r in outbox.read(0, 10**9) if r["kind"] == "request"]
    assert sorted(latencies) == [100 + i for i in range(n)]  # each request once
    outbox.close()


def test_a_pause_inside_a_write_keeps_it_atomic(tmp_path: Path) -> None:
    """The writer gives up the core between a write's steps (inside the transaction): a
    reader between them sees nothing of it, and a write cut short there leaves nothing."""
    path = tmp_path / "t.sqlite"
    outbox = Outbox(path)
    other = sqlite3.connect(path)
    seen: list[int] = []

    def look() -> None:
        seen.append(other.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    outbox.write([{"kind": "request", "n": i} for i in range(3)], pause=look)
    assert seen == [0, 0] and all_seqs(outbox) == [1, 2, 3]

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        outbox.write([{"kind": "request", "n": 9}], pause=interrupted)
    assert all_seqs(outbox) == [1, 2, 3] and outbox.stats().last_seq == 3
    outbox.write([{"kind": "request", "n": 4}])
    assert all_seqs(outbox) == [1, 2, 3, 4]
    other.close()
    outbox.close()


@pytest.mark.parametrize("queued, pauses", [(0, True), (CHUNK, False)])
def test_the_writer_pauses_between_steps_only_while_it_keeps_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, queued: int, pauses: bool) -> None:
    """Each feature pair, the records, the commit: the event loop may run between them
    (c1 tail). With a chunk's worth still queued (c16) the writer skips those pauses, as
    each one cost it a GIL switch interval while the queue grew to back-pressure."""
    import edge_agent.telemetry.recorder as recorder_module

    outbox = Outbox(tmp_path / "t.sqlite")
    recorder = Recorder(outbox, window_s=3600, flush_s=60)
    binner = binner_for(BASELINE, INPUTS)
    feeds = {"temp": np.array([[1.0]], np.float32), "site": np.array([["a"]], object)}
    for i in range(CHUNK):
        recorder.submit(event(i, binner=binner, feeds=feeds, prediction=np.array([1])))
    chunk = recorder._take(CHUNK)
    for i in range(queued):  # left in the queue: the writer is behind
        recorder.submit(event(i))
    yields: list[str] = []
    monkeypatch.setattr(recorder_module, "_sched_yield",
                        lambda: yields.append(sys._getframe(2).f_code.co_name))
    recorder._write(chunk, final=False, last=True)
    # always: after the binning, after the records; only while keeping up: between the
    # features, between the request records and the answers, inside the outbox write
    assert yields.count("_write") == 3
    # one feature pair (temp, site), the answers, inside the outbox write (two)
    assert yields.count("_pause") == (4 if pauses else 0)
    assert [r["latency_us"] for r in outbox.read(0, 10**9) if r["kind"] == "request"] == [
        100 + i for i in range(CHUNK)]
    recorder.close()
    outbox.close()


def test_histograms_use_the_baseline_bins_per_window(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "t.sqlite")
    recorder = Recorder(outbox, window_s=3600, flush_s=60)
    binner = binner_for(BASELINE, INPUTS)
    assert binner is not None
    temps = np.array([[-5.0], [0.0], [9.9], [10.0], [np.nan]], np.float32)
    sites = np.array([["a"], ["b"], ["zzz"], [""], ["a"]], dtype=object)
    now = time.time()
    recorder.submit(event(ts=now, binner=binner, feeds={"temp": temps[:2], "site": sites[:2]},
                          prediction=np.array([0, 1]), rows=2))
    recorder.submit(event(ts=now, binner=binner, feeds={"temp": temps[2:], "site": sites[2:]},
                          prediction=np.array([1, 1, 7]), rows=3))
    recorder.submit(event(ts=now, status=400))
    recorder.close()
    hist = {r["feature"]: r for r in outbox.read(0, 100) if r["kind"] == "histogram"}
    assert hist["temp"]["counts"] == [1, 2, 1] and hist["temp"]["nulls"] == 1
    assert hist["site"]["counts"] == [2, 1, 1] and hist["site"]["nulls"] == 1
    assert hist["__prediction__"]["counts"] == [1, 3, 1]
    assert hist["temp"]["window_start"] == now - now % 3600
    assert hist["temp"]["window_end"] <= time.time()
    # the refused (400) request is counted in /metrics, never an outbox record (issue 12)
    assert len([r for r in outbox.read(0, 100) if r["kind"] == "request"]) == 2


def test_open_window_counts_survive_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite"
    binner = binner_for(BASELINE, INPUTS)
    recorder = Recorder(Outbox(path), window_s=3600, flush_s=0.05)
    recorder.start()
    feeds = {"temp": np.array([[1.0]], np.float32), "site": np.array([["a"]], dtype=object)}
    recorder.submit(event(binner=binner, feeds=feeds))
    # The request and the open window's counts are written in one transaction: once the
    # request is on disk, so are they. Now "crash": no close(), and a new process opens it.
    wait_until(lambda: Outbox(path).read(0, 100), 10, "the request flushed")
    outbox = Outbox(path)
    assert not [r for r in outbox.read(0, 100) if r["kind"] == "histogram"]
    recorder2 = Recorder(outbox, window_s=3600, flush_s=60)
    recorder2.submit(event(binner=binner, feeds=feeds))
    recorder2.close()
    hist = {r["feature"]: r for r in outbox.read(0, 100) if r["kind"] == "histogram"}
    assert hist["temp"]["counts"] == [0, 2, 0]


def test_an_idle_writer_wakes_to_close_a_window_at_its_end(tmp_path: Path) -> None:
    """The writer sleeps while there is nothing to write (issue 20), but not past the end
    of an open window: its histogram is written then, with no further request."""
    binner = binner_for(BASELINE, INPUTS)
    outbox = Outbox(tmp_path / "t.sqlite")
    recorder = Recorder(outbox, window_s=1.0, flush_s=0.05)
    recorder.start()
    feeds = {"temp": np.array([[1.0]], np.float32), "site": np.array([["a"]], dtype=object)}
    recorder.submit(event(binner=binner, feeds=feeds))
    wait_until(lambda: [r for r in outbox.read(0, 100) if r["kind"] == "histogram"], 10,
               "the window closed by the idle writer")
    hist = {r["feature"]: r for r in outbox.read(0, 100) if r["kind"] == "histogram"}
    assert hist["temp"]["counts"] == [0, 1, 0]
    recorder.close()


def test_a_cut_is_written_at_once_not_after_the_batching_wait(tmp_path: Path) -> None:
    """A cut (a hub push, a telemetry pull) has a caller waiting for it: the writer writes it
    at once, whether it was asleep or batching requests, instead of after `flush_s`. (With
    the wait, every push of a hub-mode agent started `flush_s` late.)"""
    binner = binner_for(BASELINE, INPUTS)
    outbox = Outbox(tmp_path / "t.sqlite")
    recorder = Recorder(outbox, window_s=3600.0, flush_s=60.0)
    recorder.start()
    try:
        assert recorder.cut(timeout=10)  # the writer asleep, no window open
        feeds = {"temp": np.array([[1.0]], np.float32), "site": np.array([["a"]], dtype=object)}
        recorder.submit(event(binner=binner, feeds=feeds))  # wakes it into its batching wait
        assert recorder.cut(timeout=10)
        kinds = [r["kind"] for r in outbox.read(0, 100)]
        assert kinds.count("request") == 1 and kinds.count("histogram") == 3
    finally:
        recorder.close()
    outbox.close()


@pytest.mark.parametrize("shape", [(-1, 2)])
def test_a_single_wide_input_maps_features_by_position(shape: tuple[int, ...]) -> None:
    binner = binner_for(BASELINE, [("X", shape)])
    assert binner is not None
    assert [(c.input, c.column) for c in binner.columns] == [("X", 0), ("X", 1)]


def test_columns_of_one_input_counted_together_match_counting_each_column() -> None:
    baseline = Baseline.from_dict({"rows": 10, "features": [
        {"name": "a", "kind": "numeric", "edges": [0.0, 10.0], "counts": [1, 1, 1],
         "nulls": 0},
        {"name": "b", "kind": "numeric", "edges": [-1.0, 0.5, 1.5, 2.0], "counts": [1] * 5,
         "nulls": 0},
        {"name": "c", "kind": "numeric", "edges": [3.0], "counts": [1, 1], "nulls": 0}]})
    binner = binner_for(baseline, [("X", (-1, 3))])
    assert binner is not None and binner.joint is not None
    rng = np.random.default_rng(0)
    # values at the cut points, NaN, infinities and ordinary numbers, per request
    pool = np.array([0.0, 10.0, -1.0, 0.5, 2.0, 3.0, np.nan, np.inf, -np.inf, 1.5, -7.0, 11.0],
                    np.float32)
    feeds = [{"X": rng.choice(pool, size=(int(rng.integers(1, 4)), 3))} for _ in range(50)]
    joint = [(b.name, c.tolist(), n) for b, c, n in binner.feature_counts(feeds)]
    single = [(b.name, *b.count(v)) for b, v in binner.feature_values(feeds)]
    assert joint == [(name, c.tolist(), n) for name, c, n in single]
    assert sum(n for _, _, n in joint) > 0 and joint[1][1][1:3] != [0, 0]


@pytest.mark.parametrize("values", [
    np.array([1, 0, 1, 7, -2], np.int64), np.array([True, False, True]),
    np.array([1.0, np.nan, 0.0, 1.0]), np.array([3, 200], np.uint8),
    np.array(["1", "", "x", "0"], object)])
def test_categorical_counts_match_the_categories_as_text(values: np.ndarray) -> None:
    bins = binner_for(Baseline.from_dict({"rows": 3, "features": [], "prediction": {
        "name": "__prediction__", "kind": "categorical", "categories": ["0", "1", "True"],
        "counts": [1, 1, 1, 0], "nulls": 0}}), []).prediction  # type: ignore[union-attr]
    assert bins is not None
    present = [v for v in values.tolist() if v == v]  # NaN is a null
    texts = [str(int(v)) if isinstance(v, float) else str(v) for v in present]
    expected = [texts.count(c) for c in ("0", "1", "True")]
    expected.append(len(texts) - sum(expected) - texts.count(""))
    counts, nulls = bins.count(values)
    assert counts.tolist() == expected and nulls == len(values) - len(texts) + texts.count("")


def test_prediction_texts_of_a_chunk_match_each_request_alone() -> None:
    from edge_agent.telemetry.predictions import predicted_texts, prediction_records

    preds = [np.array([1, 0]), np.array([[1]]), np.array([True]), np.array([0.5, 2.0]),
             np.array([b"yes"], "S3"), np.array([b"no!!"], "S4"), np.array([[1, 9], [0, 9]])]
    events = [event(i, ts=100.0 + i, rows=p.shape[0], prediction=p, first_id=10 * i + 1)
              for i, p in enumerate(preds)]
    one_kind = [e for e in events if e.prediction is not None and e.prediction.dtype.kind == "i"
                and e.prediction.size == e.rows]
    for chunk in (events, one_kind):
        records = prediction_records(chunk, "a:", 1.0)
        predicted = [t for r in records for t in r["predicted"]]
        expected = [t for e in chunk if e.prediction is not None
                    for t in predicted_texts(e.prediction, e.rows)]
        assert predicted == expected
        assert [i for r in records for i in r["ids"]] == [
            f"a:{e.first_id + k}" for e in chunk for k in range(e.rows)]


@pytest.mark.parametrize("categories", [
    ["0", "1"], ["1", "0", "7"], ["a", "b"], ["01", "1", "-1", "007", "x", "4095", "4096"],
    ["3", "٣", "+3", " 3", "99999999999999999999"]])
def test_integer_labels_bin_as_their_text_does(categories: list[str]) -> None:
    """The small-integer fast path counts exactly what the text path counts."""
    from edge_agent.contract.records import FeatureBaseline
    from edge_agent.telemetry.histograms import feature_bins

    bins = feature_bins(FeatureBaseline("__prediction__", "categorical",
                                        [0] * (len(categories) + 1), 0, categories=categories))
    rng = np.random.default_rng(0)
    samples: list[np.ndarray] = [
        rng.integers(0, 8, 1000), rng.integers(0, 3, 5).astype(np.uint8),
        rng.integers(-2, 9, 100), np.array([4095, 4096, 0, 7, 1], np.int64),
        np.array([], np.int64), rng.integers(0, 2, 50).astype(np.float32),
        np.array([1.0, np.nan, 7.0, 0.0]), np.array([1.5, 1.0]), np.array([True, False])]
    def by_text(values: np.ndarray) -> tuple[list[int], int]:  # the general path
        nulls = 0
        if values.dtype.kind == "f":
            missing = np.isnan(values)
            nulls, values = int(missing.sum()), values[~missing]
            if np.all(values == np.round(values)):
                values = values.astype(np.int64)
        counts, text_nulls = bins._count_text(values)
        return counts.tolist(), nulls + text_nulls

    for values in samples:
        counts, nulls = bins.count(values)
        assert (counts.tolist(), nulls) == by_text(values), values
    # and small non-negative integers do take the fast path
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(type(bins), "_count_text", lambda *_: pytest.fail("text path taken"))
        assert bins.count(np.array([0, 1, 63], np.int64))[0].sum() == 3


def test_one_pass_binning_of_a_wide_input_counts_what_each_feature_does() -> None:
    """The columns of one 2-D input binned in one pass give each feature's own counts."""
    edges = [[0.0, 10.0], [-1.0, 2.0], [], [0.5], [-5.0, 0.0, 5.0]]
    baseline = Baseline.from_dict({"rows": 1, "features": [
        {"name": f"f{i}", "kind": "numeric", "edges": e, "counts": [1] * (len(e) + 1),
         "nulls": 0} for i, e in enumerate(edges)]})
    binner = binner_for(baseline, [("X", (-1, len(edges)))])
    assert binner is not None and binner.joint is not None
    rng = np.random.default_rng(0)
    x = rng.normal(scale=8, size=(300, len(edges))).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan
    x[:5] = [[10.0, -1.0, 0.0, 0.5, np.inf], [np.inf, 2.0, -np.inf, -0.0, 5.0],
             [0.0, -1.5, np.nan, 0.49, 0.0], [-np.inf] * 5, [np.nan] * 5]
    feeds = [{"X": x[i:i + 3]} for i in range(0, 300, 3)] + [{"other": x[:1]}]
    text = x.astype(str).astype(object)
    text[:, 2] = "abc"  # a column that is not numbers: counted one by one, as zeros
    for batch in (feeds, feeds[:1], feeds[-1:], [{"X": x.astype(np.float64)}],
                  [{"X": x.astype(object)}], [{"X": text}]):
        one_pass = [(b.name, c.tolist(), n) for b, c, n in binner.feature_counts(batch)]
        each = [(b.name, b.count(v)[0].tolist(), b.count(v)[1])
                for b, v in binner.feature_values(batch)]
        assert one_pass == each
        if batch is feeds:
            assert sum(sum(c) + n for _, c, n in one_pass) == 300 * len(edges)
    # features by name (one input each) are counted one by one
    by_name = binner_for(BASELINE, INPUTS)
    assert by_name is not None and by_name.joint is None


# --- against a live agent process ---------------------------------------------------------

X = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1],
                            "data": [1.0]}]}).encode()


def outbox_records(agent_dir: Path) -> list[dict[str, object]]:
    outbox = Outbox(agent_dir / "telemetry.sqlite")
    try:
        return outbox.read(0, 10**9)
    finally:
        outbox.close()


def hammer(agent: AgentProcess, n: int) -> list[float]:
    """n sequential infer requests on one connection; the time each one finished."""
    conn = http_connection(agent.url)
    done = []
    for _ in range(n):
        conn.request("POST", "/v2/models/adder/infer", body=X)
        resp = conn.getresponse()
        assert resp.status == 200
        resp.read()
        done.append(time.monotonic())
    conn.close()
    return done


def assert_gapless(records: list[dict[str, object]]) -> None:
    seqs = [int(r["seq"]) for r in records]  # type: ignore[call-overload]
    assert seqs == list(range(1, len(seqs) + 1))


@pytest.fixture(scope="module")
def adder_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Ed25519PrivateKey]:
    tmp = tmp_path_factory.mktemp("bundle")
    key = generate_signing_key()
    return make_identity_bundle(tmp, key), key


@pytest.mark.xdist_group("agent_telemetry")
def test_kill_9_keeps_every_request_older_than_a_second_and_sigterm_keeps_all(
        tmp_path: Path, adder_bundle: tuple[Path, Ed25519PrivateKey]) -> None:
    bundle, key = adder_bundle
    agent_dir = tmp_path / "agent"
    with running_agent(agent_dir, trust_key=key) as agent:
        status, _ = json_request(f"{agent.url}/v1/bundles", headers=agent.headers(),
                                 data=bundle.read_bytes(), method="POST")
        assert status == 200
        done = hammer(agent, 150)
        time.sleep(1.1)
        done += hammer(agent, 100)
        agent.proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        agent.proc.wait()
    old = sum(1 for t in done if t < killed - 1.0)
    records = outbox_records(agent_dir)
    assert len([r for r in records if r["kind"] == "request"]) >= old >= 150
    assert_gapless(records)

    with running_agent(agent_dir, trust_key=key) as agent:
        hammer(agent, 80)
        agent.proc.send_signal(signal.SIGTERM)
        assert agent.proc.wait(15) == 0
    after = outbox_records(agent_dir)
    assert_gapless(after)
    assert after[:len(records)] == records  # nothing rewritten, nothing renumbered
    new = [r for r in after[len(records):] if r["kind"] == "request"]
    assert len(new) == 80 and all(r["status"] == 200 for r in new)
    assert any(r["kind"] == "histogram" for r in after[len(records):])


@pytest.mark.xdist_group("agent_telemetry")
def test_sigterm_finishes_the_request_in_flight(tmp_path: Path,
                                                adder_bundle: tuple[Path, Ed25519PrivateKey]
                                                ) -> None:
    bundle, key = adder_bundle
    with running_agent(tmp_path / "agent", trust_key=key) as agent:
        json_request(f"{agent.url}/v1/bundles", headers=agent.headers(),
                     data=bundle.read_bytes(), method="POST")
        with open_socket(agent.url, timeout=10) as sock:
            sock.sendall(b"POST /v2/models/adder/infer HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(X) + X[:10])
            time.sleep(0.2)
            agent.proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            sock.sendall(X[10:])
            reply = sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 200"), reply
        assert agent.proc.wait(15) == 0
    requests = [r for r in outbox_records(tmp_path / "agent") if r["kind"] == "request"]
    assert len(requests) == 1


def test_metrics_count_batches_exactly() -> None:
    from edge_agent.serving.metrics import AgentMetrics
    from edge_agent.telemetry.outbox import OutboxStats

    stats = OutboxStats(backlog=7, last_seq=9, evicted=2, bytes=100)
    metrics = AgentMetrics(lambda: stats)
    metrics.observe([event(latency_us=120), event(latency_us=3_000_000),
                     event(status=404, model="", version=0)], stats)
    metrics.observe([event(latency_us=40)], stats)
    metrics.load_failed("m")
    text = metrics.render().decode()
    for line in ('outpost_requests_total{model="m",status="200",version="1"} 3.0',
                 'outpost_requests_total{model="",status="404",version="0"} 1.0',
                 'outpost_request_latency_seconds_bucket{le="5e-05",model="m",version="1"} 1.0',
                 'outpost_request_latency_seconds_bucket{le="0.0002",model="m",version="1"} 2.0',
                 'outpost_request_latency_seconds_bucket{le="2.5",model="m",version="1"} 2.0',
                 'outpost_request_latency_seconds_bucket{le="+Inf",model="m",version="1"} 3.0',
                 'outpost_request_latency_seconds_count{model="m",version="1"} 3.0',
                 "outpost_telemetry_backlog 7.0", "outpost_telemetry_evicted_total 2.0",
                 'outpost_model_load_failures_total{model="m"} 1.0'):
        assert line in text, line
    # the agent writes the exposition format itself: Prometheus' own parser must read it
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["outpost_request_latency_seconds"].type == "histogram"
    assert families["outpost_requests"].type == "counter"
    assert families["outpost_telemetry_backlog"].samples[0].value == 7


def test_nan_payloads_from_binary_inputs_count_as_nulls(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "t.sqlite")
    recorder = Recorder(outbox, window_s=3600, flush_s=0.05)
    recorder.start()
    signalling = np.array([[0x7F800001], [0x7FC00000]], np.uint32).view(np.float32)
    feeds = {"temp": signalling, "site": np.array([["a"], ["a"]], dtype=object)}
    recorder.submit(event(binner=binner_for(BASELINE, INPUTS), feeds=feeds, rows=2))
    recorder.close()
    hist = {r["feature"]: r for r in outbox.read(0, 100) if r["kind"] == "histogram"}
    assert hist["temp"]["nulls"] == 2 and hist["temp"]["counts"] == [0, 0, 0]
    assert hist["site"]["counts"] == [2, 0, 0]
