"""`outpost pipeline run FILE.toml`: import → derive → train → gate → register → alias →
deploy, headless.

The whole file is checked before any step runs. Steps then run in order, each
handing what it made (dataset version, run, model version) to the next; the
first step that fails stops the run with its reason, and no later step runs,
so a model that fails its gate is never registered, aliased or deployed.
"""
from __future__ import annotations

import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.catalog import Catalog
from core.errors import InvalidInput, NotFound, OutpostError
from core.progress import CancelToken, ProgressFn, check, report

_KEYS: dict[str, tuple[set[str], set[str]]] = {  # kind -> (required, optional)
    # exactly one of path and sample
    "import": (set(), {"path", "sample", "name", "encoding", "decimal", "sheet", "bad_lines"}),
    "derive": ({"name", "sql"}, {"from"}),
    "train": ({"target"}, {"dataset", "algo", "params", "seed", "features", "search"}),
    "gate": ({"metric"}, {"threshold", "model", "against_production"}),
    "register": ({"model"}, set()),
    "alias": ({"alias"}, {"force"}),
    "deploy": ({"agents"}, {"force"}),
}

_TEXT = (str,), "a string"
_NUMBER = (int, float), "a number"
_FLAG = (bool,), "true or false"
_TYPES: dict[str, tuple[tuple[type, ...], str]] = {  # key -> (types, what to say)
    **{key: _TEXT for key in ("path", "sample", "name", "sql", "from", "target", "dataset",
                              "algo", "metric", "model", "alias", "encoding", "decimal",
                              "sheet", "bad_lines")},
    "seed": ((int,), "a whole number"), "threshold": _NUMBER,
    "params": ((dict,), "a table"), "search": ((dict,), "a table {kind, trials, metric}"),
    "features": ((list,), "a list of column names"),
    "against_production": _FLAG, "force": _FLAG,
    "agents": ((str, list), "an agent name or a list of them"),
}
_SEARCH: dict[str, tuple[tuple[type, ...], str]] = {
    "kind": _TEXT, "trials": ((int,), "a whole number"), "metric": _TEXT}


def _type_error(key: str, value: Any, types: tuple[type, ...], what: str) -> str | None:
    """Why ``value`` does not fit, or None (a bool is not a number here)."""
    if isinstance(value, bool) and bool not in types:
        return f"{key} must be {what}, not {value!r}"
    if not isinstance(value, types):
        return f"{key} must be {what}, not {value!r}"
    return None


def _check_types(step: dict[str, Any]) -> str | None:
    for key, value in step.items():
        if key in _TYPES and (problem := _type_error(key, value, *_TYPES[key])):
            return problem
    if isinstance(step.get("features"), list) and not all(
            isinstance(f, str) for f in step["features"]):
        return "features must be a list of column names (strings)"
    if isinstance(step.get("agents"), list) and not all(
            isinstance(a, str) for a in step["agents"]):
        return "agents must be an agent name or a list of them"
    search = step.get("search")
    if isinstance(search, dict):
        unknown = sorted(set(search) - set(_SEARCH))
        if unknown:
            return f"search has unknown keys {unknown}"
        for key, value in search.items():
            if problem := _type_error(f"search.{key}", value, *_SEARCH[key]):
                return problem
        if search.get("trials", 1) < 1:
            return f"search.trials must be at least 1, not {search['trials']}"
    return None


@dataclass(frozen=True)
class StepResult:
    index: int
    kind: str
    status: str  # ok, failed, skipped
    detail: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.index, "kind": self.kind, "status": self.status,
                "detail": self.detail, "seconds": round(self.seconds, 3)}


