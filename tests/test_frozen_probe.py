"""Frozen-feature probes (kNN and linear) on feature matrices with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from avssl_core.eval.frozen_probe import (
    FrozenProbeSettings,
    InputStatistics,
    choose_c,
    knn_predict,
    linear_predict,
    metric_name,
    probe,
    protocol,
    standardised,
)

pytestmark = pytest.mark.timeout(60)


def test_knn_weights_votes_by_cosine_similarity():
    # Direction, not length, counts: the long vector [10, 0] is as similar to [1, 0] as [1, 0] itself.
    train = np.array([[10.0, 0.0], [1.0, 0.1], [0.0, 1.0]])
    labels = np.array(["a", "a", "b"])
    test = np.array([[1.0, 0.0], [0.1, 1.0], [0.6, 1.0]])
    assert knn_predict(train, labels, test, k=1, temperature=0.07).tolist() == ["a", "b", "b"]
    # k=3 with a sharp temperature: the single most similar neighbour dominates the two others.
    assert knn_predict(train, labels, test, k=3, temperature=0.01).tolist() == ["a", "b", "b"]
    # A flat temperature turns it into a plain majority vote: two a's beat one b everywhere.
    assert knn_predict(train, labels, test, k=3, temperature=1e6).tolist() == ["a", "a", "a"]
    # k larger than the training set uses all of it.
    assert knn_predict(train, labels, test, k=50, temperature=1e6).tolist() == ["a", "a", "a"]


def _blobs(n_videos: int, clips: int, shift: float, seed: int):
    """Two classes separated along feature 0 by ``shift``; each video has its own offset (clips of a
    video are alike), ``clips`` clips per video."""
    rng = np.random.default_rng(seed)
    labels, groups, x = [], [], []
    for v in range(n_videos):
        label = "a" if v % 2 == 0 else "b"
        centre = np.r_[shift if label == "a" else -shift, rng.normal(0, 1, 7)]
        for _ in range(clips):
            x.append(centre + rng.normal(0, 0.3, 8))
            labels.append(label)
            groups.append(f"v{v}")
    return np.array(x), np.array(labels), np.array(groups)


def test_linear_probe_separates_separable_classes_and_fails_on_noise():
    x, y, g = _blobs(12, 3, 2.0, 0)
    tx, ty, _ = _blobs(8, 3, 2.0, 1)
    predicted, info = linear_predict(x, y, g, tx, FrozenProbeSettings())
    assert np.mean(predicted == ty) == 1.0 and info["C"] in (0.01, 0.1, 1.0) and info["cv_accuracy"] > 0.7
    nx, ny, ng = _blobs(12, 3, 0.0, 2)  # no class signal at all
    nt, nty, _ = _blobs(40, 3, 0.0, 3)
    noise, _ = linear_predict(nx, ny, ng, nt, FrozenProbeSettings())
    assert 0.3 < np.mean(noise == nty) < 0.7


def test_c_is_chosen_on_training_groups_only_and_fixed_with_one_video_per_class():
    x, y, g = _blobs(12, 3, 1.0, 4)
    s = FrozenProbeSettings(c_grid=(0.001, 1.0), fixed_c=0.5)
    c, cv = choose_c(x, y, g, s)
    assert c in s.c_grid and cv is not None
    one = np.isin(g, ["v0", "v1"])  # one video of each class: CV would hold out a whole class
    assert choose_c(x[one], y[one], g[one], s) == (0.5, None)
    with pytest.raises(ValueError, match="at least 2 classes"):
        linear_predict(x[y == "a"], y[y == "a"], g[y == "a"], x, s)


def test_probe_reports_every_classifier_and_label_budget_per_test_clip():
    x, y, g = _blobs(12, 3, 2.0, 5)
    tx, ty, _ = _blobs(6, 2, 2.0, 6)
    s = FrozenProbeSettings(knn_k=5)
    labelled = {1: np.isin(g, ["v0", "v1"]), None: np.ones(len(y), dtype=bool)}
    correct, details = probe(x, y, g, tx, ty, labelled, s)
    assert set(correct) == {"knn_k1", "linear_k1", "knn_all", "linear_all"}
    assert all(v.shape == (12,) and set(np.unique(v)) <= {0.0, 1.0} for v in correct.values())
    assert correct["linear_all"].mean() == 1.0 and correct["knn_all"].mean() == 1.0
    assert details["linear_k1"] == {"train_clips": 6, "train_videos": 2, "C": s.fixed_c, "cv_accuracy": None}
    assert details["knn_all"]["train_videos"] == 12
    assert metric_name("linear", None) == "linear_all" and metric_name("knn", 5) == "knn_k5"
    words = protocol(s, "video")
    assert "k=5" in words and "labelled source videos per class: 1, all" in words


def test_trivial_baseline_statistics_of_raw_windows():
    import torch

    video = torch.zeros(4, 8, 8, 3, dtype=torch.uint8)
    video[..., 0] = 255  # pure red
    video[:2, ..., 2] = 255  # blue in half the frames
    t = torch.arange(16000) / 16000
    low = 0.1 * torch.sin(2 * torch.pi * 200 * t).unsqueeze(0)
    high = 0.1 * torch.sin(2 * torch.pi * 3000 * t).unsqueeze(0)
    stats = InputStatistics(16000)
    a = stats({"video": video, "audio": low})
    b = stats({"video": video, "audio": high})
    assert torch.allclose(a["video_stats"], torch.tensor([1.0, 0.0, 0.5, 0.0, 0.0, 0.5]), atol=0.01)
    assert a["audio_stats"].shape == (40,)
    # The tone's energy sits in a low band for 200 Hz and a high band for 3 kHz.
    assert int(a["audio_stats"].argmax()) < int(b["audio_stats"].argmax())


def test_standardised_uses_training_statistics_only():
    train = np.array([[1.0, 5.0], [3.0, 5.0]])
    test = np.array([[2.0, 7.0]])
    z_train, z_test = standardised(train, test)
    assert np.allclose(z_train, [[-1.0, 0.0], [1.0, 0.0]]) and np.allclose(z_test, [[0.0, 2.0]])
