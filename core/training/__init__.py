"""Training: algorithms, the preprocessing pipeline, runs, search and reproduction.

Import names from here. They load on first use: fitting needs scikit-learn
(seconds to import), reading runs does not, and every CLI start imports this
package.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from core.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from core.training.algorithms import ALGORITHMS, Algorithm, ParamSpec, get_algorithm
    from core.training.holdout import holdout_frame
    from core.training.metrics import METRICS
    from core.training.reproduce import Reproduction, reproduce_run
    from core.training.residuals import Residuals, residuals
    from core.training.runs import Run, get_run, list_runs, load_model
    from core.training.searcher import SearchResult, search
    from core.training.trainer import train

_HOMES = {
    "ALGORITHMS": "algorithms", "Algorithm": "algorithms", "ParamSpec": "algorithms",
    "get_algorithm": "algorithms", "holdout_frame": "holdout", "METRICS": "metrics",
    "Reproduction": "reproduce", "reproduce_run": "reproduce", "Residuals": "residuals",
    "residuals": "residuals", "Run": "runs",
    "get_run": "runs", "list_runs": "runs", "load_model": "runs", "SearchResult": "searcher",
    "search": "searcher", "train": "trainer",
}
__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "METRICS",
    "ParamSpec",
    "Reproduction",
    "Residuals",
    "Run",
    "SearchResult",
    "get_algorithm",
    "get_run",
    "holdout_frame",
    "list_runs",
    "load_model",
    "reproduce_run",
    "residuals",
    "search",
    "train",
]


__getattr__ = lazy_exports(__name__, _HOMES)
