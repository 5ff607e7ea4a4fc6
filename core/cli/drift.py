"""`outpost drift`: drift of deployed models against their training baselines."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from core.alerts import list_alerts
from core.cli.common import JsonFlag, console, emit, open_catalog, table
from core.cli.session import environ
from core.drift import DriftReport, FeatureDrift, Thresholds, drift_report
from core.errors import InvalidInput

app = typer.Typer(help="Drift: per-feature PSI/KS/chi² against the baseline, and alerts.",
                  no_args_is_help=True)
_STYLE = {"ok": "green", "warn": "yellow", "alert": "bold red"}


def _when(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError as exc:
        raise InvalidInput(f"--since {text!r} is neither unix seconds nor an ISO date") from exc


def _row(f: FeatureDrift) -> list[str]:
    num = lambda v: "" if v is None else f"{v:.3f}"  # noqa: E731
    status = f"[{_STYLE[f.status]}]{f.status}[/]"
    return [f.agent or "all", f.feature, f.kind, num(f.psi), num(f.ks),
            "" if f.chi2_p is None else f"{f.chi2_p:.2g}", str(f.rows), status]


def _render(r: DriftReport) -> None:
    out = Table(title=f"drift of {r.model}@{r.version}"
                      f"{' on ' + r.agent if r.agent else ''} (PSI warn >= "
                      f"{r.thresholds.psi_warn:g}, alert >= {r.thresholds.psi_alert:g})",
                header_style="bold")
    for column in ("agent", "feature", "kind", "PSI", "KS", "chi² p", "rows", "status"):
        out.add_column(column)
    rows = [*r.features, *([r.prediction] if r.prediction else [])]
    agents = {f.agent for f in r.by_agent}
    if len(agents) > 1:
        rows += r.by_agent
    for f in rows:
        out.add_row(*_row(f))
    console.print(out)
    if r.covers:
        span = (f"{datetime.fromtimestamp(r.covers.start):%Y-%m-%d %H:%M:%S} → "
                f"{datetime.fromtimestamp(r.covers.end):%Y-%m-%d %H:%M:%S}")
        console.print(f"covers {r.covers.rows:,} rows in {r.covers.windows:,} histogram "
                      f"windows, {span}")
    for note in r.notes:
        console.print(note)
    if r.health:
        console.print(table("requests", ["agent", "requests", "error rate", "p50 ms", "p99 ms"], [
            (h.agent, h.requests, f"{h.error_rate:.1%}", h.p50_ms and f"{h.p50_ms:.2f}",
             h.p99_ms and f"{h.p99_ms:.2f}") for h in r.health]))


@app.command()
def report(
    model: Annotated[str, typer.Argument(help="Model name.")],
    agent: Annotated[str | None, typer.Option("--agent", help="One agent (default: all).")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="Only windows ending after this time (unix seconds or ISO date).")] = None,
    version: Annotated[int | None, typer.Option(
        "--version", help="Model version (default: the latest seen in telemetry).")] = None,
    psi_warn: Annotated[float | None, typer.Option(
        "--psi-warn", help="Warn at PSI >= this.")] = None,
    psi_alert: Annotated[float | None, typer.Option(
        "--psi-alert", help="Alert at PSI >= this.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Drift per feature and of the prediction, with request health; updates alerts."""
    base = Thresholds.from_env(environ())
    th = Thresholds(psi_warn if psi_warn is not None else base.psi_warn,
                    psi_alert if psi_alert is not None else base.psi_alert,
                    base.error_rate, base.p99_ms)
    if th.psi_warn > th.psi_alert:
        raise InvalidInput("--psi-warn must not be above --psi-alert")
    with open_catalog() as catalog:
        result = drift_report(catalog, model, agent, version=version, since=_when(since),
                              thresholds=th)
    emit(result.to_dict(), as_json, lambda: _render(result))


@app.command()
def alerts(
    all_: Annotated[bool, typer.Option("--all", help="Include cleared alerts.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List open drift and health alerts (with --all, cleared ones too)."""
    with open_catalog() as catalog:
        found = list_alerts(catalog, include_cleared=all_)
    data = {"alerts": [{k: getattr(a, k) for k in a.__dataclass_fields__} for a in found]}
    emit(data, as_json, lambda: console.print(table("alerts", [
        "raised", "kind", "severity", "message", "cleared"], [
        (a.raised_at.isoformat(timespec="seconds"), a.kind, a.severity, a.message,
         a.cleared_at and a.cleared_at.isoformat(timespec="seconds")) for a in found])))
