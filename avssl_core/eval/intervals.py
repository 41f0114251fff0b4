"""Bootstrap intervals over test source videos, and the verdict they allow.

Clips cut from one source video are not independent test items (they share the actor, the scene and the
sound), so the unit of resampling is the source video: each replicate draws the test source videos with
replacement and every item (clip, window) of a drawn video comes along, as often as its video was drawn.
The interval is the 2.5th and 97.5th percentile of the replicated metric (percentile bootstrap, Efron and
Tibshirani 1993, ch. 13). For pretrained minus scratch the two models are scored on the same replicates
(paired): the videos that are hard for one are hard for the other, and the interval of the difference is
much narrower than the two intervals side by side suggest.

A win is called only when the difference's interval lies above zero, a loss only when it lies below;
otherwise the two cannot be told apart on this test set ("not separable").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
WIN, LOSS, NOT_SEPARABLE = "win", "loss", "not separable"


@dataclass(frozen=True)
class Interval:
    estimate: float  # the metric on the test set as it is
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.estimate, "low": self.low, "high": self.high}


def _group_counts(groups: Sequence, replicates: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(item -> group position [N], how often each group is drawn per replicate [B, G])."""
    names, position = np.unique(np.asarray(groups), return_inverse=True)
    if len(names) == 0:
        raise ValueError("a bootstrap needs at least one test item")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(names), size=(replicates, len(names)))
    counts = np.zeros((replicates, len(names)), dtype=np.int64)
    np.add.at(counts, (np.arange(replicates)[:, None], draws), 1)
    return position, counts


def _replicated_means(correct: np.ndarray, position: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Mean per-item score in each replicate: every item weighted by how often its group was drawn."""
    n_groups = counts.shape[1]
    sums = np.bincount(position, weights=correct, minlength=n_groups)  # score summed per group
    sizes = np.bincount(position, minlength=n_groups).astype(float)  # items per group
    return (counts @ sums) / (counts @ sizes)


def _check(correct: np.ndarray, groups: Sequence, replicates: int) -> np.ndarray:
    correct = np.asarray(correct, dtype=float)
    if correct.ndim != 1 or len(correct) != len(groups):
        raise ValueError(f"{correct.shape} per-item scores for {len(groups)} group labels")
    if replicates < 1:
        raise ValueError(f"replicates must be >= 1, got {replicates}")
    return correct


def _percentiles(values: np.ndarray) -> tuple[float, float]:
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap(correct: Sequence[float], groups: Sequence, *, replicates: int = 1000, seed: int = 0) -> Interval:
    """95% percentile interval of the mean of per-item scores (1/0 correctness: accuracy), resampling
    ``groups`` (the source video of each item) with replacement."""
    correct = _check(np.asarray(correct), groups, replicates)
    position, counts = _group_counts(groups, replicates, seed)
    return Interval(float(correct.mean()), *_percentiles(_replicated_means(correct, position, counts)))


def paired_bootstrap(a: Sequence[float], b: Sequence[float], groups: Sequence, *, replicates: int = 1000,
                     seed: int = 0) -> dict[str, Interval]:
    """Intervals of mean(a), mean(b) and mean(a) - mean(b), all on the same resampled groups; ``a`` and
    ``b`` are the per-item scores of two models on the same items."""
    a, b = _check(np.asarray(a), groups, replicates), _check(np.asarray(b), groups, replicates)
    position, counts = _group_counts(groups, replicates, seed)
    ra, rb = _replicated_means(a, position, counts), _replicated_means(b, position, counts)
    return {"a": Interval(float(a.mean()), *_percentiles(ra)),
            "b": Interval(float(b.mean()), *_percentiles(rb)),
            "difference": Interval(float(a.mean() - b.mean()), *_percentiles(ra - rb))}


def verdict(difference: Interval | dict) -> str:
    """win / loss only when the difference's interval excludes zero."""
    low, high = (difference.low, difference.high) if isinstance(difference, Interval) else \
        (difference["low"], difference["high"])
    if low > 0:
        return WIN
    if high < 0:
        return LOSS
    return NOT_SEPARABLE


def compare(pretrained: Sequence[float], scratch: Sequence[float], groups: Sequence, *, replicates: int = 1000,
            seed: int = 0) -> dict:
    """The record every downstream number carries: each model's value with its interval, the paired
    difference's interval and the verdict."""
    out = paired_bootstrap(pretrained, scratch, groups, replicates=replicates, seed=seed)
    return {"pretrained": out["a"].as_dict(), "scratch": out["b"].as_dict(),
            "difference": out["difference"].as_dict(), "verdict": verdict(out["difference"]),
            "test_groups": int(len(np.unique(np.asarray(groups)))), "test_items": int(len(groups)),
            "bootstrap": f"{LEVEL:.0%} percentile, {replicates} replicates over test source videos, seed {seed}"}
