"""``outpost train``: fit one model, or search parameters, on a dataset version."""
from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from core.cli.common import JsonFlag, console, emit, err_console, open_catalog, progress_bar, table
from core.cli.session import cancel_token
from core.training.algorithms import parse_param_assignments
from core.training.metrics import METRICS

if TYPE_CHECKING:
    from core.training import Run

Task = Literal["classification", "regression"]
SearchKind = Literal["random", "grid"]


def metrics_rows(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    return [(name, f"{value:.6g}" if isinstance(value, float) else str(value))
            for name, value in metrics.items() if name in METRICS]


def render_run(run: Run) -> None:
    console.print(f"run [bold]{run.id}[/bold]  {run.algo} ({run.task}) on "
                  f"{run.dataset}@{run.dataset_version[:12]}, target {run.target!r}, "
                  f"{len(run.features)} features, {run.duration_s:.2f} s")
    console.print(table("holdout metrics", ["metric", "value"], metrics_rows(run.metrics)))
    if "confusion_matrix" in run.metrics:
        labels = [str(label) for label in run.metrics.get("labels", [])]
        rows = [[labels[i], *row] for i, row in enumerate(run.metrics["confusion_matrix"])]
        console.print(table("confusion matrix (rows: true, columns: predicted)",
                            ["", *labels], rows))
    for note in run.notes:
        err_console.print(f"note: {note}")


def _features(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [name.strip() for name in value.split(",") if name.strip()] or None


def train(
    ref: Annotated[str, typer.Argument(help="Dataset NAME (latest version) or NAME@VERSION.")],
    target: Annotated[str, typer.Option("--target", help="The column to predict.")],
    algo: Annotated[str | None, typer.Option(
        "--algo", help="logistic_regression, linear_regression, ridge, random_forest, "
        "gradient_boosting or mlp (default: gradient_boosting).")] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", help="NAME=VALUE, repeatable; with --search, fixes that parameter.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for the split and the model.")] = 0,
    features: Annotated[str | None, typer.Option(
        "--features", help="Comma-separated feature columns (default: all but the target).")
    ] = None,
    task: Annotated[Task | None, typer.Option(
        "--task", help="classification or regression (default: from the target).")] = None,
    test_size: Annotated[float, typer.Option("--test-size", help="Holdout fraction.")] = 0.2,
    search_kind: Annotated[SearchKind | None, typer.Option(
        "--search", help="Search parameters: random or grid, scored by cross-validation.")
    ] = None,
    trials: Annotated[int, typer.Option("--trials", help="Parameter sets to try.")] = 10,
    metric: Annotated[str | None, typer.Option(
        "--metric", help="Metric that picks the best trial (default: f1_macro or rmse).")
    ] = None,
    cv: Annotated[int, typer.Option("--cv", help="Cross-validation folds per trial.")] = 3,
    with_captured: Annotated[bool, typer.Option(
        "--add-captured", help="Train on the dataset plus the labelled rows agents captured "
        "for models trained on it (as dataset NAME_plus_captured).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Train a model on a dataset version and record the run (or search, with --search)."""
    from core.training import search
    from core.training import train as train_run

    params = parse_param_assignments(param or [])
    with open_catalog() as catalog, progress_bar(not as_json) as progress:
        if with_captured:
            from core.feedback.training import add_captured

            added = add_captured(catalog, ref, target, progress=progress)
            ref = f"{added.name}@{added.version}"
        if search_kind is None:
            run = train_run(catalog, ref, target, features=_features(features), algo=algo,
                            params=params, seed=seed, test_size=test_size, task=task,
                            progress=progress, cancel=cancel_token())
            emit(_run_json(run), as_json, lambda: render_run(run))
            return
        result = search(catalog, ref, target, algo=algo, kind=search_kind, trials=trials,
                        metric=metric, cv=cv, seed=seed, params=params,
                        features=_features(features), test_size=test_size, task=task,
                        progress=progress, cancel=cancel_token())
    data = {**_run_json(result.parent), "best": result.best.id,
            "metric": (result.parent.search or {}).get("metric"),
            "trials": [{"run": t.id, "params": t.params, "metrics": t.metrics,
                        "duration_s": t.duration_s} for t in result.trials]}
    emit(data, as_json, lambda: _render_search(result.parent, result.trials, result.best))


def _run_json(run: Run) -> dict[str, Any]:
    return {"run": run.id, "metrics": run.metrics, "task": run.task, "algo": run.algo,
            "params": run.params, "dataset": run.dataset,
            "dataset_version": run.dataset_version, "features": run.features,
            "importance": run.importance, "notes": run.notes}


def _render_search(parent: Run, trials: list[Run], best: Run) -> None:
    metric = (parent.search or {}).get("metric", "")
    rows = [(("* " if t.id == best.id else "  ") + t.id, _fmt(t.metrics.get(metric)),
             ", ".join(f"{k}={v}" for k, v in t.params.items()), f"{t.duration_s:.1f}")
            for t in trials]
    console.print(table(f"{len(trials)} trials, cross-validated {metric}",
                        ["trial", metric, "params", "s"], rows))
    console.print(f"best trial {best.id}; refitted on the training part as:")
    render_run(parent)


def _fmt(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
