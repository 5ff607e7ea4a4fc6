"""Desktop GUI benchmark: launch time, first page of a 10 M-row dataset, UI-thread stalls.

Each figure comes with a baseline measured in the same run:
- launch to an interactive main window (warm: the median of runs 2..N) against a bare
  QApplication + empty QMainWindow in the same interpreter start-up;
- the first page of a 10 M-row version in the lazy table (selection to painted rows)
  against one direct ``core.datasets.read_page`` call; RSS after scrolling to 200 places;
- per step of a session — a 10 M-row CSV import, a training search (6 trials), a single
  fit, a deploy to the local agent (dialog, compatibility check, push) and a monitoring
  refresh over 1,000 one-minute windows (pull, drift, heatmap, charts) — the longest gap
  of a 10 ms UI-thread timer, the UI thread's own CPU time in one gap, and the longest
  slot handing a task's result to a view, against the same timer on an idle loop.
  Target: every step's gap <= 50 ms.

    QT_QPA_PLATFORM=offscreen python bench/bench_gui.py [--rows 10000000] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS_DIR = Path(os.environ.get("OUTPOST_BENCH_RESULTS") or REPO / "bench" / "results")
RESULTS = RESULTS_DIR / "bench_gui.json"
TARGETS = {"launch_s": 2.0, "first_page_ms": 300.0, "stall_ms": 50.0}
WINDOWS = 1000  # one-minute histogram windows the monitoring step refreshes over

_LAUNCH = r"""
import os, sys, time
t0 = time.perf_counter()
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication([])
if sys.argv[1] == "outpost":
    from app.main import create_window
    from core.catalog import Catalog
    from core.config import Settings
    catalog = Catalog.open(Settings.from_env())
    window = create_window(catalog, app)
else:
    window = QMainWindow()
    window.resize(1280, 800)
window.show()
def ready():
    print(time.perf_counter() - t0, flush=True)
    app.quit()
