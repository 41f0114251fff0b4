"""Frame and sample clocks of one video, and the conversions between them.

Frame ``k`` is shown at ``k / fps`` seconds; a sound caused by an event at frame ``k`` starts at sample
``round(k / fps * sample_rate)``. Everything in the generator goes through these helpers so that the
metadata, the pixels and the waveform agree on when an event happens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Timeline:
    fps: int
    sample_rate: int
    num_frames: int

    @classmethod
    def for_duration(cls, duration_s: float, fps: int, sample_rate: int) -> Timeline:
        return cls(fps=fps, sample_rate=sample_rate, num_frames=max(1, int(round(duration_s * fps))))

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps

    @property
    def num_samples(self) -> int:
        return int(round(self.duration_s * self.sample_rate))

    def frame_times(self) -> np.ndarray:
        return np.arange(self.num_frames, dtype=np.float64) / self.fps

    def sample_times(self) -> np.ndarray:
        return np.arange(self.num_samples, dtype=np.float64) / self.sample_rate

    def frame_time(self, frame: int) -> float:
        return frame / self.fps

    def onset_sample(self, frame: int) -> int:
        """First sample of the sound caused by an event at ``frame`` (Python's round, as documented)."""
        return int(round(frame / self.fps * self.sample_rate))

    def per_sample(self, per_frame: np.ndarray) -> np.ndarray:
        """Linearly interpolate a per-frame control signal (position, speed) to the audio rate."""
        return np.interp(self.sample_times(), self.frame_times(), per_frame).astype(np.float32)

    def seconds_to_frames(self, seconds: float) -> int:
        return max(1, int(round(seconds * self.fps)))
