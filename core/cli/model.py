"""``outpost model …``: register, import, list, alias, export and describe model versions."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from core.cli.common import JsonFlag, console, emit, open_catalog, progress_bar, table
from core.cli.session import cancel_token
from core.errors import InvalidInput, StorageError
from core.registry.aliases import alias_at, alias_during, alias_history, set_alias
from core.registry.export import export_model
from core.registry.models import ModelVersion, list_models, list_versions, resolve_model

app = typer.Typer(help="Register, import, alias, export and describe ONNX model versions.",
                  no_args_is_help=True)

RefArg = Annotated[str, typer.Argument(help="M (latest), M@VERSION or M@ALIAS.")]
NameOpt = Annotated[str, typer.Option("--name", help="Model name.")]


def _parity_line(mv: ModelVersion) -> str:
    p = mv.parity
    if not p.get("checked"):
        return "parity not checked (imported)"
    verdict = "passed" if p.get("passed") else "FAILED (flagged)"
    detail = (f"label agreement {p['label_agreement']:.4%}, "
              if p.get("label_agreement") is not None else "")
    return f"parity {verdict}: {detail}max abs diff {p['max_abs_diff']:.3g}, {p.get('precision')}"


def _signature(mv: ModelVersion) -> str:
    ins = ", ".join(f"{s.name}:{s.datatype}" for s in mv.inputs)
    outs = ", ".join(f"{s.name}:{s.datatype}" for s in mv.outputs)
    return f"inputs {ins} -> outputs {outs}"


@app.command()
def register(
    run_id: Annotated[str, typer.Argument(help="The run whose model to register.")],
    name: NameOpt,
    as_json: JsonFlag = False,
) -> None:
    """Export a run's model to ONNX, check parity on its holdout, store it as version N+1."""
    from core.registry import register_model

    with open_catalog() as catalog, progress_bar(not as_json) as progress:
        mv = register_model(catalog, run_id, name, progress=progress, cancel=cancel_token())
    data = {"model": mv.model, "version": mv.version, "parity": mv.parity,
            "flagged": mv.flagged, "run": mv.run}
    emit(data, as_json, lambda: console.print(f"registered {mv.ref}; {_parity_line(mv)}"))