QTimer.singleShot(0, ready)  # the first turn of the event loop after the window is shown
app.exec()
"""


def launch_times(kind: str, runs: int, home: Path) -> list[float]:
    env = dict(os.environ, OUTPOST_HOME=str(home), PYTHONPATH=str(REPO))
    out = []
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-c", _LAUNCH, kind], env=env, check=True,
                              capture_output=True, text=True, cwd=REPO)
        out.append(float(proc.stdout.strip().splitlines()[-1]))
    return out


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def spin(app: Any, until: Callable[[], bool], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise RuntimeError("bench_gui: timed out")
        app.processEvents()
        time.sleep(0.001)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--windows", type=int,
                        help=f"histogram windows the monitoring refresh shows ({WINDOWS:,}; "
                             "100 with --quick)")
    parser.add_argument("--profile", metavar="STEP",
                        help="print where the UI thread's time went in one step (cProfile)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run in seconds: 20 k rows, 2 launches, 2 trials, 100 windows")
    args = parser.parse_args()
    rows = 20_000 if args.quick else args.rows
    args.windows = args.windows or (100 if args.quick else WINDOWS)
    work = Path(tempfile.mkdtemp(prefix="bench-gui-"))
    home = work / "home"
    os.environ["OUTPOST_HOME"] = str(home)
    result: dict[str, Any] = {"machine": platform.machine(), "cpus": os.cpu_count(),
                              "python": platform.python_version(), "rows": rows}

    runs = 2 if args.quick else 5
    from core.catalog import Catalog
    from core.config import Settings

    Catalog.open(Settings.from_env()).close()  # migrations applied once, not in the timing
    outpost = launch_times("outpost", runs, home)[1:]
    bare = launch_times("bare", runs, home)[1:]
    result["launch_s"] = statistics.median(outpost)
    result["launch_bare_s"] = statistics.median(bare)
    ratio = result["launch_s"] / result["launch_bare_s"]
    print(f"launch to interactive window (warm): {result['launch_s']:.2f} s; bare Qt window "
          f"{result['launch_bare_s']:.2f} s; ratio {ratio:.1f}")

    import duckdb

    from app.main import application, create_window
    from app.views.datasets import DatasetsView
    from app.views.experiments import ExperimentsView
    from app.views.fleet import FleetView
    from app.views.monitoring import MonitoringView
    from core.datasets import import_dataset, import_frame, read_page, resolve_version
    from core.samples import SAMPLES
    from tests.support.gui import Heartbeat

    big = work / "big.parquet"
    duckdb.sql(f"COPY (SELECT range AS id, range % 97 AS k, 'site_' || (range % 7) AS site, "
               f"random() AS x FROM range({rows})) TO '{big}'")
    catalog = Catalog.open(Settings.from_env())
    import_dataset(catalog, big)
    for sample in (SAMPLES[0], SAMPLES[2]):  # breast_cancer, field_sensor
        import_frame(catalog, sample.name, sample.build(), {"target": sample.target})
    dv = resolve_version(catalog, "big")
    started = time.perf_counter()
    read_page(catalog, dv, 0, 200)
    result["read_page_ms"] = (time.perf_counter() - started) * 1000

    app = application()
    window = create_window(catalog, app,
                           [DatasetsView, ExperimentsView, FleetView, MonitoringView])
    window.show()
    window.warm_up()  # as run_gui does: the heavy libraries load while the first view shows
    spin(app, lambda: not window.ctx.tasks.tasks)  # measured below: the steady state after it
    view = window.view(DatasetsView)
    assert isinstance(view, DatasetsView)
    spin(app, lambda: view.selected is not None)
    view.select_dataset("breast_cancer")
    spin(app, lambda: view.selected is not None and view.selected.dataset == "breast_cancer"
         and view.preview.model.is_loaded(0))
    started = time.perf_counter()
    view.select_dataset("big")
    spin(app, lambda: view.selected is not None and view.selected.dataset == "big"
         and view.preview.model.is_loaded(0))
    app.processEvents()  # the dataChanged repaint
    result["first_page_ms"] = (time.perf_counter() - started) * 1000
    print(f"first page of {rows:,} rows: {result['first_page_ms']:.0f} ms "
          f"(read_page alone {result['read_page_ms']:.0f} ms)")

    model, table = view.preview.model, view.preview.table
    bar = table.verticalScrollBar()
    rss_start = rss_mb()
    scroll_ms = []
    jumps = 20 if args.quick else 200
    with Heartbeat() as heart:
        for step in range(jumps):
            bar.setValue(bar.maximum() * ((step * 7919) % jumps) // (jumps - 1))
            row = table.rowAt(table.viewport().height() // 2)
            began = time.perf_counter()
            spin(app, lambda r=row: model.is_loaded(r))  # type: ignore[misc]
            scroll_ms.append((time.perf_counter() - began) * 1000)
    result["scroll_stall_ms"] = heart.max_gap_ms
    result["scroll_page_p50_ms"] = statistics.median(scroll_ms)
    result["rss_growth_mb"] = rss_mb() - rss_start
    result["pages_cached"] = len(model.pages)
    print(f"200 jumps through the table: page p50 {result['scroll_page_p50_ms']:.0f} ms, "
          f"longest stall {result['scroll_stall_ms']:.0f} ms, RSS +{result['rss_growth_mb']:.0f} "
          f"MB, {result['pages_cached']} pages cached")

    result["session"] = session(app, window, catalog, work, rows, args)
    window.close()
    catalog.close()

    worst = max(step["gap_ms"] for step in result["session"].values())
    result["targets"] = TARGETS
    result["met"] = {
        "launch": result["launch_s"] <= TARGETS["launch_s"],
        "first_page": result["first_page_ms"] <= TARGETS["first_page_ms"],
        "stalls": max(worst, result["scroll_stall_ms"]) <= TARGETS["stall_ms"],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"wrote {RESULTS}")


class Step:
    """One step of the session: the UI thread's longest gap (wall clock), the most CPU it
    spent in one gap (its own work: a busy machine not scheduling it shows in the gap
    only), and the longest slot that handed a task's result to a view."""

    def __init__(self, app: Any, window: Any, profile: str | None = None) -> None:
        self.app, self.runner, self.profile = app, window.ctx.tasks, profile
        self.slots: list[float] = []
        landed = self.runner._returned

        def timed(task: Any, value: Any, on_done: Any) -> None:
            began = time.perf_counter()
            landed(task, value, on_done)
            self.slots.append((time.perf_counter() - began) * 1000)

        self.runner._returned = timed

    def measure(self, name: str, begin: Callable[[], Any], done: Callable[[], bool]
                ) -> dict[str, float]:
        import cProfile
        import pstats

        from tests.support.gui import Heartbeat

        self.slots.clear()
        profiler = cProfile.Profile() if name == self.profile else None
        if profiler is not None:
            profiler.enable()  # the UI thread only: where a stall's own work shows
        with Heartbeat() as heart:
            began = time.perf_counter()
            begin()
            spin(self.app, done)
            took = time.perf_counter() - began
            settled = time.monotonic() + 0.3  # what a landing left for later turns (staged
            spin(self.app, lambda: time.monotonic() > settled)  # drawing, repaints) counts
        if profiler is not None:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(14)
        figures = {"gap_ms": round(heart.max_gap_ms, 1), "busy_ms": round(heart.max_busy_ms, 1),
                   "slot_ms": round(max(self.slots, default=0.0), 1), "took_s": round(took, 2),
                   "load": round(os.getloadavg()[0], 1)}
        print(f"{name:<11} longest UI-thread gap {figures['gap_ms']:>6.0f} ms, UI-thread CPU "
              f"in one gap {figures['busy_ms']:>5.0f} ms, longest landing slot "
              f"{figures['slot_ms']:>5.0f} ms ({took:.1f} s, load {figures['load']})", flush=True)
        return figures


