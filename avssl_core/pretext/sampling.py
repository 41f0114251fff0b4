"""Which video frames and which audio samples make up training pair ``i`` of epoch ``e``.

``PairSampler.recipe(epoch, i)`` is a pure function of (seed, epoch, i): its random numbers come from a
generator seeded with exactly those three numbers, so any worker, any rank and a resumed run compute the
same pair as an uninterrupted run. Nothing is decoded here; ``PairRecipe`` says what to decode.

Conventions (all documented choices):
- Epoch: ``samples_per_epoch`` pairs (default: one per usable clip). Item ``i`` is anchored on clip
  ``i % num_clips``, so every clip anchors the same number of pairs per epoch; the order in which items
  are visited is the DataLoader sampler's business (see epoch_order.py).
- Windows: the geometry of windows.py; the video window starting at frame ``start`` covers
  ``[start/fps, start/fps + video_frames/rate)`` seconds.
- Positive: the audio window (``spec.audio_seconds``, which may be longer or shorter than the video window)
  is centred on the video window's centre, to the nearest sample (``windows.centred_audio_start``).
- Easy: audio from a clip of another video, anywhere in it.
- Hard: audio from the same video (this clip or another clip of it) such that the *gap between the two
  intervals* is at least ``hard_negative_gap_s`` (AVTS: "at least half a second time-gap between the audio
  sample and the visual clip"), all placements equally likely.
- Superhard: same clip, the audio window starts ``superhard_overlap`` of the video window before its end
  (or ends that much after its start), so it still overlaps exactly that share of the video window.
- Shifted: same video, audio placed at the positive position shifted by ``±U(shift_range_s)`` seconds
  (to the nearest sample). When no video start admits that offset, the other direction is tried, then a
  new offset is drawn (up to ``SHIFT_DRAWS`` draws).
- A negative kind that cannot be placed for a clip becomes an easy negative; ``PairRecipe.fallback_from``
  says so and ``PairSampler.fallback_counts`` counts it (per process).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from avssl_core.errors import DataError
from avssl_core.pretext.clip_index import ClipIndex
from avssl_core.pretext.spec import PairKind, PairSpec
from avssl_core.pretext.windows import (
    centred_audio_start,
    frame_offsets,
    native_audio_len,
    video_rate,
    video_window_s,
)

# Tags mixed into generator seeds so that streams drawn for different purposes never coincide.
PAIR_SEED_TAG = 0x50414952  # "PAIR"
SHIFT_DRAWS = 8
# Tolerance, in samples, when turning second boundaries into whole samples (float noise in start_s).
_SAMPLE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class PairRecipe:
    """What to decode for one pair. Rows refer to ``PairSampler.index``."""

    epoch: int
    index: int  # position of the pair in the epoch, 0..samples_per_epoch-1
    kind: PairKind
    label: int  # 1: positive, 0: negative
    video_row: int
    frame_indices: tuple[int, ...]  # frames of the video clip to decode, in order
    audio_row: int
    audio_start_sample: int  # in the audio clip's own sample rate
    audio_num_samples: int  # samples to read at the clip's rate (before any resampling)
    shift_s: float = 0.0  # SHIFTED: the drawn signed offset from the positive audio position
    fallback_from: PairKind | None = None  # the kind that could not be placed (this pair is then easy)

    @property
    def video_start_frame(self) -> int:
        return self.frame_indices[0]


class PairSampler:
    """Draws pair recipes for a clip index and a method's PairSpec; see the module docstring."""

    def __init__(self, index: ClipIndex, spec: PairSpec, seed: int, *,
                 samples_per_epoch: int | None = None) -> None:
        _check_spec(spec)
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.spec = spec
        self.seed = int(seed)
        self.unusable: dict[str, str] = {}  # clip_id -> why it cannot anchor or give audio
        usable = [row for row in range(len(index)) if self._usable(index, row)]
        if not usable:
            raise DataError(f"{index.source}: no clip can hold the pair windows; e.g. "
                            f"{next(iter(self.unusable.items()))}")
        self.index = index.subset(usable) if len(usable) < len(index) else index
        if self.index.num_videos < 2:
            raise DataError(f"{index.source}: negatives need clips from at least 2 videos, "
                            f"found {self.index.num_videos}")
        self.samples_per_epoch = int(samples_per_epoch or len(self.index))
        if self.samples_per_epoch <= 0:
            raise ValueError("samples_per_epoch must be positive")
        self._geometry()
        self.fallback_counts: Counter[PairKind] = Counter()

    # -- which clips can be used -------------------------------------------------------------------
    def _usable(self, index: ClipIndex, row: int) -> bool:
        spec = self.spec
        fps, nframes = float(index.fps[row]), int(index.num_frames[row])
        rate = video_rate(spec, fps)
        reason = None
        if rate > fps + 1e-9:
            reason = f"clip at {fps:g} fps is below the spec's video_fps {rate:g}"
        elif frame_offsets(spec.video_frames, fps, rate)[-1] + 1 > nframes:
            reason = f"{nframes} frames, too few for {spec.video_frames} frames at {rate:g} fps"
        elif index.audio_channels[row] < spec.audio_channels:
            reason = f"{index.audio_channels[row]} audio channel(s), the spec asks for {spec.audio_channels}"
        else:
            sr = int(index.sample_rate[row])
            audio_len = native_audio_len(spec, sr)
            if audio_len > index.num_samples[row]:
                reason = f"{index.num_samples[row]} audio samples, the window needs {audio_len}"
            else:
                starts = np.arange(nframes - frame_offsets(spec.video_frames, fps, rate)[-1])
                k = centred_audio_start(starts, fps, video_window_s(spec, fps), sr, audio_len)
                if not np.any((k >= 0) & (k <= index.num_samples[row] - audio_len)):
                    reason = "no video start where the centred audio window fits in the clip"
        if reason:
            self.unusable[str(index.clip_id[row])] = reason
            return False
        return True

    def _geometry(self) -> None:
        """Per-clip window sizes, computed once."""
        idx, spec = self.index, self.spec
        self._rate = np.array([video_rate(spec, f) for f in idx.fps], dtype=np.float64)
        self._offsets = [frame_offsets(spec.video_frames, fps, rate)
                         for fps, rate in zip(idx.fps, self._rate, strict=True)]
        last_offsets = np.array([offsets[-1] for offsets in self._offsets])
        self._max_video_start = idx.num_frames - last_offsets - 1
        self._video_window_s = np.array([video_window_s(spec, f) for f in idx.fps], dtype=np.float64)
        self._audio_len = np.array([native_audio_len(spec, int(sr)) for sr in idx.sample_rate],
                                   dtype=np.int64)
        self._max_audio_start = idx.num_samples - self._audio_len

    # -- recipes -----------------------------------------------------------------------------------
    def recipe(self, epoch: int, i: int) -> PairRecipe:
        """Pair ``i`` of ``epoch``: a pure function of (seed, epoch, i)."""
        if not 0 <= i < self.samples_per_epoch or epoch < 0:
            raise IndexError(f"pair {i} of epoch {epoch} is outside 0..{self.samples_per_epoch - 1}")
        rng = np.random.default_rng([PAIR_SEED_TAG, self.seed, int(epoch), int(i)])
        anchor = i % len(self.index)
        if rng.random() < self.spec.positive_fraction:
            kind = PairKind.POSITIVE
        else:
            kind = _draw_kind(rng, self.spec.mix_at(epoch).as_kinds())
        placement = {
            PairKind.POSITIVE: self._place_positive,
            PairKind.EASY: self._place_easy,
            PairKind.HARD: self._place_hard,
            PairKind.SUPERHARD: self._place_superhard,
            PairKind.SHIFTED: self._place_shifted,
        }[kind](rng, anchor)
        fallback_from = None
        if placement is None:
            self.fallback_counts[kind] += 1
            fallback_from, kind = kind, PairKind.EASY
            placement = self._place_easy(rng, anchor)
        video_start, audio_row, audio_start, shift_s = placement
        return PairRecipe(
            epoch=int(epoch), index=int(i), kind=kind, label=int(kind == PairKind.POSITIVE),
            video_row=anchor, frame_indices=tuple(int(video_start + o) for o in self._offsets[anchor]),
            audio_row=int(audio_row), audio_start_sample=int(audio_start),
            audio_num_samples=int(self._audio_len[audio_row]), shift_s=float(shift_s),
            fallback_from=fallback_from)

    # Each placement returns (video start frame, audio row, audio start sample, shift) or None.
    def _place_positive(self, rng, a):
        starts = np.arange(self._max_video_start[a] + 1)
        k = self._positive_audio_start(a, starts)
        ok = np.flatnonzero((k >= 0) & (k <= self._max_audio_start[a]))
        j = ok[rng.integers(len(ok))]  # never empty: _usable checked it
        return int(starts[j]), a, int(k[j]), 0.0

    def _place_easy(self, rng, a):
        start = rng.integers(self._max_video_start[a] + 1)
        group = self.index.video_group[a]
        begin, end = self.index.group_begin[group], self.index.group_begin[group + 1]
        other = rng.integers(len(self.index) - (end - begin))  # a row outside [begin, end)
        row = other if other < begin else other + (end - begin)
        return int(start), int(row), int(rng.integers(self._max_audio_start[row] + 1)), 0.0

    def _place_hard(self, rng, a):
        gap = self.spec.hard_negative_gap_s
        rows = self.index.rows_of_video(self.index.video_group[a])
        starts = np.arange(self._max_video_start[a] + 1)
        v0 = self.index.start_s[a] + starts / self.index.fps[a]  # source-video seconds
        v1 = v0 + self._video_window_s[a]
        sr = self.index.sample_rate[rows][None, :].astype(np.float64)
        rel0 = self.index.start_s[rows][None, :]
        # Audio after the video: start >= v1 + gap. Audio before: end <= v0 - gap.
        after_min = np.maximum(0, np.ceil((v1[:, None] + gap - rel0) * sr - _SAMPLE_TOLERANCE))
        after_min = after_min.astype(np.int64)
        before_max = np.minimum(self._max_audio_start[rows][None, :],
                                np.floor((v0[:, None] - gap - rel0) * sr + _SAMPLE_TOLERANCE).astype(np.int64)
                                - self._audio_len[rows][None, :])
        after_count = np.maximum(0, self._max_audio_start[rows][None, :] - after_min + 1)
        before_count = np.maximum(0, before_max + 1)
        feasible = np.flatnonzero((after_count + before_count).sum(axis=1) > 0)
        if len(feasible) == 0:
            return None
        j = feasible[rng.integers(len(feasible))]
        # Every admissible (clip, audio start) for this video start is equally likely.
        counts = np.concatenate([after_count[j], before_count[j]])
        firsts = np.concatenate([after_min[j], np.zeros(len(rows), dtype=np.int64)])
        pick = rng.integers(counts.sum())
        slot = int(np.searchsorted(np.cumsum(counts), pick, side="right"))
        offset = pick - (np.cumsum(counts)[slot] - counts[slot])
        return int(starts[j]), int(rows[slot % len(rows)]), int(firsts[slot] + offset), 0.0

    def _place_superhard(self, rng, a):
        fps, sr = self.index.fps[a], float(self.index.sample_rate[a])
        overlap_s = self.spec.superhard_overlap * self._video_window_s[a]
        if overlap_s > self._audio_len[a] / sr:
            return None  # the audio window is too short to overlap that much
        starts = np.arange(self._max_video_start[a] + 1)
        v0 = starts / fps
        v1 = v0 + self._video_window_s[a]
        late = np.round((v1 - overlap_s) * sr).astype(np.int64)  # audio starts inside the video window's end
        early = np.round((v0 + overlap_s) * sr).astype(np.int64) - self._audio_len[a]  # ends inside its start
        fits = lambda k: (k >= 0) & (k <= self._max_audio_start[a])  # noqa: E731
        feasible = np.flatnonzero(fits(late) | fits(early))
        if len(feasible) == 0:
            return None
        j = feasible[rng.integers(len(feasible))]
        options = [k[j] for k in (late, early) if fits(k[j])]
        return int(starts[j]), a, int(options[rng.integers(len(options))]), 0.0

    def _place_shifted(self, rng, a):
        low, high = self.spec.shift_range_s
        rows = self.index.rows_of_video(self.index.video_group[a])
        starts = np.arange(self._max_video_start[a] + 1)
        sr_a = float(self.index.sample_rate[a])
        positive_start_s = self.index.start_s[a] + self._positive_audio_start(a, starts, rounded=False) / sr_a
        sr = self.index.sample_rate[rows][None, :].astype(np.float64)
        for _ in range(SHIFT_DRAWS):
            magnitude = rng.uniform(low, high)
            first_sign = 1.0 if rng.random() < 0.5 else -1.0
            for shift in (first_sign * magnitude, -first_sign * magnitude):
                k = np.round((positive_start_s[:, None] + shift - self.index.start_s[rows][None, :]) * sr)
                fits = (k >= 0) & (k <= self._max_audio_start[rows][None, :])
                feasible = np.flatnonzero(fits.any(axis=1))
                if len(feasible):
                    j = feasible[rng.integers(len(feasible))]
                    c = int(np.argmax(fits[j]))  # clips do not overlap: at most one holds the window
                    return int(starts[j]), int(rows[c]), int(k[j, c]), float(shift)
        return None

    def _positive_audio_start(self, a: int, starts: np.ndarray, rounded: bool = True) -> np.ndarray:
        return centred_audio_start(starts, float(self.index.fps[a]), float(self._video_window_s[a]),
                                    int(self.index.sample_rate[a]), int(self._audio_len[a]), rounded)

    # -- where a recipe's windows lie, in seconds of the source video (for checks and plots) ----------
    def video_interval_s(self, recipe: PairRecipe) -> tuple[float, float]:
        a = recipe.video_row
        start = self.index.start_s[a] + recipe.video_start_frame / self.index.fps[a]
        return float(start), float(start + self._video_window_s[a])

    def audio_interval_s(self, recipe: PairRecipe) -> tuple[float, float]:
        c = recipe.audio_row
        start = self.index.start_s[c] + recipe.audio_start_sample / self.index.sample_rate[c]
        return float(start), float(start + recipe.audio_num_samples / self.index.sample_rate[c])

    def positive_audio_start_s(self, recipe: PairRecipe) -> float:
        """Where a positive's audio would start for this recipe's video window (shifts start from here)."""
        a = recipe.video_row
        k = self._positive_audio_start(a, np.array([recipe.video_start_frame]), rounded=False)[0]
        return float(self.index.start_s[a] + k / self.index.sample_rate[a])


