"""Counting live values into the bins of a bundle's baseline.json.

Numeric bins: interior cut points c1..ck, bin 0 = (-inf, c1), bin i = [c_i, c_i+1),
last = [ck, +inf); NaN is a null. Categorical: one bin per category plus a last
"other" bin; None and "" are nulls. Counting is vectorised over a whole batch of
requests (searchsorted, a lookup table or unique, then bincount), in the telemetry writer thread.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_agent.contract.records import PREDICTION_FEATURE, Baseline, FeatureBaseline

PREDICTION = PREDICTION_FEATURE
Array = np.ndarray[Any, Any]


@dataclass(frozen=True, slots=True)
class FeatureBins:
    name: str
    edges: Array | None  # numeric features
    categories: dict[str, int] | None  # categorical features: category -> bin
    expected: Array | None = None  # the baseline's counts per bin, nulls last
    # categorical: bin of each small non-negative integer 0..len-1 (the category whose
    # text is str(i), else "other"), so integer labels skip the text conversion
    int_bins: Array | None = None

    @property
    def size(self) -> int:
        if self.edges is not None:
            return len(self.edges) + 1
        assert self.categories is not None
        return len(self.categories) + 1

    def count(self, values: Array) -> tuple[Array, int]:
        """Bin counts and the number of nulls among values."""
        values = values.ravel()
        with np.errstate(all="ignore"):  # NaN payloads from binary inputs: nulls, not errors
            if self.edges is not None:
                return self._count_numeric(values)
            return self._count_categorical(values)

    def _count_numeric(self, values: Array) -> tuple[Array, int]:
        try:
            numbers = values.astype(np.float64)
        except (TypeError, ValueError):
            return np.zeros(self.size, np.int64), 0
        present = ~np.isnan(numbers)
        assert self.edges is not None
        bins = np.searchsorted(self.edges, numbers[present], side="right")
        return np.bincount(bins, minlength=self.size), int(values.size - present.sum())

    def _count_categorical(self, values: Array) -> tuple[Array, int]:
        assert self.categories is not None
        nulls = 0
        if values.dtype.kind == "f":
            missing = np.isnan(values)
            nulls, values = int(missing.sum()), values[~missing]
            if np.all(values == np.round(values)):
                values = values.astype(np.int64)
        table = self.int_bins
        if (table is not None and values.dtype.kind in "iu" and values.size
                and values.min() >= 0 and values.max() < table.shape[0]):
            # the same bins as by text (str(i) of an integer is never ""), ~8x faster
            return np.bincount(table[values], minlength=self.size), nulls
        counts, text_nulls = self._count_text(values)
        return counts, nulls + text_nulls

    def _count_text(self, values: Array) -> tuple[Array, int]:
        """Counts by each value's text: the general categorical path."""
        assert self.categories is not None
        nulls = 0
        if values.dtype.kind in "iub":
            # Whole numbers (class labels): counted as Python numbers, each distinct one
            # made text once. np.unique would sort them with numpy's SIMD sort, whose
            # code (~384 KB of the agent's resident memory) nothing else touches.
            pairs = [(str(v), n) for v, n in Counter(values.tolist()).items()]
        else:
            uniques, counts = np.unique(values.astype(str), return_counts=True)
            pairs = list(zip(uniques.tolist(), counts.tolist(), strict=True))
        out = np.zeros(self.size, np.int64)
        other = self.size - 1
        for value, n in pairs:
            if value == "":
                nulls += n
            else:
                out[self.categories.get(value, other)] += n
        return out, nulls


def feature_bins(feature: FeatureBaseline) -> FeatureBins:
    expected = np.asarray([*feature.counts, feature.nulls], np.float64)
    if feature.kind == "numeric":
        return FeatureBins(feature.name, np.asarray(feature.edges or [], np.float64), None,
                           expected)
    categories = {c: i for i, c in enumerate(feature.categories or [])}
    return FeatureBins(feature.name, None, categories, expected, _int_bins(categories))


INT_BINS_MAX = 4096  # integer categories above this are counted by their text


def _int_bins(categories: dict[str, int]) -> Array:
    """Bin of each integer 0..n-1 by its text: the category str(i) or the "other" bin."""
    ints = [int(c) for c in categories if c.isdigit() and c.isascii() and str(int(c)) == c
            and int(c) < INT_BINS_MAX]
    table = np.full(max([64, *(i + 1 for i in ints)]), len(categories), np.intp)
    for i in ints:
        table[i] = categories[str(i)]
    return table


PSI_EPSILON = 1e-4  # as core.drift's: an empty bin counts as this share


def psi(bins: FeatureBins, counts: Array, nulls: int) -> float | None:
    """PSI of a window's counts (nulls as one more bin) against the baseline: the formula
    core.drift computes in SQL for the desktop's report. None without a baseline."""
    if bins.expected is None or bins.expected.shape[0] != counts.shape[0] + 1:
        return None
    live = np.append(counts, nulls).astype(np.float64)
    if live.sum() <= 0:
        return None
    p = np.maximum(live / live.sum(), PSI_EPSILON)
    q = np.maximum(bins.expected / max(bins.expected.sum(), 1.0), PSI_EPSILON)
    return float(np.sum((p - q) * np.log(p / q)))


