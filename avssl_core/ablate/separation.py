"""Which grid points of a study can be told apart: each point's value with its 95% interval, its paired
difference from the best point with that difference's interval and a verdict, and ranks that only separate
what the intervals separate.

The items are a point's held-out pairs, over every training seed it ran (avssl_core/ablate/objective.py
records them). The bootstrap is avssl_core/eval/intervals.py's, over source videos: a replicate draws the
held-out source videos with replacement and every pair of a drawn video comes along, from every seed, so the
interval holds both the spread over videos and the spread over seeds. Two points are compared on the pairs
they share (same seed, same pair index, clip and source video: their held-out pairs are drawn from the same
seeded stream), on the same replicates (paired).

Ranks: the points whose difference from the best point has an interval that holds zero share rank 1 with
it; among the others, the same rule against the best of them gives rank 2, and so on. A point without
per-pair records (a downstream objective) gets no interval and no rank.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from avssl_core.eval.intervals import NOT_SEPARABLE, WIN, bootstrap, paired_bootstrap, verdict

BETTER, WORSE, BEST = "better", "worse", "best"
REPLICATES = 1000
BOOTSTRAP_TEXT = (f"95% percentile bootstrap over held-out source videos ({REPLICATES} replicates), pairs of "
                  f"every seed pooled; differences paired on the pairs both points share")

Key = tuple[int, int, int, int]  # (seed, pair index, clip, source video)


@dataclass(frozen=True)
class Point:
    trial: int
    value: float  # the trial's objective: the mean over its seeds
    items: dict[Key, float]  # held-out pair -> 1/0 correctness


def point_items(pairs: Mapping[str, Mapping[str, Sequence[int]]]) -> dict[Key, float]:
    """The pooled held-out pairs of every seed, from the ``{seed: {correct, index, clip, source}}`` record."""
    items: dict[Key, float] = {}
    for seed, record in pairs.items():
        for correct, index, clip, source in zip(record["correct"], record["index"], record["clip"],
                                                record["source"], strict=True):
            items[(int(seed), int(index), int(clip), int(source))] = float(correct)
    return items


def _interval(point: Point) -> dict[str, float]:
    keys = sorted(point.items)
    out = bootstrap([point.items[k] for k in keys], [k[3] for k in keys], replicates=REPLICATES)
    return {"low": out.low, "high": out.high}


def _difference(point: Point, best: Point, maximize: bool) -> dict[str, Any] | None:
    """point - best on their shared pairs, with its interval and the verdict for ``point``."""
    shared = sorted(set(point.items) & set(best.items))
    if not shared:
        return None
    out = paired_bootstrap([point.items[k] for k in shared], [best.items[k] for k in shared],
                           [k[3] for k in shared], replicates=REPLICATES)
    diff = out["difference"]
    called = verdict(diff)
    word = NOT_SEPARABLE if called == NOT_SEPARABLE else \
        (BETTER if (called == WIN) == maximize else WORSE)
    return {"difference": diff.estimate, "low": diff.low, "high": diff.high, "verdict": word,
            "shared_pairs": len(shared)}


def _ordered(points: list[Point], maximize: bool) -> list[Point]:
    return sorted(points, key=lambda p: (-p.value if maximize else p.value, p.trial))


def separate(points: list[Point], *, maximize: bool = True) -> dict[int, dict[str, Any]]:
    """trial -> {"low", "high", "vs_best": difference record or None, "rank"} for every point."""
    if not points:
        return {}
    best = _ordered(points, maximize)[0]
    differences: dict[tuple[int, int], dict[str, Any] | None] = {}  # (point, leader) -> _difference, once each

    def difference(point: Point, leader: Point) -> dict[str, Any] | None:
        key = (point.trial, leader.trial)
        if key not in differences:
            differences[key] = _difference(point, leader, maximize)
        return differences[key]

    out: dict[int, dict[str, Any]] = {}
    for p in points:
        vs_best = None if p is best else difference(p, best)
        if p is best:
            vs_best = {"difference": 0.0, "low": 0.0, "high": 0.0, "verdict": BEST, "shared_pairs": len(p.items)}
        out[p.trial] = {**_interval(p), "vs_best": vs_best, "rank": None}
    rank, remaining = 1, _ordered(points, maximize)
    while remaining:
        leader = remaining[0]
        # Not separable from the leader; points with no pairs in common cannot be separated either.
        tier = [p for p in remaining if p is leader or (d := difference(p, leader)) is None
                or d["verdict"] == NOT_SEPARABLE]
        for p in tier:
            out[p.trial]["rank"] = rank
        remaining = [p for p in remaining if p not in tier]
        rank += 1
    return out


def summary(separation: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """How many points the intervals separate: from the best, and into how many ranks."""
    verdicts = [s["vs_best"]["verdict"] for s in separation.values() if s["vs_best"]]
    return {"points_with_interval": len(separation),
            "separated_from_best": sum(v in (WORSE, BETTER) for v in verdicts),
            "tied_with_best": sum(s["rank"] == 1 for s in separation.values()),
            "ranks": max((s["rank"] for s in separation.values()), default=0),
            "bootstrap": BOOTSTRAP_TEXT}
