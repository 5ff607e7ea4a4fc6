"""``outpost samples …``: the bundled sample datasets."""
from __future__ import annotations

import typer

from core.cli.common import JsonFlag, console, emit, open_catalog, progress_bar, table
from core.samples import SAMPLES, load_samples

app = typer.Typer(help="Sample datasets that ship with Outpost (offline).", no_args_is_help=True)


@app.command()
def load(as_json: JsonFlag = False) -> None:
    """Import the sample datasets (again is harmless: same content, same versions)."""
    with open_catalog() as catalog, progress_bar(not as_json) as progress:
        results = load_samples(catalog, progress=progress)
    info = {s.name: s for s in SAMPLES}
    rows = [(r.ref, f"{r.rows:,}", info[r.name].task, info[r.name].target,
             "new" if r.new else "already there") for r in results]
    emit({"samples": [{**r.to_dict(), "task": info[r.name].task, "target": info[r.name].target}
                      for r in results]}, as_json,
         lambda: console.print(table("samples", ["dataset", "rows", "task", "target", ""], rows)))