def session(app: Any, window: Any, catalog: Any, work: Path, rows: int,
            args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """import → search → fit → deploy → monitoring refresh over `args.windows` windows."""
    import duckdb

    from app.dialogs.train import SearchRequest, TrainRequest
    from app.views.datasets import DatasetsView
    from app.views.experiments import ExperimentsView
    from app.views.fleet import FleetView
    from app.views.monitoring import MonitoringView
    from core.fleet.local import stop_local_agent
    from core.registry import register_model
    from core.training.runs import list_runs
    from tests.support.fleet import fill_windows

    step = Step(app, window, args.profile)
    out: dict[str, dict[str, float]] = {}
    idle_end = time.monotonic() + (0.5 if args.quick else 2.0)
    out["idle"] = step.measure("idle", lambda: None, lambda: time.monotonic() > idle_end)

    view = window.view(DatasetsView)
    csv = work / "import.csv"
    duckdb.sql(f"COPY (SELECT range AS id, range % 7 AS b, 'site_' || (range % 5) AS s, "
               f"random() AS v FROM range({rows})) TO '{csv}' (HEADER)")
    dialogs: list[Any] = []

    def start_import() -> None:  # the import dialog, as a user would: Import, then Close
        dialog = view.open_import([csv])
        assert dialog is not None
        dialogs.append(dialog)
        dialog.ok_button.click()

    def imported() -> bool:
        dialog = dialogs[0]
        if not (dialog.summary.text() or dialog.error.text()):
            return False
        assert dialog.summary.text(), dialog.error.text()
        if dialog.isVisible():
            dialog.ok_button.click()
        return view.selected is not None and view.selected.dataset == "import"

    out["import"] = step.measure("import", start_import, imported)

    experiments = window.view(ExperimentsView)
    window.show_view(window.views.index(experiments))
    idle = lambda: not window.ctx.tasks.tasks  # noqa: E731
    out["search"] = step.measure("search", lambda: experiments.start(TrainRequest(
        "breast_cancer", "target", [], "random_forest", {"n_estimators": 30},
        search=SearchRequest("random", 2 if args.quick else 6, None, 3))), idle)
    out["fit"] = step.measure("fit", lambda: experiments.start(TrainRequest(
        "field_sensor", "failure", [], "gradient_boosting")), idle)

    fit = next(r for r in list_runs(catalog) if r.dataset == "field_sensor")
    register_model(catalog, fit.id, "sensor")
    fleet = window.view(FleetView)
    window.show_view(window.views.index(fleet))
    fleet.start_action.trigger()
    spin(app, lambda: any(r.status and r.status.online for r in fleet.agents.records), 120)
    dialog: list[Any] = []

    def deploy() -> None:
        dialog.append(fleet.open_deploy())

    def deployed() -> bool:
        if not dialog or dialog[0].compatible is None:
            return False
        if dialog[0].isVisible() and dialog[0].ok_button.isEnabled():
            dialog[0].ok_button.click()
        return not dialog[0].isVisible() and any(
            "sensor@1" in str(fleet.agents.data(fleet.agents.index(i, 4)))
            for i in range(len(fleet.agents.records)))

    try:
        out["deploy"] = step.measure("deploy", deploy, deployed)
        fill_windows(catalog, "sensor", 1, args.windows)
        monitoring = window.view(MonitoringView)
        window.show_view(window.views.index(monitoring))
        spin(app, idle)  # the view's own first load, and its staged drawing, come before
        settled = time.monotonic() + 0.5
        spin(app, lambda: time.monotonic() > settled)
        monitoring.snap = None
        out["monitoring"] = step.measure("monitoring", monitoring.refresh, lambda: (
            monitoring.snap is not None and not any(
                t.key == "monitoring" for t in window.ctx.tasks.tasks)))
        assert monitoring.snap is not None and len(monitoring.drift.windows) >= args.windows
    finally:
        stop_local_agent(catalog)
    return out


if __name__ == "__main__":
    main()