@dataclass
class PipelineResult:
    name: str
    steps: list[StepResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(s.status == "ok" for s in self.steps)

    @property
    def failure(self) -> StepResult | None:
        return next((s for s in self.steps if s.status == "failed"), None)

    def to_dict(self) -> dict[str, Any]:
        return {"pipeline": self.name, "passed": self.passed,
                "steps": [s.to_dict() for s in self.steps]}


@dataclass
class _State:
    base: Path
    dataset: str | None = None  # "name@version" of the last dataset made
    run: Any = None  # the last training Run
    model: str | None = None  # "model@version" of the last registered version
    model_name: str | None = None


def load_pipeline(path: Path) -> tuple[str, list[dict[str, Any]]]:
    """Parse and check the whole file: (name, steps). Nothing runs on a bad file."""
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise NotFound(f"pipeline file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInput(f"pipeline file {path} is not valid TOML: {exc}") from exc
    steps = doc.get("steps")
    if not isinstance(steps, list) or not steps:
        raise InvalidInput(f"{path}: needs at least one [[steps]] table")
    for i, step in enumerate(steps, 1):
        kind = step.get("kind") if isinstance(step, dict) else None
        if kind not in _KEYS:
            raise InvalidInput(f"{path}: step {i} has kind {kind!r}; "
                               f"use one of {', '.join(_KEYS)}")
        required, optional = _KEYS[kind]
        missing = sorted(required - set(step))
        unknown = sorted(set(step) - required - optional - {"kind"})
        if kind == "import" and ("path" in step) == ("sample" in step):
            missing = ["path or sample"]
        if missing or unknown:
            what = f"misses {missing}" if missing else f"has unknown keys {unknown}"
            raise InvalidInput(f"{path}: step {i} ({kind}) {what}")
        problem = _check_types(step)
        if problem:
            raise InvalidInput(f"{path}: step {i} ({kind}): {problem}")
    name = doc.get("name", Path(path).stem)
    return str(name), steps


def _import(catalog: Catalog, step: dict[str, Any], state: _State) -> str:
    from core.datasets import import_dataset, import_frame
    from core.datasets.options import ReadOptions
    from core.samples import SAMPLES

    if "sample" in step:
        sample = next((s for s in SAMPLES if s.name == step["sample"]), None)
        if sample is None:
            raise InvalidInput(f"no sample named {step['sample']!r}; samples: "
                               f"{', '.join(s.name for s in SAMPLES)}")
        res = import_frame(catalog, step.get("name") or sample.name, sample.build(),
                           {"sample": sample.name, "task": sample.task, "target": sample.target,
                            "description": sample.description})
    else:
        path = Path(step["path"])
        options = ReadOptions(encoding=step.get("encoding"), decimal=step.get("decimal", "."),
                              sheet=step.get("sheet"), bad_lines=step.get("bad_lines"))
        res = import_dataset(catalog, path if path.is_absolute() else state.base / path,
                             step.get("name"), options=options)
    state.dataset = f"{res.name}@{res.version}"
    return f"{res.name}@{res.version[:12]} ({res.rows} rows{', new' if res.new else ''})"


def _derive(catalog: Catalog, step: dict[str, Any], state: _State) -> str:
    from core.datasets.derive import derive_dataset

    parent = step.get("from") or state.dataset
    if parent is None:
        raise InvalidInput("derive needs `from` or an earlier import step")
    res = derive_dataset(catalog, step["name"], parent, step["sql"])
    state.dataset = f"{res.name}@{res.version}"
    return f"{res.name}@{res.version[:12]} ({res.rows} rows)"


def _train(catalog: Catalog, step: dict[str, Any], state: _State) -> str:
    from core.training import search, train

    dataset = step.get("dataset") or state.dataset
    if dataset is None:
        raise InvalidInput("train needs `dataset` or an earlier import/derive step")
    common: dict[str, Any] = {"algo": step.get("algo"), "seed": int(step.get("seed", 0)),
              "features": step.get("features"), "params": step.get("params")}
    spec = step.get("search")
    if spec:
        if not isinstance(spec, dict):
            raise InvalidInput("train.search must be a table: {kind, trials, metric}")
        found = search(catalog, dataset, step["target"], kind=spec.get("kind", "random"),
                       trials=int(spec.get("trials", 10)), metric=spec.get("metric"), **common)
        state.run = found.parent  # the best parameters refitted: the run that has a model
        return (f"search of {len(found.trials)} trials: best trial {found.best.id}, "
                f"refit run {found.parent.id}")
    state.run = train(catalog, dataset, step["target"], **common)
    return f"run {state.run.id}"


def _gate(catalog: Catalog, step: dict[str, Any], state: _State) -> str:
    from core.registry import resolve_model
    from core.training import get_run
    from core.training.metrics import METRICS

    if state.run is None:
        raise InvalidInput("gate needs an earlier train step")
    metric = str(step["metric"])
    spec = METRICS.get(metric)
    value = state.run.metrics.get(metric)
    if spec is None or not isinstance(value, int | float):
        raise InvalidInput(f"run {state.run.id} has no metric {metric!r}")
    better: Callable[[float, float], bool] = (
        (lambda a, b: a >= b) if spec.greater_is_better else (lambda a, b: a <= b))
    sign = ">=" if spec.greater_is_better else "<="
    threshold = step.get("threshold")
    if threshold is not None and not better(value, float(threshold)):
        raise OutpostError(f"gate: {metric} {value:.4f} is not {sign} {threshold}")
    model = step.get("model") or state.model_name
    if model and step.get("against_production", True):
        try:
            prod = resolve_model(catalog, f"{model}@production")
        except NotFound:
            return f"{metric} {value:.4f} passes (no production version of {model} yet)"
        prod_value = get_run(catalog, prod.run).metrics.get(metric) if prod.run else None
        if isinstance(prod_value, int | float) and not better(value, prod_value):
            raise OutpostError(f"gate: {metric} {value:.4f} is not {sign} production "
                               f"{prod.ref}'s {prod_value:.4f}")
        return f"{metric} {value:.4f} passes (production {prod.ref}: {prod_value})"
    return f"{metric} {value:.4f} passes"


def _register(catalog: Catalog, step: dict[str, Any], state: _State) -> str:
    from core.registry import register_model

    if state.run is None:
        raise InvalidInput("register needs an earlier train step")
    mv = register_model(catalog, state.run.id, step["model"])
    state.model = mv.ref
    if mv.flagged:
        raise OutpostError(f"{mv.ref} failed its parity check: {mv.parity}")
    return f"{mv.ref} (parity passed)"


def _alias(catalog: Catalog, step: dict[str, Any], state: _State) -> str:
    from core.registry import set_alias

    if state.model is None:
        raise InvalidInput("alias needs an earlier register step")
    set_alias(catalog, state.model, step["alias"], force=bool(step.get("force", False)))
    return f"{state.model} is {step['alias']}"


def _deploy(catalog: Catalog, step: dict[str, Any], state: _State) -> str:
    from core.fleet.dispatch import deploy

    if state.model is None:
        raise InvalidInput("deploy needs an earlier register step")
    agents = step["agents"] if isinstance(step["agents"], list) else [step["agents"]]
    done = []
    for agent in agents:
        result = deploy(catalog, state.model, str(agent), force=bool(step.get("force", False)))
        done.append(f"{result.agent}: {result.status}")
    return f"{state.model} -> " + ", ".join(done)


_STEPS: dict[str, Callable[[Catalog, dict[str, Any], _State], str]] = {
    "import": _import, "derive": _derive, "train": _train, "gate": _gate,
    "register": _register, "alias": _alias, "deploy": _deploy,
}


def run_pipeline(catalog: Catalog, path: Path, *, progress: ProgressFn | None = None,
                 cancel: CancelToken | None = None,
                 on_step: Callable[[StepResult], None] | None = None) -> PipelineResult:
    """Run every step in order; stop at the first failure and mark the rest skipped."""
    name, steps = load_pipeline(path)
    state = _State(base=Path(path).resolve().parent)
    state.model_name = next((s["model"] for s in steps if s["kind"] == "register"), None)
    result = PipelineResult(name)
    for i, step in enumerate(steps, 1):
        report(progress, f"pipeline {name}", i - 1, len(steps))
        started = time.perf_counter()
        if result.failure is not None:
            done = StepResult(i, step["kind"], "skipped", "an earlier step failed", 0.0)
        else:
            try:
                check(cancel, "pipeline")
                detail, status = _STEPS[step["kind"]](catalog, step, state), "ok"
            except OutpostError as exc:
                detail, status = str(exc), "failed"
            done = StepResult(i, step["kind"], status, detail, time.perf_counter() - started)
        result.steps.append(done)
        if on_step is not None:
            on_step(done)
    report(progress, f"pipeline {name}", len(steps), len(steps))
    return result
