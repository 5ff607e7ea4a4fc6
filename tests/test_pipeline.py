"""`outpost pipeline run`: steps in order, a failed gate stops everything after it."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import InvalidInput
from core.fleet.agents import add_agent
from core.fleet.dispatch import agent_status
from core.fleet.ledger import list_deployments
from core.keys import signing_key
from core.pipeline import load_pipeline, run_pipeline
from core.registry import list_versions, resolve_model
from tests.conftest import REPO, run_cli
from tests.support.fleet import agents, mini_frame, open_catalog

pytestmark = pytest.mark.xdist_group("fleet")

FULL = """
name = "mini"

[[steps]]
kind = "import"
path = "mini.csv"

[[steps]]
kind = "derive"
name = "mini_loaded"
sql = "SELECT * FROM data WHERE load >= 0"

[[steps]]
kind = "train"
target = "fail"
algo = "logistic_regression"
{train}

[[steps]]
kind = "gate"
metric = "accuracy"
{threshold}

[[steps]]
kind = "register"
model = "pumps"

[[steps]]
kind = "alias"
alias = "production"
force = true

[[steps]]
kind = "deploy"
agents = ["edge"]
"""


def _write(tmp: Path, name: str, *, threshold: float | None = None,
           features: list[str] | None = None, search: bool = False) -> Path:
    mini_frame().to_csv(tmp / "mini.csv", index=False)
    train = 'search = { kind = "random", trials = 2, metric = "accuracy" }' if search else ""
    text = FULL.format(
        threshold="" if threshold is None else f"threshold = {threshold}",
        train=train + ("" if features is None else f"\nfeatures = {features!r}"))
    path = tmp / name
    path.write_text(text)
    return path


def test_pipeline_runs_to_the_agent_then_a_failed_gate_changes_nothing(
        outpost_home: Path, tmp_path: Path) -> None:
    catalog = open_catalog(outpost_home)
    with agents(tmp_path, signing_key(catalog), 1) as (a,):
        add_agent(catalog, "edge", a.url, a.token)
        result = run_pipeline(catalog, _write(tmp_path, "good.toml", threshold=0.6,
                                                    search=True))
        assert result.passed, result.to_dict()
        assert [s.kind for s in result.steps] == ["import", "derive", "train", "gate",
                                                   "register", "alias", "deploy"]
        assert resolve_model(catalog, "pumps@production").version == 1
        assert [(m["name"], m["active"]) for m in agent_status(catalog, "edge").models] == \
            [("pumps", 1)]
        # A run on one weak feature scores below production: the gate stops it.
        weaker = run_pipeline(catalog, _write(tmp_path, "weak.toml", features=["load"]))
        assert not weaker.passed
        assert [s.status for s in weaker.steps] == ["ok", "ok", "ok", "failed", "skipped",
                                                    "skipped", "skipped"]
        assert "not >= production pumps@1" in weaker.steps[3].detail
        assert [v.version for v in list_versions(catalog, "pumps")] == [1]
        assert len(list_deployments(catalog)) == 1
        catalog.close()


def test_cli_stops_at_the_failing_step_with_one_line(outpost_home: Path, tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.toml")
    path.write_text(path.read_text().replace("SELECT * FROM data WHERE load >= 0",
                                             "SELECT * FROM data WHERE no_such_column > 0"))
    cli = run_cli(outpost_home, "pipeline", "run", str(path))
    assert cli.returncode == 1
    last = cli.stderr.strip().splitlines()[-1]
    assert last.startswith("error: pipeline mini stopped at step 2 (derive): ")
    assert "no_such_column" in last
    assert "step 3 train: skipped" in cli.stdout and "step 7 deploy: skipped" in cli.stdout


def test_a_bad_file_runs_nothing(outpost_home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[steps]]\nkind = "import"\npath = "x.csv"\n[[steps]]\nkind = "launch"\n')
    with open_catalog(outpost_home) as catalog:
        with pytest.raises(InvalidInput, match="step 2 has kind 'launch'"):
            run_pipeline(catalog, bad)
        bad.write_text('[[steps]]\nkind = "train"\ndataset = "x"\n')
        with pytest.raises(InvalidInput, match=r"step 1 \(train\) misses \['target'\]"):
            run_pipeline(catalog, bad)
        assert catalog.con.execute("SELECT count(*) FROM dataset").fetchall()[0][0] == 0


def test_the_shipped_example_is_valid() -> None:
    name, steps = load_pipeline(REPO / "resources" / "pipelines" / "example.toml")
    assert name == "pump-failure"
    assert [s["kind"] for s in steps] == ["import", "derive", "train", "gate", "register",
                                         "alias", "deploy"]


WRONG_TYPES = {
    'trials = "many"': ('[steps.search]\nkind = "random"\ntrials = "many"\n',
                        "step 2 (train): search.trials must be a whole number, not 'many'"),
    "seed = 1.5": ("seed = 1.5\n", "step 2 (train): seed must be a whole number, not 1.5"),
    "features = 3": ("features = 3\n", "step 2 (train): features must be a list"),
    "seed = true": ("seed = true\n", "seed must be a whole number, not True"),
}


@pytest.mark.parametrize("case", list(WRONG_TYPES))
def test_a_mistyped_value_is_refused_before_any_step(outpost_home: Path, tmp_path: Path,
                                                      case: str) -> None:
    extra, message = WRONG_TYPES[case]
    (tmp_path / "x.csv").write_text("a,b\n1,2\n3,4\n")
    bad = tmp_path / "typed.toml"
    bad.write_text('[[steps]]\nkind = "import"\npath = "x.csv"\n'
                   f'[[steps]]\nkind = "train"\ntarget = "b"\n{extra}')
    cli = run_cli(outpost_home, "pipeline", "run", str(bad), "--json")
    assert cli.returncode == 1 and cli.stdout == ""
    lines = cli.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], cli.stderr
    with open_catalog(outpost_home) as catalog:
        assert catalog.con.execute("SELECT count(*) FROM dataset").fetchall()[0][0] == 0
