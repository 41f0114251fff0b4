"""Bootstrap intervals against a plain re-statement of the procedure, so that a changed tail, draw range,
seed, default or argument that still gives a plausible interval is caught (found by mutation testing:
scripts/mutation.sh intervals)."""

from __future__ import annotations

import numpy as np
import pytest

from avssl_core.eval.intervals import bootstrap, compare, paired_bootstrap

pytestmark = pytest.mark.timeout(60)


def reference_replicates(scores, groups, replicates: int, seed: int) -> np.ndarray:
    """The documented procedure written out with loops: each replicate draws the groups with replacement
    (uniform over the sorted distinct group labels, one generator seeded with ``seed``) and averages the
    scores of every item of every drawn group, as often as it was drawn."""
    names = sorted(set(groups))
    draws = np.random.default_rng(seed).integers(0, len(names), size=(replicates, len(names)))
    out = []
    for row in draws:
        picked = [float(s) for g in row for s, item_group in zip(scores, groups, strict=True) if item_group == names[g]]
        out.append(sum(picked) / len(picked))
    return np.array(out)


def uneven_scores(n_groups: int = 6, seed: int = 0):
    """Continuous scores on groups of different sizes (every percentile, draw and weight shows)."""
    rng = np.random.default_rng(seed)
    groups = [g for g in range(n_groups) for _ in range(g % 3 + 1)]
    return rng.random(len(groups)), groups


def test_interval_is_the_2_5th_and_97_5th_percentile_of_the_replicates():
    scores, groups = uneven_scores()
    reps = reference_replicates(scores, groups, 300, seed=11)
    out = bootstrap(scores, groups, replicates=300, seed=11)
    assert out.estimate == pytest.approx(scores.mean(), rel=1e-12)
    assert (out.low, out.high) == pytest.approx(tuple(np.percentile(reps, [2.5, 97.5])), rel=1e-12)


def test_paired_intervals_share_one_resampling():
    scores, groups = uneven_scores()
    other = np.random.default_rng(5).random(len(scores))
    out = paired_bootstrap(scores, other, groups, replicates=300, seed=7)
    ra = reference_replicates(scores, groups, 300, seed=7)
    rb = reference_replicates(other, groups, 300, seed=7)
    for key, reps in (("a", ra), ("b", rb), ("difference", ra - rb)):
        assert (out[key].low, out[key].high) == pytest.approx(tuple(np.percentile(reps, [2.5, 97.5])),
                                                              rel=1e-12), key


def test_the_first_group_in_sorted_order_is_drawn_too():
    # Two videos, one all right and one all wrong: some replicates draw the right one twice (mean 1.0).
    out = bootstrap([1.0, 1.0, 0.0], ["a", "a", "b"], replicates=200)
    assert out.low == 0.0 and out.high == 1.0


def test_compare_passes_its_replicates_and_seed_on():
    scores, groups = uneven_scores()
    other = np.random.default_rng(5).random(len(scores))
    out = compare(scores, other, groups, replicates=150, seed=9)
    paired = paired_bootstrap(scores, other, groups, replicates=150, seed=9)
    assert out["pretrained"] == paired["a"].as_dict()
    assert out["scratch"] == paired["b"].as_dict()
    assert out["difference"] == paired["difference"].as_dict()
    assert out["bootstrap"] == "95% percentile, 150 replicates over test source videos, seed 9"


def test_defaults_are_1000_replicates_and_seed_0():
    scores, groups = uneven_scores()
    other = np.random.default_rng(5).random(len(scores))
    assert bootstrap(scores, groups) == bootstrap(scores, groups, replicates=1000, seed=0)
    assert paired_bootstrap(scores, other, groups) == paired_bootstrap(scores, other, groups, replicates=1000,
                                                                       seed=0)
    assert compare(scores, other, groups) == compare(scores, other, groups, replicates=1000, seed=0)
    assert compare(scores, other, groups)["bootstrap"] == \
        "95% percentile, 1000 replicates over test source videos, seed 0"


def test_a_seeded_paired_bootstrap_repeats_itself():
    scores, groups = uneven_scores()
    other = np.random.default_rng(5).random(len(scores))
    assert paired_bootstrap(scores, other, groups, replicates=100, seed=3) == \
        paired_bootstrap(scores, other, groups, replicates=100, seed=3)


def test_float32_scores_are_averaged_in_double_precision():
    # Per-item scores straight from a float32 tensor: the estimate must not carry float32 rounding.
    scores = np.random.default_rng(0).random(1000).astype(np.float32)
    out = bootstrap(scores, np.arange(1000), replicates=10)
    assert out.estimate == scores.astype(np.float64).mean()


def test_one_replicate_is_allowed_and_zero_is_refused_by_name():
    out = bootstrap([1.0, 0.0, 1.0], [0, 1, 2], replicates=1, seed=4)
    (rep,) = reference_replicates([1.0, 0.0, 1.0], [0, 1, 2], 1, seed=4)
    assert out.low == out.high == pytest.approx(rep)
    with pytest.raises(ValueError, match=r"^replicates must be >= 1, got 0$"):
        bootstrap([1.0], [0], replicates=0)
    with pytest.raises(ValueError, match=r"^a bootstrap needs at least one test item$"):
        bootstrap([], [])
