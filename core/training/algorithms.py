"""The algorithms Outpost trains: names, tasks, typed parameters and their search spaces.

Every parameter a user may set is declared here with its type, valid range and
default, so that a bad value is refused in one line before any data is read, and
so that search spaces and the GUI's forms come from the same declaration.
Estimator classes are imported only when one is built: importing scikit-learn
takes seconds, and the CLI and the GUI's forms read these specs at start-up.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from core.errors import InvalidInput

if TYPE_CHECKING:
    from sklearn.base import BaseEstimator

Task = Literal["classification", "regression"]
TASKS: tuple[Task, ...] = ("classification", "regression")
ParamValue = int | float | bool | str | tuple[int, ...] | None
Kind = Literal["int", "float", "bool", "choice", "int_list"]


@dataclass(frozen=True)
class ParamSpec:
    """One tunable parameter: type, valid range, default and search space."""

    name: str
    kind: Kind
    default: ParamValue
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    allow_none: bool = False
    # Random search draws from [search_low, search_high] (log scale if log);
    # grid search enumerates `grid`. Both empty: the parameter is not searched.
    search_low: float | None = None
    search_high: float | None = None
    log: bool = False
    grid: tuple[ParamValue, ...] = ()

    @property
    def searchable(self) -> bool:
        return bool(self.grid)

    def describe_range(self) -> str:
        if self.kind == "choice":
            return " | ".join(self.choices)
        if self.kind == "bool":
            return "true | false"
        if self.kind == "int_list":
            return f"comma-separated integers in [{_fmt(self.low)}, {_fmt(self.high)}]"
        text = f"[{_fmt(self.low)}, {_fmt(self.high)}]"
        return text + " or none" if self.allow_none else text

    def parse(self, raw: object) -> ParamValue:
        """A checked value from a CLI string or a Python value; one-line error otherwise."""
        if self.allow_none and (raw is None or (isinstance(raw, str) and raw.lower() == "none")):
            return None
        parsers: dict[Kind, Callable[[object], ParamValue]] = {
            "int": self._parse_int, "float": self._parse_float, "bool": self._parse_bool,
            "choice": self._parse_choice, "int_list": self._parse_int_list,
        }
        return parsers[self.kind](raw)

    def _bad(self, raw: object, what: str) -> InvalidInput:
        return InvalidInput(f"parameter {self.name} must be {what}, got {raw!r}")

    def _check_range(self, value: float, raw: object) -> None:
        below = self.low is not None and value < self.low
        if below or (self.high is not None and value > self.high):
            raise self._bad(raw, f"in {self.describe_range()}")

    def _parse_int(self, raw: object) -> int:
        if isinstance(raw, bool):
            raise self._bad(raw, "an integer")
        if isinstance(raw, int):
            value = raw
        elif isinstance(raw, float) and raw.is_integer():
            value = int(raw)
        elif isinstance(raw, str) and raw.strip().lstrip("+-").isdigit():
            value = int(raw)
        else:
            raise self._bad(raw, "an integer")
        self._check_range(value, raw)
        return value

    def _parse_float(self, raw: object) -> float:
        if isinstance(raw, bool):
            raise self._bad(raw, "a number")
        try:
            value = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise self._bad(raw, "a number") from None
        if not math.isfinite(value):
            raise self._bad(raw, "a finite number")
        self._check_range(value, raw)
        return value

    def _parse_bool(self, raw: object) -> bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise self._bad(raw, "true or false")

    def _parse_choice(self, raw: object) -> str:
        if isinstance(raw, str) and raw in self.choices:
            return raw
        raise self._bad(raw, f"one of {', '.join(self.choices)}")

    def _parse_int_list(self, raw: object) -> tuple[int, ...]:
        items: list[object]
        if isinstance(raw, str):
            items = [part for part in raw.replace(" ", "").split(",") if part]
        elif isinstance(raw, list | tuple):
            items = list(raw)
        else:
            raise self._bad(raw, "comma-separated integers")
        item_spec = ParamSpec(self.name, "int", None, self.help, low=self.low, high=self.high)
        values = tuple(item_spec._parse_int(item) for item in items)
        if not values:
            raise self._bad(raw, "at least one integer")
        return values


def _fmt(value: float | None) -> str:
    if value is None:
        return "?"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


Builder = Callable[[Task, dict[str, Any], int, int], "BaseEstimator"]


@dataclass(frozen=True)
class Algorithm:
    name: str
    summary: str
    tasks: tuple[Task, ...]
    params: tuple[ParamSpec, ...]
    # Trees split on thresholds and are unaffected by scaling in scikit-learn, but a
    # scaler in front of them adds a float32 rounding step to the ONNX graph that can
    # move a value across a split (measured: one flipped row in 20k, 0.35 probability
    # difference), so only the models that need scaled inputs get a scaler.
    scale_numerics: bool
    build_estimator: Builder

    def spec(self, name: str) -> ParamSpec:
        for spec in self.params:
            if spec.name == name:
                return spec
        valid = ", ".join(p.name for p in self.params) or "(none)"
        raise InvalidInput(f"unknown parameter {name!r} for {self.name}; valid: {valid}")

    def defaults(self) -> dict[str, ParamValue]:
        return {spec.name: spec.default for spec in self.params}

    def resolve_params(self, given: Mapping[str, object]) -> dict[str, ParamValue]:
        """Defaults overlaid with the given values, each checked against its spec."""
        resolved = self.defaults()
        for name, raw in given.items():
            resolved[name] = self.spec(name).parse(raw)
        return resolved

    def build(self, task: Task, params: Mapping[str, ParamValue], seed: int,
              n_jobs: int = 1) -> BaseEstimator:
        if task not in self.tasks:
            raise InvalidInput(f"{self.name} does {' and '.join(self.tasks)} only, not {task}")
        return self.build_estimator(task, dict(params), seed, n_jobs)


def _logistic(task: Task, p: dict[str, Any], seed: int, n_jobs: int) -> BaseEstimator:
    from sklearn.linear_model import LogisticRegression

    weight = None if p["class_weight"] == "none" else p["class_weight"]
    return LogisticRegression(C=p["C"], max_iter=p["max_iter"], class_weight=weight,
                              random_state=seed)


def _linear(task: Task, p: dict[str, Any], seed: int, n_jobs: int) -> BaseEstimator:
    from sklearn.linear_model import LinearRegression

    return LinearRegression(fit_intercept=p["fit_intercept"])


def _ridge(task: Task, p: dict[str, Any], seed: int, n_jobs: int) -> BaseEstimator:
    from sklearn.linear_model import Ridge

    return Ridge(alpha=p["alpha"], fit_intercept=p["fit_intercept"])


def _forest(task: Task, p: dict[str, Any], seed: int, n_jobs: int) -> BaseEstimator:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    cls = RandomForestClassifier if task == "classification" else RandomForestRegressor
    max_features: str | float = 1.0 if p["max_features"] == "all" else p["max_features"]
    return cls(n_estimators=p["n_estimators"], max_depth=p["max_depth"],
               min_samples_leaf=p["min_samples_leaf"], max_features=max_features,
               random_state=seed, n_jobs=n_jobs)


def _boosting(task: Task, p: dict[str, Any], seed: int, n_jobs: int) -> BaseEstimator:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    cls = (HistGradientBoostingClassifier if task == "classification"
           else HistGradientBoostingRegressor)
    # Early stopping is off so that max_iter means what it says and a run's tree
    # count does not depend on an internal validation split.
    return cls(max_iter=p["max_iter"], learning_rate=p["learning_rate"],
               max_leaf_nodes=p["max_leaf_nodes"], min_samples_leaf=p["min_samples_leaf"],
               l2_regularization=p["l2_regularization"], early_stopping=False,
               random_state=seed)


def _mlp(task: Task, p: dict[str, Any], seed: int, n_jobs: int) -> BaseEstimator:
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    cls = MLPClassifier if task == "classification" else MLPRegressor
    return cls(hidden_layer_sizes=tuple(p["hidden_layer_sizes"]), alpha=p["alpha"],
               learning_rate_init=p["learning_rate_init"], max_iter=p["max_iter"],
               early_stopping=p["early_stopping"], random_state=seed)


_FIT_INTERCEPT = ParamSpec("fit_intercept", "bool", True, "fit an intercept term",
                           grid=(True, False))

ALGORITHMS: dict[str, Algorithm] = {a.name: a for a in (
    Algorithm("logistic_regression", "L2-regularised logistic regression (lbfgs)",
              ("classification",), (
                  ParamSpec("C", "float", 1.0, "inverse regularisation strength",
                            low=1e-6, high=1e6, search_low=1e-3, search_high=1e3, log=True,
                            grid=(0.01, 0.1, 1.0, 10.0, 100.0)),
                  ParamSpec("max_iter", "int", 1000, "solver iterations", low=10, high=100000),
                  ParamSpec("class_weight", "choice", "none", "weight classes by frequency",
                            choices=("none", "balanced"), grid=("none", "balanced")),
              ), True, _logistic),
    Algorithm("linear_regression", "ordinary least squares", ("regression",),
              (_FIT_INTERCEPT,), True, _linear),
    Algorithm("ridge", "least squares with L2 penalty", ("regression",), (
        ParamSpec("alpha", "float", 1.0, "L2 penalty strength", low=0.0, high=1e6,
                  search_low=1e-3, search_high=1e3, log=True,
                  grid=(0.001, 0.01, 0.1, 1.0, 10.0, 100.0)),
        _FIT_INTERCEPT,
    ), True, _ridge),
    Algorithm("random_forest", "random forest of decision trees", TASKS, (
        ParamSpec("n_estimators", "int", 100, "number of trees", low=1, high=2000,
                  search_low=20, search_high=300, log=True, grid=(50, 100, 200)),
        # Bounded by default: an unbounded forest on 50k rows exports to tens of MB.
        ParamSpec("max_depth", "int", 12, "maximum tree depth (none: unbounded)", low=1,
                  high=100, allow_none=True, search_low=3, search_high=20, grid=(6, 12, 18)),
        ParamSpec("min_samples_leaf", "int", 1, "minimum rows in a leaf", low=1, high=100000,
                  search_low=1, search_high=50, log=True, grid=(1, 5, 20)),
        ParamSpec("max_features", "choice", "sqrt", "features tried at each split",
                  choices=("sqrt", "log2", "all"), grid=("sqrt", "log2", "all")),
    ), False, _forest),
    Algorithm("gradient_boosting", "histogram gradient-boosted trees", TASKS, (
        ParamSpec("max_iter", "int", 100, "boosting iterations (trees per class)", low=1,
                  high=5000, search_low=20, search_high=400, log=True, grid=(50, 100, 200)),
        ParamSpec("learning_rate", "float", 0.1, "shrinkage per iteration", low=1e-4, high=1.0,
                  search_low=0.01, search_high=0.5, log=True, grid=(0.03, 0.1, 0.3)),
        ParamSpec("max_leaf_nodes", "int", 31, "leaves per tree", low=2, high=1024,
                  search_low=8, search_high=128, log=True, grid=(15, 31, 63)),
        ParamSpec("min_samples_leaf", "int", 20, "minimum rows in a leaf", low=1, high=100000,
                  search_low=5, search_high=100, log=True, grid=(10, 20, 50)),
        ParamSpec("l2_regularization", "float", 0.0, "L2 penalty on leaf values", low=0.0,
                  high=1e6, search_low=0.0, search_high=10.0, grid=(0.0, 1.0)),
    ), False, _boosting),
    Algorithm("mlp", "multi-layer perceptron (adam)", TASKS, (
        ParamSpec("hidden_layer_sizes", "int_list", (64,), "units per hidden layer",
                  low=1, high=4096, grid=((32,), (64,), (64, 32))),
        ParamSpec("alpha", "float", 1e-4, "L2 penalty", low=0.0, high=100.0,
                  search_low=1e-6, search_high=1e-1, log=True, grid=(1e-5, 1e-4, 1e-3)),
        ParamSpec("learning_rate_init", "float", 1e-3, "initial step size", low=1e-6, high=1.0,
                  search_low=1e-4, search_high=1e-1, log=True, grid=(1e-3, 1e-2)),
        ParamSpec("max_iter", "int", 200, "maximum epochs", low=1, high=10000),
        ParamSpec("early_stopping", "bool", True, "stop when a 10% validation split stalls"),
    ), True, _mlp),
)}

DEFAULT_ALGORITHM: dict[Task, str] = {
    "classification": "gradient_boosting",
    "regression": "gradient_boosting",
}


def get_algorithm(name: str) -> Algorithm:
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise InvalidInput(
            f"unknown algorithm {name!r}; choose one of: {', '.join(ALGORITHMS)}") from None


def parse_param_assignments(pairs: list[str]) -> dict[str, str]:
    """``["k=v", …]`` from the command line as a dict; values are checked later by spec."""
    result: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InvalidInput(f"--param takes NAME=VALUE, got {pair!r}")
        result[name.strip()] = value.strip()
    return result
