"""`outpost rollout`: staged rollouts started by `outpost deploy M@V --to-fleet`."""
from __future__ import annotations

from typing import Annotated

import typer

from core.cli.common import JsonFlag, console, emit, open_catalog, progress_bar, table
from core.errors import OutpostError
from core.fleet.rollout import Rollout, abort_rollout, get_rollout, resume_rollout

app = typer.Typer(help="Staged rollouts: status, resume after a restart, abort.",
                  no_args_is_help=True)
RolloutId = Annotated[int | None, typer.Argument(help="Rollout id (default: the latest).")]


def _render(r: Rollout) -> None:
    console.print(f"rollout {r.id}: {r.model}@{r.version} {r.status}, {r.wave}/{len(r.waves)} "
                  f"waves, {r.failures} failed (max {r.max_failures})"
                  f"{' — ' + r.reason if r.reason else ''}")
    console.print(table(None, ("agent", "wave", "previous", "status", "error"), [
        [a.agent, a.wave + 1, a.previous, a.status, a.error] for a in r.agents]))


def run_rollout(rollout_id: int | None, as_json: bool) -> None:
    """Run a rollout to its end; a halted one exits 1 after saying why."""
    with open_catalog() as catalog, progress_bar(not as_json) as progress:
        r = resume_rollout(catalog, rollout_id, progress=progress)
    emit(r.to_dict(), as_json, lambda: _render(r))
    if r.status == "halted":
        raise OutpostError(f"rollout {r.id} halted: {r.reason}; switched agents rolled back")


@app.command()
def status(rollout_id: RolloutId = None, as_json: JsonFlag = False) -> None:
    """Where a rollout stands: its waves and every agent's state."""
    with open_catalog() as catalog:
        r = get_rollout(catalog, rollout_id)
    emit(r.to_dict(), as_json, lambda: _render(r))


@app.command()
def resume(rollout_id: RolloutId = None, as_json: JsonFlag = False) -> None:
    """Go on with a running rollout (after a desktop restart) until done or halted."""
    run_rollout(rollout_id, as_json)


@app.command()
def abort(rollout_id: RolloutId = None, as_json: JsonFlag = False) -> None:
    """Stop a running rollout and roll back the agents it switched."""
    with open_catalog() as catalog:
        r = abort_rollout(catalog, rollout_id)
    emit(r.to_dict(), as_json, lambda: _render(r))
