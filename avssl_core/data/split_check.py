"""Early check that the synthetic world has a video in every split the later stages read.

The synthetic world is split by class (avssl_core.synth.generate.assign_splits), and a class with fewer
videos than splits gives them to the largest fractions first: ``synth.num_videos=8`` (one per class)
puts every video in ``train``. Pretraining would then fail on its empty validation split only after the
data stages ran; the split is a pure function of the configuration, so acquire checks it before
generating anything.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from avssl_core.config import Config, SynthConfig
from avssl_core.errors import ConfigError

# The most videos tried when looking for the smallest world that fills every needed split.
_SEARCH_LIMIT = 10_000


def synthetic_split_counts(cfg: SynthConfig) -> dict[str, int]:
    """Videos per split of the synthetic world ``cfg`` describes (before anything is generated)."""
    from avssl_core.synth.generate import assign_labels, assign_splits  # numpy-heavy; only when needed

    return dict(Counter(assign_splits(assign_labels(cfg), cfg)))


def needed_splits(cfg: Config) -> dict[str, list[str]]:
    """Split -> the settings that read it (pretraining and evaluation)."""
    readers = {
        "pretrain.train_split": cfg.pretrain.train_split, "pretrain.val_split": cfg.pretrain.val_split,
        "evaluate.split": cfg.evaluate.split, "evaluate.train_split": cfg.evaluate.train_split,
    }
    needed: dict[str, list[str]] = {}
    for setting, split in readers.items():
        needed.setdefault(split, []).append(setting)
    return needed


def check_synthetic_splits(cfg: Config) -> None:
    """Raise ConfigError naming each split that the stages read but the synthetic world leaves empty,
    with the smallest ``synth.num_videos`` that fills them."""
    counts = synthetic_split_counts(cfg.synth)
    needed = needed_splits(cfg)
    empty = [split for split in needed if counts.get(split, 0) == 0]
    if not empty:
        return
    problems = "; ".join(f"split {split!r} (read by {', '.join(needed[split])}) gets no video" for split in empty)
    per_split = ", ".join(f"{split} {counts.get(split, 0)}" for split in sorted(set(counts) | set(needed)))
    hint = ""
    if all(cfg.synth.split_fractions.get(split, 0) > 0 for split in empty):
        enough = _smallest_world(cfg, list(needed))
        if enough is not None:
            hint = f"use synth.num_videos={enough} or more, or "
    raise ConfigError(
        f"synth.num_videos={cfg.synth.num_videos}: {problems} (videos per split: {per_split}; each class gives "
        f"its videos to the largest of synth.split_fractions {cfg.synth.split_fractions} first). To fix it, "
        f"{hint}point those settings at a split that has videos (e.g. pretrain.val_split=train)")


def _smallest_world(cfg: Config, splits: list[str]) -> int | None:
    for n in range(cfg.synth.num_videos + 1, _SEARCH_LIMIT + 1):
        counts = synthetic_split_counts(dataclasses.replace(cfg.synth, num_videos=n))
        if all(counts.get(split, 0) > 0 for split in splits):
            return n
    return None