@app.command()
def challenge(
    run_id: Annotated[str, typer.Argument(help="The run that challenges production.")],
    name: NameOpt,
    metric: Annotated[str | None, typer.Option(
        "--metric", help="accuracy, f1_macro (classification), r2, rmse (regression).")
    ] = None,
    margin: Annotated[float, typer.Option(
        "--margin", help="How much better than production it must be.")] = 0.0,
    as_json: JsonFlag = False,
) -> None:
    """Register a run only if it beats production on its holdout; stage it for approval."""
    from core.registry.gate import challenge as run_gate

    with open_catalog() as catalog, progress_bar(not as_json) as progress:
        result = run_gate(catalog, run_id, name, metric=metric, margin=margin,
                          progress=progress)
    emit(result.to_dict(), as_json, lambda: console.print(result.reason))


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="An .onnx file, or an MLflow model folder.")],
    name: NameOpt,
    sample: Annotated[Path | None, typer.Option(
        "--sample", help="An .npz with one array per model input: the canary's inputs "
        "(default for tensor inputs: generated to the signature).")] = None,
    fmt: Annotated[str, typer.Option(
        "--format", help="onnx (a file) or mlflow (a model folder).")] = "onnx",
    trust_pickle: Annotated[bool, typer.Option(
        "--trust-pickle", help="Allow unpickling an MLflow sklearn flavor (this runs code "
        "from the folder).")] = False,
    dataset: Annotated[str | None, typer.Option(
        "--dataset", help="MLflow sklearn flavor: check parity on this dataset N[@V] instead "
        "of the input example.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Register an external ONNX file or MLflow model; the signature is read from the graph."""
    from core.registry import import_onnx

    if fmt not in ("onnx", "mlflow"):
        raise InvalidInput(f"unknown import format {fmt!r}: use onnx or mlflow")
    with open_catalog() as catalog:
        if fmt == "mlflow":
            from core.registry.mlflow_io import import_mlflow

            if sample is not None:
                raise InvalidInput("--sample is for an .onnx file; an MLflow folder brings "
                                   "its own input example")
            mv = import_mlflow(catalog, path, name, trust_pickle=trust_pickle, dataset=dataset)
        else:
            mv = import_onnx(catalog, path, name, sample=sample)
    canary = mv.source.get("canary") or {}
    data = {"model": mv.model, "version": mv.version, "opset": mv.opset,
            "inputs": [s.to_dict() for s in mv.inputs],
            "outputs": [s.to_dict() for s in mv.outputs],
            "canary": canary.get("from", "table"), "source": mv.source,
            "parity": mv.parity, "flagged": mv.flagged}
    emit(data, as_json, lambda: console.print(f"imported {mv.ref}; {_signature(mv)}; "
                                              f"{_parity_line(mv)}"))


@app.command("list")
def list_(as_json: JsonFlag = False) -> None:
    """List models with their latest version and current aliases."""
    with open_catalog() as catalog:
        models = list_models(catalog)
    rows = [(m["model"], m["latest"], m["versions"],
             ", ".join(f"{a}→{v}" for a, v in sorted(m["aliases"].items()))) for m in models]
    emit({"models": models}, as_json, lambda: console.print(
        table(None, ["model", "latest", "versions", "aliases"], rows)))


@app.command()
def versions(
    model: Annotated[str, typer.Argument(help="Model name.")],
    as_json: JsonFlag = False,
) -> None:
    """List a model's versions with parity, aliases and the alias history."""
    with open_catalog() as catalog:
        found = list_versions(catalog, model)
        history = alias_history(catalog, model)
    data = {"model": model, "versions": [mv.to_dict() for mv in found],
            "alias_history": [e.to_dict() for e in history]}
    rows = [(mv.version, mv.run or mv.source.get("file", ""), mv.task or "",
             "FLAGGED" if mv.flagged else "ok", ", ".join(mv.aliases),
             mv.created_at.strftime("%Y-%m-%d %H:%M")) for mv in found]
    emit(data, as_json, lambda: console.print(
        table(model, ["version", "run / file", "task", "parity", "aliases", "created"], rows)))


@app.command()
def alias(
    ref: Annotated[str, typer.Argument(help="M@VERSION to point the alias at.")],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="e.g. production, staging.")],
    force: Annotated[bool, typer.Option(
        "--force", help="Allow a version flagged by parity to become production.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Point an alias at a model version (the previous holder is kept in the history)."""
    with open_catalog() as catalog:
        mv = set_alias(catalog, ref, alias_name, force=force)
    data = {"model": mv.model, "version": mv.version, "alias": alias_name,
            "forced": force and mv.flagged}
    emit(data, as_json, lambda: console.print(f"{mv.model}@{alias_name} → version {mv.version}"))


def _parse_when(text: str) -> tuple[datetime, datetime | None]:
    """An instant, or a whole UTC day (start, end) for a plain date."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start, start + timedelta(days=1)
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"--at takes a date (2025-06-01) or a time (2025-06-01T12:00:00Z), "
                           f"got {text!r}") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)), None


@app.command("alias-history")
def alias_history_(
    model: Annotated[str, typer.Argument(help="Model name.")],
    alias_name: Annotated[str | None, typer.Option("--alias", help="Only this alias.")] = None,
    at: Annotated[str | None, typer.Option(
        "--at", help="Which version held the alias (default production) at this time or on "
        "this UTC date.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Which version held which alias, from when to when."""
    with open_catalog() as catalog:
        history = alias_history(catalog, model, alias_name)
        data: dict[str, Any] = {"model": model, "history": [e.to_dict() for e in history]}
        if at is not None:
            name = alias_name or "production"
            start, end = _parse_when(at)
            held = (alias_during(catalog, model, name, start, end) if end is not None
                    else [v for v in [alias_at(catalog, model, name, start)] if v is not None])
            data.update({"alias": name, "at": at, "versions": held})
    rows = [(e.alias, e.version, e.assigned_at.isoformat(timespec="seconds"),
             e.released_at.isoformat(timespec="seconds") if e.released_at else "now",
             "forced" if e.forced else "") for e in history]

    def render() -> None:
        console.print(table(model, ["alias", "version", "from", "until", ""], rows))
        if at is not None:
            console.print(f"{data['alias']} at {at}: version(s) "
                          f"{', '.join(map(str, data['versions'])) or 'none'}")

    emit(data, as_json, render)


@app.command()
def export(
    ref: RefArg,
    out: Annotated[Path, typer.Option(
        "--out", help="The .onnx file; the Triton model repository (the model goes in "
        "OUT/NAME); or the KServe / MLflow folder to create.")],
    fmt: Annotated[str, typer.Option(
        "--format", help="onnx, triton, kserve or mlflow.")] = "onnx",
    force: Annotated[bool, typer.Option("--force", help="Replace what is there.")] = False,
    storage_uri: Annotated[str | None, typer.Option(
        "--storage-uri", help="kserve: where the repository folder will be copied "
        "(default pvc://outpost-models/repository).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write a model version as an ONNX file, a Triton or KServe repository, or an MLflow model."""
    with open_catalog() as catalog:
        result = export_model(catalog, ref, out, fmt, force=force, storage_uri=storage_uri)
    mv = result.version
    emit(result.to_dict(), as_json,
         lambda: console.print(f"wrote {mv.ref} as {fmt} to {result.path}"))


@app.command()
def card(
    ref: RefArg,
    out: Annotated[Path | None, typer.Option("--out", help="Write the markdown here.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """The model card (markdown): data version, metrics, params, parity, signature."""
    from core.registry import model_card

    with open_catalog() as catalog:
        mv = resolve_model(catalog, ref)
        text = model_card(catalog, mv.ref)
    if out is not None:
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise StorageError(f"cannot write {out}: {exc.strerror or exc}") from exc
    emit({"model": mv.model, "version": mv.version, "markdown": text}, as_json,
         lambda: print(text, end="") if out is None else console.print(f"wrote {out}"))
