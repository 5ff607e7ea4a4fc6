"""`outpost feedback` and `outpost accuracy`: ground truth in, live accuracy out."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.accuracy import DAY_S, AccuracyReport, AccuracyThresholds, accuracy_report
from core.cli.common import JsonFlag, console, emit, open_catalog, progress_bar, table
from core.cli.drift import _when
from core.feedback import import_feedback, refresh_captured
from core.feedback.captured import captured_summary

app = typer.Typer(help="Feedback: ground-truth labels for predictions, captured samples.",
                  no_args_is_help=True)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="CSV with columns id,label (or id,value for "
                                              "regression), optionally ts.")],
    model: Annotated[str, typer.Option("--model", help="Model the labels are for.")],
    as_json: JsonFlag = False,
) -> None:
    """Import labels for earlier predictions (re-importing changes nothing)."""
    with open_catalog() as catalog, progress_bar(not as_json) as progress:
        result = import_feedback(catalog, file, model, progress=progress)
        captured = refresh_captured(catalog, model)
    data = {**result.to_dict(), "captured": captured and captured_summary(captured)}
    emit(data, as_json, lambda: console.print(
        f"{result.labels} labels for {model}: {result.new} new, {result.replaced} replaced "
        f"an earlier label, {result.unchanged} unchanged; {result.duplicates} duplicate rows "
        f"(last wins), {result.orphans} ids not seen in telemetry yet (kept)"))


@app.command()
def captured(
    model: Annotated[str, typer.Argument(help="Model name.")],
    as_json: JsonFlag = False,
) -> None:
    """Store the model's captured rows, with their labels, as dataset MODEL_captured."""
    with open_catalog() as catalog:
        result = refresh_captured(catalog, model)
    data = {"model": model, "captured": result and captured_summary(result)}
    emit(data, as_json, lambda: console.print(
        "no captured rows yet" if result is None else
        f"{result.name}@{result.version[:12]}: {result.rows} rows"
        + (" (new version)" if result.new else " (unchanged)")))


def _render(r: AccuracyReport) -> None:
    num = lambda v: "" if v is None else f"{v:.3f}"  # noqa: E731
    if r.task == "classification":
        console.print(table(f"live accuracy of {r.model}", [
            "agent", "version", "predictions", "labelled", "correct", "accuracy", "holdout",
            "alert"], [(e.agent, e.version, e.predictions, e.labelled, e.correct,
                        num(e.accuracy), num(e.holdout), "ALERT" if e.alert else "")
                       for e in r.agents]))
    else:
        console.print(table(f"live error of {r.model}", [
            "agent", "version", "predictions", "labelled", "MAE", "RMSE", "holdout RMSE",
            "alert"], [(e.agent, e.version, e.predictions, e.labelled, num(e.mae),
                        num(e.rmse), num(e.holdout), "ALERT" if e.alert else "")
                       for e in r.agents]))
    console.print(f"{r.labels} labels, {r.orphans} not joined to a prediction yet")


def accuracy(
    model: Annotated[str, typer.Argument(help="Model name.")],
    agent: Annotated[str | None, typer.Option("--agent", help="One agent (default: all).")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="Only predictions made after this time (unix seconds or ISO).")] = None,
    window: Annotated[float, typer.Option(
        "--window-s", help="Length of the time windows, seconds (a day).")] = DAY_S,
    min_labels: Annotated[int, typer.Option(
        "--min-labels", help="Labels needed before an alert is raised.")] = 300,
    max_drop: Annotated[float, typer.Option(
        "--max-drop", help="Alert when live accuracy is this far below holdout.")] = 0.05,
    as_json: JsonFlag = False,
) -> None:
    """Live accuracy per agent and model version, against the holdout metric."""
    th = AccuracyThresholds(min_labels, max_drop)
    with open_catalog() as catalog:
        result = accuracy_report(catalog, model, agent, since=_when(since), window_s=window,
                                 thresholds=th)
    emit(result.to_dict(), as_json, lambda: _render(result))
