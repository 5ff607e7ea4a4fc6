"""`outpost demo`: the whole loop, headless, on the sample sensor data."""
from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from core.cli.common import JsonFlag, console, err_console, open_catalog, print_json, table

if TYPE_CHECKING:
    from core.demo import DemoResult, Step


def _render(result: DemoResult) -> None:
    if result.drifted is not None:
        expected = ", ".join(result.to_dict()["expected_drift"])
        console.print(table(
            f"drift after the shifted traffic (expected: {expected})", ["feature", "PSI", "status"],
            [(f.feature, f"{f.psi:.3f}", f.status) for f in result.drifted.features]))
    verdict = "passed" if result.passed else "FAILED"
    console.print(f"demo {verdict} in {result.seconds:.1f} s: "
                  f"flagged {', '.join(result.flagged) or 'nothing'}")


def demo(as_json: JsonFlag = False) -> None:
    """Run the whole loop headless on sample data: train, deploy locally, drift, report."""
    from core.demo import run_demo  # training and the registry load only when the demo runs

    def show(step: Step) -> None:
        (err_console if as_json else console).print(
            f"{step.seconds:6.2f} s  {step.name}: {step.detail}")

    with open_catalog() as catalog:
        result = run_demo(catalog, on_step=show)
    if as_json:
        print_json(result.to_dict())
    else:
        _render(result)
    if not result.passed:
        raise typer.Exit(1)
