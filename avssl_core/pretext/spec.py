"""What a pretraining method asks of the pair sampler: window lengths, negative kinds, curriculum.

A *pair* is a video window and an audio window. Positives take both from the same moment of the same
clip. Negatives come in kinds (the AVTS paper, Sec. 2.3; the co-attention paper for shifted audio):
  easy       audio from another video
  hard       same video, audio at least ``hard_negative_gap_s`` away from the video window
  superhard  same video, audio overlapping the video window only partly (a fixed share)
  shifted    same video, audio shifted by a uniform draw from ``shift_range_s`` (either direction)
The mix of negative kinds may change with the epoch: that is the curriculum (AVTS: easy only, then
75% easy / 25% hard).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class PairKind(enum.IntEnum):
    POSITIVE = 0
    EASY = 1
    HARD = 2
    SUPERHARD = 3
    SHIFTED = 4


@dataclass(frozen=True)
class NegativeMix:
    """Shares of each negative kind among negatives; they must sum to 1."""

    easy: float = 1.0
    hard: float = 0.0
    superhard: float = 0.0
    shifted: float = 0.0

    def __post_init__(self) -> None:
        shares = (self.easy, self.hard, self.superhard, self.shifted)
        if min(shares) < 0 or abs(sum(shares) - 1.0) > 1e-6:
            raise ValueError(f"negative shares must be >= 0 and sum to 1, got {shares}")

    def as_kinds(self) -> dict[PairKind, float]:
        return {
            PairKind.EASY: self.easy,
            PairKind.HARD: self.hard,
            PairKind.SUPERHARD: self.superhard,
            PairKind.SHIFTED: self.shifted,
        }


@dataclass(frozen=True)
class CurriculumStage:
    start_epoch: int  # 0-based epoch from which this mix applies
    mix: NegativeMix


@dataclass(frozen=True)
class PairSpec:
    """Everything the sampler and decoder need to build one training pair for a method."""

    video_frames: int  # frames in the video window (at ``video_fps``)
    audio_seconds: float  # length of the audio window
    video_fps: float | None = None  # None: the clips' own rate; lower: frames are subsampled in time
    positive_fraction: float = 0.5
    curriculum: tuple[CurriculumStage, ...] = field(
        default_factory=lambda: (CurriculumStage(0, NegativeMix()),)
    )
    hard_negative_gap_s: float = 0.5  # AVTS: at least half a second between audio and video windows
    superhard_overlap: float = 0.5  # share of the video window the superhard audio still overlaps
    shift_range_s: tuple[float, float] = (2.0, 5.8)  # co-attention: shifted-audio negatives
    audio_channels: int = 1  # 1: downmix to mono; 2: keep stereo (co-attention uses raw stereo)
    audio_sample_rate: int | None = None  # None: the clips' own rate

    def curriculum_stage_at(self, epoch: int) -> int:
        """Index (in start order) of the curriculum stage in force at ``epoch``."""
        stage = 0
        for i, start in enumerate(sorted(s.start_epoch for s in self.curriculum)):
            if epoch >= start:
                stage = i
        return stage

    def mix_at(self, epoch: int) -> NegativeMix:
        """The negative mix in force at ``epoch`` (the last stage whose start has been reached)."""
        stages = sorted(self.curriculum, key=lambda s: s.start_epoch)
        return stages[self.curriculum_stage_at(epoch)].mix
