"""Training: algorithms, the preprocessing pipeline, runs, search and reproduction.

Import names from here; the modules behind are split by idea.
"""
from core.training.algorithms import ALGORITHMS, Algorithm, ParamSpec, get_algorithm
from core.training.holdout import holdout_frame
from core.training.metrics import METRICS
from core.training.reproduce import Reproduction, reproduce_run
from core.training.runs import Run, get_run, list_runs, load_model
from core.training.search import SearchResult, search
from core.training.train import train

__all__ = [
    "ALGORITHMS",
    "METRICS",
    "Algorithm",
    "ParamSpec",
    "Reproduction",
    "Run",
    "SearchResult",
    "get_algorithm",
    "get_run",
    "holdout_frame",
    "list_runs",
    "load_model",
    "reproduce_run",
    "search",
    "train",
]
