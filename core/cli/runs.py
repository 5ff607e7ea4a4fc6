"""``outpost runs …``: list, show, compare and reproduce training runs."""
from __future__ import annotations

from typing import Annotated, Any

import typer

from core.cli.common import JsonFlag, console, emit, open_catalog, progress_bar, table
from core.cli.session import cancel_token
from core.cli.train import render_run
from core.training.metrics import DEFAULT_METRIC, METRICS
from core.training.runs import Run, get_run, list_runs

app = typer.Typer(help="List, show, compare and reproduce training runs.", no_args_is_help=True)

RunArg = Annotated[str, typer.Argument(help="Run id (or a unique prefix of 4+ characters).")]


def _headline(run: Run) -> str:
    name = (run.search or {}).get("metric") or DEFAULT_METRIC[run.task]
    value = run.metrics.get(name)
    return f"{name} {value:.4g}" if isinstance(value, float) else ""


@app.command("list")
def list_(
    all_: Annotated[bool, typer.Option("--all", help="Include search trials.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List runs, newest first (search trials with --all)."""
    with open_catalog() as catalog:
        runs = list_runs(catalog, include_trials=all_)
    rows = [(r.id, r.kind, f"{r.dataset}@{r.dataset_version[:8]}", r.target, r.algo,
             _headline(r), r.created_at.strftime("%Y-%m-%d %H:%M")) for r in runs]
    grid = table(None, ["run", "kind", "data", "target", "algo", "metric", "created"], rows)
    grid.columns[0].no_wrap = True  # ids are what users copy
    emit({"runs": [r.to_dict() for r in runs]}, as_json, lambda: console.print(grid))


@app.command()
def show(run_id: RunArg, as_json: JsonFlag = False) -> None:
    """Show a run: data version, parameters, seed, split, metrics, packages."""
    with open_catalog() as catalog:
        run = get_run(catalog, run_id)
        trials = list_runs(catalog, parent=run.id) if run.kind == "search" else []
    data = {**run.to_dict(), "trials": [t.id for t in trials]}

    def render() -> None:
        render_run(run)
        console.print(table("parameters", ["parameter", "value"], sorted(run.params.items())))
        console.print(f"seed {run.seed}, split {run.split}, packages {run.packages}")
        if run.search:
            console.print(f"search: {run.search}")

    emit(data, as_json, render)


@app.command()
def compare(
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids.")],
    as_json: JsonFlag = False,
) -> None:
    """Compare runs side by side: metrics and the parameters that differ."""
    with open_catalog() as catalog:
        runs = [get_run(catalog, r) for r in run_ids]
    metrics = {m: {r.id: r.metrics.get(m) for r in runs} for m in METRICS
               if any(m in r.metrics for r in runs)}
    names = sorted({p for r in runs for p in r.params})
    params = {p: {r.id: r.params.get(p) for r in runs} for p in names}
    differing = {p: v for p, v in params.items() if len({repr(x) for x in v.values()}) > 1}
    data: dict[str, Any] = {
        "runs": [r.id for r in runs], "metrics": metrics, "params": params,
        "params_differing": sorted(differing),
        "data": {r.id: f"{r.dataset}@{r.dataset_version}" for r in runs},
        "algo": {r.id: r.algo for r in runs},
    }

    def render() -> None:
        header = ["", *(r.id for r in runs)]
        rows: list[list[Any]] = [["algo", *(r.algo for r in runs)],
                                 ["data", *(f"{r.dataset}@{r.dataset_version[:8]}" for r in runs)]]
        rows += [[m, *(_fmt(v) for v in values.values())] for m, values in metrics.items()]
        rows += [[p, *(_fmt(v) for v in differing[p].values())] for p in sorted(differing)]
        console.print(table("runs compared", header, rows))

    emit(data, as_json, render)


@app.command()
def residuals(
    run_id: RunArg,
    max_points: Annotated[int, typer.Option(
        "--max-points", help="Largest holdout sample to predict (seeded by the run).")] = 5000,
    as_json: JsonFlag = False,
) -> None:
    """A regression run's residuals (actual - predicted) on its holdout rows."""
    import numpy as np

    from core.training import residuals as compute

    with open_catalog() as catalog:
        result = compute(catalog, get_run(catalog, run_id), max_points)
    doc = result.to_dict()

    def render() -> None:
        if not len(result.residual):
            console.print(f"run {result.run}: no holdout rows")
            return
        q = np.quantile(result.residual, [0.0, 0.05, 0.5, 0.95, 1.0])
        console.print(f"run {result.run}: {doc['points']} of {result.holdout_rows} holdout rows, "
                      f"mean |residual| {doc['mean_abs']:.4g}")
        console.print(table("residual (actual - predicted)", ["min", "p5", "median", "p95", "max"],
                            [tuple(f"{v:.4g}" for v in q)]))

    emit(doc, as_json, render)


@app.command()
def reproduce(run_id: RunArg, as_json: JsonFlag = False) -> None:
    """Retrain a run from the same data version, parameters and seed; report if identical."""
    from core.training import reproduce_run

    with open_catalog() as catalog, progress_bar(not as_json) as progress:
        result = reproduce_run(catalog, run_id, progress=progress, cancel=cancel_token())

    def render() -> None:
        verdict = "identical" if result.identical else "NOT identical"
        console.print(f"run {result.run}: {verdict} (metrics "
                      f"{'same' if result.metrics_identical else 'differ'}, holdout predictions "
                      f"{'same' if result.predictions_identical else 'differ'}, max diff "
                      f"{result.max_prediction_diff:.3g})")
        if result.metric_differences:
            console.print(table("metrics that differ", ["metric", "recorded", "now"],
                                [(k, _fmt(a), _fmt(b))
                                 for k, (a, b) in result.metric_differences.items()]))
        if result.package_changes:
            console.print(f"package versions changed since: {result.package_changes}")

    emit(result.to_dict(), as_json, render)


def _fmt(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
