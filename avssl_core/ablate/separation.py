"""Which grid points of a study can be told apart: each point's value with its 95% interval, its paired
difference from the best point with that difference's interval and a verdict, and ranks that only separate
what the intervals separate.

The items are a point's test items over every training seed it ran, as avssl_core/ablate/objective.py
records them: for a pretext objective its held-out pairs (1/0 correctness), for a downstream one the test
clips or videos the evaluate stage scored (each one's score: correctness, a retrieval hit). Each item
carries its source video. The bootstrap is avssl_core/eval/intervals.py's, over source videos: a replicate
draws the source videos with replacement and every item of a drawn video comes along, from every seed, so
the interval holds both the spread over videos and the spread over seeds. Two points are compared on the
items they share (same seed, same item, same source video: held-out pairs come from the same seeded stream,
test files from the same split), on the same replicates (paired). Pretext and downstream items go through
the same code; only the record differs in what an item is.

Ranks: the points whose difference from the best point has an interval that holds zero share rank 1 with
it; among the others, the same rule against the best of them gives rank 2, and so on. A point without
per-item records (a downstream figure the evaluate stage gives no interval) gets no interval and no rank.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from avssl_core.eval.intervals import NOT_SEPARABLE, WIN, bootstrap, paired_bootstrap, verdict

BETTER, WORSE, BEST = "better", "worse", "best"
REPLICATES = 1000
BOOTSTRAP_TEXT = (f"95% percentile bootstrap over source videos ({REPLICATES} replicates), the test items of "
                  f"every seed pooled; differences paired on the items both points share")

Key = tuple[int, str, str]  # (seed, item, source video)


@dataclass(frozen=True)
class Point:
    trial: int
    value: float  # the trial's objective: the mean over its seeds
    items: dict[Key, float]  # test item -> its score (1/0 correctness for a held-out pair)


def point_items(records: Mapping[str, Mapping[str, Sequence]]) -> dict[Key, float]:
    """The pooled test items of every seed, from the ``{seed: {"item", "group", "score"}}`` record
    (avssl_core/ablate/objective.py's ITEMS_ATTR)."""
    items: dict[Key, float] = {}
    for seed, record in records.items():
        for item, group, score in zip(record["item"], record["group"], record["score"], strict=True):
            items[(int(seed), str(item), str(group))] = float(score)
    return items


def _interval(point: Point) -> dict[str, float]:
    keys = sorted(point.items)
    out = bootstrap([point.items[k] for k in keys], [k[2] for k in keys], replicates=REPLICATES)
    return {"low": out.low, "high": out.high}


def _difference(point: Point, best: Point, maximize: bool) -> dict[str, Any] | None:
    """point - best on their shared items, with its interval and the verdict for ``point``."""
    shared = sorted(set(point.items) & set(best.items))
    if not shared:
        return None
    out = paired_bootstrap([point.items[k] for k in shared], [best.items[k] for k in shared],
                           [k[2] for k in shared], replicates=REPLICATES)
    diff = out["difference"]
    called = verdict(diff)
    word = NOT_SEPARABLE if called == NOT_SEPARABLE else \
        (BETTER if (called == WIN) == maximize else WORSE)
    return {"difference": diff.estimate, "low": diff.low, "high": diff.high, "verdict": word,
            "shared_items": len(shared)}


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
            vs_best = {"difference": 0.0, "low": 0.0, "high": 0.0, "verdict": BEST, "shared_items": len(p.items)}
        out[p.trial] = {**_interval(p), "vs_best": vs_best, "rank": None}
    rank, remaining = 1, _ordered(points, maximize)
    while remaining:
        leader = remaining[0]
        # Not separable from the leader; points with no items in common cannot be separated either.
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
