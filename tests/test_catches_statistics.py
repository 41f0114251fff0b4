"""The downstream statistics on inputs whose answers are worked out by hand: the verdict's boundary at
zero, a bootstrap that resamples source videos (not clips) and scores both models on one resample, the
kNN vote (cosine similarity, weight exp(sim / T), the k most similar, ties to the first class), the
linear probe's C chosen by CV grouped by source video (and fixed where that cannot run), the few-label
draw of whole source videos, and the trivial baseline's statistics. Each test fails on a one-token change
of the code it covers (found by mutation testing: scripts/mutation.sh frozen_probe intervals
label_draw)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from avssl_core.eval.action import labelled_subset
from avssl_core.eval.frozen_probe import (
    FrozenProbeSettings,
    InputStatistics,
    choose_c,
    knn_predict,
    linear_predict,
    probe,
    protocol,
    standardised,
)
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


# --- intervals and verdicts -------------------------------------------------------------------------

@pytest.mark.parametrize(("low", "high", "expected"), [
    (1e-12, 0.5, WIN),  # just above zero
    (0.0, 0.5, NOT_SEPARABLE),  # touching zero is not excluding it
    (-0.5, -1e-12, LOSS),
    (-0.5, 0.0, NOT_SEPARABLE),
    (-0.1, 0.1, NOT_SEPARABLE),
])
def test_the_verdict_flips_exactly_where_the_interval_leaves_zero(low, high, expected):
    assert verdict(Interval(0.0, low, high)) == expected
    assert verdict({"value": 0.0, "low": low, "high": high}) == expected


def test_the_bootstrap_draws_source_videos_with_all_their_clips():
    # Video "a": 3 clips, all right; video "b": 1 clip, wrong. A replicate draws two videos: (a, a) -> 1,
    # (a, b) -> 3/4, (b, b) -> 0. Resampling clips instead would also give 1/4 and 1/2; resampling videos
    # but weighting each video once (not by its clips) would give 1/2 for (a, b).
    values = set()
    for seed in range(40):
        out = bootstrap([1.0, 1.0, 1.0, 0.0], ["a", "a", "a", "b"], replicates=1, seed=seed)
        assert out.low == out.high
        values.add(out.low)
    assert values == {0.0, 0.75, 1.0}


def test_a_paired_difference_uses_the_same_resample_for_both_models():
    # Model b is model a minus 0.25 on every clip: on any common resample the difference is exactly 0.25,
    # so its interval is a point, although each model's own interval is wide.
    rng = np.random.default_rng(1)
    a = rng.random(30)
    groups = np.repeat(np.arange(10), 3)
    out = paired_bootstrap(a, a - 0.25, groups, replicates=200, seed=2)
    assert out["difference"].low == pytest.approx(0.25, abs=1e-12)
    assert out["difference"].high == pytest.approx(0.25, abs=1e-12)
    assert out["a"].high - out["a"].low > 0.1
    record = compare(a, a - 0.25, groups, replicates=200, seed=2)
    assert record["verdict"] == WIN and record["test_groups"] == 10 and record["test_items"] == 30
    assert compare(a - 0.25, a, groups, replicates=200, seed=2)["verdict"] == LOSS


# --- kNN ----------------------------------------------------------------------------------------------

def _at_cosine(c: float, length: float, sign: float = 1.0) -> list[float]:
    """A 2-D vector of the given length whose cosine similarity to [1, 0] is ``c``."""
    return [length * c, sign * length * math.sqrt(1 - c * c)]


# Query [3, 0]; one "b" clip at cosine 0.9 (length 5) and two "a" clips at cosine 0.5 (length 0.5).
# Votes: b exp(0.9 / T), a 2 exp(0.5 / T): b wins exactly when T < 0.4 / ln 2 = 0.5771. A dot product
# instead of the cosine (b at 13.5, a at 0.75) or a plain count would never let "a" win at T = 0.585;
# sim * T or sim / T without exp would never let "b" win at T = 0.57.
KNN_TRAIN = np.array([_at_cosine(0.9, 5.0), _at_cosine(0.5, 0.5), _at_cosine(0.5, 0.5, -1.0)])
KNN_LABELS = np.array(["b", "a", "a"])
KNN_QUERY = np.array([[3.0, 0.0]])


@pytest.mark.parametrize(("temperature", "expected"), [(0.57, "b"), (0.585, "a"), (0.05, "b"), (10.0, "a")])
def test_knn_votes_weigh_exp_of_cosine_similarity_over_temperature(temperature, expected):
    assert knn_predict(KNN_TRAIN, KNN_LABELS, KNN_QUERY, k=3, temperature=temperature).tolist() == [expected]


def test_knn_keeps_exactly_the_k_most_similar():
    # "a" at cosine 0.9, "b" at 0.8 and at -1 (opposite). T = 1: k=1 and k=2 -> a (e^0.9 = 2.46 beats
    # e^0.8 = 2.23); k=3 adds e^-1 = 0.37 to b (2.59) -> b. The least similar k would pick b at k=1.
    train = np.array([_at_cosine(0.9, 1.0), _at_cosine(0.8, 2.0), [-4.0, 0.0]])
    labels = np.array(["a", "b", "b"])
    query = np.array([[1.0, 0.0]])
    got = [knn_predict(train, labels, query, k=k, temperature=1.0).tolist() for k in (1, 2, 3, 4)]
    assert got == [["a"], ["a"], ["b"], ["b"]]  # k above the training clips uses them all
    # The nearest listed anywhere, not first: "b" at cosine 0.8, 0.7 and 0.6, "a" at 0.9 and 0.85 last.
    # k=1 -> a; k=2 -> a (both a's); k=3 at T = 1: a 2.46 + 2.34 beats b 2.23.
    train = np.array([_at_cosine(c, 1.0) for c in (0.8, 0.7, 0.6, 0.9, 0.85)])
    labels = np.array(["b", "b", "b", "a", "a"])
    got = [knn_predict(train, labels, query, k=k, temperature=1.0).tolist() for k in (1, 2, 3)]
    assert got == [["a"], ["a"], ["a"]]


def test_knn_answers_each_query_from_its_own_row_and_ties_go_to_the_first_class():
    train = np.array([[0.0, 2.0], [1.0, 0.0], [0.0, 0.5]])
    labels = np.array(["z", "y", "z"])
    queries = np.array([[5.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    # [1, 1] is as close to "y" as to each "z"; with k=2 one vote each: the tie goes to "y" (sorted first),
    # although "z" is listed first.
    assert knn_predict(train, labels, queries, k=1, temperature=0.07).tolist() == ["y", "z", "z"]
    assert knn_predict(train[:2], labels[:2], queries, k=2, temperature=0.07).tolist() == ["y", "z", "y"]


def test_knn_on_a_zero_feature_and_with_no_training_clips():
    # A zero vector has no direction: it is at cosine 0 to everything (no nan), so it never outvotes a match.
    train = np.array([[0.0, 0.0], [0.0, 0.0], [0.2, 0.1]])
    labels = np.array([1, 1, 2])
    assert knn_predict(train, labels, np.array([[0.4, 0.2]]), k=3, temperature=0.07).tolist() == [2]
    with pytest.raises(ValueError, match=r"^the kNN probe has no training clips$"):
        knn_predict(np.zeros((0, 2)), np.array([]), KNN_QUERY, k=3, temperature=0.07)


# --- linear probe ---------------------------------------------------------------------------------------

def test_standardised_z_scores_each_column_with_the_training_clips_statistics():
    # Column 0: mean 3, std 2; column 1: mean 0.5, std 0.5; columns 2 and 3 are constant: their scale is 1.
    train = np.array([[1.0, 0.0, 5.0, 0.0], [5.0, 1.0, 5.0, 0.0]])
    test = np.array([[2.0, 2.0, 7.0, 1.0], [9.0, 0.25, 5.0, 0.0]])
    z_train, z_test = standardised(train, test)
    assert np.array_equal(z_train, [[-1.0, -1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    assert np.array_equal(z_test, [[-0.5, 3.0, 2.0, 1.0], [3.0, -0.5, 0.0, 0.0]])


def _separable(videos_per_class: int, clips: int, spread: float = 0.0, b_clips: int | None = None):
    """Class "a" at x0 = +3 (even videos), "b" at x0 = -3 (odd videos), a second feature that tells clips
    of a video apart and says nothing of the class;
    ``clips`` clips per video (``b_clips`` for class "b" if given)."""
    x, y, g = [], [], []
    for v in range(2 * videos_per_class):
        label = "a" if v % 2 == 0 else "b"
        for c in range(clips if label == "a" or b_clips is None else b_clips):
            x.append([3.0 if label == "a" else -3.0, spread * c])
            y.append(label)
            g.append(f"v{v}")
    return np.array(x), np.array(y), np.array(g)


def test_c_is_the_best_by_grouped_cv_and_ties_go_to_the_first_listed():
    # Perfectly separable, 3 clips per "a" video and 1 per "b" video: C = 1 scores 1.0 in every fold;
    # C = 1e-6 shrinks the weights to ~0 and the (unpenalised) intercept predicts the majority "a" for
    # every held-out clip (3/4 per fold), whichever comes first in the grid.
    x, y, g = _separable(3, 3, b_clips=1)
    assert choose_c(x, y, g, FrozenProbeSettings(c_grid=(1e-6, 1.0))) == (1.0, 1.0)
    assert choose_c(x, y, g, FrozenProbeSettings(c_grid=(1.0, 1e-6))) == (1.0, 1.0)
    # Both C score 1.0: the first listed wins.
    assert choose_c(x, y, g, FrozenProbeSettings(c_grid=(0.5, 2.0))) == (0.5, 1.0)
    assert choose_c(x, y, g, FrozenProbeSettings(c_grid=(2.0, 0.5))) == (2.0, 1.0)


def test_the_cv_holds_out_whole_source_videos_in_min_folds_groups_folds():
    # The features name the video and nothing else (one-hot), labels alternate by video. A held-out
    # video's column was all zero in training, so grouped CV cannot do better than the intercept; any
    # split that put clips of one video on both sides would read the label off the one-hot column (1.0).
    x_id = np.repeat(np.eye(6), 2, axis=0)
    y = np.repeat(np.array(["a", "b"] * 3), 2)
    g = np.repeat(np.array([f"v{v}" for v in range(6)]), 2)
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    for folds in (3, 9):  # 9 folds of 6 videos: one per video
        s = FrozenProbeSettings(c_grid=(10.0,), cv_folds=folds)
        reference = np.mean([
            np.mean(make_pipeline(StandardScaler(), LogisticRegression(C=10.0, max_iter=2000))
                    .fit(x_id[tr], y[tr]).predict(x_id[te]) == y[te])
            for tr, te in GroupKFold(n_splits=min(folds, 6)).split(x_id, y, g)])
        c, cv = choose_c(x_id, y, g, s)
        assert c == 10.0 and cv == pytest.approx(reference, abs=1e-12) and cv < 0.9, folds


def test_c_is_fixed_where_grouped_cv_cannot_score_every_class():
    s = FrozenProbeSettings(c_grid=(0.5, 2.0), fixed_c=7.0)
    # One source video in class "b": holding it out leaves "b" unseen.
    x, y, g = _separable(2, 2)
    one_b = g != "v3"
    assert choose_c(x[one_b], y[one_b], g[one_b], s) == (7.0, None)
    # Exactly two per class: CV runs.
    assert choose_c(x, y, g, s) == (0.5, 1.0)
    # Two per class, but "a"'s videos are large and "b"'s small: GroupKFold(3) puts a0, a2 in folds of
    # their own and b1, b3 together, so one training fold holds class "a" only.
    big = np.r_[np.repeat(x[y == "a"], 5, axis=0), x[y == "b"]]
    big_y = np.r_[np.repeat(y[y == "a"], 5), y[y == "b"]]
    big_g = np.r_[np.repeat(g[y == "a"], 5), g[y == "b"]]
    assert choose_c(big, big_y, big_g, s) == (7.0, None)


def test_the_final_fit_uses_the_chosen_c_on_every_training_clip():
    # One video per class (C fixed), "a" with 6 clips and "b" with 1: at C = 1e-6 the weights vanish and
    # the intercept predicts the majority "a" everywhere; at C = 10 the "b" side is predicted "b".
    x = np.array([[3.0, 0.0]] * 6 + [[-3.0, 0.0]])
    y = np.array(["a"] * 6 + ["b"])
    g = np.array(["v0"] * 6 + ["v1"])
    test = np.array([[3.0, 0.0], [-3.0, 0.0]])
    weak, info = linear_predict(x, y, g, test, FrozenProbeSettings(fixed_c=1e-6))
    assert weak.tolist() == ["a", "a"] and info == {"C": 1e-6, "cv_accuracy": None}
    strong, info = linear_predict(x, y, g, test, FrozenProbeSettings(fixed_c=10.0))
    assert strong.tolist() == ["a", "b"] and info == {"C": 10.0, "cv_accuracy": None}
    # Standardised before the fit: at a thousandth of the scale the classes are as far apart in z-scores,
    # whereas on raw features C = 10 could not afford the weight (~1000) that would separate them.
    small, _ = linear_predict(x * 1e-3, y, g, test * 1e-3, FrozenProbeSettings(fixed_c=10.0))
    assert small.tolist() == ["a", "b"]
    with pytest.raises(ValueError, match=r"^the linear probe needs training clips of at least 2 classes$"):
        linear_predict(x[:6], y[:6], g[:6], test, FrozenProbeSettings())


def test_probe_fits_each_budget_on_its_labelled_clips_only():
    x, y, g = _separable(3, 2, spread=1.0)
    # The rows outside budget 1 carry flipped labels: a budget that read them would get test clips wrong.
    poisoned = y.copy()
    budget = np.isin(g, ["v0", "v1"])
    poisoned[~budget] = np.where(y[~budget] == "a", "b", "a")
    test_x = np.array([[3.0, 0.0], [-3.0, 1.0], [3.0, 2.0]])
    test_y = np.array(["a", "b", "a"])
    s = FrozenProbeSettings(knn_k=2, c_grid=(1.0,), fixed_c=1.0)
    correct, details = probe(x, poisoned, g, test_x, test_y, {1: budget}, s)
    assert {k: v.tolist() for k, v in correct.items()} == {"knn_k1": [1.0, 1.0, 1.0],
                                                          "linear_k1": [1.0, 1.0, 1.0]}
    assert details == {"knn_k1": {"train_clips": 4, "train_videos": 2},
                       "linear_k1": {"train_clips": 4, "train_videos": 2, "C": 1.0, "cv_accuracy": None}}
    # Every (true) label: all 12 clips of 6 videos, C by CV; a wrong test label counts as wrong.
    correct, details = probe(x, y, g, test_x, np.array(["a", "a", "a"]), {None: np.ones(len(y), dtype=bool)}, s)
    assert correct["knn_all"].tolist() == [1.0, 0.0, 1.0] and correct["linear_all"].tolist() == [1.0, 0.0, 1.0]
    assert details["knn_all"] == {"train_clips": 12, "train_videos": 6}
    assert details["linear_all"] == {"train_clips": 12, "train_videos": 6, "C": 1.0, "cv_accuracy": 1.0}


def test_the_protocol_in_words():
    s = FrozenProbeSettings(clips_per_video=4, labelled_per_class=(2, None), knn_k=7, knn_temperature=0.5,
                            c_grid=(0.1, 1.0), cv_folds=5, fixed_c=3.0, seed=9)
    assert protocol(s, "audio") == (
        "frozen audio encoder, features averaged over 4 uniformly spaced windows per clip; fit on the "
        "training split's labels, scored per test clip; kNN: cosine similarity, k=7, vote weight "
        "exp(sim/0.5); linear: logistic regression on standardised features, C from [0.1, 1.0] by 5-fold "
        "CV grouped by source video on the training clips (C=3.0 where a class has one labelled video); "
        "labelled source videos per class: 2, all (seed 9); trivial baseline: the same classifiers on "
        "per-channel mean/std of the frames (video) or the mean 40-band log-mel spectrum (audio) of the "
        "same windows, z-scored with the training clips' statistics")


# --- the trivial baseline's statistics ------------------------------------------------------------------

def test_input_statistics_are_each_channels_mean_and_std_and_the_mean_log_mel_spectrum():
    video = torch.zeros(4, 8, 8, 3, dtype=torch.uint8)
    video[..., 0] = 255
    video[:2, ..., 1] = 51  # 0.2 in half the frames
    video[:1, ..., 2] = 255  # 1.0 in a quarter of them
    n = 4 * 8 * 8
    expected = torch.tensor([1.0, 0.1, 0.25, 0.0, 0.1 * math.sqrt(n / (n - 1)),
                             math.sqrt(0.25 * 0.75 * n / (n - 1))])
    t = torch.arange(8000) / 8000
    audio = (0.1 * torch.sin(2 * torch.pi * 500 * t) * (1 + t)).unsqueeze(0)  # louder over time
    stats = InputStatistics(8000)
    out = stats({"video": video, "audio": audio})
    assert torch.allclose(out["video_stats"], expected, atol=1e-6)
    from avssl_core.transforms.features import LogMelFilterbank

    spectrum = LogMelFilterbank(sample_rate=8000)(audio)  # [1, frames, 40]
    assert out["audio_stats"].shape == (40,)
    assert torch.allclose(out["audio_stats"], spectrum[0].mean(0), atol=1e-6)


# --- the few-label draw -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Item:
    path: str
    label: str
    group: str


def _items():
    """Class "a" from 4 source videos, class "b" from 2, with 1-3 clips each, interleaved."""
    out = []
    for v, (label, clips) in enumerate([("a", 2), ("b", 1), ("a", 3), ("a", 1), ("b", 2), ("a", 2)]):
        out += [_Item(f"{label}{v}_{c}.mp4", label, f"{label}{v}") for c in range(clips)]
    return tuple(sorted(out, key=lambda m: m.path[-5:]))  # clips of a video apart, not in video order


def test_the_few_label_draw_keeps_whole_videos_k_per_class_in_original_order():
    items = _items()
    for seed in range(6):
        for k in (1, 2, 3):
            subset = labelled_subset(items, k, seed)
            kept = {m.group for m in subset}
            assert subset == tuple(m for m in items if m.group in kept), (seed, k)  # whole videos, in order
            per_class = {label: {m.group for m in subset if m.label == label} for label in "ab"}
            assert {c: len(v) for c, v in per_class.items()} == {"a": k, "b": min(k, 2)}, (seed, k)
    # The draw: one generator seeded with [seed, k], classes and their videos in sorted order.
    rng = np.random.default_rng([4, 2])
    a_names, b_names = ["a0", "a2", "a3", "a5"], ["b1", "b4"]
    chosen = {a_names[i] for i in rng.choice(4, size=2, replace=False)}
    chosen |= {b_names[i] for i in rng.choice(2, size=2, replace=False)}
    assert {m.group for m in labelled_subset(items, 2, 4)} == chosen
    # Another seed, another draw.
    firsts = {tuple(sorted(m.group for m in labelled_subset(items, 1, s))) for s in range(8)}
    assert len(firsts) > 1


def test_input_statistics_leave_out_the_modality_a_window_set_does_not_read():
    raw = {"video": torch.full((2, 4, 4, 3), 128, dtype=torch.uint8), "audio": torch.zeros(1, 8000)}
    assert set(InputStatistics(8000, audio=False)(raw)) == {"video_stats"}
    assert set(InputStatistics(8000, video=False)(raw)) == {"audio_stats"}
    assert set(InputStatistics(8000)(raw)) == {"video_stats", "audio_stats"}
