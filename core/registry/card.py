"""The model card: one markdown page on where a version came from and what it computes."""
from __future__ import annotations

from typing import Any

from core.catalog import Catalog
from core.registry.models import ModelVersion, resolve_model
from core.training.runs import Run, get_run

_SCALAR_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc",
                   "log_loss", "rmse", "mae", "r2")


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return lines


def _run_section(run: Run) -> list[str]:
    lines = ["## Training", "",
             f"- run: `{run.id}` ({run.kind}, {run.created_at:%Y-%m-%d %H:%M:%S %Z})",
             f"- data: `{run.dataset}@{run.dataset_version[:12]}` (version {run.dataset_version})",
             f"- target: `{run.target}` ({run.task})",
             f"- algorithm: `{run.algo}`, seed {run.seed}, holdout "
             f"{run.split.get('test_size')} ({run.split.get('holdout_rows')} rows"
             f"{', stratified' if run.split.get('stratified') else ''})",
             f"- training time: {run.duration_s:.2f} s", "", "### Parameters", ""]
    lines += _table(("parameter", "value"), sorted(run.params.items()))
    metrics = [(k, run.metrics[k]) for k in _SCALAR_METRICS if k in run.metrics]
    lines += ["", "### Holdout metrics", ""] + _table(("metric", "value"), metrics)
    if run.importance:
        top = sorted(run.importance.items(), key=lambda kv: -kv[1])[:10]
        lines += ["", "### Permutation importance (top 10)", ""]
        lines += _table(("feature", "mean score drop"), top)
    if run.notes:
        lines += ["", "### Notes", ""] + [f"- {note}" for note in run.notes]
    packages = ", ".join(f"{k} {v}" for k, v in sorted(run.packages.items()))
    lines += ["", "### Packages", "", packages]
    return lines


def _parity_section(parity: dict[str, Any], flagged: bool) -> list[str]:
    lines = ["## Parity (ONNX vs trained pipeline, on the holdout)", ""]
    if not parity.get("checked"):
        return lines + [f"Not checked: {parity.get('reason', 'no pipeline')}."]
    verdict = "passed" if parity["passed"] else "FAILED — version is flagged"
    lines.append(f"**{verdict}** on {parity['rows']} rows, {parity.get('precision')} inputs.")
    keys = ("label_agreement", "max_abs_diff", "max_rel_diff", "disagreeing_rows",
            "rows_over_tolerance")
    lines += [""] + _table(("check", "value"), [(k, parity[k]) for k in keys if k in parity])
    if "float64" in parity:
        lines += ["", f"float64 attempt: {_fmt(parity['float64'])}"]
    if flagged:
        lines += ["", "A flagged version takes the `production` alias only with `--force`."]
    return lines


def _signature_section(version: ModelVersion) -> list[str]:
    rows = [("input", s.name, s.datatype, str(s.shape)) for s in version.inputs]
    rows += [("output", s.name, s.datatype, str(s.shape)) for s in version.outputs]
    lines = ["## Signature", ""] + _table(("", "name", "datatype", "shape"), rows)
    if version.labels is not None:
        lines += ["", f"Class labels (probability column order): {_fmt(version.labels)}"]
    opsets = ", ".join(f"{d} {v}" for d, v in sorted(version.opset.items()))
    lines += ["", f"Opsets: {opsets}. Missing numbers: NaN; missing strings: \"\"."]
    return lines


def _canary_line(canary: dict[str, Any] | None) -> list[str]:
    if not canary:
        return []
    if canary.get("from") == "sample":
        return [f"- canary: from the sample `{canary['file']}` ({canary['rows']} rows) given "
                "at import; prediction drift baseline over the same sample"]
    return [f"- canary: generated to the signature ({canary.get('reason', '')}); "
            "no prediction drift baseline"]


def _retrain_section(catalog: Catalog, version: ModelVersion) -> list[str]:
    """Why a retraining policy made this version: the triggers, the data, the gate."""
    from core.policy.store import retrain_for_version

    record = retrain_for_version(catalog, version.model, version.version)
    if record is None:
        return []
    after = {"pull": "a telemetry pull", "import": "a telemetry import",
             "hub": "a hub ingest"}.get(record.source, "`outpost policy check`")
    lines = ["## Retraining", "",
             f"Made by retrain #{record.id} of the model's retraining policy (evaluated "
             f"after {after}):", ""]
    lines += [f"- trigger `{t['trigger']}`: {t['detail']}" for t in record.triggers]
    lines += [f"- data: `{record.dataset}`", f"- gate: {record.reason}", ""]
    return lines


def model_card(catalog: Catalog, ref: str) -> str:
    version = resolve_model(catalog, ref)
    aliases = ", ".join(f"`{a}`" for a in version.aliases) or "none"
    lines = [f"# Model card: {version.model} version {version.version}", "",
             f"- registered: {version.created_at:%Y-%m-%d %H:%M:%S %Z}",
             f"- source: {version.source.get('kind', 'run')}"
             + (f" (`{version.source['file']}`)" if version.source.get("file") else ""),
             f"- task: {version.task or 'unknown (imported)'}",
             f"- aliases: {aliases}",
             f"- ONNX: sha256 `{version.onnx_object}`, {version.onnx_bytes} bytes",
             *_canary_line(version.source.get("canary")), ""]
    lines += _retrain_section(catalog, version)
    if version.run is not None:
        lines += _run_section(get_run(catalog, version.run)) + [""]
    lines += _parity_section(version.parity, version.flagged) + [""]
    lines += _signature_section(version)
    return "\n".join(lines) + "\n"