@dataclass(frozen=True, slots=True)
class Column:
    """Where a feature's values sit in a request: an input, and a column of it if 2-D."""

    bins: FeatureBins
    input: str
    column: int | None


@dataclass(frozen=True, slots=True)
class NumericColumns:
    """Numeric features that are columns of one 2-D input, counted together: a value's
    bin is how many of its feature's cut points are at or below it (what searchsorted
    with side="right" returns for sorted cut points), the cut points padded with NaN,
    which is at or below nothing. One comparison and one bincount for all the columns
    instead of five numpy calls per column: the writer's largest cost per chunk."""

    columns: tuple[Column, ...]
    index: Array  # the features' column numbers in the input
    edges: Array  # features x most cut points, NaN-padded
    offsets: Array  # each feature's first bin in the joint count
    total: int

    def counts(self, arr: Array) -> list[tuple[FeatureBins, Array, int]]:
        """Each feature's bin counts and nulls; ValueError or TypeError if the values
        are not numbers (the caller then counts column by column)."""
        values = arr[:, self.index].astype(np.float64)
        missing = np.isnan(values)
        with np.errstate(all="ignore"):
            bins = (self.edges <= values[:, :, None]).sum(axis=2)
        joint = np.bincount((bins + self.offsets)[~missing], minlength=self.total)
        nulls = missing.sum(axis=0).tolist()
        ends = self.offsets.tolist() + [self.total]
        return [(c.bins, joint[ends[i]:ends[i + 1]], nulls[i])
                for i, c in enumerate(self.columns)]


def numeric_columns(columns: Sequence[Column]) -> NumericColumns | None:
    """The joint count of columns of one input, if all are numeric. It relies on what
    Baseline checks: cut points finite and strictly increasing (searchsorted's premise)."""
    if not columns or any(c.column is None or c.bins.edges is None for c in columns):
        return None
    edges = [c.bins.edges for c in columns]
    width = max(len(e) for e in edges if e is not None)
    padded = np.full((len(columns), width), np.nan)
    for i, e in enumerate(edges):
        assert e is not None
        padded[i, :len(e)] = e
    sizes = [c.bins.size for c in columns]
    return NumericColumns(tuple(columns), np.asarray([c.column for c in columns]), padded,
                          np.cumsum([0, *sizes[:-1]]), sum(sizes))


@dataclass(frozen=True, slots=True)
class Binner:
    columns: tuple[Column, ...]
    prediction: FeatureBins | None
    joint: NumericColumns | None = None  # when every column is a numeric one of one input

    def feature_counts(self, feeds: Sequence[Mapping[str, Array]]
                       ) -> Iterator[tuple[FeatureBins, Array, int]]:
        """Each feature's bin counts and nulls over a batch of requests."""
        joint = self.joint
        if joint is not None:
            name = joint.columns[0].input
            parts = [f[name] for f in feeds if name in f]
            if parts:
                try:
                    arr = np.concatenate(parts)
                    if arr.ndim == 2:
                        yield from joint.counts(arr)
                        return
                except (TypeError, ValueError):
                    pass  # counted column by column below, as any other input
        for bins, values in self.feature_values(feeds):
            yield (bins, *bins.count(values))

    def feature_values(self, feeds: Sequence[Mapping[str, Array]]
                       ) -> Iterator[tuple[FeatureBins, Array]]:
        """Each feature's values over a batch of requests: one concatenation per input,
        made when its first feature is reached (so a caller that pauses between features
        pauses between the inputs' concatenations too: ~7 us each for 64 requests)."""
        stacked: dict[str, Array | None] = {}
        for column in self.columns:
            if column.input not in stacked:
                stacked[column.input] = _stack([f[column.input] for f in feeds
                                                if column.input in f])
            arr = stacked[column.input]
            if arr is None:
                continue
            if column.column is None:
                yield column.bins, arr.ravel()
            elif arr.ndim == 2:
                yield column.bins, arr[:, column.column]


def _stack(parts: list[Array]) -> Array | None:
    if not parts:
        return None
    try:
        return np.concatenate(parts)
    except ValueError:  # shapes that vary beyond the batch dimension
        return np.concatenate([p.ravel() for p in parts])


def binner_for(baseline: Baseline | None,
               inputs: Sequence[tuple[str, tuple[int, ...]]]) -> Binner | None:
    """Map baseline features onto model inputs: by name (one input per column), or onto
    the columns of a single 2-D input whose width equals the number of features."""
    if baseline is None:
        return None
    bins = [feature_bins(f) for f in baseline.features]
    shapes = dict(inputs)
    columns = [Column(b, b.name, None) for b in bins if b.name in shapes]
    if not columns and len(inputs) == 1:
        name, shape = inputs[0]
        if len(shape) == 2 and shape[1] == len(bins):
            columns = [Column(b, name, i) for i, b in enumerate(bins)]
    prediction = feature_bins(baseline.prediction) if baseline.prediction else None
    if not columns and prediction is None:
        return None
    joint = numeric_columns(columns) if len({c.input for c in columns}) == 1 else None
    return Binner(tuple(columns), prediction, joint)
