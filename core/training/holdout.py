"""A run's holdout rows, rebuilt exactly from its data version, features, seed and split."""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.catalog import Catalog
from core.datasets import read_frame, resolve_version
from core.training.algorithms import get_algorithm
from core.training.inputs import TrainingInputs, prepare_inputs
from core.training.runs import Run
from core.training.split import split_indices


def run_inputs(catalog: Catalog, run: Run) -> tuple[TrainingInputs, np.ndarray, np.ndarray]:
    """The run's checked inputs and its (train, holdout) row positions."""
    dv = resolve_version(catalog, f"{run.dataset}@{run.dataset_version}")
    frame = read_frame(catalog, dv, columns=[*run.features, run.target])
    inputs = prepare_inputs(frame, run.target, run.features, run.task,
                            get_algorithm(run.algo), dv.ref)
    train, holdout = split_indices(inputs.y, run.task, float(run.split["test_size"]), run.seed)
    return inputs, train, holdout


def holdout_frame(catalog: Catalog, run: Run) -> tuple[pd.DataFrame, pd.Series]:
    """(X, y) of exactly the run's holdout rows.

    X holds the raw feature columns as the model takes them: numbers as float64
    with NaN for null, strings as ``str`` with ``""`` for null.
    """
    inputs, _, holdout = run_inputs(catalog, run)
    X = inputs.X.iloc[holdout].reset_index(drop=True)
    return X, pd.Series(inputs.y[holdout], name=run.target)
