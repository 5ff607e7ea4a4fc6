"""`outpost policy`: retraining policies — set, show, check by hand."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from core.catalog import Catalog
from core.cli.common import JsonFlag, console, emit, open_catalog, progress_bar, table
from core.cli.session import cancel_token
from core.policy.evaluate import evaluate
from core.policy.retrain import outcome_doc, outcome_lines, run_pending
from core.policy.spec import (
    AccuracyTrigger,
    CapturedTrigger,
    GateSpec,
    Policy,
    PsiTrigger,
    RetrainSpec,
    ScheduleTrigger,
    parse_every,
)
from core.policy.store import clear_policy, get_policy, retrains, set_policy

app = typer.Typer(help="Retraining policies: triggers that retrain a model, then gate it.",
                  no_args_is_help=True)

ModelArg = Annotated[str, typer.Argument(help="Model name.")]


def _stamp(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


@app.command("set")
def set_(
    model: ModelArg,
    psi: Annotated[float | None, typer.Option(
        "--psi", help="Fire when PSI >= this on enough features (e.g. 0.25).")] = None,
    psi_features: Annotated[int, typer.Option(
        "--psi-features", help="... on at least this many features.")] = 1,
    psi_windows: Annotated[int, typer.Option(
        "--psi-windows", help="... for this many consecutive windows of one agent.")] = 1,
    psi_on: Annotated[str | None, typer.Option(
        "--psi-on", help="Only these features (comma-separated).")] = None,
    accuracy_drop: Annotated[float | None, typer.Option(
        "--accuracy-drop", help="Fire when live accuracy < holdout - this.")] = None,
    min_labels: Annotated[int, typer.Option(
        "--min-labels", help="... measured on at least this many labels.")] = 200,
    captured_rows: Annotated[int | None, typer.Option(
        "--captured-rows", help="Fire on this many new labelled captured rows.")] = None,
    every: Annotated[str | None, typer.Option(
        "--every", help="Fire this long after the last retrain: 30d, 12h, 90m.")] = None,
    dataset: Annotated[str | None, typer.Option(
        "--dataset", help="Retrain on this dataset's latest version (default: the "
        "production run's dataset).")] = None,
    no_captured: Annotated[bool, typer.Option(
        "--no-captured", help="Do not add the labelled captured rows.")] = False,
    algo: Annotated[str | None, typer.Option(
        "--algo", help="Algorithm (default: the production run's, with its params).")] = None,
    metric: Annotated[str | None, typer.Option(
        "--metric", help="Gate metric: accuracy, f1_macro, r2, rmse.")] = None,
    margin: Annotated[float, typer.Option(
        "--margin", help="Gate: beat production on the holdout by more than this.")] = 0.0,
    captured_margin: Annotated[float | None, typer.Option(
        "--captured-margin", help="Gate: ... and on recent captures by more than this "
        "(default: --margin).")] = None,
    min_captured: Annotated[int, typer.Option(
        "--min-captured", help="Gate: fewer recent labelled captures than this and that "
        "check is skipped (said).")] = 30,
    captured_share: Annotated[float, typer.Option(
        "--captured-share", help="Gate: newest share of labelled captures held out of "
        "training to judge on.")] = 0.3,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the model's policy.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Set (or replace) the retraining policy of MODEL; at least one trigger."""
    with open_catalog() as catalog:
        if clear:
            removed = clear_policy(catalog, model)
            emit({"model": model, "cleared": removed}, as_json, lambda: console.print(
                f"policy of {model} {'removed' if removed else 'was not set'}"))
            return
        policy = Policy(
            model,
            psi=None if psi is None else PsiTrigger(
                psi, psi_features, psi_windows,
                tuple(f.strip() for f in (psi_on or "").split(",") if f.strip())),
            accuracy=None if accuracy_drop is None else AccuracyTrigger(accuracy_drop,
                                                                        min_labels),
            captured=None if captured_rows is None else CapturedTrigger(captured_rows),
            schedule=None if every is None else ScheduleTrigger(parse_every(every), every),
            retrain=RetrainSpec(dataset, not no_captured, algo),
            gate=GateSpec(metric, margin, captured_margin, min_captured, captured_share))
        set_policy(catalog, policy)
    emit({"model": model, "policy": policy.to_dict()}, as_json, lambda: console.print(
        f"policy of {model}: " + "; ".join(policy.describe())))


def show_doc(catalog: Catalog, model: str) -> dict[str, Any]:
    state = get_policy(catalog, model)
    return {"model": model, "policy": state.policy.to_dict(),
            "triggers": state.policy.describe(), "set_at": state.set_at,
            "last_fired_at": state.last_fired_at,
            "retrains": [r.to_dict() for r in retrains(catalog, model, limit=20)]}


@app.command()
def show(model: ModelArg, as_json: JsonFlag = False) -> None:
    """The model's policy and its recent retrains (triggered, skipped, staged, …)."""
    with open_catalog() as catalog:
        doc = show_doc(catalog, model)

    def render() -> None:
        console.print(f"policy of {model} (set {_stamp(doc['set_at'])} UTC)")
        for line in doc["triggers"]:
            console.print(f"  trigger: {line}")
        console.print(table("retrains", ["#", "status", "source", "triggers", "created",
                                         "version", "reason"], [
            (r["id"], r["status"], r["source"], ", ".join(t["trigger"] for t in r["triggers"]),
             _stamp(r["created_at"]), r["version"], r["reason"]) for r in doc["retrains"]]))

    emit(doc, as_json, render)


@app.command("check")
def check_(
    model: Annotated[str | None, typer.Argument(help="Model name (default: all).")] = None,
    no_run: Annotated[bool, typer.Option(
        "--no-run", help="Only evaluate; leave queued retrains pending.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Evaluate policies now and run every pending retrain (also those a hub ingest
    queued)."""
    with open_catalog() as catalog, progress_bar(not as_json) as progress:
        decisions = evaluate(catalog, model, source="check")
        results = [] if no_run else run_pending(catalog, model, progress=progress,
                                                cancel=cancel_token())

    def render() -> None:
        for d in decisions:
            console.print(f"policy {d.model}: {d.reason}")
            for c in d.checks:
                console.print(f"  {c.trigger}: {'FIRED' if c.fired else 'quiet'} — {c.detail}")
        for line in outcome_lines([], results):
            console.print(line)

    emit(outcome_doc(decisions, results), as_json, render)
