"""Frozen-feature probes: how much class information a pretrained encoder's features hold, with nothing
of the encoder trained on labels.

Each labelled clip's feature is its encoder's output averaged over ``n`` uniformly spaced windows (the
caller extracts them). Two classifiers are fit on the training clips' labels and score each test clip:

- kNN (Wu et al. 2018, Sec. 3.4; the online kNN of solo-learn): cosine similarity to every training clip,
  the ``k`` most similar vote for their class with weight exp(similarity / T), the heaviest class wins.
- Linear probe (AVID-CMA's and CrissCross's frozen protocol): multinomial logistic regression on
  standardised features (statistics of the training clips), C chosen from a small grid by cross-validation
  grouped by source video on the training clips only (clips of one video never on both sides). Where a
  class has a single labelled source video, grouped CV would hold out the whole class and score nothing,
  so C is then fixed (``fixed_c``) and the result says so.

Label efficiency (SEVERE's few-label setting): the classifiers may see only ``k`` labelled source videos
per class (all of their clips), a seeded draw shared by every model.

Results are per test clip (right or wrong), so intervals over test source videos can be put on them
(avssl_core/eval/intervals.py).

The trivial baseline (``InputStatistics``) puts the same classifiers on statistics of the raw windows,
with no network at all: each colour channel's mean and standard deviation over the frames, and the mean
over time of a 40-band log-mel spectrogram of the audio. What it scores needs no learning; a pretrained
encoder is worth something only above it and above scratch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

CLASSIFIERS = ("knn", "linear")
TRIVIAL = "trivial"  # the baseline's name beside "pretrained" and "scratch"
STATS_KEYS = {"video": "video_stats", "audio": "audio_stats"}  # where a window keeps its statistics


def channel_moments(video: torch.Tensor) -> torch.Tensor:
    """uint8 [..., 3] -> [6]: each channel's mean and sample standard deviation on a 0-1 scale, from its
    256-bin histogram (exact in float64, and a fifth of the time of reductions over the float pixels)."""
    levels = torch.arange(256, dtype=torch.float64)
    hist = torch.stack([torch.bincount(video[..., c].reshape(-1), minlength=256) for c in range(3)]).double()
    n = hist[0].sum()
    mean = (hist * levels).sum(1) / n
    var = (hist * (levels - mean[:, None]) ** 2).sum(1) / (n - 1)
    return (torch.cat([mean, var.sqrt()]) / 255.0).float()


class InputStatistics:
    """Raw window (uint8 video [T, H, W, 3], audio [channels, samples]) -> {"video_stats": [6] per-channel
    mean and std of the frames on a 0-1 scale, "audio_stats": [40] mean log-mel energy per band}, for the
    modalities the window set reads (``video``, ``audio``): the other one is a placeholder no probe looks
    at (a video set's log-mel spectrum of placeholder audio was about 6% of an AVTS evaluation)."""

    def __init__(self, sample_rate: int, *, video: bool = True, audio: bool = True) -> None:
        from avssl_core.transforms.features import LogMelFilterbank

        self.video, self.audio = video, audio
        self.logmel = LogMelFilterbank(sample_rate=sample_rate)

    def __call__(self, raw: dict) -> dict[str, torch.Tensor]:
        out = {}
        if self.video:
            out[STATS_KEYS["video"]] = channel_moments(raw["video"])
        if self.audio:
            out[STATS_KEYS["audio"]] = self.logmel(raw["audio"]).mean(dim=1).reshape(-1)  # [1, frames, bands] -> [bands]
        return out


@dataclass(frozen=True)
class FrozenProbeSettings:
    clips_per_video: int = 3  # windows averaged into one feature per clip
    labelled_per_class: tuple[int | None, ...] = (1, None)  # source videos per class with labels; None: all
    knn_k: int = 20
    knn_temperature: float = 0.07
    c_grid: tuple[float, ...] = (0.01, 0.1, 1.0)
    cv_folds: int = 3
    fixed_c: float = 1.0  # C where grouped CV cannot run (one labelled source video in some class)
    max_iter: int = 2000
    seed: int = 0


def protocol(s: FrozenProbeSettings, encoder: str) -> str:
    """The protocol in words, stated here once for the metrics file and the report."""
    labels = ", ".join("all" if k is None else str(k) for k in s.labelled_per_class)
    return (f"frozen {encoder} encoder, features averaged over {s.clips_per_video} uniformly spaced windows per clip; "
            f"fit on the training split's labels, scored per test clip; kNN: cosine similarity, k={s.knn_k}, "
            f"vote weight exp(sim/{s.knn_temperature}); linear: logistic regression on standardised features, C "
            f"from {list(s.c_grid)} by {s.cv_folds}-fold CV grouped by source video on the training clips "
            f"(C={s.fixed_c} where a class has one labelled video); labelled source videos per class: {labels} "
            f"(seed {s.seed}); trivial baseline: the same classifiers on per-channel mean/std of the frames "
            f"(video) or the mean 40-band log-mel spectrum (audio) of the same windows, z-scored with the "
            f"training clips' statistics")


def metric_name(classifier: str, labelled_per_class: int | None) -> str:
    """e.g. knn_all (every training label), linear_k1 (one labelled source video per class)."""
    return f"{classifier}_{'all' if labelled_per_class is None else f'k{labelled_per_class}'}"


def standardised(train_x: np.ndarray, test_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both z-scored with the training clips' statistics. For the trivial baseline's statistics, which
    are all positive and of different scales: cosine similarity between raw ones would compare little
    more than their proportions."""
    mean, std = train_x.mean(0), train_x.std(0)
    std = np.where(std > 0, std, 1.0)
    return (train_x - mean) / std, (test_x - mean) / std


def knn_predict(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, *, k: int,
                temperature: float) -> np.ndarray:
    """Weighted kNN on cosine similarity; ties between classes go to the first in sorted order."""
    if len(train_x) == 0:
        raise ValueError("the kNN probe has no training clips")
    classes, y = np.unique(np.asarray(train_y), return_inverse=True)
    a = _unit(train_x)
    q = _unit(test_x)
    sim = q @ a.T  # [Q, N]
    k = min(k, len(a))
    top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    top_sim = np.take_along_axis(sim, top, axis=1)
    votes = np.zeros((len(q), len(classes)))
    np.add.at(votes, (np.arange(len(q))[:, None], y[top]), np.exp(top_sim / temperature))
    return classes[votes.argmax(1)]


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _pipeline(c: float, s: FrozenProbeSettings):
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=s.max_iter))


def choose_c(x: np.ndarray, y: np.ndarray, groups: np.ndarray, s: FrozenProbeSettings) -> tuple[float, float | None]:
    """(C, its mean CV accuracy) by CV grouped by source video; (fixed_c, None) where some class has a
    single source video (holding it out would leave the class unseen) or a training fold holds one class."""
    per_class = {label: len(set(groups[y == label])) for label in np.unique(y)}
    if min(per_class.values()) < 2:
        return s.fixed_c, None
    splits = list(GroupKFold(n_splits=min(s.cv_folds, len(np.unique(groups)))).split(x, y, groups))
    if any(len(np.unique(y[train])) < 2 for train, _ in splits):
        return s.fixed_c, None
    scores = []
    for c in s.c_grid:
        fold = [float(np.mean(_pipeline(c, s).fit(x[tr], y[tr]).predict(x[te]) == y[te])) for tr, te in splits]
        scores.append(float(np.mean(fold)))
    best = int(np.argmax(scores))  # ties: the first, i.e. the smallest C (strongest regularisation) listed first
    return float(s.c_grid[best]), scores[best]


def linear_predict(train_x: np.ndarray, train_y: np.ndarray, train_groups: np.ndarray, test_x: np.ndarray,
                   s: FrozenProbeSettings) -> tuple[np.ndarray, dict]:
    """Predicted labels of ``test_x`` and {"C", "cv_accuracy"}."""
    train_y, train_groups = np.asarray(train_y), np.asarray(train_groups)
    if len(np.unique(train_y)) < 2:
        raise ValueError("the linear probe needs training clips of at least 2 classes")
    c, cv = choose_c(np.asarray(train_x), train_y, train_groups, s)
    model = _pipeline(c, s).fit(train_x, train_y)
    return model.predict(test_x), {"C": c, "cv_accuracy": cv}


def probe(train_x: np.ndarray, train_y: Sequence, train_groups: Sequence, test_x: np.ndarray, test_y: Sequence,
          labelled: dict[int | None, np.ndarray], s: FrozenProbeSettings
          ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """Every classifier at every label budget: ({metric: per-test-clip correctness 0/1}, {metric: details}).
    ``labelled[k]`` masks the training clips whose labels budget k may use (eval/action.py's
    labelled_subset draws them: whole source videos, seeded)."""
    train_y, train_groups, test_y = np.asarray(train_y), np.asarray(train_groups), np.asarray(test_y)
    correct: dict[str, np.ndarray] = {}
    details: dict[str, dict] = {}
    for per_class, rows in labelled.items():
        x, y, g = train_x[rows], train_y[rows], train_groups[rows]
        knn = knn_predict(x, y, test_x, k=s.knn_k, temperature=s.knn_temperature)
        correct[metric_name("knn", per_class)] = (knn == test_y).astype(float)
        details[metric_name("knn", per_class)] = {"train_clips": int(rows.sum()),
                                                 "train_videos": int(len(np.unique(g)))}
        linear, info = linear_predict(x, y, g, test_x, s)
        correct[metric_name("linear", per_class)] = (linear == test_y).astype(float)
        details[metric_name("linear", per_class)] = {"train_clips": int(rows.sum()),
                                                    "train_videos": int(len(np.unique(g))), **info}
    return correct, details
