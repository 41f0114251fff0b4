"""Constant-frame-rate resampling of a timestamped frame stream, by presentation time.

Output frame ``g`` shows whatever source frame is on screen at ``g / fps``: the last source frame whose
timestamp is at or before that instant. Source frames are duplicated when the source is slower (or
stalls, as variable-frame-rate phone videos do) and dropped when it is faster. Picking by timestamp
rather than by counting frames is what keeps variable-frame-rate sources in sync with their audio.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

Frame = TypeVar("Frame")

# Timestamps come from integer pts times a rational time base, turned into floats; a source frame that
# starts within this margin after an output instant counts as on screen at that instant.
TIME_EPSILON_S = 1e-6


class ConstantRateSampler(Generic[Frame]):
    """Feed source frames in presentation order with :meth:`push`; get ``(output_index, frame)`` pairs.

    Times are seconds relative to output frame 0. Frames before 0 are only held (the one on screen at
    0 is emitted for output frame 0); a held frame is emitted once the next source frame shows it has
    left the screen, or at :meth:`finish`, which is told when the last frame leaves the screen.
    """

    def __init__(self, fps: int) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.fps = fps
        self.next_index = 0  # the next output frame still waiting for its source frame
        self._held: Frame | None = None

    def output_time(self, index: int) -> float:
        return index / self.fps

    def push(self, frame: Frame, time_s: float) -> Iterator[tuple[int, Frame]]:
        """Take the next source frame (shown from ``time_s`` on) and yield output frames now settled."""
        if self._held is not None:
            # Every output instant before this frame's start showed the held frame.
            while self.output_time(self.next_index) < time_s - TIME_EPSILON_S:
                yield self.next_index, self._held
                self.next_index += 1
        self._held = frame

    def finish(self, end_time_s: float) -> Iterator[tuple[int, Frame]]:
        """The held (last) frame stays on screen until ``end_time_s``; yield the output frames it covers."""
        if self._held is None:
            return
        while self.output_time(self.next_index) < end_time_s - TIME_EPSILON_S:
            yield self.next_index, self._held
            self.next_index += 1
        self._held = None
