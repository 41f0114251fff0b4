"""Bootstrap intervals over source videos and the verdicts they allow, on inputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from avssl_core.eval.intervals import (
    LOSS,
    NOT_SEPARABLE,
    WIN,
    Interval,
    bootstrap,
    compare,
    paired_bootstrap,
    verdict,
)

pytestmark = pytest.mark.timeout(60)


def test_identical_scores_give_a_zero_difference_and_no_verdict():
    rng = np.random.default_rng(0)
    correct = rng.integers(0, 2, 40)
    groups = np.repeat(np.arange(10), 4)
    out = compare(correct, correct, groups, replicates=500)
    assert out["difference"] == {"value": 0.0, "low": 0.0, "high": 0.0}
    assert out["verdict"] == NOT_SEPARABLE
    assert out["pretrained"] == out["scratch"]
    assert out["test_groups"] == 10 and out["test_items"] == 40


def test_a_clear_difference_is_a_win_and_its_mirror_a_loss():
    groups = np.arange(30)
    better = np.ones(30)
    worse = np.r_[np.ones(5), np.zeros(25)]
    assert compare(better, worse, groups)["verdict"] == WIN
    assert compare(worse, better, groups)["verdict"] == LOSS
    # One video's worth of difference among 30 cannot be told from noise.
    one_off = np.r_[np.zeros(1), np.ones(29)]
    assert compare(better, one_off, groups)["verdict"] == NOT_SEPARABLE


def test_interval_contains_the_estimate_and_is_seeded():
    rng = np.random.default_rng(1)
    correct = rng.integers(0, 2, 60)
    groups = np.repeat(np.arange(20), 3)
    first = bootstrap(correct, groups, replicates=400, seed=3)
    assert first.low <= first.estimate <= first.high and first.estimate == pytest.approx(correct.mean())
    assert bootstrap(correct, groups, replicates=400, seed=3) == first
    scores = rng.random(60)  # continuous scores: another seed moves the endpoints
    assert bootstrap(scores, groups, replicates=400, seed=4) != bootstrap(scores, groups, replicates=400, seed=3)


def test_resampling_moves_whole_source_videos():
    # 10 videos of 10 clips; each video's clips all right or all wrong. Resampled by video, the mean
    # varies like a mean of 10 coin flips; resampled by clip (every clip its own group) like 100: the
    # by-video interval is about sqrt(10) times wider.
    correct = np.repeat(np.r_[np.ones(5), np.zeros(5)], 10)
    by_video = bootstrap(correct, np.repeat(np.arange(10), 10), replicates=2000)
    by_clip = bootstrap(correct, np.arange(100), replicates=2000)
    width_video, width_clip = by_video.high - by_video.low, by_clip.high - by_clip.low
    assert width_video > 2.5 * width_clip
    assert width_video == pytest.approx(2 * 1.96 * 0.5 / np.sqrt(10), rel=0.25)


def test_paired_interval_is_narrower_than_the_two_apart():
    # Videos differ a lot in difficulty; pretrained is right on 3 more videos than scratch out of 40.
    rng = np.random.default_rng(2)
    easy = rng.random(40) < 0.5
    scratch = easy.astype(float)
    pretrained = scratch.copy()
    pretrained[np.flatnonzero(~easy)[:6]] = 1.0
    out = paired_bootstrap(pretrained, scratch, np.arange(40), replicates=2000)
    diff, a, b = out["difference"], out["a"], out["b"]
    assert diff.estimate == pytest.approx(6 / 40)
    assert diff.high - diff.low < (a.high - a.low)
    assert a.low < b.high  # the two intervals overlap ...
    assert verdict(diff) == WIN  # ... yet the paired difference separates them


def test_verdict_reads_dicts_and_bad_input_is_refused():
    assert verdict({"low": -0.1, "high": 0.2}) == NOT_SEPARABLE
    assert verdict(Interval(0.3, 0.1, 0.5)) == WIN
    assert verdict({"low": 0.0, "high": 0.2}) == NOT_SEPARABLE  # touching zero does not exclude it
    with pytest.raises(ValueError, match="per-item scores for 3 group labels"):
        bootstrap([1, 0], [0, 1, 2])
    with pytest.raises(ValueError, match="at least one test item"):
        bootstrap([], [])