def _draw_kind(rng: np.random.Generator, shares: dict[PairKind, float]) -> PairKind:
    kinds = list(shares)
    cumulative = np.cumsum([shares[k] for k in kinds])
    return kinds[min(int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right")),
                     len(kinds) - 1)]


def _check_spec(spec: PairSpec) -> None:
    problems = []
    if spec.video_frames < 1:
        problems.append(f"video_frames={spec.video_frames} (need >= 1)")
    if not spec.audio_seconds > 0:
        problems.append(f"audio_seconds={spec.audio_seconds} (need > 0)")
    if spec.video_fps is not None and not spec.video_fps > 0:
        problems.append(f"video_fps={spec.video_fps} (need > 0 or None)")
    if not 0 <= spec.positive_fraction <= 1:
        problems.append(f"positive_fraction={spec.positive_fraction} (need 0..1)")
    if spec.hard_negative_gap_s < 0:
        problems.append(f"hard_negative_gap_s={spec.hard_negative_gap_s} (need >= 0)")
    if not 0 < spec.superhard_overlap < 1:
        problems.append(f"superhard_overlap={spec.superhard_overlap} (need strictly between 0 and 1)")
    low, high = spec.shift_range_s
    if not 0 < low <= high:
        problems.append(f"shift_range_s={spec.shift_range_s} (need 0 < low <= high)")
    if spec.audio_channels not in (1, 2):
        problems.append(f"audio_channels={spec.audio_channels} (need 1 or 2)")
    if spec.audio_sample_rate is not None and spec.audio_sample_rate <= 0:
        problems.append(f"audio_sample_rate={spec.audio_sample_rate} (need > 0 or None)")
    if problems:
        raise ValueError("PairSpec: " + "; ".join(problems))
